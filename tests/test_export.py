"""``resgraph export``: ONNX and torch.export programs, BatchNorm folding, bad inputs."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from helpers import ROOT, fill, invoke, run_cli

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from resgraph import build_module, load_spec, lower  # noqa: E402
from resgraph.export import ExportError, export_spec, fuse_bn  # noqa: E402

pytestmark = pytest.mark.slow  # trains, exports or builds large networks


def small_spec(tmp_path: Path, stem: str, *, repeats: int = 1, size: int = 16) -> Path:
    """A bundled spec with fewer blocks per stage and a smaller input (same block type,
    options and shortcut), so that exporting it is quick."""
    data = yaml.safe_load((ROOT / "specs" / f"{stem}.yaml").read_text())
    data["input"]["size"] = size
    for stage in data["stages"]:
        stage["repeats"] = min(stage["repeats"], repeats)
    path = tmp_path / f"{stem}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def weights_for(spec: Path, tmp_path: Path) -> tuple[Path, torch.nn.Module]:
    """Deterministic, non-trivial weights (BatchNorm statistics far from 0/1) saved as a
    state_dict, and the eval-mode PyTorch network holding them."""
    model = build_module(lower(load_spec(spec)), seed=0)
    model.load_state_dict(fill(model.state_dict()))
    path = tmp_path / f"{spec.stem}_weights.pt"
    torch.save(model.state_dict(), path)
    return path, model.eval()


def inputs(spec: Path, batch: int) -> torch.Tensor:
    s = load_spec(spec)
    g = torch.Generator().manual_seed(1)
    return torch.randn(batch, s.input.channels, s.input.size, s.input.size, generator=g)


def run_onnx(path: Path, x: torch.Tensor) -> torch.Tensor:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (out,) = session.run(None, {session.get_inputs()[0].name: x.numpy()})
    return torch.from_numpy(out)


CASES = [
    ("cifar_resnet20", {"repeats": 2, "size": 16}),  # option A (padding shortcut)
    ("resnet18", {"repeats": 1, "size": 64}),  # option B projections, ImageNet stem
    ("cifar_densenet_bc_100_12", {"repeats": 2, "size": 16}),  # dense blocks, transitions
    ("cifar_highway_resnet20", {"repeats": 1, "size": 16}),  # gated joins
    ("cifar_fire_resnet20", {"repeats": 1, "size": 16}),  # a block type the spec defines
]


@pytest.mark.parametrize(("stem", "shrink"), CASES, ids=[c[0] for c in CASES])
def test_onnx_matches_pytorch(tmp_path: Path, stem: str, shrink: dict[str, int]) -> None:
    spec = small_spec(tmp_path, stem, **shrink)
    weights, model = weights_for(spec, tmp_path)
    out = tmp_path / "model.onnx"
    result = export_spec(spec, out, weights=weights)
    proto = onnx.load(str(out))
    onnx.checker.check_model(proto, full_check=True)
    # a dynamic batch: another size than the example the exporter traced with
    x = inputs(spec, 3)
    with torch.no_grad():
        expected = model(x)
    got = run_onnx(out, x)
    assert got.shape == expected.shape
    assert torch.allclose(got, expected, atol=1e-4, rtol=1e-4), (got - expected).abs().max()
    # resgraph's names survive: every convolution weight is an initialiser of that name
    convs = {f"{n}.weight" for n, m in model.named_modules() if isinstance(m, torch.nn.Conv2d)}
    assert convs <= {i.name for i in proto.graph.initializer}
    assert result.params == result.params_unfused == sum(p.numel() for p in model.parameters())
    assert proto.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"


def test_fixed_batch(tmp_path: Path) -> None:
    spec = small_spec(tmp_path, "cifar_resnet20")
    out = tmp_path / "fixed.onnx"
    result = export_spec(spec, out, batch="5")
    dim = onnx.load(str(out)).graph.input[0].type.tensor_type.shape.dim[0]
    assert dim.dim_value == 5 and not dim.dim_param
    assert result.batch == "5"


def test_fuse_bn_keeps_outputs_and_drops_batchnorm(tmp_path: Path) -> None:
    spec = small_spec(tmp_path, "cifar_resnet20", repeats=2)
    _, model = weights_for(spec, tmp_path)
    fused, folded, kept = fuse_bn(model)
    bns = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert (folded, kept) == (len(bns), 0)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fused.modules())
    # each fold drops the BatchNorm's weight and bias and gives the conv a bias
    removed = sum(bn.num_features for bn in bns)
    assert sum(p.numel() for p in fused.parameters()) == (
        sum(p.numel() for p in model.parameters()) - removed
    )
    x = inputs(spec, 4)
    with torch.no_grad():
        assert torch.allclose(fused(x), model(x), atol=1e-5, rtol=1e-4)
    # names kept: the convs are where they were
    assert {n for n, m in fused.named_modules() if isinstance(m, torch.nn.Conv2d)} == {
        n for n, m in model.named_modules() if isinstance(m, torch.nn.Conv2d)
    }


def test_fuse_bn_keeps_batchnorm_that_follows_no_conv(tmp_path: Path) -> None:
    # DenseNet's blocks start with BN -> ReLU -> conv on a concatenation: not foldable
    spec = small_spec(tmp_path, "cifar_densenet_bc_100_12", repeats=1)
    _, model = weights_for(spec, tmp_path)
    fused, folded, kept = fuse_bn(model)
    assert kept > 0
    assert folded + kept == sum(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())
    x = inputs(spec, 2)
    with torch.no_grad():
        assert torch.allclose(fused(x), model(x), atol=1e-5, rtol=1e-4)


def test_pt2_program_fused_and_dynamic(tmp_path: Path) -> None:
    spec = small_spec(tmp_path, "resnet18", size=64)
    weights, model = weights_for(spec, tmp_path)
    out = tmp_path / "model.pt2"
    result = export_spec(spec, out, weights=weights, fuse=True)
    assert result.folded > 0 and result.params < result.params_unfused
    program = torch.export.load(str(out))
    targets = {str(n.target) for n in program.graph.nodes if n.op == "call_function"}
    assert not any("batch_norm" in t for t in targets), targets
    assert "layer1.0.conv1.weight" in program.state_dict
    x = inputs(spec, 3)
    with torch.no_grad():
        assert torch.allclose(program.module()(x), model(x), atol=1e-4, rtol=1e-4)


@pytest.mark.subprocess
def test_cli_export_and_errors(tmp_path: Path) -> None:
    spec = small_spec(tmp_path, "cifar_resnet20")
    ok = run_cli("export", str(spec), "-o", str(tmp_path / "m.onnx"), "--fuse-bn")
    assert ok.returncode == 0, ok.stderr
    assert "wrote" in ok.stdout and "BatchNorm folded" in ok.stdout
    assert "torchvision" not in ok.stderr and "Warning" not in ok.stderr, ok.stderr
    assert onnx.load(str(tmp_path / "m.onnx")).graph.node

    keep = tmp_path / "keep.onnx"
    keep.write_text("the user's own file")
    afile = tmp_path / "afile"
    afile.write_text("x")
    other, _ = weights_for(small_spec(tmp_path, "cifar_resnet56", repeats=3), tmp_path)
    bad = [
        (["-o", str(tmp_path / "m.txt")], "unknown format"),
        (["-o", str(afile / "m.onnx")], "not a folder"),
        (["-o", str(tmp_path / "missing" / "m.onnx")], "does not exist"),
        (["-o", str(tmp_path)], "is a folder"),
        (["-o", str(keep)], "it exists; pass --force"),
        # a failed export never replaces the file, even with --force
        (["-o", str(keep), "--force", "--weights", str(other)], "do not fit"),
        (["-o", str(keep), "--force", "--weights", str(afile)], "not a PyTorch checkpoint"),
        (["-o", str(keep), "--force", "--batch", "many"], "--batch"),
    ]
    for args, words in bad:
        r = invoke("export", spec, *args)
        assert r.exit_code != 0, args
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error:") and words in lines[0], (
            args,
            r.stderr,
        )
    assert keep.read_text() == "the user's own file"


def test_api_errors_are_resgraph_errors(tmp_path: Path) -> None:
    spec = small_spec(tmp_path, "cifar_resnet20")
    with pytest.raises(ExportError, match="unknown format"):
        export_spec(spec, tmp_path / "m.onnx.bak")
    with pytest.raises(ExportError, match="positive integer"):
        export_spec(spec, tmp_path / "m.pt2", batch=-1)
    assert not list(tmp_path.glob("m.*"))
