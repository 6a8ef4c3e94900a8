"""``resgraph export`` of zoo networks with channel attention (squeeze-excitation, ECA) and
anti-aliased (blur-pool) downsampling: ONNX and ``torch.export`` programs, with and without
BatchNorm folding, each compared with the PyTorch network it came from."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers import ROOT, fill

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from resgraph import build_module, load_spec, lower  # noqa: E402
from resgraph.export import export_spec  # noqa: E402
from resgraph.ops import BlurPool, ChannelConv, Sigmoid  # noqa: E402

pytestmark = pytest.mark.slow  # trains, exports or builds large networks

SIZE = 64  # input pixels
STAGES = 2  # the zoo networks' first two stages, one block each: the second downsamples
FEATURE = {
    "seresnet18": Sigmoid,  # squeeze-excitation (Hu et al. 2018)
    "resnetblur18": BlurPool,  # blur-pool downsampling (Zhang 2019), stem and blocks
    "ecaresnet26t": ChannelConv,  # ECA (Wang et al. 2020), tiered stem, option D shortcuts
}
CASES = [(stem, fmt, fuse) for stem in FEATURE for fmt in ("onnx", "pt2") for fuse in (False, True)]


@pytest.fixture(scope="module")
def networks(tmp_path_factory):  # type: ignore[no-untyped-def]
    """stem -> a zoo spec cut to STAGES stages of one block at SIZE pixels (so that the file
    runs in seconds): its IR, deterministic weights (BatchNorm statistics far from 0/1) saved
    as a state_dict, and the eval-mode network."""
    cache = {}

    def get(stem: str):  # type: ignore[no-untyped-def]
        if stem in cache:
            return cache[stem]
        spec = load_spec(ROOT / "specs" / "timm" / f"{stem}.yaml")
        spec = spec.model_copy(
            update={
                "input": spec.input.model_copy(update={"size": SIZE}),
                "stages": [s.model_copy(update={"repeats": 1}) for s in spec.stages[:STAGES]],
            }
        )
        ir = lower(spec)
        # the feature the case is about is in the downsampling block of the last stage
        last = ir.stages[-1].path
        assert any(
            isinstance(n.op, FEATURE[stem]) and n.scope.startswith(last + ".") for n in ir.nodes()
        )
        assert ir.blocks[ir.stages[-1].blocks[0]].stride == 2
        model = build_module(ir, seed=0)
        model.load_state_dict(fill(model.state_dict()))
        path = tmp_path_factory.mktemp(stem) / "weights.pt"
        torch.save(model.state_dict(), path)
        cache[stem] = (ir, path, model.eval())
        return cache[stem]

    return get


def run_export(path: Path, fmt: str, x: torch.Tensor) -> torch.Tensor:
    if fmt == "onnx":
        onnx.checker.check_model(onnx.load(str(path)), full_check=True)
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        (out,) = session.run(None, {session.get_inputs()[0].name: x.numpy()})
        return torch.from_numpy(out)
    with torch.no_grad():
        return torch.export.load(str(path)).module()(x)


@pytest.mark.parametrize(
    ("stem", "fmt", "fuse"),
    CASES,
    ids=[f"{s}-{f}-{'fused' if u else 'bn'}" for s, f, u in CASES],
)
def test_export_matches_pytorch(networks, tmp_path: Path, stem: str, fmt: str, fuse: bool) -> None:  # type: ignore[no-untyped-def]
    ir, weights, model = networks(stem)
    out = tmp_path / f"model.{fmt}"
    result = export_spec(ir, out, weights=weights, fuse=fuse)
    x = torch.randn(3, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = model(x)
    got = run_export(out, fmt, x)  # a batch of 3: not the size the exporter traced with
    assert got.shape == expected.shape
    assert torch.allclose(got, expected, atol=1e-4, rtol=1e-4), (got - expected).abs().max()
    bns = [n for n, m in model.named_modules() if isinstance(m, torch.nn.BatchNorm2d)]
    # every BatchNorm of these networks follows a conv: folding takes them all
    assert (result.folded, result.kept) == ((len(bns), 0) if fuse else (0, 0))
    assert result.params_unfused == sum(p.numel() for p in model.parameters())
    if fmt == "pt2":
        program = torch.export.load(str(out))
        assert result.params == sum(p.numel() for p in program.parameters())
        kept = {f"{n}.running_mean" for n in bns} & set(program.state_dict)
        assert kept == (set() if fuse else {f"{n}.running_mean" for n in bns})
