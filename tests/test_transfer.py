"""Partial imports (resgraph.transfer, ``import-weights --partial``): every tensor of the
checkpoint and of the target is moved, adapted, new or dropped, with the values each
outcome promises, and the report's figures add up."""

from __future__ import annotations

import json
import re

import pytest
import torch
from click.testing import CliRunner

from helpers import CIFAR20, ROOT, fill
from resgraph import build_model, build_module, load_spec, lower
from resgraph.cli import main
from resgraph.errors import WeightsError
from resgraph.transfer import STATUSES, adapt_input_conv, import_partial, input_convs, transfer

pytestmark = pytest.mark.slow  # trains, exports or builds large networks

REFERENCE = json.loads((ROOT / "tests" / "data" / "torchvision_reference.json").read_text())
PROJECTED = CIFAR20.replace("shortcut: A", "shortcut: B")  # has downsample tensors


def _source(text: str = CIFAR20) -> dict[str, torch.Tensor]:
    return fill(build_module(load_spec(text)).state_dict())


def _partial(target_text: str, source: dict[str, torch.Tensor], **kw):  # type: ignore[no-untyped-def]
    return import_partial(lower(load_spec(target_text)), source, **kw)


def _status(report, name: str) -> str:  # type: ignore[no-untyped-def]
    return next(e.status for e in report.entries if e.name == name and e.status != "dropped")


def _check_counts(report, source, target) -> None:  # type: ignore[no-untyped-def]
    totals = report.totals()
    kept = totals["moved"]["tensors"] + totals["adapted"]["tensors"]
    assert kept + totals["new"]["tensors"] == len(target) == report.target_tensors
    assert kept + totals["dropped"]["tensors"] == len(source) == report.source_tensors
    assert sum(t["values"] for s, t in totals.items() if s != "dropped") == sum(
        v.numel() for v in target.values()
    )


def test_other_num_classes_reinitialise_the_head_and_keep_everything_else():
    source = _source()
    text = CIFAR20.replace("num_classes: 10", "num_classes: 100")
    state, report = _partial(text, source, seed=3)
    init = build_module(load_spec(text), seed=3).state_dict()
    for key, value in state.items():
        if key.startswith("fc."):
            assert _status(report, key) == "new"
            assert torch.equal(value, init[key])  # the spec's initialisation, seeded
        else:
            assert _status(report, key) == "moved"
            assert torch.equal(value, source[key]), key
    dropped = {e.name: e for e in report.entries if e.status == "dropped"}
    assert set(dropped) == {"fc.weight", "fc.bias"}
    assert dropped["fc.weight"].source_shape == (10, 32) and dropped["fc.weight"].values == 320
    _check_counts(report, source, state)


def _grey(model: torch.nn.Module, channels: int) -> torch.Tensor:
    grey = torch.sin(torch.arange(2 * 32 * 32, dtype=torch.float32) * 0.05).reshape(2, 1, 32, 32)
    with torch.no_grad():
        return model.eval()(grey.expand(2, channels, 32, 32).contiguous())


@pytest.mark.parametrize("channels", [1, 2, 4, 6])
def test_other_input_channels_adapt_the_first_conv(channels):
    source = _source()
    text = CIFAR20.replace("channels: 3", f"channels: {channels}")
    state, report = _partial(text, source)
    w = source["conv1.weight"]
    if channels == 1:
        expected = w[:, 0:1] + w[:, 1:2] + w[:, 2:3]
    else:
        expected = torch.cat([w] * 2, dim=1)[:, :channels] * (3 / channels)
    torch.testing.assert_close(state["conv1.weight"], expected, rtol=0, atol=1e-6)
    entry = next(e for e in report.entries if e.name == "conv1.weight")
    assert (entry.status, entry.source_shape, entry.target_shape) == (
        "adapted",
        (16, 3, 3, 3),
        (16, channels, 3, 3),
    )
    assert report.totals()["adapted"] == {"tensors": 1, "values": 16 * channels * 9}
    assert report.totals()["dropped"]["tensors"] == 0
    _check_counts(report, source, state)
    if channels in (1, 6):  # a grey image gives the source network's output on its RGB copy
        before = build_model(load_spec(CIFAR20))
        before.load_state_dict(source)
        after = build_model(load_spec(text), "generated")
        after.load_state_dict(state, strict=True)
        torch.testing.assert_close(_grey(after, channels), _grey(before, 3), rtol=1e-4, atol=1e-4)


