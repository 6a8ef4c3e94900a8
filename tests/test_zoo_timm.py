"""Every spec of specs/timm/ against timm itself (tests/data/timm_reference.json.gz, written by
scripts/timm_fixture.py in a throwaway environment with timm 1.0.31): for both engines, the
state_dict keys in order, their shapes and whether each is a parameter or a saved buffer, so
a timm checkpoint loads with ``load_state_dict(sd, strict=True)``; the buffers that are not
saved; the exact parameter count; multiply-adds at timm's input size and at 224; and the
logits in evaluation mode, float64, with every tensor filled by tests/fill.py, within a
relative 1e-4 of timm's.

MACs count every Conv2d and Linear (squeeze-and-excitation's 1x1 convs included), as the
fixture does; ECA's Conv1d, pools, blur filters and activations are not counted.

Each model is built once per engine and freed before the next; the input is the fixture's
2x3x64x64.
"""

from __future__ import annotations

import gc
import gzip
import json

import pytest
import torch
from fill import fill_value, last_branch_norms, reference_input

from helpers import ROOT
from resgraph import load_spec
from resgraph.emit import build_model
from resgraph.passes import lower
from resgraph.summary import summarize

FIXTURE = ROOT / "tests" / "data" / "timm_reference.json.gz"
TIMM_SPECS = sorted((ROOT / "specs" / "timm").glob("*.yaml"))
ENGINES = ("graph", "generated")

pytestmark = pytest.mark.zoo


@pytest.fixture(scope="module")
def reference():
    return json.loads(gzip.decompress(FIXTURE.read_bytes()))


def _at_size(spec, size: int):
    return spec.model_copy(update={"input": spec.input.model_copy(update={"size": size})})


def timm_state(ref: dict) -> dict[str, torch.Tensor]:
    """timm's state_dict as the fixture filled it: its keys, shapes and dtypes (float64, the
    batch counters int64) with tests/fill.py's values."""
    keys = {key for key, _, _ in ref["state"]}
    last = last_branch_norms(keys)
    return {
        key: fill_value(
            key,
            tuple(shape),
            torch.int64 if key.endswith("num_batches_tracked") else torch.float64,
            key in last,
        )
        for key, shape, _ in ref["state"]
    }


def _build(engine: str, ir, state: dict[str, torch.Tensor]) -> torch.nn.Module:
    """The model holding ``state``, loaded strictly, in evaluation mode. Built on the meta
    device (nothing is initialised) and given the state's tensors, unless it has buffers
    that are not saved (a blur filter): those need a real build."""
    with torch.device("meta"):
        model = build_model(ir, engine)
    keys = model.state_dict().keys()
    if any(name not in keys for name, _ in model.named_buffers()):
        model = build_model(ir, engine).double()
        keys = model.state_dict().keys()
    assert list(keys) == list(state), f"{engine}: state_dict keys differ from timm's"
    model.load_state_dict(state, strict=True, assign=True)
    return model.eval()


def _state(model: torch.nn.Module) -> list[list[object]]:
    params = {name for name, _ in model.named_parameters()}
    return [
        [key, list(t.shape), "p" if key in params else "b"] for key, t in model.state_dict().items()
    ]


def _check_model(name: str, ir, ref: dict, engine: str, state: dict) -> None:
    model = _build(engine, ir, state)
    try:
        assert _state(model) == ref["state"], f"{name} ({engine}): state_dict differs"
        saved = model.state_dict()
        unsaved = [[n, list(b.shape)] for n, b in model.named_buffers() if n not in saved]
        assert unsaved == ref["non_persistent"], f"{name} ({engine}): unsaved buffers differ"
        with torch.no_grad():
            out = model(reference_input())
        expected = torch.tensor(ref["output"], dtype=torch.float64)
        scale = expected.abs().max().item()
        error = (out - expected).abs().max().item()
        assert error <= 1e-4 * scale, f"{name} ({engine}): logits differ by {error:.3g}"
    finally:
        del model
        gc.collect()


@pytest.mark.parametrize("path", TIMM_SPECS, ids=lambda p: p.stem)
def test_timm_model_matches_timm(path, reference):
    name = path.stem
    ref = reference["models"][name]
    spec = load_spec(path)
    assert spec.input.size == ref["input_size"]
    ir = lower(spec)
    summary = summarize(ir)
    assert summary.params == ref["params"]
    assert summary.macs == ref["macs"]
    assert summarize(_at_size(spec, 224)).macs == ref["macs_224"]
    state = timm_state(ref)
    for engine in ENGINES:
        _check_model(name, ir, ref, engine, state)
    del state
    gc.collect()
