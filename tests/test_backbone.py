"""Backbones: a spec's ``outputs`` (or the API's ``outputs=``) make a network return a dict
of stage feature maps, without its head and the stages after the last one asked for."""

from __future__ import annotations

import json
from pathlib import Path

import networkx as nx
import pytest
from click.testing import CliRunner

from helpers import ROOT, invoke
from resgraph import (
    ArgumentError,
    ModelSpec,
    ResgraphError,
    SpecError,
    build_model,
    build_module,
    load_spec,
    lower,
    summarize,
)
from resgraph.cli import main
from resgraph.emit.source import emit_source
from resgraph.errors import IRError
from resgraph.ir import Node
from resgraph.ops import GlobalAvgPool, Linear, Output, ReLU
from resgraph.passes.verify import verify
from resgraph.spec import spec_hash, with_outputs
from resgraph.summary import activation_bytes, feature_info

torch = pytest.importorskip("torch")

SPECS = ROOT / "specs"


def small(path: str, outputs: list[str] | None, *, size: int = 64, repeats: int = 1) -> ModelSpec:
    """A bundled spec with at most ``repeats`` blocks per stage and a ``size`` input, as a
    backbone returning ``outputs``: quick to build, same block types and options."""
    data = load_spec(SPECS / path).model_dump()
    data["input"]["size"] = size
    for stage in data["stages"]:
        stage["repeats"] = min(stage["repeats"], repeats)
    data["outputs"] = outputs
    return ModelSpec.model_validate(data)


# -- the spec key ------------------------------------------------------------------------------
def test_unknown_and_repeated_names_are_located_at_their_list_element(write_spec):
    path = write_spec(
        f"base: {SPECS / 'resnet18.yaml'}\noutputs:\n  - layer2\n  - layr3\n  - layer2\n"
    )
    with pytest.raises(SpecError) as err:
        load_spec(path)
    lines = str(err.value).splitlines()
    assert lines[0].startswith(f"{path}:4:5: outputs[1]: unknown feature map 'layr3'")
    assert "(did you mean 'layer3'?)" in lines[0]
    assert "expected one of stem, layer1, layer2, layer3, layer4" in lines[0]
    assert lines[1].startswith(f"{path}:5:5: outputs[2]: 'layer2' is listed twice")


def test_feature_names_follow_the_stages_of_every_family():
    cifar = load_spec(SPECS / "cifar_densenet_bc_100_12.yaml")
    assert cifar.feature_names() == ["stem", "layer1", "layer2", "layer3"]
    with pytest.raises(SpecError, match="'layer4'"):
        with_outputs(cifar, ["layer4"])
    assert with_outputs(cifar, ["layer3"]).outputs == ["layer3"]


def test_a_classifier_spec_hashes_as_before():
    # generated files record the spec's hash: an unused outputs key must not change it
    spec = load_spec(SPECS / "resnet18.yaml")
    assert spec_hash(with_outputs(spec, None)) == spec_hash(spec)
    assert spec_hash(with_outputs(spec, ["layer4"])) != spec_hash(spec)


@pytest.mark.parametrize(
    ("outputs", "message"),
    [
        (["layer9"], "unknown feature map 'layer9' (did you mean 'layer4'?)"),
        (["stem", "stem"], "'stem' is listed twice"),
        ([], "at least 1"),
        ("layer2", "must be a list of feature map names (stem, layer1, layer2, layer3, layer4)"),
        (
            [2],
            "must be a list of feature map names (stem, layer1, layer2, layer3, layer4), got [2]",
        ),
    ],
)
def test_api_argument_is_validated_like_the_file(outputs, message):
    for call in (
        lambda: build_model(SPECS / "resnet18.yaml", outputs=outputs),
        lambda: build_module(SPECS / "resnet18.yaml", outputs=outputs),
        lambda: lower(load_spec(SPECS / "resnet18.yaml"), outputs=outputs),
    ):
        with pytest.raises(ResgraphError) as err:
            call()
        assert message in str(err.value)


def test_outputs_with_an_already_lowered_ir_is_refused():
    ir = lower(load_spec(SPECS / "cifar_resnet20.yaml"))
    with pytest.raises(ArgumentError, match="pass outputs to lower"):
        build_model(ir, outputs=["layer1"])


