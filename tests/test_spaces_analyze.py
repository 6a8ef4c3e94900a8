"""resgraph analyze: error EDFs of several sweeps on one plot, error against MACs and
parameters, the best specs, PNGs and one self-contained HTML page; unreadable results are
one error line."""

from __future__ import annotations

import re

import pytest

from helpers import run_cli
from resgraph.analyze import AnalyzeError, analyze, edf, read_sweep

pytestmark = pytest.mark.subprocess  # these tests run the command in its own process

HEADER = "spec,params,macs,error,time_s,status\n"


def _sweep(folder, rows):
    folder.mkdir(parents=True)
    (folder / "results.csv").write_text(HEADER + "".join(rows))
    return folder


@pytest.fixture
def two(tmp_path):
    a = _sweep(
        tmp_path / "regnet",
        [
            "a1.yaml,1000,20000,0.30,1.0,ok\n",
            "a2.yaml,2000,40000,0.10,1.0,ok\n",
            "a3.yaml,3000,60000,,1.0,failed: batch size too large\n",
        ],
    )
    b = _sweep(
        tmp_path / "anynet",
        ["b<1>.yaml,1500,30000,0.20,1.0,ok\n", "b2.yaml,2500,50000,0.40,1.0,ok\n"],
    )
    return a, b


def test_edf_counts_the_fraction_at_or_below_each_error():
    assert edf([0.3, 0.1, 0.2, 0.2]) == ([0.1, 0.2, 0.2, 0.3], [0.25, 0.5, 0.75, 1.0])


def test_only_finished_trials_are_read(two):
    rows = read_sweep(two[0])
    assert [(r.spec, r.params, r.macs, r.error) for r in rows] == [
        ("a1.yaml", 1000, 20000, 0.30),
        ("a2.yaml", 2000, 40000, 0.10),
    ]


def test_analyze_writes_plots_and_a_self_contained_page(two, tmp_path):
    out = tmp_path / "report"
    best = analyze(list(two), out, best=3)
    assert [r.spec for r in best] == ["a2.yaml", "b<1>.yaml", "a1.yaml"]
    for name in ("edf", "error_vs_macs", "error_vs_params"):
        assert (out / f"{name}.png").read_bytes().startswith(b"\x89PNG")
    page = (out / "index.html").read_text()
    assert page.count('src="data:image/png;base64,') == 3
    assert not re.search(r'(src|href)="(?!data:)', page)  # nothing fetched from elsewhere
    assert "b&lt;1&gt;.yaml" in page and "b<1>" not in page
    table = page[page.index("<table>") :]
    assert table.index("a2.yaml") < table.index("b&lt;1&gt;.yaml") < table.index("a1.yaml")
    assert "a3.yaml" not in page and "b2.yaml" not in page  # failed, and not among the best 3


def test_the_command_lists_the_best_specs(two, tmp_path):
    result = run_cli("analyze", str(two[0]), str(two[1]), "--best", "2")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == f"wrote {two[0] / 'analysis' / 'index.html'} and 3 plots"
    assert lines[1].split()[:2] == ["10.00%", "a2.yaml"]
    assert lines[2].split()[:2] == ["20.00%", "b<1>.yaml"]
    assert len(lines) == 3


def test_missing_results_are_one_error_line(tmp_path):
    result = run_cli("analyze", str(tmp_path / "nowhere"))
    assert result.returncode == 1
    assert result.stderr == (
        f"error: {tmp_path / 'nowhere' / 'results.csv'}: no such file (run resgraph sweep first)\n"
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("spec,params\na.yaml,1\n", "not a sweep's results (no column 'error')"),
        (HEADER + "a.yaml,x,1,0.1,1,ok\n", ":2: a finished trial without numbers"),
    ],
)
def test_unreadable_results_are_refused(tmp_path, text, message):
    folder = tmp_path / "s"
    folder.mkdir()
    (folder / "results.csv").write_text(text)
    with pytest.raises(AnalyzeError, match=re.escape(message)):
        read_sweep(folder)


def test_a_sweep_with_no_finished_trial_is_refused(tmp_path):
    folder = _sweep(tmp_path / "s", ["a.yaml,1,1,,1,failed: x\n"])
    with pytest.raises(AnalyzeError, match="no finished trials to analyse"):
        analyze([folder], tmp_path / "out")
    assert not (tmp_path / "out").exists()
