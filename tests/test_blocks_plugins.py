"""Ops written in Python (tests/plugin_ops.py): loaded only by an explicit --plugin flag or
load_plugin call, never by a spec; then used by block definitions like resgraph's own ops,
in both engines and in standalone generated source."""

from __future__ import annotations

import os
import re

import pytest
import torch

from helpers import ROOT, run_cli
from resgraph import load_plugin, load_spec
from resgraph.emit import build_model
from resgraph.emit.source import emit_source
from resgraph.passes import lower
from resgraph.plugins import PluginError

TESTS = str(ROOT / "tests")

SPEC = """\
name: Centred net
input: {channels: 3, size: 16}
num_classes: 4
stem: {layout: cifar, width: 8}
blocks:
  ws:
    ops:
      - conv1: {op: centered_conv, out_channels: width, kernel: 3, stride: stride, padding: 1}
      - bn1: norm
      - relu1: relu
      - conv2: {op: centered_conv, out_channels: width, kernel: 3, padding: 1}
      - bn2: norm
block: ws
stages:
  - {width: 8, repeats: 1, stride: 1}
  - {width: 16, repeats: 1, stride: 2}
"""


@pytest.fixture
def plugin():
    return load_plugin("plugin_ops")


def test_loading_adds_the_modules_ops_once(plugin):
    assert plugin == ["centered_conv"]
    assert load_plugin("plugin_ops") == ["centered_conv"]  # a second load adds nothing new


def test_a_plugin_op_in_both_engines_and_in_standalone_source(plugin):
    ir = lower(load_spec(SPEC))
    assert ir.node("layer2.0.conv1").op.kind == "centered_conv"
    torch.manual_seed(0)
    graph = build_model(ir, "graph").eval()
    generated = build_model(ir, "generated").eval()
    generated.load_state_dict(graph.state_dict(), strict=True)
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        out = graph(x)
        assert torch.equal(out, generated(x))
    text = emit_source(ir)
    assert "class CenteredConv2d(nn.Conv2d):" in text
    assert re.search(r"self\.conv1 = CenteredConv2d\(\s*in_channels, width, kernel_size=3", text)
    namespace: dict[str, object] = {}
    exec(compile(text, "<generated>", "exec"), namespace)  # standalone: no plugin import
    model = namespace["build_model"]().eval()
    model.load_state_dict(graph.state_dict(), strict=True)
    with torch.no_grad():
        assert torch.equal(model(x), out)
    # the centring runs: shifting a conv's weights does not change the output
    with torch.no_grad():
        graph.get_submodule("layer1.0.conv1").weight.add_(0.5)
        assert torch.allclose(graph(x), out, rtol=1e-4, atol=1e-4)


def test_a_module_without_ops_and_one_that_takes_a_kind_are_refused():
    with pytest.raises(PluginError, match="--plugin json: it defines no op"):
        load_plugin("json")
    with pytest.raises(PluginError, match="takes the kind 'conv' of resgraph.ops.Conv"):
        load_plugin("plugin_clash")
    assert lower(load_spec(SPEC.replace("centered_conv", "conv"))).node("conv1").op.kind == "conv"
    with pytest.raises(PluginError, match="not a Python module path"):
        load_plugin("os; rm -rf /")
    with pytest.raises(PluginError, match="cannot import it: ModuleNotFoundError"):
        load_plugin("no_such_plugin_module")


@pytest.mark.subprocess
def test_the_flag_loads_it_and_nothing_else_does(tmp_path):
    spec = tmp_path / "ws.yaml"
    spec.write_text(SPEC)
    env = {"PYTHONPATH": os.pathsep.join([TESTS, os.environ.get("PYTHONPATH", "")])}
    without = run_cli("validate", str(spec), env=env)
    assert without.returncode == 1 and "Traceback" not in without.stderr
    assert without.stderr.count("\n") == 1
    assert "blocks.ws.ops[0].conv1.op: unknown op 'centered_conv'" in without.stderr
    with_plugin = run_cli("--plugin", "plugin_ops", "validate", str(spec), env=env)
    assert with_plugin.returncode == 0, with_plugin.stderr
    bad = run_cli("--plugin", "no_such_plugin_module", "validate", str(spec), env=env)
    assert bad.returncode == 1 and bad.stderr.startswith(
        "error: --plugin no_such_plugin_module: cannot import it: ModuleNotFoundError"
    )
    assert bad.stderr.count("\n") == 1


def test_the_file_schema_does_not_depend_on_loaded_plugins(plugin):
    """specs/schema.json is the same whatever a process loaded: resgraph's own ops are
    offered as examples, and any op name is allowed (a plugin may add one)."""
    import json

    from resgraph.spec.file_schema import file_schema

    committed = json.loads((ROOT / "specs" / "schema.json").read_text())
    assert file_schema() == committed
    text = json.dumps(committed)
    assert '"centered_conv"' not in text and '"radix_softmax"' in text
