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


@st.composite
def specs(draw):
    shortcut = draw(st.sampled_from(["A", "B", "C"]))
    width = 8  # the stem width: option A never shrinks channels
    stages = []
    for _ in range(draw(st.integers(1, 4))):
        if shortcut == "A":  # option A can only add channels: widths never shrink
            width *= draw(st.sampled_from([1, 2]))
        else:
            width = draw(st.sampled_from([4, 8, 16, 32]))
        stages.append(
            {
                "width": width,
                "repeats": draw(st.integers(1, 3)),
                "stride": draw(st.sampled_from([1, 2])),
            }
        )
    block = draw(blocks)
    if (
        shortcut == "A"
        and block != "basic"
        and (not isinstance(block, dict) or block["type"] != "basic")
    ):
        block = "basic"  # bottleneck output widths change non-monotonically with expansion
    spec = {
        "name": "random net",
        "input": {"channels": draw(st.sampled_from([1, 3])), "size": draw(st.integers(8, 40))},
        "num_classes": draw(st.integers(1, 20)),
        "stem": {"kind": draw(st.sampled_from(["imagenet", "cifar"])), "width": 8},
        "block": block,
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
