"""Design spaces: specs in which a number is a range or a choice.

A space is a spec file like any other (``base:`` and ``--set`` compose it the same way) in
which any value may be written as

* ``{range: [lo, hi]}``: a number from lo to hi, both included: an integer when both ends are
  integers, else a real; ``log: true`` draws it log-uniformly (lo > 0), ``step: s`` from
  lo, lo + s, lo + 2s, ... up to hi;
* ``{choice: [a, b, ...]}``: one of the values listed (any YAML value, a mapping too).

A space is data: it is read with the same safe YAML loader as a spec, and a draw replaces each
range or choice node of the merged YAML tree by a value node that keeps the range's source
position, so a drawn network is validated exactly like a file and every error points at the
range that produced it. Drawing is by :class:`random.Random` with the caller's seed.
"""

from __future__ import annotations

import math
import os
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any

import yaml
from pydantic import ConfigDict, Field, ValidationError

from resgraph.errors import Problem, SpecError
from resgraph.spec.base import StrictModel
from resgraph.spec.compose import construct, resolve_base
from resgraph.spec.overrides import apply_overrides

MAX_CHOICES = 1000
Bound = Annotated[float, Field(allow_inf_nan=False)]


class RangeSpec(StrictModel):
    """A number drawn from lo to hi, both included: an integer when lo, hi (and step) are
    integers, else a real."""

    model_config = ConfigDict(title="Range")

    range: list[Bound] = Field(min_length=2, max_length=2, description="[lo, hi], lo not above hi.")
    log: bool = Field(False, description="Draw log-uniformly (lo > 0).")
    step: Bound | None = Field(
        None, gt=0, description="Draw from lo, lo + step, lo + 2 step, ... up to hi (not with log)."
    )


class ChoiceSpec(StrictModel):
    """One of the values listed, drawn with equal chances."""

    model_config = ConfigDict(title="Choice")

    choice: list[Any] = Field(
        min_length=1,
        max_length=MAX_CHOICES,
        description="The values: any YAML value each (a mapping too), not a range or choice.",
    )


RANGE, CHOICE = "range", "choice"
RANGE_KEYS = tuple(RangeSpec.model_fields)
CHECK_VALUES = 12  # values of a range tried by check(): both ends and some between
INT_TAG, FLOAT_TAG = "tag:yaml.org,2002:int", "tag:yaml.org,2002:float"

Path_ = tuple[str | int, ...]


@dataclass
class Dimension:
    """One range or choice of a space, at ``path`` of the spec."""

    path: Path_
    node: yaml.MappingNode
    lo: float = 0
    hi: float = 0
    log: bool = False
    step: float | None = None
    integer: bool = False
    choices: list[yaml.Node] = field(default_factory=list)

    @property
    def kind(self) -> str:
        return CHOICE if self.choices else RANGE

    def draw(self, rng: random.Random) -> yaml.Node:
        if self.choices:
            return rng.choice(self.choices)
        if self.step is not None:
            count = int((self.hi - self.lo) / self.step + 1e-9)
            return self._value(self.lo + rng.randint(0, count) * self.step)
        if self.log:
            return self._value(math.exp(rng.uniform(math.log(self.lo), math.log(self.hi))))
        if self.integer:
            return self._value(rng.randint(int(self.lo), int(self.hi)))
        return self._value(rng.uniform(self.lo, self.hi))

    def values_to_check(self, rng: random.Random) -> list[yaml.Node]:
        """Every choice; a range's two ends and draws between them."""
        if self.choices:
            return list(self.choices)
        ends = [self._value(self.lo), self._value(self.hi)]
        return ends + [self.draw(rng) for _ in range(CHECK_VALUES - 2)]

    def _value(self, value: float) -> yaml.Node:
        mark = self.node.start_mark
        if self.integer:
            number = min(max(round(value), int(self.lo)), int(self.hi))
            return yaml.ScalarNode(INT_TAG, str(number), mark, mark)
        number = min(max(float(f"{value:.6g}"), self.lo), self.hi)
        return yaml.ScalarNode(FLOAT_TAG, repr(float(number)), mark, mark)


def is_space_node(node: yaml.Node) -> bool:
    return isinstance(node, yaml.MappingNode) and any(
        isinstance(k, yaml.ScalarNode) and k.value in (RANGE, CHOICE) for k, _ in node.value
    )


def find_dimensions(root: yaml.Node, smap: Any) -> list[Dimension]:
    """The ranges and choices of the tree ``root``, in document order; a malformed one is a
    :class:`SpecError` at its position (``smap``: the tree's SourceMap)."""
    found: list[Dimension] = []
    stack: list[tuple[yaml.Node, Path_]] = [(root, ())]
    while stack:
        node, path = stack.pop()
        if is_space_node(node):
            found.append(_dimension(node, path, smap))
        elif isinstance(node, yaml.MappingNode):
            stack += [(v, (*path, k.value)) for k, v in reversed(node.value)]
        elif isinstance(node, yaml.SequenceNode):
            stack += [(v, (*path, i)) for i, v in reversed(list(enumerate(node.value)))]
    return found


