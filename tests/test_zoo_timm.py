"""Every spec of specs/timm/ against timm itself (tests/data/timm_reference.json.gz for
timm's resnet.py, tests/data/timm_families_reference.json.gz for its Res2Net, SKNet, ResNeSt
and RegNet models, written by scripts/timm_fixture.py in a throwaway environment with timm
1.0.31): for both engines, the
state_dict keys in order, their shapes and whether each is a parameter or a saved buffer, so
a timm checkpoint loads with ``load_state_dict(sd, strict=True)``; the buffers that are not
saved; the exact parameter count; multiply-adds at timm's input size and at 224; and the
logits in evaluation mode, with every tensor filled by tests/fill.py, within a relative 1e-4
of timm's (float64 there).

The logits are computed in float32: its rounding moves them by at most about 3e-7 relative
on the largest models measured (resnext101_32x32d, resnetrs420, seresnet269d), far inside
1e-4, and a wrong tensor moves them past the tolerance as in float64
(``test_a_wrong_weight_fails_in_float32_as_in_float64``). Each model's forward runs
on one engine, the two taking turns down the sorted list; that both engines compute the
same thing for every spec is shown bitwise by ``test_engines_agree_bitwise_on_every_spec``
on each spec cut to two blocks a stage (every block kind, stem, shortcut and attention of
the spec, at a fraction of the cost).

MACs count every Conv2d and Linear (squeeze-and-excitation's 1x1 convs included), as the
fixture does; ECA's Conv1d, pools, blur filters and activations are not counted.

Each model is built once per engine (on the meta device: nothing is initialised) and freed
before the next; the input is the fixture's 2x3x64x64.
"""

from __future__ import annotations

import gzip
import json

import pytest
import torch
from fill import fill, fill_value, last_branch_norms, reference_input

from helpers import ROOT, layout_only
from resgraph import load_spec
from resgraph.emit import build_model
from resgraph.passes import lower
from resgraph.summary import summarize

# timm's resnet.py models, and its other residual families (their blocks written as
# definitions in the block language): both written by scripts/timm_fixture.py
FIXTURES = [
    ROOT / "tests" / "data" / "timm_reference.json.gz",
    ROOT / "tests" / "data" / "timm_families_reference.json.gz",
]
TIMM_SPECS = sorted((ROOT / "specs" / "timm").glob("*.yaml"))
ENGINES = ("graph", "generated")
TOLERANCE = 1e-4  # relative to the largest logit

pytestmark = pytest.mark.zoo


@pytest.fixture(scope="module")
def reference():
    models: dict[str, dict] = {}
    for path in FIXTURES:
        models |= json.loads(gzip.decompress(path.read_bytes()))["models"]
    return {"models": models}


def _at_size(spec, size: int):
    return spec.model_copy(update={"input": spec.input.model_copy(update={"size": size})})


def timm_state(ref: dict) -> dict[str, torch.Tensor]:
    """timm's state_dict as the fixture filled it: its keys and shapes, with tests/fill.py's
    values in float32 (the batch counters int64)."""
    keys = {key for key, _, _ in ref["state"]}
    last = last_branch_norms(keys)
    return {
        key: fill_value(
            key,
            tuple(shape),
            torch.int64 if key.endswith("num_batches_tracked") else torch.float32,
            key in last,
        )
        for key, shape, _ in ref["state"]
    }


def _build(engine: str, ir, state: dict[str, torch.Tensor]) -> torch.nn.Module:
    """The model holding ``state``, loaded strictly, in evaluation mode. Built on the meta
    device (nothing is initialised) and given the state's tensors, unless it has buffers
    that are not saved (a blur filter): those need a real build."""
    with layout_only():
        model = build_model(ir, engine)
    keys = model.state_dict().keys()
    if any(name not in keys for name, _ in model.named_buffers()):
        model = build_model(ir, engine)
        keys = model.state_dict().keys()
    assert list(keys) == list(state), f"{engine}: state_dict keys differ from timm's"
    model.load_state_dict(state, strict=True, assign=True)
    return model.eval()


def _state(model: torch.nn.Module) -> list[list[object]]:
    params = {name for name, _ in model.named_parameters()}
    return [
        [key, list(t.shape), "p" if key in params else "b"] for key, t in model.state_dict().items()
    ]


