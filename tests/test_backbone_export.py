"""Backbones leave resgraph like classifiers do: torch.export programs from both engines,
``resgraph export`` to .pt2 and ONNX (outputs named by stage), and pictures."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers import ROOT
from resgraph import ModelSpec, build_model, load_spec, lower
from resgraph.render import to_dot

pytestmark = pytest.mark.slow  # trains, exports or builds large networks

torch = pytest.importorskip("torch")

SPECS = ROOT / "specs"


def backbone_file(tmp_path: Path, outputs: list[str]) -> Path:
    """cifar_resnet20 at a 16-pixel input with two blocks a stage, as a backbone."""
    path = tmp_path / "backbone.yaml"
    path.write_text(
        f"base: {SPECS / 'cifar_resnet20.yaml'}\ninput: {{channels: 3, size: 16}}\n"
        f"stages:\n  - {{width: 16, repeats: 2, stride: 1}}\n"
        f"  - {{width: 32, repeats: 2, stride: 2}}\n  - {{width: 64, repeats: 2, stride: 2}}\n"
        f"outputs: [{', '.join(outputs)}]\n"
    )
    return path


@pytest.mark.parametrize("engine", ["graph", "generated"])
def test_torch_export_runs_the_backbone_of_either_engine(engine):
    data = load_spec(SPECS / "resnet18.yaml").model_dump()
    data["input"]["size"] = 32
    data["outputs"] = ["stem", "layer3"]
    model = build_model(ModelSpec.model_validate(data), engine, seed=0).eval()
    x = torch.randn(2, 3, 32, 32)
    program = torch.export.export(model, (x,))
    y = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        got, expected = program.module()(y), model(y)
    assert list(got) == list(expected) == ["stem", "layer3"]
    for key in expected:
        assert torch.allclose(got[key], expected[key], atol=1e-5), key


def test_export_command_writes_a_pt2_program(tmp_path: Path):
    from resgraph.export import export_spec

    spec = backbone_file(tmp_path, ["layer1", "layer3"])
    result = export_spec(spec, tmp_path / "b.pt2", batch=2)
    program = torch.export.load(str(result.path))
    model = build_model(spec, seed=0).eval()  # export builds it with seed 0 too
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        got, expected = program.module()(x), model(x)
    assert list(got) == ["layer1", "layer3"]
    assert all(torch.allclose(got[k], expected[k], atol=1e-5) for k in expected)


def test_onnx_outputs_are_named_by_stage(tmp_path: Path):
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    from resgraph.export import export_spec

    spec = backbone_file(tmp_path, ["layer3", "stem"])
    out = tmp_path / "b.onnx"
    export_spec(spec, out)
    proto = onnx.load(str(out))
    onnx.checker.check_model(proto, full_check=True)
    assert [o.name for o in proto.graph.output] == ["stem", "layer3"]
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    x = torch.randn(3, 3, 16, 16)
    got = dict(zip(["stem", "layer3"], session.run(None, {"input": x.numpy()}), strict=True))
    model = build_model(spec, seed=0).eval()
    with torch.no_grad():
        expected = model(x)
    for key, value in expected.items():
        assert torch.allclose(torch.from_numpy(got[key]), value, atol=1e-4, rtol=1e-4), key


@pytest.mark.parametrize("level", ["op", "block", "stage"])
def test_pictures_draw_one_output_node_per_feature_map(level):
    ir = lower(load_spec(SPECS / "cifar_resnet20.yaml"), outputs=["stem", "layer2"])
    dot = to_dot(ir, level)
    assert "output stem" in dot and "output layer2" in dot
    assert "layer3" not in dot and "head" not in dot  # no later stage, no head