def test_adapt_input_conv_keeps_the_scale_of_a_constant_image():
    w = torch.arange(24, dtype=torch.float64).reshape(2, 3, 2, 2)
    for channels in (3, 9, 12):
        assert torch.allclose(adapt_input_conv(w, channels).sum(1), w.sum(1))
    assert torch.equal(adapt_input_conv(w, 4)[:, 3], w[:, 0] * 0.75)


def test_the_first_conv_is_found_in_the_ir_whatever_its_name():
    assert input_convs(lower(load_spec(CIFAR20))) == ["conv1"]
    assert input_convs(lower(load_spec(ROOT / "specs" / "timm" / "resnet26d.yaml"))) == ["conv1.0"]


def test_only_the_input_conv_is_adapted():
    """Another in-channel count deeper in the network is new, not adapted."""
    source = _source()
    wider = CIFAR20.replace("{width: 16, repeats: 1, stride: 1}", "{width: 24, repeats: 1}")
    state, report = _partial(wider, source)
    assert _status(report, "conv1.weight") == "moved"
    assert _status(report, "layer1.0.conv1.weight") == "new"
    assert _status(report, "layer2.0.conv1.weight") == "new"  # 32x24 now, was 32x16
    assert report.count("adapted") == 0


def test_deeper_target_moves_shared_blocks_and_initialises_the_new_ones():
    source = fill(build_module(load_spec(ROOT / "specs" / "resnet18.yaml")).state_dict())
    state, report = import_partial(lower(load_spec(ROOT / "specs" / "resnet34.yaml")), source)
    extra = re.compile(r"layer1\.2\.|layer2\.[23]\.|layer3\.[2-5]\.|layer4\.2\.")
    for key, value in state.items():
        if extra.match(key):
            assert _status(report, key) == "new", key
        else:
            assert _status(report, key) == "moved", key
            assert torch.equal(value, source[key]), key
    assert report.count("dropped") == 0
    assert report.count("new") == len(state) - len(source)
    _check_counts(report, source, state)
    table = report.table()
    assert re.search(r"^layer3\.2-5\.\* \(\d+ tensors\)\s+new ", table, re.M), table
    assert "layer1.0.conv1.weight" not in table  # moved rows are not listed ...
    assert "layer1.0.conv1.weight" in report.table(verbose=True)  # ... unless asked


def test_wider_target_does_not_slice_mismatched_tensors():
    source = _source()
    text = CIFAR20.replace("width: 32", "width: 48")
    state, report = _partial(text, source, seed=5)
    init = build_module(load_spec(text), seed=5).state_dict()
    new = {e.name for e in report.entries if e.status == "new"}
    dropped = {e.name for e in report.entries if e.status == "dropped"}
    assert "layer2.0.conv1.weight" in new and new == dropped  # same names, other shapes
    for key in new:
        assert torch.equal(state[key], init[key])
    for key in set(state) - new:
        assert torch.equal(state[key], source[key])
    _check_counts(report, source, state)


def test_a_torchvision_checkpoint_moves_into_a_grey_ten_class_resnet18():
    shapes = REFERENCE["keys"]["resnet18"]
    source = fill(
        {k: torch.zeros(s, dtype=torch.long if not s else torch.float32) for k, s in shapes}
    )
    text = (ROOT / "specs" / "resnet18.yaml").read_text()
    text = text.replace("num_classes: 1000", "num_classes: 10").replace(
        "channels: 3", "channels: 1"
    )
    state, report = _partial(text, source)
    assert report.count("moved") == len(shapes) - 3  # conv1 adapted, fc new
    assert report.count("adapted") == 1 and report.count("new") == 2
    assert torch.equal(state["conv1.weight"], source["conv1.weight"].sum(1, keepdim=True))
    assert torch.equal(state["layer4.1.bn2.running_var"], source["layer4.1.bn2.running_var"])


def _akamaster(key: str) -> str:  # another implementation's names, behind DataParallel
    return "module." + key.replace("downsample", "shortcut").replace("fc.", "linear.")


def test_source_spec_renames_another_implementations_checkpoint_first():
    ours = _source(PROJECTED)
    theirs = {_akamaster(k): v for k, v in ours.items()}
    from resgraph.torchio import strip_prefixes

    theirs = strip_prefixes(theirs)
    text = PROJECTED.replace("num_classes: 10", "num_classes: 100")
    _, plain = _partial(text, theirs)  # names alone: the renamed tensors cannot move
    assert _status(plain, "layer2.0.downsample.0.weight") == "new"
    state, report = _partial(text, theirs, source_ir=lower(load_spec(PROJECTED)))
    entry = next(e for e in report.entries if e.name == "layer2.0.downsample.0.weight")
    assert (entry.status, entry.source) == ("moved", "layer2.0.shortcut.0.weight")
    assert torch.equal(state[entry.name], ours[entry.name])
    assert {e.name for e in report.entries if e.status == "dropped"} == {
        "linear.weight",
        "linear.bias",
    }
    _check_counts(report, theirs, state)


