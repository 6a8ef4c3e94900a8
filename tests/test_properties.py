"""Property-based tests: random valid specs lower cleanly; random mutations of valid specs
either validate or raise resgraph's own located error, never anything else."""

from __future__ import annotations

import networkx as nx
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from resgraph import load_spec, lower
from resgraph.errors import ResgraphError
from resgraph.ops import JOINS

FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

blocks = st.one_of(
    st.sampled_from(["basic", "bottleneck"]),
    st.fixed_dictionaries(
        {"type": st.just("basic")},
        optional={
            "convs": st.integers(1, 3),
            "preactivation": st.booleans(),
            "dropout": st.sampled_from([0.0, 0.2]),
            "join": st.sampled_from(["add", "gate"]),
        },
    ),
    st.fixed_dictionaries(
        {"type": st.just("bottleneck")},
        optional={
            "expansion": st.integers(1, 4),
            "stride_on": st.sampled_from(["1x1", "3x3"]),
            "groups": st.sampled_from([1, 2, 4]),
            "preactivation": st.booleans(),
        },
    ),
)


dense_blocks = st.fixed_dictionaries(
    {"type": st.just("dense"), "growth_rate": st.sampled_from([2, 4])},
    optional={
        "bottleneck_layers": st.booleans(),
        "compression": st.sampled_from([0.5, 1.0]),
        "dropout": st.sampled_from([0.0, 0.2]),
    },
)


def _is_basic(block: object) -> bool:
    return block == "basic" or (isinstance(block, dict) and block["type"] == "basic")


@st.composite
def specs(draw):
    """Random valid specs: basic (plain, pre-activated, gated, 1-3 convs, dropout),
    bottleneck and dense stages, mixed in one network by per-stage blocks, with option A
    (basic stages only: a bottleneck or dense stage may shrink channels), B or C."""
    shortcut = draw(st.sampled_from(["A", "B", "C"]))
    size = draw(st.integers(8, 40))
    stem = draw(st.sampled_from(["imagenet", "cifar"]))
    spatial = (((size - 1) // 2 + 1) - 1) // 2 + 1 if stem == "imagenet" else size
    default = draw(blocks)
    if shortcut == "A" and not _is_basic(default):
        default = "basic"  # bottleneck output widths change non-monotonically with expansion
    width = 8  # the stem width: option A never shrinks channels
    stages = []
    for _ in range(draw(st.integers(1, 4))):
        stride = draw(st.sampled_from([1, 2]))
        stage: dict[str, object] = {"repeats": draw(st.integers(1, 3)), "stride": stride}
        kind = draw(
            st.sampled_from(
                ["default", "other", "dense"] if shortcut == "B" else ["default", "other"]
            )
        )
        if kind == "dense" and (stride == 1 or spatial >= 2):
            stage["block"] = draw(dense_blocks)
            spatial = spatial // stride
            stages.append(stage)
            continue
        if kind == "other":
            block = draw(blocks)
            stage["block"] = block if shortcut != "A" or _is_basic(block) else "basic"
        if shortcut == "A":  # option A can only add channels: widths never shrink
            width *= draw(st.sampled_from([1, 2]))
        else:
            width = draw(st.sampled_from([4, 8, 16, 32]))
        stage["width"] = width
        spatial = (spatial - 1) // stride + 1
        stages.append(stage)
    spec = {
        "name": "random net",
        "input": {"channels": draw(st.sampled_from([1, 3])), "size": size},
        "num_classes": draw(st.integers(1, 20)),
        "stem": {"layout": stem, "width": 8},
        "block": default,
        "shortcut": shortcut,
        "stages": stages,
    }
    if draw(st.booleans()):
        spec["stochastic_depth"] = {"final_survival": draw(st.sampled_from([0.5, 0.8, 1.0]))}
    return spec


@FAST
@given(specs())
def test_random_valid_specs_lower_and_keep_the_invariants(data):
    ir = lower(load_spec(yaml.safe_dump(data, sort_keys=False)))
    g = ir.graph
    assert nx.is_directed_acyclic_graph(g)
    assert nx.descendants(g, ir.input) == set(g) - {ir.input}
    assert [n for n in g if g.out_degree(n) == 0] == [ir.output]
    assert ir.node(ir.output).shape == (data["num_classes"],)
    for node in ir.nodes():
        assert node.shape is not None and all(d >= 1 for d in node.shape)
        if isinstance(node.op, JOINS):
            shapes = [ir.node(p).shape for p in ir.inputs(node.name)]
            node.op.check(shapes)  # raises if a join's inputs disagree
    assert sum(n.params for n in ir.nodes()) > 0


JUNK = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**12), 10**12),
    st.floats(allow_nan=True),
    st.text(max_size=12),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=2),
)


def _paths(obj, prefix=()):
    yield prefix
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _paths(v, (*prefix, k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _paths(v, (*prefix, i))


@FAST
@given(specs(), st.data())
def test_mutated_specs_validate_or_raise_a_located_error(data, draw):
    paths = [p for p in _paths(data) if p]
    path = draw.draw(st.sampled_from(paths))
    action = draw.draw(st.sampled_from(["replace", "delete", "add_key"]))
    parent = data
    for part in path[:-1]:
        parent = parent[part]
    if action == "replace":
        parent[path[-1]] = draw.draw(JUNK)
    elif action == "delete":
        del parent[path[-1]]
    elif isinstance(parent, dict):
        parent[draw.draw(st.text(min_size=1, max_size=8))] = draw.draw(JUNK)
    text = yaml.safe_dump(data, sort_keys=False)
    try:
        lower(load_spec(text))
    except ResgraphError as exc:
        message = str(exc)
        assert message and "Traceback" not in message
        assert all(line.startswith("<string>:") for line in message.splitlines()), message