def test_api_keeps_the_spec_file_for_locations():
    spec = with_outputs(load_spec(SPECS / "resnet18.yaml"), ("layer1",))
    ir = lower(spec)
    loc = ir.node("layer1.0.conv1").loc
    assert loc is not None and loc.file.endswith("resnet18.yaml") and loc.line > 1


# -- lowering and the verifier -------------------------------------------------------------------
def test_head_and_later_stages_are_dropped_and_keys_come_in_network_order():
    ir = lower(small("resnet18.yaml", ["layer2", "stem"]))
    assert [s.path for s in ir.stages] == ["layer1", "layer2"]
    assert not any(n.name.startswith(("layer3", "layer4", "fc", "avgpool")) for n in ir.nodes())
    assert not any(isinstance(n.op, (Linear, GlobalAvgPool)) for n in ir.nodes())
    assert all(n.section != "head" for n in ir.nodes())
    assert ir.results == [("stem", "maxpool"), ("layer2", "layer2.0.relu")]
    with pytest.raises(IRError, match="backbone"):
        _ = ir.output


def test_a_stem_backbone_lowers_no_stage():
    ir = lower(load_spec(SPECS / "resnet18.yaml"), outputs=["stem"])
    assert ir.stages == [] and ir.blocks == {}
    assert ir.results == [("stem", "maxpool")]
    assert [n.name for n in ir.nodes()][-2:] == ["maxpool", "output.stem"]


def test_output_markers_hold_no_activation_memory():
    spec = load_spec(SPECS / "cifar_resnet20.yaml")
    every = lower(spec, outputs=spec.feature_names())
    # the classifier keeps two more values per example: the pooled 64 and the 10 logits
    assert activation_bytes(every, 2) == activation_bytes(lower(spec), 2) - 2 * 4 * (64 + 10)


def test_preactivation_backbone_has_no_final_bn():
    ir = lower(small("cifar_preact_resnet164.yaml", ["layer3"], size=32))
    assert not any(n.name.startswith("final_") for n in ir.nodes())
    assert ir.results == [("layer3", ir.blocks[ir.stages[2].blocks[-1]].output)]


def test_verifier_refuses_a_dangling_node_in_a_backbone():
    ir = lower(small("cifar_resnet20.yaml", ["layer1", "layer2"], size=32))
    verify(ir, after="test", shapes=True)
    # a stage output also read by the next stage is no sink, and that is fine; a stray
    # op reading it is a sink that is not an Output marker
    ir.add(Node("stray", ReLU(), shape=(16, 32, 32)), ir.results[0][1])
    with pytest.raises(IRError, match="'stray'.*exactly its Output markers"):
        verify(ir, after="test", shapes=True)


def test_verifier_refuses_a_missing_or_unasked_marker():
    ir = lower(small("cifar_resnet20.yaml", ["layer1", "layer2"], size=32))
    ir.remove("output.layer1")  # layer1's output feeds layer2: no new sink appears
    with pytest.raises(IRError, match="do not match the spec's outputs"):
        verify(ir, after="test", shapes=True)
    classifier = lower(load_spec(SPECS / "cifar_resnet20.yaml"))
    classifier.add(Node("output.layer1", Output("layer1")), "layer1.2.relu")
    with pytest.raises(IRError):
        verify(classifier, after="test", shapes=True)


def test_verifier_still_wants_one_output_for_a_classifier():
    ir = lower(load_spec(SPECS / "cifar_resnet20.yaml"))
    ir.add(Node("stray", ReLU()), "layer1.0.relu")
    with pytest.raises(IRError, match="expected one output"):
        verify(ir, after="test", shapes=False)
    assert nx.is_directed_acyclic_graph(ir.graph)


# -- both engines, feature_info against real tensors -----------------------------------------
FAMILIES = [
    ("resnet18.yaml", 64),  # basic blocks
    ("resnet50.yaml", 64),  # bottleneck, paper layout
    ("cifar_resnet20.yaml", 32),  # option A
    ("cifar_preact_resnet164.yaml", 32),  # pre-activation bottleneck
    ("cifar_densenet_bc_100_12.yaml", 32),  # dense layers and transitions
    ("timm/seresnetaa50d.yaml", 64),  # zoo: deep stem, option D, SE, avgpool anti-aliasing
    ("timm/resnetblur18.yaml", 64),  # zoo: blur-pool anti-aliasing in the stem and blocks
]


