"""resgraph sweep: every spec a Ray Tune trial running resgraph train's loop, one row per
spec in results.csv, a failing trial recorded while the others go on, and a resumed sweep
that never trains a finished trial again."""

from __future__ import annotations

import csv
import subprocess
import sys

import pytest

from helpers import ROOT, run_cli
from resgraph import load_spec
from resgraph.summary import summarize

pytestmark = [pytest.mark.subprocess, pytest.mark.slow]  # trials start processes
pytestmark.append(pytest.mark.xdist_group("sweep"))  # one worker runs `swept`

TINY = """\
name: Tiny {w}
input: {{channels: 1, size: 8}}
num_classes: 10
stem: {{layout: cifar, width: {w}}}
stages:
  - {{width: {w}, repeats: 1}}
train: {{batch_size: {batch}}}
"""
ARGS = ["--dataset", "digits", "--iterations", "8", "--device", "cpu", "--cpus-per-trial", "1"]


def _rows(path):
    with path.open() as f:
        return {row["spec"]: row for row in csv.DictReader(f)}


@pytest.fixture(scope="session")
def swept(tmp_path_factory):
    """Three good specs, one whose training fails (its batch is larger than the data set)
    and one that does not validate; swept once. (Session-scoped: a module-scoped fixture is
    set up again whenever the worker runs another file's test between two of this file's.)"""
    pytest.importorskip("ray.tune")  # here, not at import: the other tests need no Ray
    root = tmp_path_factory.mktemp("sweep")
    specs = root / "specs"
    specs.mkdir()
    for w in (4, 6, 8):
        (specs / f"net{w}.yaml").write_text(TINY.format(w=w, batch=32))
    (specs / "toolarge.yaml").write_text(TINY.format(w=4, batch=5000))
    (specs / "invalid.yaml").write_text(TINY.format(w=0, batch=32))
    result = run_cli("sweep", "specs", "--out", "out", *ARGS, cwd=root, timeout=600)
    return root, result


def test_a_sweep_writes_one_row_per_spec(swept):
    root, result = swept
    assert result.returncode == 0, result.stderr
    rows = _rows(root / "out" / "results.csv")
    assert sorted(rows) == [
        f"specs/{n}.yaml" for n in ("invalid", "net4", "net6", "net8", "toolarge")
    ]
    for w in (4, 6, 8):
        row = rows[f"specs/net{w}.yaml"]
        info = summarize(load_spec(root / "specs" / f"net{w}.yaml"))
        assert (int(row["params"]), int(row["macs"])) == (info.params, info.macs)
        assert row["status"] == "ok"
        assert 0.0 <= float(row["error"]) <= 1.0 and float(row["time_s"]) > 0
        metrics = (root / "out" / "runs" / f"net{w}" / "metrics.csv").read_text().splitlines()
        assert metrics[-1].split(",")[1] == "8"  # trained by resgraph train: 8 iterations
    assert "wrote out/results.csv: 3 trials ok, 2 not" in result.stdout
    page = (root / "out" / "analysis" / "index.html").read_text()  # analysed at the end
    assert page.count("specs/net") == 3


def test_a_failing_trial_is_recorded_and_the_others_go_on(swept):
    root, _ = swept
    rows = _rows(root / "out" / "results.csv")
    assert rows["specs/toolarge.yaml"]["status"] == (
        "failed: batch size 5000 is larger than the 1397 training images"
    )
    assert rows["specs/toolarge.yaml"]["error"] == ""
    assert rows["specs/invalid.yaml"]["status"].startswith("invalid: ")
    assert "stem.width: must be a positive integer" in rows["specs/invalid.yaml"]["status"]


def test_a_resumed_sweep_trains_only_what_did_not_finish(swept):
    root, _ = swept
    out = root / "out"
    kept = {w: (out / "runs" / f"net{w}" / "metrics.csv").stat().st_mtime_ns for w in (4, 8)}
    before = _rows(out / "results.csv")
    (out / "trials" / "net6.json").unlink()  # as if killed before net6's record was written
    (out / "results.csv").write_text("spec,par")  # and the results file cut short
    result = run_cli("sweep", "specs", "--out", "out", *ARGS, cwd=root, timeout=600)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("2 of 5 trials already finished: kept\n")
    for w in (4, 8):  # never trained again
        assert (out / "runs" / f"net{w}" / "metrics.csv").stat().st_mtime_ns == kept[w]
    after = _rows(out / "results.csv")
    assert after["specs/net4.yaml"] == before["specs/net4.yaml"]
    assert after["specs/net6.yaml"]["status"] == "ok"


def test_an_empty_folder_is_one_error(tmp_path):
    (tmp_path / "empty").mkdir()
    result = run_cli("sweep", str(tmp_path / "empty"), "--out", str(tmp_path / "out"))
    assert result.returncode == 1
    assert result.stderr == f"error: {tmp_path / 'empty'}: no spec files (*.yaml) to train\n"


def test_without_ray_the_sweep_says_how_to_install_it(tmp_path):
    (tmp_path / "specs").mkdir()
    (tmp_path / "specs" / "a.yaml").write_text(TINY.format(w=4, batch=32))
    code = (
        "import sys\n"
        "sys.modules['ray'] = None\n"  # import ray raises ImportError
        "from resgraph.cli import main\n"
        "sys.argv = ['resgraph', 'sweep', 'specs', '--out', 'out']\n"
        "main()\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 1
    assert result.stderr == "error: resgraph sweep needs Ray Tune: pip install 'resgraph[sweep]'\n"
    assert (tmp_path / "out" / "results.csv").read_text().splitlines()[1].endswith(",not run")


def test_set_changes_every_spec_of_the_sweep(tmp_path):
    from resgraph.sweep import plan

    (tmp_path / "specs").mkdir()
    (tmp_path / "specs" / "a.yaml").write_text(TINY.format(w=4, batch=32))
    plain, wider = (
        plan(tmp_path / "specs", tmp_path / "out", o)[0] for o in ((), ("stem.width=8",))
    )
    assert wider.params > plain.params and wider.status == plain.status == ""


def test_a_bad_set_is_one_error_line_before_any_trial(tmp_path):
    (tmp_path / "specs").mkdir()
    (tmp_path / "specs" / "a.yaml").write_text(TINY.format(w=4, batch=32))
    result = run_cli("sweep", "specs", "--out", "out", "--set", "stem.width=0", cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.startswith("error: ")
    assert "--set stem.width=0" in result.stderr and len(result.stderr.splitlines()) == 1
    assert not (tmp_path / "out").exists()
