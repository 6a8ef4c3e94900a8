"""Generated source as a torchvision reader expects it: class names spelled as the papers
spell them, blocks called with named numbers, a comment on a module kept only for state_dict
indices, and build_model(num_classes=...) for a classifier."""

from __future__ import annotations

import inspect
import re

import pytest
import torch

from helpers import CIFAR20, ROOT
from resgraph import load_spec, lower
from resgraph.emit.graph_module import build_module
from resgraph.emit.pyformat import Call, Commented, render
from resgraph.emit.source import _load, emit_source
from resgraph.ir import class_identifier
from resgraph.ops import Identity


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("seresnext50_32x4d", "SEResNeXt50_32x4d"),
        ("ecaresnetlight", "ECAResNetLight"),
        ("senet154", "SENet154"),
        ("resnetaa50d", "ResNetAA50d"),
        ("resnet50_gn", "ResNet50GN"),
        ("wide_resnet50_2", "WideResNet50_2"),
        ("Wide ResNet-50-2", "WideResNet50_2"),
        ("CIFAR WRN-28-10", "CIFARWRN28_10"),
        ("CIFAR ResNet-56 skip-3", "CIFARResNet56Skip3"),
        ("CIFAR ResNet-20", "CIFARResNet20"),
        ("ResNet-50 (torchvision)", "ResNet50Torchvision"),
        ("dense_layer", "DenseLayer"),
        ("123", "Net123"),
    ],
)
def test_class_names_read_as_the_papers_write_them(name, expected):
    assert class_identifier(name) == expected
    assert expected.isidentifier()


def _source(stem: str) -> str:
    return emit_source(lower(load_spec(ROOT / "specs" / f"{stem}.yaml")))


def test_block_calls_name_every_number_but_the_input_width():
    text = _source("resnet50")
    assert "Bottleneck(256, width=64, out_channels=256) for _ in range(2)" in text
    assert "Bottleneck(\n                64,\n                width=64,\n" in text
    # no block call passes a second bare number
    assert not re.search(r"(BasicBlock|Bottleneck)\(\d+, \d", text)
    assert "BasicBlock(64, width=64)" in _source("resnet18")


def test_the_alignment_only_identity_is_explained():
    text = _source("timm/resnet50d")
    assert f"nn.Identity(),  # {Identity.note}\n" in text
    assert text.count("nn.Identity()") == text.count(Identity.note) == 1


def test_a_commented_expression_breaks_its_call_to_end_a_line():
    call = Call("nn.Sequential", (Commented(Call("nn.Identity"), "why"), Call("nn.ReLU")))
    assert render(call, 8) == "nn.Sequential(\n            nn.Identity(),  # why\n" + (
        "            nn.ReLU(),\n        )"
    )
    assert render(Commented(Call("nn.Identity"), "why"), 8) == "nn.Identity()  # why"
    assert render(Call("nn.Sequential", (Call("nn.Identity"),)), 8) == (
        "nn.Sequential(nn.Identity())"
    )


def test_build_model_takes_num_classes_and_the_head_follows():
    spec = load_spec(CIFAR20)
    module = _load(emit_source(lower(spec)))
    assert inspect.signature(module.build_model).parameters["num_classes"].default == 10
    model = module.build_model(num_classes=7).eval()
    assert model.fc.out_features == 7 and model.fc.in_features == 32
    with torch.no_grad():
        assert model(torch.zeros(1, 3, 32, 32)).shape == (1, 7)
    default = module.build_model()
    assert default.fc.out_features == 10
    # only the head changes: every other tensor has the shape the graph engine gives it
    graph = build_module(lower(spec)).state_dict()
    changed = {k for k, v in model.state_dict().items() if v.shape != graph[k].shape}
    assert changed == {"fc.weight", "fc.bias"}


def test_a_backbone_has_no_num_classes():
    spec = load_spec(CIFAR20 + "outputs: [layer1, layer2]\n")
    module = _load(emit_source(lower(spec)))
    assert list(inspect.signature(module.build_model).parameters) == []
    assert "num_classes" not in emit_source(lower(spec))


def test_a_line_of_exactly_the_width_stays_whole():
    """An expression that fills the line to the last column stays on it when nothing follows
    it (a generator's element, an assignment), and breaks when a comma must follow, as a
    formatter lays it out."""
    from resgraph.emit.pyformat import WIDTH, Repeat

    args = ("x" * (WIDTH - 16 - len("Block()")),)
    call = Call("Block", args)
    assert len(render(call, 16, tail=0)) == WIDTH - 16  # whole: 100 columns in all
    assert "\n" in render(call, 16)  # a comma follows: 101 columns would not fit
    text = render(Repeat(call, count=5), 12)
    assert text.splitlines()[1] == " " * 16 + render(call, 16, tail=0)


def test_runs_of_block_calls_fold_from_two_equal_or_three_varying():
    """Two equal calls fold into a loop; calls that differ in one keyword fold only from
    three on (two written out read better than a loop over two values)."""
    from resgraph.emit.pyformat import Repeat
    from resgraph.emit.source import _group

    def block(**kw: object) -> Call:
        return Call("Block", ("64",), tuple((k, str(v)) for k, v in kw.items()))

    same = _group([block(p=1), block(p=1)])
    assert same == [Repeat(block(p=1), count=2)]
    assert _group([block(p=1)]) == [block(p=1)]
    two = _group([block(p=1), block(p=2)])
    assert two == [block(p=1), block(p=2)]
    three = _group([block(p=1), block(p=2), block(p=3)])
    assert len(three) == 1 and isinstance(three[0], Repeat)
    assert three[0].var == "p" and three[0].call == Call("Block", ("64",), (("p", "p"),))
    assert [str(v) for v in three[0].values.items] == ["1", "2", "3"]
    mixed = _group([block(p=1, q=1), block(p=2, q=2), block(p=3, q=3)])  # two keywords vary
    assert mixed == [block(p=1, q=1), block(p=2, q=2), block(p=3, q=3)]
    tail = _group([block(p=1), block(p=1), block(p=5)])
    assert tail == [Repeat(block(p=1), count=2), block(p=5)]