@pytest.mark.parametrize(("path", "size"), FAMILIES, ids=[p for p, _ in FAMILIES])
def test_feature_info_matches_the_tensors_of_both_engines(path, size):
    classifier = small(path, None, size=size)
    names = classifier.feature_names()
    wanted = [names[-1], names[1], names[0]]  # out of order on purpose
    spec = small(path, wanted, size=size)
    info = summarize(spec)
    assert info.backbone
    assert [f.name for f in info.feature_info] == [names[0], names[1], names[-1]]
    # a classifier's feature_info lists every map it could return, with the same figures
    every = {f.name: f for f in summarize(classifier).feature_info}
    assert list(every) == names
    assert all(every[f.name] == f for f in info.feature_info)

    x = torch.randn(2, spec.input.channels, size, size)
    results = []
    for engine in ("graph", "generated"):
        model = build_model(spec, engine, seed=0).eval()
        with torch.no_grad():
            out = model(x)
        assert isinstance(out, dict)
        assert list(out) == [f.name for f in info.feature_info]
        for f in info.feature_info:
            t = out[f.name]
            assert tuple(t.shape[1:]) == f.shape
            assert t.shape[1] == f.channels
            assert size // t.shape[-1] == f.stride == size // t.shape[-2]
        results.append((model.state_dict(), out))
    (sd_g, out_g), (sd_s, out_s) = results
    assert list(sd_g) == list(sd_s)
    assert all(torch.equal(sd_g[k], sd_s[k]) for k in sd_g)
    assert all(torch.equal(out_g[k], out_s[k]) for k in out_g)
    assert sum(p.numel() for p in build_model(spec, seed=0).parameters()) == info.params


def test_strides_of_the_full_size_networks():
    strides = {f.name: f.stride for f in summarize(load_spec(SPECS / "resnet50.yaml")).feature_info}
    assert strides == {"stem": 4, "layer1": 4, "layer2": 8, "layer3": 16, "layer4": 32}
    cifar = summarize(load_spec(SPECS / "cifar_resnet20.yaml")).feature_info
    assert [(f.channels, f.stride) for f in cifar] == [(16, 1), (16, 1), (32, 2), (64, 4)]


def test_a_classifier_checkpoint_loads_into_its_backbone():
    classifier = build_model(small("resnet50.yaml", None), "generated", seed=1).eval()
    backbone = build_model(small("resnet50.yaml", ["layer1", "layer3"]), "graph", seed=2).eval()
    keys = set(backbone.state_dict())
    state = classifier.state_dict()
    assert keys == {k for k in state if not k.startswith(("fc.", "layer4."))}
    result = backbone.load_state_dict(state, strict=False)
    assert result.missing_keys == []
    assert result.unexpected_keys and all(
        k.startswith(("fc.", "layer4.")) for k in result.unexpected_keys
    )
    seen = {}
    classifier.layer3.register_forward_hook(lambda m, i, o: seen.update(layer3=o))
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        classifier(x)
        out = backbone(x)
    assert torch.equal(out["layer3"], seen["layer3"])


def test_stochastic_depth_survival_is_the_classifiers():
    # dropping later stages must not change the linear decay over the whole network
    spec = load_spec(SPECS / "cifar_resnet110_stochastic_depth.yaml")
    full = lower(spec)
    cut = lower(spec, outputs=["layer1"])
    for path, block in cut.blocks.items():
        assert block.args == full.blocks[path].args


# -- the generated source, build, summary ----------------------------------------------------
def test_generated_source_returns_the_dict_and_says_so():
    spec = small("resnet18.yaml", ["layer2", "layer3"])
    text = emit_source(lower(spec))
    assert "def forward(self, x: Tensor) -> dict[str, Tensor]:" in text
    assert 'return {"layer2": layer2, "layer3": layer3}' in text
    assert "as a backbone" in text and "layer2 128x8x8, layer3 256x4x4" in text
    assert "self.fc" not in text and "layer4" not in text
    namespace: dict[str, object] = {}
    exec(compile(text, "<backbone>", "exec"), namespace)  # standalone: imports torch only
    out = namespace["build_model"]()(torch.randn(1, 3, 64, 64))  # type: ignore[operator]
    assert list(out) == ["layer2", "layer3"]
    # named after the classifier it is cut from: its depth counts the dropped layers
    full = emit_source(lower(load_spec(SPECS / "resnet18.yaml"), outputs=["layer2"]))
    assert full.startswith('"""ResNet-18: ResNet-18, option B shortcuts, backbone (layer2).')