def _check_layout(name: str, model: torch.nn.Module, ref: dict, engine: str) -> None:
    assert _state(model) == ref["state"], f"{name} ({engine}): state_dict differs"
    saved = model.state_dict()
    unsaved = [[n, list(b.shape)] for n, b in model.named_buffers() if n not in saved]
    assert unsaved == ref["non_persistent"], f"{name} ({engine}): unsaved buffers differ"


def _relative_error(model: torch.nn.Module, ref: dict, dtype: torch.dtype) -> float:
    """The largest difference from timm's logits, relative to their largest magnitude."""
    with torch.no_grad():
        out = model.to(dtype)(reference_input().to(dtype)).double()
    expected = torch.tensor(ref["output"], dtype=torch.float64)
    return ((out - expected).abs().max() / expected.abs().max()).item()


def _check_logits(name: str, model: torch.nn.Module, ref: dict) -> None:
    error = _relative_error(model, ref, torch.float32)
    assert error <= TOLERANCE, f"{name}: logits differ by {error:.3g} (relative)"


def _check_model(name: str, ir, ref: dict, state: dict, forward_on: str) -> None:
    """Both engines' layouts; the logits of ``forward_on``'s."""
    for engine in ENGINES:
        model = _build(engine, ir, state)
        try:
            _check_layout(name, model, ref, engine)
            if engine == forward_on:
                _check_logits(f"{name} ({engine})", model, ref)
        finally:
            del model


def _turn(path) -> str:
    """The engine that computes this model's logits: the two take turns down the list."""
    return ENGINES[TIMM_SPECS.index(path) % 2]


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
    if ref["output"] is None:  # too large for the fixture's logits: the layout alone
        for engine in ENGINES:
            with layout_only():
                _check_layout(name, build_model(ir, engine), ref, engine)
        return
    state = timm_state(ref)
    _check_model(name, ir, ref, state, forward_on=_turn(path))


def test_both_engines_meet_the_logits():
    """The engines take turns: each checks the logits of half of the zoo."""
    turns = [_turn(path) for path in TIMM_SPECS]
    assert abs(turns.count("graph") - turns.count("generated")) <= 1


def _cut(spec):
    """The spec with at most two blocks a stage (a downsampling block and an identity one)
    at 32 pixels and with no width factor (BiT's x2, x3, x4: the same blocks, wider): every
    kind of block, stem, shortcut and attention of the spec."""
    stages = [s.model_copy(update={"repeats": min(s.repeats, 2)}) for s in spec.stages]
    return _at_size(spec, 32).model_copy(update={"stages": stages, "width_factor": 1})


@pytest.mark.parametrize("path", TIMM_SPECS, ids=lambda p: p.stem)
def test_engines_agree_bitwise_on_every_spec(path):
    ir = lower(_cut(load_spec(path)))
    with layout_only():
        layout = build_model(ir, "graph").state_dict()  # keys, shapes and dtypes
    state = fill(layout)
    x = reference_input(size=32).float()
    outs = []
    for engine in ENGINES:
        with torch.no_grad():
            outs.append(_build(engine, ir, state)(x))
    assert torch.equal(outs[0], outs[1]), f"{path.stem}: the engines differ"


@pytest.mark.parametrize(
    ("key", "change"),
    [
        ("layer4.1.conv2.weight", lambda t: t * 1.1),
        ("fc.bias", lambda t: t + 1e-3),
        ("layer3.0.downsample.1.running_mean", lambda t: t.flip(0)),
    ],
    ids=["conv-10%", "bias", "bn-stats"],
)
def test_a_wrong_weight_fails_in_float32_as_in_float64(reference, key, change):
    """float32 keeps the check as strict as float64: a wrong tensor moves the logits past
    the tolerance by the same amount in both (to within 1% of the tolerance)."""
    ref = reference["models"]["resnet18"]
    ir = lower(load_spec(ROOT / "specs" / "timm" / "resnet18.yaml"))
    state = timm_state(ref)
    _check_logits("resnet18", _build("graph", ir, state), ref)
    state[key] = change(state[key])
    errors = [
        _relative_error(_build("graph", ir, state), ref, t) for t in (torch.float32, torch.float64)
    ]
    assert min(errors) > TOLERANCE, errors
    assert abs(errors[0] - errors[1]) <= TOLERANCE / 100, errors
