"""The two emitters: generated source and executed graph agree with each other, with the
IR, and with torchvision; build writes safely; weights import from other implementations."""

from __future__ import annotations

import copy
import importlib.util
import json
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from helpers import CIFAR20, ROOT, SPECS, fill, invoke, reference_input
from resgraph import load_spec, lower
from resgraph.emit import build_model
from resgraph.emit.graph_module import build_module
from resgraph.emit.source import build_generated, emit_source
from resgraph.emit.weights import convert_state_dict
from resgraph.errors import WeightsError
from resgraph.torchio import read_state_dict

REFERENCE = json.loads((ROOT / "tests" / "data" / "torchvision_reference.json").read_text())
TORCHVISION_LAYOUT = {
    "resnet18": "resnet18",
    "resnet34": "resnet34",
    "resnet50": "resnet50_torchvision",
    "resnet101": "resnet101_torchvision",
    "resnet152": "resnet152_torchvision",
    "wide_resnet50_2": "wide_resnet50_2",
    "resnext50_32x4d": "resnext50_32x4d",
}


def _spec(stem: str):
    return load_spec(ROOT / "specs" / f"{stem}.yaml")


@pytest.mark.slow
@pytest.mark.parametrize("path", SPECS, ids=lambda p: p.stem)
def test_both_emitters_agree_on_keys_weights_and_outputs(path):
    ir = lower(load_spec(path))
    generated, graph = build_generated(ir, seed=0), build_module(ir, seed=0)
    sg, se = generated.state_dict(), graph.state_dict()
    assert list(sg) == list(se), "state_dict keys (and their order) differ"
    assert all(torch.equal(sg[k], se[k]) for k in sg), "same seed, different initial weights"
    assert sum(p.numel() for p in graph.parameters()) == sum(n.params for n in ir.nodes())
    # Every spec ends in a global pool, so agreement can be checked on small inputs (fast).
    size = min(ir.spec.input.size, 64 if ir.spec.input.size > 64 else 16)
    x = torch.randn(
        2, ir.spec.input.channels, size, size, generator=torch.Generator().manual_seed(1)
    )
    for mode in ("train", "eval"):
        getattr(generated, mode)()
        getattr(graph, mode)()
        torch.manual_seed(2)
        with torch.no_grad():
            a = generated(x)
        torch.manual_seed(2)
        with torch.no_grad():
            b = graph(x)
        torch.testing.assert_close(a, b, rtol=0, atol=1e-5, equal_nan=True, msg=mode)


@pytest.mark.slow
@pytest.mark.parametrize("path", SPECS, ids=lambda p: p.stem)
def test_real_shapes_equal_the_inferred_ones_at_every_node(path):
    ir = lower(load_spec(path))
    model = build_module(ir).eval()
    seen: dict[str, tuple[int, ...]] = {}
    for name, module in model.named_modules():
        if name in ir.graph:
            module.register_forward_hook(
                lambda m, i, o, name=name: seen.__setitem__(name, tuple(o.shape[1:]))
            )
    for name in ir.blocks:  # block outputs, through the block modules
        model.get_submodule(name).register_forward_hook(
            lambda m, i, o, name=name: seen.__setitem__(ir.blocks[name].output, tuple(o.shape[1:]))
        )
    size = ir.spec.input.size
    with torch.no_grad():
        out = model(torch.zeros(1, ir.spec.input.channels, size, size))
    assert tuple(out.shape[1:]) == ir.node(ir.output).shape
    assert len(seen) >= len(ir.module_nodes())
    for name, shape in seen.items():
        assert shape == ir.node(name).shape, name


def _buildable(folder: Path) -> list[Path]:
    """The specs of a folder (every one compiles)."""
    return sorted(folder.glob("*.yaml"))


@pytest.mark.slow  # builds every spec
@pytest.mark.parametrize(
    "folder", ["", "timm", "timm/bases"], ids=["specs", "specs/timm", "specs/timm/bases"]
)
def test_generated_folder_is_up_to_date(tmp_path, folder, monkeypatch):
    """generated/ mirrors specs/: one file per spec that compiles, in the same subfolder, and
    nothing else."""
    specs = _buildable(ROOT / "specs" / folder)
    monkeypatch.chdir(ROOT)  # the spec paths as a user types them in the repository
    res = invoke("build", *[p.relative_to(ROOT) for p in specs], "-o", tmp_path)
    assert res.exit_code == 0, res.stderr
    committed = ROOT / "generated" / folder
    assert sorted(p.stem for p in committed.glob("*.py")) == [p.stem for p in specs]
    stale = [
        p.stem
        for p in specs
        if (tmp_path / f"{p.stem}.py").read_text() != (committed / f"{p.stem}.py").read_text()
    ]
    where = f"specs/{folder}/".replace("//", "/")
    assert not stale, (
        f"generated/{folder} differs for {stale}; if this change is intended, regenerate "
        f"with: resgraph build {where}*.yaml -o generated/{folder}"
    )