def test_generated_source_of_every_map_keeps_to_100_columns():
    spec = load_spec(SPECS / "timm/seresnetaa50d.yaml")
    text = emit_source(lower(spec, outputs=spec.feature_names()))
    assert max(len(line) for line in text.splitlines()) <= 100
    assert "stem 64x56x56, layer1 256x56x56, layer2 512x28x28, layer3 1024x14x14,\n" in text
    body = text[text.index("-> dict[str, Tensor]:") :]
    assert '        return {\n            "stem": stem,\n' in body
    assert '            "layer4": layer4,\n        }\n' in body


def test_build_and_summary_commands(tmp_path: Path):
    spec = tmp_path / "backbone.yaml"
    spec.write_text(f"base: {SPECS / 'cifar_resnet20.yaml'}\noutputs: [layer3, layer2]\n")
    result = invoke("build", spec, "-o", tmp_path / "out")
    assert result.exit_code == 0, result.output
    (written,) = (tmp_path / "out").glob("*.py")
    text = written.read_text()
    assert "-> dict[str, Tensor]" in text and '"layer2": layer2, "layer3": layer3' in text

    result = invoke("summary", "--json", spec)
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["backbone"] is True
    assert data["feature_info"] == [
        {"name": "layer2", "channels": 32, "stride": 2, "shape": [32, 16, 16]},
        {"name": "layer3", "channels": 64, "stride": 4, "shape": [64, 8, 8]},
    ]
    assert "head" not in [s["name"] for s in data["stages"]]

    text = invoke("summary", spec).output
    assert "backbone: forward returns a dict of feature maps" in text
    assert "layer3      64 channels  stride  4  64x8x8" in text
    classifier = json.loads(invoke("summary", "--json", SPECS / "cifar_resnet20.yaml").output)
    assert classifier["backbone"] is False
    assert [f["name"] for f in classifier["feature_info"]] == ["stem", "layer1", "layer2", "layer3"]
    assert "backbone" not in invoke("summary", SPECS / "cifar_resnet20.yaml").output


def test_train_and_eval_refuse_a_backbone_in_one_line(tmp_path: Path):
    spec = tmp_path / "backbone.yaml"
    spec.write_text(f"base: {SPECS / 'cifar_resnet20.yaml'}\noutputs: [layer3]\n")
    run = tmp_path / "run"
    result = CliRunner().invoke(
        main, ["train", str(spec), "--iterations", "1", "--out", str(run), "-q"]
    )
    assert result.exit_code != 0
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: cannot train a backbone")
    assert not run.exists()
    result = invoke("eval", spec, "--weights", tmp_path / "w.pt")
    assert result.exit_code != 0
    assert result.output.strip().startswith("error: cannot evaluate a backbone")


@pytest.mark.slow
def test_every_bundled_spec_lowers_as_a_backbone_of_every_map():
    """Every family, dense and the zoo included: asking for every map lowers the classifier's
    stages unchanged (same shapes, same parameters) and returns each of them."""
    paths = sorted(SPECS.glob("*.yaml")) + sorted((SPECS / "timm").glob("*.yaml"))
    for path in paths:
        spec = load_spec(path)
        if sum(s.repeats for s in spec.stages) > 40:  # the deepest nets: slow, nothing new
            continue
        backbone, classifier = lower(spec, outputs=spec.feature_names()), lower(spec)
        assert feature_info(backbone) == feature_info(classifier), path
        assert [key for key, _ in backbone.results] == spec.feature_names()
        head = sum(n.params for n in classifier.nodes() if n.section == "head")
        params = sum(n.params for n in backbone.nodes())
        assert head > 0 and params == sum(n.params for n in classifier.nodes()) - head, path
