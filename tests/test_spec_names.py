"""``names:``: the module paths of stages, blocks, stem, head and shortcuts, for networks whose
state must carry another library's names (timm's RegNets), and RegNet's width rule feeding a
defined block."""

from __future__ import annotations

import pytest
import torch

from helpers import CIFAR20, ROOT
from resgraph import SpecError, load_spec
from resgraph.emit import build_model
from resgraph.emit.source import emit_source
from resgraph.passes import lower
from resgraph.spec.regnet import RegNetParams, compatible, regnet_stages

NAMED = CIFAR20.replace("shortcut: A", "shortcut: B") + (
    "names:\n"
    '  stage: "s{stage + 1}"\n'
    '  block: "b{index + 1}"\n'
    "  modules: {conv1: stem.conv, bn1: stem.bn, fc: head.fc, downsample.0: downsample.conv,\n"
    "            downsample.1: downsample.bn}\n"
)


def test_every_name_follows_the_spec():
    keys = list(build_model(load_spec(NAMED), "graph").state_dict())
    assert keys[:2] == ["stem.conv.weight", "stem.bn.weight"]
    assert "s1.b1.conv1.weight" in keys and "s2.b1.bn2.weight" in keys
    assert "s2.b1.downsample.conv.weight" in keys and "s2.b1.downsample.bn.bias" in keys
    assert keys[-2:] == ["head.fc.weight", "head.fc.bias"]
    assert not any(k.startswith(("layer", "conv1", "bn1", "fc.")) for k in keys)


def test_both_engines_and_the_generated_source_keep_the_names():
    ir = lower(load_spec(NAMED))
    torch.manual_seed(0)
    graph = build_model(ir, "graph").eval()
    generated = build_model(ir, "generated").eval()
    assert list(graph.state_dict()) == list(generated.state_dict())
    generated.load_state_dict(graph.state_dict(), strict=True)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(graph(x), generated(x))
    text = emit_source(ir)
    assert "from collections import OrderedDict" in text
    assert "OrderedDict(\n" in text and "b1=BasicBlock(" in text
    assert "conv=nn.Conv2d(16, 32, kernel_size=1, stride=2, bias=False)" in text
    plain = emit_source(lower(load_spec(CIFAR20)))
    assert "OrderedDict" not in plain  # torchvision's numbered blocks need no import


def test_the_defaults_are_torchvisions_and_validate_when_written():
    spec = load_spec(CIFAR20 + 'names: {stage: "layer{stage + 1}", block: "{index}"}\n')
    assert spec.block_path(1, 0) == "layer2.0" and spec.names.modules == {}
    assert spec.model_validate(spec.model_dump()).block_path(1, 2) == "layer2.2"


def test_backbone_features_are_named_after_the_stages():
    spec = load_spec(NAMED + "outputs: [stem, s2]\n")
    assert spec.feature_names() == ["stem", "s1", "s2"]
    out = build_model(spec, "graph")(torch.randn(1, 3, 32, 32))
    assert list(out) == ["stem", "s2"]
    with pytest.raises(SpecError, match="unknown feature map 'layer2'"):
        load_spec(NAMED + "outputs: [layer2]\n")


def test_a_renamed_prefix_renames_what_is_inside_it():
    deep = (
        CIFAR20.replace(
            "stem: {layout: cifar, width: 16}", "stem: {layout: imagenet, type: deep}"
        ).replace("shortcut: A", "shortcut: B")
        + "names: {modules: {conv1: stem.convs}}\n"
    )
    keys = list(build_model(load_spec(deep), "graph").state_dict())
    assert keys[0] == "stem.convs.0.weight" and "stem.convs.6.weight" in keys
    assert "bn1.weight" in keys  # not renamed: no rename names it
    option_d = CIFAR20.replace("shortcut: A", "shortcut: D") + (
        "names: {modules: {downsample: shortcut}}\n"
    )
    keys = list(build_model(load_spec(option_d), "graph").state_dict())
    assert "layer2.0.shortcut.1.weight" in keys and "layer2.0.shortcut.2.running_var" in keys


@pytest.mark.parametrize(
    ("names", "message"),
    [
        ('{stage: "s"}', "stage path 's' is or holds an earlier stage's path, 's'"),
        ('{block: "b"}', "'b' gives 'b' more than once"),  # every block the same name
        ('{stage: "s{stage"}', "not a module path part"),
        ('{stage: "{stage}"}', "'{stage}' gives '0', not a module path part"),
        ('{block: "{index}x"}', "'{index}x' gives '0x', not a module path part"),
        ('{block: "b.{index}"}', "gives 'b.0', not a module path part"),
        ('{block: "b{index ** 2}"}', "is not allowed"),
        ('{block: "b{depth}"}', "unknown name 'depth'"),
        ('{block: "b{index / 2}"}', "index / 2 is 0.5 here, not a whole number"),
        ("{modules: {conv1: 'stem conv'}}", "'stem conv' is not a module path"),
        ("{modules: {'1x': stem}}", "'1x' is not a module path"),
    ],
)
def test_names_that_cannot_be_module_paths_are_located(names, message):
    with pytest.raises(SpecError) as info:
        load_spec(CIFAR20 + f"names: {names}\n")
    lines = str(info.value).splitlines()
    assert len(lines) == 1 and message in lines[0] and lines[0].startswith("<string>:10:")


def test_regnet_rule_feeds_a_defined_block():
    spec = load_spec(ROOT / "specs" / "timm" / "regnety_016.yaml")
    assert [s.width for s in spec.stages] == [48, 120, 336, 888]
    assert [s.repeats for s in spec.stages] == [2, 6, 17, 2]
    assert [s.stride for s in spec.stages] == [2, 2, 2, 2]
    block = spec.stage_block(1)
    assert block.type == "regnet" and block.options == {"se_ratio": 0.25, "group_width": 24}
    ir = lower(spec)
    assert ir.node("s2.b1.se.fc1").op.out_channels == 12  # a quarter of the input's 48
    assert ir.node("s2.b2.se.fc1").op.out_channels == 30  # a quarter of 120
    assert ir.node("s2.b1.conv2.conv").op.groups == 120 // 24


def test_the_torchvision_rounding_of_bottleneck_widths():
    p = RegNetParams(w0=24, wa=24.48, wm=2.54, depth=22, group_width=16)
    nearest = [compatible(s)[1] for s in regnet_stages(p)]
    up = [compatible(s, 0.9)[1] for s in regnet_stages(p)]
    assert nearest == [32, 64, 160, 384]  # 392 to the nearest multiple of 16, half to even
    assert up == [32, 64, 160, 400]  # half up (timm's regnetx_004_tv, torchvision's)
    tv = load_spec(ROOT / "specs" / "timm" / "regnetx_004_tv.yaml")
    assert [s.width for s in tv.stages] == [32, 64, 160, 400]