def test_a_checkpoint_without_one_matching_tensor_is_refused():
    source = {"encoder.w": torch.zeros(3), "decoder.w": torch.zeros(2)}
    with pytest.raises(WeightsError, match=r"^ckpt\.pt: not one tensor .*--source-spec"):
        _partial(CIFAR20, source, where="ckpt.pt")


# -- the command --------------------------------------------------------------------------


@pytest.fixture
def files(tmp_path):  # type: ignore[no-untyped-def]
    source = tmp_path / "src.pt"
    torch.save({"state_dict": {f"module.{k}": v for k, v in _source().items()}}, source)
    spec = tmp_path / "grey100.yaml"
    spec.write_text(
        CIFAR20.replace("num_classes: 10", "num_classes: 100").replace("channels: 3", "channels: 1")
    )
    return tmp_path, spec, source


def _invoke(*args: object):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(main, ["import-weights", *map(str, args)])


def test_cli_prints_the_table_and_writes_a_complete_state_dict_and_its_report(files):
    tmp, spec, source = files
    out = tmp / "out" / "grey.pt"
    result = _invoke(spec, source, "-o", out, "--partial")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert re.match(r"conv1\.weight\s+adapted\s+16x3x3x3 -> 16x1x3x3 ", lines[1])
    assert any(re.match(r"fc\.weight\s+new\s+- -> 100x32 ", line) for line in lines)
    printed = {
        m.group(1): (int(m.group(2).replace(",", "")), int(m.group(3).replace(",", "")))
        for m in (re.match(r"(\w+)\s+([\d,]+)\s+([\d,]+)$", line) for line in lines)
        if m and m.group(1) in STATUSES
    }
    report = json.loads((tmp / "out" / "grey.transfer.json").read_text())
    assert printed == {s: (t["tensors"], t["values"]) for s, t in report["totals"].items()}
    state = torch.load(out, weights_only=True)
    assert report["target_tensors"] == len(state) == len(report["tensors"]) - printed["dropped"][0]
    assert printed["moved"][0] + printed["adapted"][0] + printed["dropped"][0] == len(_source())
    for engine in ("graph", "generated"):
        build_model(load_spec(spec), engine).load_state_dict(state, strict=True)
    assert {e["status"] for e in report["tensors"]} == {"moved", "adapted", "new", "dropped"}
    assert f"wrote {out} and {tmp / 'out' / 'grey.transfer.json'}" in result.stdout


def test_strict_import_still_refuses_a_changed_network(files):
    tmp, spec, source = files
    result = _invoke(spec, source, "-o", tmp / "x.pt")
    assert result.exit_code == 1 and result.stderr.count("\n") == 1
    assert result.stderr.startswith(f"error: {source}: tensor #0 disagrees")
    assert not (tmp / "x.pt").exists() and not (tmp / "x.transfer.json").exists()


def test_existing_outputs_are_kept_and_options_need_partial(files):
    tmp, spec, source = files
    out = tmp / "o.pt"
    report = tmp / "o.transfer.json"
    report.write_text("precious")
    result = _invoke(spec, source, "-o", out, "--partial")
    assert result.exit_code == 1
    assert (
        result.stderr == f"error: {report}: cannot write: it exists; pass --force to overwrite it\n"
    )
    assert not out.exists() and report.read_text() == "precious"
    assert _invoke(spec, source, "-o", out, "--partial", "--force").exit_code == 0
    assert json.loads(report.read_text())["totals"]["adapted"]["tensors"] == 1
    result = _invoke(spec, source, "-o", tmp / "p.pt", "--verbose")
    assert result.exit_code == 2 and result.stderr.startswith(
        "error: --verbose goes with --partial"
    )


def test_a_checkpoint_that_fits_nowhere_writes_nothing(files):
    tmp, spec, _ = files
    junk = tmp / "junk.pt"
    torch.save({"encoder.w": torch.zeros(3)}, junk)
    result = _invoke(spec, junk, "-o", tmp / "o.pt", "--partial")
    assert result.exit_code == 1 and result.stderr.count("\n") == 1
    assert result.stderr.startswith(f"error: {junk}: not one tensor of the checkpoint")
    assert sorted(p.name for p in tmp.iterdir()) == ["grey100.yaml", "junk.pt", "src.pt"]


