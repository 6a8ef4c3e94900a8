"""The IR drives every emitter: typed block facts, one registry entry per op, block classes
written from the IR, class names shared by both engines, safe generated names, pickling of
the in-memory engines, and the activation-memory rule."""

from __future__ import annotations

import ast
import pickle
import subprocess
import sys
from dataclasses import fields

import pytest
import torch
import yaml

from helpers import CIFAR20, ROOT, run_cli
from resgraph import load_spec, lower, ops
from resgraph.emit.graph_module import build_module, module_of
from resgraph.emit.source import build_generated, emit_source, helper_sources
from resgraph.ir import block_class_names, block_members
from resgraph.summary import activation_bytes, summarize


def _spec(stem: str):
    return load_spec(ROOT / "specs" / f"{stem}.yaml")


def _variant(name: str | None = None, **changes: object):
    data = yaml.safe_load(CIFAR20)
    if name is not None:
        data["name"] = name
    data.update(changes)
    return load_spec(yaml.safe_dump(data, sort_keys=False))


# -- facts decided once ---------------------------------------------------------------------
@pytest.mark.parametrize(
    ("stem", "expected"),
    [
        (
            "cifar_resnet20",
            {"layer1.0": "identity", "layer2.0": "zero-pad", "layer2.1": "identity"},
        ),
        ("resnet18", {"layer1.0": "identity", "layer2.0": "projection", "layer4.1": "identity"}),
        ("resnet50", {"layer1.0": "projection", "layer1.1": "identity"}),
        ("cifar_plain20", {"layer1.0": "none", "layer3.0": "none"}),
        ("cifar_densenet_bc_100_12", {"layer1.0": "none", "layer2.0": "none"}),
    ],
)
def test_insert_shortcuts_records_its_outcome_on_the_block(stem, expected):
    ir = lower(_spec(stem))
    assert {p: ir.blocks[p].shortcut_kind for p in expected} == expected
    for block in ir.blocks.values():  # the recorded fact agrees with the graph
        shortcut = [n for n in block_members(ir)[block.path] if n.role == "shortcut"]
        kinds = {type(n.op) for n in shortcut}
        assert {
            "identity": set(),
            "none": set(),
            "zero-pad": {ops.PadShortcut},
            "projection": {ops.Conv, ops.BatchNorm},
        }[block.shortcut_kind] == kinds


def test_every_node_knows_its_section():
    ir = lower(_spec("resnet18"))
    sections = {n.name: n.section for n in ir.nodes()}
    assert [sections[n] for n in ("input", "conv1", "bn1", "relu", "maxpool")] == ["stem"] * 5
    assert sections["layer1.0.conv1"] == sections["layer4.1.add"] == "stage"
    assert sections["avgpool"] == sections["fc"] == "head"
    assert all(n.scope for n in ir.nodes() if n.section == "stage")


def test_bound_fields_evaluate_to_the_op_values():
    """A block class writes bound op fields as expressions over its constructor arguments:
    each expression must give the op's value for every block that instantiates the class."""
    for stem in (
        "resnet50",
        "cifar_densenet_bc_100_12",
        "cifar_highway_resnet20",
        "cifar_wrn_40_4",
    ):
        ir = lower(_spec(stem))
        for block in ir.blocks.values():
            env = {a.name: a.value for a in block.args}
            for n in block_members(ir)[block.path]:
                for field, expr in n.bind:
                    assert eval(expr, {}, env) == getattr(n.op, field), (n.name, field, expr)


# -- one registry entry per op --------------------------------------------------------------
def _op_classes() -> list[type[ops.Op]]:
    return [
        c
        for c in vars(ops).values()
        if isinstance(c, type)
        and issubclass(c, ops.Op)
        and hasattr(c, "kind")
        and c is not ops.Op
        and not c.__name__.startswith("_")
    ]


@pytest.mark.parametrize("cls", _op_classes(), ids=lambda c: c.__name__)
def test_each_op_says_how_it_is_built_or_called_and_drawn(cls):
    assert cls.fill.startswith("#") or cls.fill == "white"
    if cls in (ops.Input, ops.Output):  # the graph's boundary: neither built nor called
        return
    if cls.is_module:
        assert cls.ctor and not cls.call
        names = {f.name for f in fields(cls)}
        assert {f for f, _, _ in cls.ctor_args} <= names
    else:
        assert cls.call and not cls.ctor
    if cls.helper is not None:
        assert cls.helper in helper_sources()