@pytest.mark.subprocess
@pytest.mark.skipif(
    shutil.which("ruff") is None and importlib.util.find_spec("ruff") is None,
    reason="ruff is not installed",
)
def test_generated_source_is_clean_and_formatted():
    ruff = [sys.executable, "-m", "ruff"]
    check = subprocess.run(
        [*ruff, "check", "--no-cache", "generated"], cwd=ROOT, capture_output=True, text=True
    )
    assert check.returncode == 0, check.stdout
    fmt = subprocess.run(
        [*ruff, "format", "--check", "--no-cache", "generated"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert fmt.returncode == 0, fmt.stdout


def test_generated_source_is_deterministic_and_does_not_grow_with_depth():
    ir = lower(_spec("cifar_resnet1202"))
    assert emit_source(ir, source="x") == emit_source(lower(_spec("cifar_resnet1202")), source="x")
    deep = (ROOT / "generated" / "cifar_resnet1202.py").read_text().count("\n")
    shallow = (ROOT / "generated" / "cifar_resnet20.py").read_text().count("\n")
    assert deep == shallow


@pytest.mark.parametrize(
    ("deep", "shallow"),
    [
        ("resnet200d", "resnet50d"),
        ("resnet152", "resnet50"),
        ("resnext101_32x8d", "resnext50_32x4d"),
    ],
)
def test_a_deep_zoo_model_is_no_longer_than_its_50_layer_sibling(deep, shallow):
    folder = ROOT / "generated" / "timm"
    lines = {name: (folder / f"{name}.py").read_text().count("\n") for name in (deep, shallow)}
    assert lines[deep] <= lines[shallow], lines


def test_generated_file_stands_alone_and_pickles(tmp_path):
    path = ROOT / "generated" / "cifar_resnet20.py"
    source = path.read_text()
    imports = {
        line.split()[1] for line in source.splitlines() if line.startswith(("import ", "from "))
    }
    assert imports <= {"__future__", "torch", "torch.nn.functional"}
    assert "lambda" not in source
    shutil.copy(path, tmp_path / "cifar_resnet20_gen.py")
    sys.path.insert(0, str(tmp_path))
    try:
        module = __import__("cifar_resnet20_gen")
        model = module.build_model()
        clone = pickle.loads(pickle.dumps(model))
        deep = copy.deepcopy(model)
    finally:
        sys.path.remove(str(tmp_path))
    x = torch.randn(2, 3, 32, 32)
    model.eval(), clone.eval(), deep.eval()
    assert torch.equal(model(x), clone(x)) and torch.equal(model(x), deep(x))
    graph = build_module(_spec("cifar_resnet20"))
    assert torch.equal(pickle.loads(pickle.dumps(graph)).eval()(x), graph.eval()(x))


@pytest.mark.parametrize("tv_name", sorted(TORCHVISION_LAYOUT))
def test_state_dict_keys_and_shapes_equal_torchvisions(tv_name):
    stem = TORCHVISION_LAYOUT[tv_name]
    if not (ROOT / "specs" / f"{stem}.yaml").exists():
        pytest.skip(f"specs/{stem}.yaml is not written yet")
    ours = [[k, list(v.shape)] for k, v in build_module(_spec(stem)).state_dict().items()]
    assert ours == REFERENCE["keys"][tv_name]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("tv_name", "engine"),
    [(n, e) for n in ("resnet18", "resnet50") for e in ("graph", "generated")],
)
def test_torchvision_weights_load_strictly_and_give_the_same_outputs(tv_name, engine):
    model = build_model(_spec(TORCHVISION_LAYOUT[tv_name]), engine)
    model.load_state_dict(fill(model.state_dict()), strict=True)
    with torch.no_grad():
        out = model.eval()(reference_input())
    expected = torch.tensor(REFERENCE["outputs"][tv_name])
    torch.testing.assert_close(out, expected, rtol=1e-4, atol=1e-4)


@pytest.mark.slow
def test_paper_layout_differs_from_torchvisions_in_outputs_not_parameters():
    paper, tv = build_module(_spec("resnet50")), build_module(_spec("resnet50_torchvision"))
    paper.load_state_dict(fill(paper.state_dict()))
    tv.load_state_dict(fill(tv.state_dict()))
    with torch.no_grad():
        assert not torch.allclose(paper.eval()(reference_input()), tv.eval()(reference_input()))


@pytest.mark.slow
def test_torch_export_works_on_both_engines():
    spec = load_spec(CIFAR20)
    x = torch.randn(2, 3, 32, 32)
    for engine in ("graph", "generated"):
        model = build_model(spec, engine).eval()
        exported = torch.export.export(model, (x,))
        torch.testing.assert_close(exported.module()(x), model(x))


@pytest.mark.subprocess  # torch.compile loads its kernels in a Python process
@pytest.mark.slow
def test_torch_compile_works_on_both_engines():
    spec = load_spec(CIFAR20)
    x = torch.randn(2, 3, 32, 32)
    for engine in ("graph", "generated"):
        model = build_model(spec, engine).eval()
        compiled = torch.compile(model)
        torch.testing.assert_close(compiled(x), model(x), rtol=1e-4, atol=1e-5)


def test_build_cli_writes_atomically_and_leaves_other_files_alone(tmp_path, write_spec):
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    good = write_spec(CIFAR20, "good.yaml")
    res = invoke("build", good, "-o", out)
    assert res.exit_code == 0 and f"wrote {out / 'good.py'}" in res.stdout
    assert sorted(p.name for p in out.iterdir()) == ["good.py", "notes.txt"]
    before = (out / "good.py").read_text()
    bad = write_spec(CIFAR20.replace("width: 32", "width: 0"), "bad.yaml")
    res = invoke("build", good, bad, "-o", out)
    assert res.exit_code == 1 and "nothing was written" in res.stderr
    assert "Traceback" not in res.stderr and str(bad) in res.stderr
    assert (out / "good.py").read_text() == before
    assert sorted(p.name for p in out.iterdir()) == ["good.py", "notes.txt"]


def test_build_refuses_two_specs_with_one_output_name(tmp_path, write_spec):
    a = write_spec(CIFAR20, "net.yaml")
    (tmp_path / "other").mkdir()
    b = tmp_path / "other" / "net.yaml"
    b.write_text(CIFAR20)
    res = invoke("build", a, b, "-o", tmp_path / "out")
    assert res.exit_code == 1 and "would both write net.py" in res.stderr
    assert not (tmp_path / "out").exists()


# --- weight import -----------------------------------------------------------------------


def _foreign_checkpoint(tmp_path, spec, rename, wrap=True):
    """A state_dict of the same network under another implementation's names."""
    state = fill(build_module(spec).state_dict())
    foreign = {rename(k): v for k, v in state.items() if not k.endswith("num_batches_tracked")}
    path = tmp_path / "foreign.pt"
    torch.save({"epoch": 7, "state_dict": foreign} if wrap else foreign, path)
    return path, state


def _rename(key: str) -> str:  # akamaster-style names behind DataParallel
    return "module." + key.replace("downsample", "shortcut").replace("fc.", "linear.")


def test_import_weights_matches_by_order_and_shape(tmp_path):
    spec = load_spec(CIFAR20.replace("shortcut: A", "shortcut: B"))
    path, state = _foreign_checkpoint(tmp_path, spec, _rename)
    converted = convert_state_dict(lower(spec), read_state_dict(path)[0])
    assert list(converted) == list(state)
    assert all(torch.equal(converted[k], state[k]) for k in state)


def test_import_weights_cli_and_mismatch_report(tmp_path):
    spec_file = tmp_path / "net.yaml"
    spec_file.write_text(CIFAR20.replace("shortcut: A", "shortcut: B"))
    path, _ = _foreign_checkpoint(tmp_path, load_spec(spec_file), _rename)
    out = tmp_path / "ours.pt"
    res = invoke("import-weights", spec_file, path, "-o", out)
    assert res.exit_code == 0, res.stderr
    model = build_module(load_spec(spec_file))
    model.load_state_dict(torch.load(out, weights_only=True), strict=True)
    assert invoke("import-weights", spec_file, path, "-o", out).exit_code == 1

    other = tmp_path / "wider.yaml"
    other.write_text(
        CIFAR20.replace("shortcut: A", "shortcut: B").replace("width: 32", "width: 48")
    )
    res = invoke("import-weights", other, path, "-o", tmp_path / "x.pt")
    assert res.exit_code == 1 and not (tmp_path / "x.pt").exists()
    assert "tensor #" in res.stderr and "layer2.0.conv1.weight has shape 48x16x3x3" in res.stderr
    assert "module.layer2.0.conv1.weight" not in res.stderr  # prefix stripped
    assert "Traceback" not in res.stderr


def test_import_weights_refuses_unsafe_and_junk_files(tmp_path):
    unsafe = tmp_path / "unsafe.pt"
    torch.save({"model": build_module(load_spec(CIFAR20))}, unsafe)  # a pickled module
    with pytest.raises(WeightsError, match="cannot be read safely"):
        read_state_dict(unsafe)
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(WeightsError, match="not a PyTorch checkpoint"):
        read_state_dict(junk)
    with pytest.raises(WeightsError, match="no such checkpoint"):
        read_state_dict(tmp_path / "missing.pt")
    empty = tmp_path / "empty.pt"
    torch.save({"epoch": 3}, empty)
    with pytest.raises(WeightsError, match="holds no state_dict"):
        read_state_dict(empty)