def test_a_report_that_cannot_be_written_takes_the_weights_with_it(files, monkeypatch):
    tmp, spec, source = files
    from resgraph.emit import commands
    from resgraph.errors import OutputError

    def full(path, text):  # type: ignore[no-untyped-def]
        raise OutputError(path, "no space left on the device")

    monkeypatch.setattr(commands, "atomic_write_text", full)
    result = _invoke(spec, source, "-o", tmp / "o.pt", "--partial")
    assert result.exit_code == 1
    assert (
        result.stderr
        == f"error: {tmp / 'o.transfer.json'}: cannot write: no space left on the device\n"
    )
    assert not (tmp / "o.pt").exists()


def _entry(name, status="new", values=1, note="not in the checkpoint"):
    from resgraph.transfer import Entry

    return Entry(name, status, None, None, (values,), values, note)


def test_the_table_folds_runs_by_block_then_by_stage_and_nothing_else():
    from resgraph.transfer import TransferReport

    entries = [
        _entry("conv1.weight", "adapted", 9, "input channels 3 -> 1: summed"),
        *(_entry(f"layer3.{b}.bn1.{t}", values=2) for b in (6, 7, 8) for t in ("a", "b")),
        _entry("layer3.9.bn1.a", values=5),  # alone in its block: its own row
        *(_entry(f"layer4.{b}.bn1.{t}", values=3) for b in (0, 1) for t in ("a", "b")),
        _entry("layer4.2.bn1.a", "dropped", 4, "not in the target"),
        _entry("layer4.2.bn1.b", "dropped", 4, "not in the target"),
        _entry("fc.weight", values=7),
        _entry("fc.bias", values=1),
    ]
    blocks = {f"layer{s}.{b}": f"layer{s}" for s in (3, 4) for b in range(10)}
    report = TransferReport(entries=entries, source_tensors=3, target_tensors=13, blocks=blocks)
    rows = [line.split()[0:4] for line in report.table(verbose=False).splitlines()[1:8]]
    assert rows == [
        ["conv1.weight", "adapted", "-", "->"],
        ["layer3.6-8.*", "(6", "tensors)", "new"],
        ["layer3.9.bn1.a", "new", "-", "->"],
        ["layer4.0-1.*", "(4", "tensors)", "new"],
        ["layer4.2.*", "(2", "tensors)", "dropped"],
        ["fc.weight", "new", "-", "->"],
        ["fc.bias", "new", "-", "->"],
    ]
    table = report.table(verbose=False)
    assert re.search(r"^checkpoint\s+3$", table, re.M) and re.search(r"^target\s+13$", table, re.M)
    assert re.search(r"^new\s+13\s+37$", table, re.M)  # 6x2 + 5 + 4x3 + 7 + 1 values
    folded = [e for e in report.entries if e.name.startswith("layer3.6")]
    assert len(folded) == 2  # the report itself keeps every tensor


def test_the_table_folds_by_the_networks_own_block_paths():
    """Blocks at deeper paths (timm's ResNetV2: stages.1.blocks.0) fold by block and stage,
    not by their first two name components."""
    from resgraph.transfer import TransferReport

    blocks = {f"stages.{s}.blocks.{b}": f"stages.{s}.blocks" for s in (0, 1) for b in range(3)}
    entries = [
        *(_entry(f"stages.0.blocks.{b}.norm1.{t}") for b in (1, 2) for t in ("a", "b")),
        *(_entry(f"stages.1.blocks.{b}.norm1.{t}") for b in (0, 1) for t in ("a", "b")),
        _entry("norm.weight"),
        _entry("norm.bias"),  # not in a block: one row each
    ]
    report = TransferReport(entries=entries, blocks=blocks)
    rows = [line.split()[0] for line in report.table(verbose=False).splitlines()[1:5]]
    assert rows == ["stages.0.blocks.1-2.*", "stages.1.blocks.0-1.*", "norm.weight", "norm.bias"]


def test_the_report_knows_the_targets_blocks():
    ir = lower(load_spec(CIFAR20))
    _, report = transfer(ir, build_module(ir).state_dict(), {})
    assert report.blocks["layer2.0"] == "layer2" and "fc" not in report.blocks


@pytest.mark.parametrize(("channels", "note"), [(1, "summed"), (6, "repeated, x0.5")])
def test_the_adapted_conv_says_how(channels, note):
    text = CIFAR20.replace("channels: 3", f"channels: {channels}")
    _, report = _partial(text, _source())
    entry = next(e for e in report.entries if e.status == "adapted")
    assert entry.note == f"input channels 3 -> {channels}: {note}"