def test_graph_modules_are_the_ones_the_source_writes():
    op = ops.Conv(3, 8, 3, 2, 1, groups=1, bias=True)
    module = module_of(op)
    assert isinstance(module, torch.nn.Conv2d)
    assert (module.stride, module.padding, module.bias is not None) == ((2, 2), (1, 1), True)
    pad = module_of(ops.PadShortcut(4, 8, 2))
    assert pad(torch.ones(1, 4, 4, 4)).shape == (1, 8, 2, 2)


def test_helpers_are_copied_from_resgraph_nn_verbatim():
    text = emit_source(lower(_spec("cifar_resnet110_stochastic_depth")))
    import inspect

    from resgraph import nn as rnn

    assert inspect.getsource(rnn.PadShortcut).rstrip() in text
    assert inspect.getsource(rnn.DropPath).rstrip() in text
    assert "gate_mix" not in text  # only the helpers the network uses
    gated = emit_source(lower(_spec("cifar_highway_resnet20")))
    assert inspect.getsource(rnn.gate_mix).rstrip() in gated


# -- block classes from the IR ---------------------------------------------------------------
def _classes(text: str) -> dict[str, ast.ClassDef]:
    return {n.name: n for n in ast.parse(text).body if isinstance(n, ast.ClassDef)}


def test_block_forward_follows_the_ir():
    """Changing the IR changes the generated forward: the order comes from the graph."""
    ir = lower(_spec("cifar_resnet20"))
    text = emit_source(ir)
    body = ast.unparse(_classes(text)["BasicBlock"].body[-1])
    assert body.splitlines()[1:] == [
        "    out = F.relu(self.bn1(self.conv1(x)))",
        "    out = self.bn2(self.conv2(out))",
        "    identity = x if self.downsample is None else self.downsample(x)",
        "    out = out + identity",
        "    out = F.relu(out)",
        "    return out",
    ]
    pre = emit_source(lower(_spec("cifar_preact_resnet164")))
    body = ast.unparse(_classes(pre)["PreActBottleneck"].body[-1])
    assert "self.downsample(preact)" in body and "preact = F.relu(self.bn1(x))" in body
    assert "F.relu(out)\n" not in body.split("out = out + identity")[1]  # nothing after the add


def test_block_classes_are_shared_by_every_block_of_one_structure():
    text = emit_source(lower(_spec("cifar_resnet1202")))
    assert [n for n in _classes(text)] == ["PadShortcut", "BasicBlock", "CIFARResNet1202"]
    text = emit_source(lower(_spec("resnet50")))
    assert [n for n in _classes(text)] == ["Bottleneck", "ResNet50"]


@pytest.mark.parametrize(
    "stem",
    [
        "resnet50",
        "cifar_densenet_bc_100_12",
        "cifar_highway_resnet20",
        "cifar_plain20",
        "cifar_preact_resnet164",
        "cifar_resnet110_stochastic_depth",
    ],
)
def test_block_class_names_agree_between_the_engines(stem):
    ir = lower(_spec(stem))
    text = emit_source(ir)
    graph = build_module(ir)
    graph_names = {type(m).__name__ for p, m in graph.named_modules() if p in ir.blocks}
    source_names = set(block_class_names(ir, block_members(ir), set(helper_sources())).values())
    assert graph_names == source_names
    assert graph_names <= set(_classes(text))
    assert type(graph).__name__ in _classes(text)


# -- names a spec cannot break ---------------------------------------------------------------
NAMES = ["None", "True", "F", "nn", "torch", "Tensor", "BasicBlock", "PadShortcut", "build model"]
NAMES += ["Exception", "123"]