def _dimension(node: yaml.MappingNode, path: Path_, smap: Any) -> Dimension:
    def error(message: str) -> SpecError:
        return SpecError(Problem(message, smap.locate(path)))

    data = construct(node)
    if CHOICE in data:
        _check(ChoiceSpec, data, error)
        choices = dict((k.value, v) for k, v in node.value)[CHOICE]
        if any(is_space_node(c) for c in choices.value):
            raise error("a choice's values are plain values, not ranges or choices")
        return Dimension(path, node, choices=list(choices.value))
    _check(RangeSpec, data, error)
    (lo, hi), log, step = data[RANGE], data.get("log", False), data.get("step")
    if lo > hi:
        raise error(f"range [{lo}, {hi}] is empty: lo must not be above hi")
    if log and lo <= 0:
        raise error(f"a log range needs lo > 0, got {lo}")
    if step is not None and log:
        raise error("a range takes log or step, not both")
    integer = all(isinstance(v, int) for v in (lo, hi, step if step is not None else 1))
    return Dimension(path, node, lo=lo, hi=hi, log=log, step=step, integer=integer)


MESSAGES = {  # (model, first key of the error's location; None: an unknown key) -> message
    (ChoiceSpec, None): "a choice is written {{choice: [a, b, ...]}} with no other key",
    (ChoiceSpec, CHOICE): f"choice must be a non-empty list of at most {MAX_CHOICES} values",
    (RangeSpec, None): "unknown key {key!r} in a range (it takes " + ", ".join(RANGE_KEYS) + ")",
    (RangeSpec, RANGE): "range must be a list of two numbers, [lo, hi]",
    (RangeSpec, "log"): "log must be true or false",
    (RangeSpec, "step"): "step must be a number above 0",
}


def _check(model: type[StrictModel], data: Any, error: Any) -> None:
    """Validate a range or choice mapping against its model; its first problem, as the
    message of ``MESSAGES``, raised by ``error``."""
    try:
        model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        unknown = first["type"] == "extra_forbidden"
        message = MESSAGES[model, None if unknown else first["loc"][0]]
        raise error(message.format(key=first["loc"][0])) from None


def substitute(node: yaml.Node, chosen: dict[int, yaml.Node]) -> yaml.Node:
    """A copy of the tree ``node`` with each node whose id is in ``chosen`` replaced."""
    if id(node) in chosen:
        return chosen[id(node)]
    if isinstance(node, yaml.MappingNode):
        pairs = [(k, substitute(v, chosen)) for k, v in node.value]
        out: yaml.Node = yaml.MappingNode(node.tag, pairs, node.start_mark, node.end_mark)
    elif isinstance(node, yaml.SequenceNode):
        items = [substitute(v, chosen) for v in node.value]
        out = yaml.SequenceNode(node.tag, items, node.start_mark, node.end_mark)
    else:
        return node
    if hasattr(node, "merged_by"):
        out.merged_by = node.merged_by  # type: ignore[attr-defined]  # read by SourceMap
    return out


def refuse_space(root: yaml.Node, smap: Any) -> None:
    """Raise a located :class:`SpecError` if the spec ``root`` is a space, not one network."""
    dims = find_dimensions(root, smap)
    if dims:
        raise SpecError(
            Problem(
                f"a {dims[0].kind} makes this spec a design space, not one network: draw "
                "networks from it with 'resgraph sample'",
                smap.locate(dims[0].path),
            )
        )


class Space:
    """A space read from a file (or YAML text), its bases merged and ``overrides`` applied."""

    def __init__(self, source: str | os.PathLike[str], overrides: Sequence[str] = ()) -> None:
        from resgraph.spec.loader import SourceMap, _parse, _read

        self.source, self.overrides = source, tuple(overrides)
        text, self.filename = _read(source)
        self.root, _ = resolve_base(*_parse(text, self.filename), self.filename)
        if overrides:
            apply_overrides(self.root, overrides)
        self.smap = SourceMap(self.filename, self.root)
        self.dimensions = find_dimensions(self.root, self.smap)

    def draw(self, rng: random.Random) -> yaml.Node:
        """One network's YAML tree."""
        return substitute(self.root, {id(d.node): d.draw(rng) for d in self.dimensions})

    def validate(self, tree: yaml.Node) -> Any:
        """The ModelSpec of a drawn tree (raises a located SpecError)."""
        from resgraph.spec.loader import validate_tree

        return validate_tree(tree, self.filename)

    def check(self, rng: random.Random) -> None:
        """Raise a located SpecError for a range or choice none of whose values tried is
        valid where it stands (each tried with the other dimensions drawn)."""
        for dim in self.dimensions:
            reasons = []
            for value in dim.values_to_check(rng):
                chosen = {id(d.node): d.draw(rng) for d in self.dimensions}
                chosen[id(dim.node)] = value
                reasons.append(self._reason_at(substitute(self.root, chosen), dim.path))
                if reasons[-1] is None:
                    break
            if None not in reasons:  # the first value's reason: a range's lower end
                message = f"no value of this {dim.kind} is valid: {reasons[0]}"
                raise SpecError(Problem(message, self.smap.locate(dim.path)))

    def _reason_at(self, tree: yaml.Node, path: Path_) -> str | None:
        """The schema's complaint about the value at ``path`` of ``tree``, if any."""
        from resgraph.spec.loader import format_path

        try:
            self.validate(tree)
        except SpecError as exc:
            shown = format_path(path)
            for p in exc.problems:
                where = p.path if p.path is not None else (p.loc.path if p.loc else "")
                if where == shown or where.startswith((shown + ".", shown + "[")):
                    return p.message
        return None