@pytest.mark.subprocess
def test_model_class_name_never_collides(tmp_path):
    """Each name's file is standalone: all of them run in one fresh process (one start of
    Python and torch for the lot), each under its own module name."""
    for i, name in enumerate(NAMES):
        ir = lower(_variant(name))
        text = emit_source(ir)
        classes = _classes(text)
        model = [c for c in classes if c not in ("PadShortcut", "BasicBlock", "BasicBlock2")]
        assert len(model) == 1, (name, model)
        assert model[0] not in ("None", "True", "F", "BasicBlock", "PadShortcut"), name
        assert type(build_module(ir)).__name__ == model[0]
        (tmp_path / f"net{i}.py").write_text(text)
    script = (
        "import importlib, sys, torch; sys.path.insert(0, sys.argv[1])\n"
        "for i in range(int(sys.argv[2])):\n"
        "    m = importlib.import_module(f'net{i}').build_model()\n"
        "    print(tuple(m(torch.zeros(1, 3, 32, 32)).shape))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path), str(len(NAMES))],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == ["(1, 10)"] * len(NAMES)


# -- the in-memory engines pickle across processes ----------------------------------------------
@pytest.mark.subprocess
@pytest.mark.parametrize("engine", ["generated", "graph"])
def test_in_memory_models_unpickle_in_a_fresh_process(engine, tmp_path):
    ir = lower(_spec("cifar_resnet20"))
    model = build_generated(ir, seed=0) if engine == "generated" else build_module(ir, seed=0)
    model.eval()
    x = torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = model(x)
    (tmp_path / "model.pkl").write_bytes(pickle.dumps(model))
    torch.save({"x": x, "y": expected}, tmp_path / "io.pt")
    script = (
        "import pickle, sys, torch; d = sys.argv[1]; "
        "m = pickle.loads(open(d + '/model.pkl', 'rb').read()); io = torch.load(d + '/io.pt'); "
        "print(torch.equal(m(io['x']), io['y']))"
    )
    out = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        env={"PYTHONPATH": str(ROOT)},
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "True"


# -- memory, pipeline, CLI ------------------------------------------------------------------
def test_activation_bytes_counts_every_kept_output_once():
    ir = lower(_variant())
    kept = 0
    for n in ir.nodes():
        if n.op.arity == 1:
            size = 1
            for d in n.shape:
                size *= d
            kept += size
    assert activation_bytes(ir, 3, bytes_per_value=2) == kept * 3 * 2
    assert summarize(ir, batch_size=5).activation_bytes == activation_bytes(ir, 5) == kept * 20


def test_pass_names_are_unique_and_each_can_be_dumped():
    from resgraph.passes import PASS_NAMES

    assert len(PASS_NAMES) == len(set(PASS_NAMES))
    assert "shortcut_shapes" in PASS_NAMES


@pytest.mark.subprocess
def test_summary_json_has_layers_only_with_per_layer():
    import json

    plain = json.loads(run_cli("summary", "specs/cifar_resnet20.yaml", "--json").stdout)
    full = json.loads(
        run_cli("summary", "specs/cifar_resnet20.yaml", "--json", "--per-layer").stdout
    )
    assert "layers" not in plain and plain["params"] == full["params"]
    assert sum(r["params"] for r in full["layers"]) == full["params"]


@pytest.mark.slow
@pytest.mark.parametrize("engine", ["generated", "graph"])
@pytest.mark.parametrize("stem", ["cifar_highway_resnet20", "cifar_resnet110_stochastic_depth"])
def test_in_memory_engines_script_with_torchscript(engine, stem):
    ir = lower(_spec(stem))
    model = build_generated(ir, seed=0) if engine == "generated" else build_module(ir, seed=0)
    model.eval()
    scripted = torch.jit.script(model)
    x = torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.equal(scripted(x), model(x))


def test_update_copies_the_node_and_refuses_unknown_fields():
    """IR.update builds the changed node without dataclasses.replace (a hot path): it must
    still leave the old node as it was and refuse a field nodes do not have."""
    import pytest

    from resgraph import load_spec
    from resgraph.errors import IRError
    from resgraph.ir import Node
    from resgraph.passes import lower

    ir = lower(load_spec(CIFAR20))
    old = ir.node("conv1")
    new = ir.update("conv1", shape=(1, 2, 3), params=7)
    assert (new.shape, new.params, new.name, new.op) == ((1, 2, 3), 7, "conv1", old.op)
    assert old.shape != (1, 2, 3) and ir.node("conv1") is new and isinstance(new, Node)
    with pytest.raises(IRError, match="no field 'colour'"):
        ir.update("conv1", colour="red")
