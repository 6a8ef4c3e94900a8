"""Command-line overrides of a spec: ``--set PATH=VALUE``.

``PATH`` is a field path as resgraph reports it (``stages[2].repeats``, ``block.groups``,
``input.size``; negative indices count from the end, ``stages[-1].width``); ``VALUE`` is YAML
(``8``, ``true``, ``bottleneck``, ``[layer2, layer3]``, ``{ratio: 0.25}``, ``null``). Each
override replaces one node of the spec's YAML tree after its base chain is merged in, so the
spec is validated exactly like a file that says the same, and every node an override writes
carries the flag as its location: a value the schema refuses is reported at ``--set ...``,
not at a line of the file. Missing mappings along the path are created; lists are not grown.
"""

from __future__ import annotations

import difflib
import re
import shlex
from collections.abc import Sequence
from dataclasses import dataclass

import yaml

from resgraph.errors import Problem, SourceLoc, SpecError

STR_TAG = "tag:yaml.org,2002:str"
MAP_TAG = "tag:yaml.org,2002:map"
_NAME = r"[A-Za-z_][A-Za-z0-9_]*"
_SEGMENT = re.compile(rf"({_NAME})((?:\[-?[0-9]+\])*)")


class Override(str):
    """A ``PATH=VALUE`` override that remembers the flag that gave it (``--input-size 64``
    for ``input.size=64``), so that errors name what the user typed."""

    flag: str

    def __new__(cls, text: str, flag: str | None = None) -> Override:
        self = super().__new__(cls, text)
        self.flag = flag if flag is not None else f"--set {shlex.quote(text)}"
        return self


@dataclass(frozen=True)
class FlagLoc(SourceLoc):
    """A location that is a command-line flag rather than a line of a file."""

    line: int = 0
    column: int = 0

    def __str__(self) -> str:  # a flag as typed, shortened if it is very long
        flag = self.file if len(self.file) <= 100 else self.file[:96] + " ..."
        return flag + self.with_also()


def flag_error(flag: str, message: str) -> SpecError:
    return SpecError(Problem(message, FlagLoc(flag)))


def parse_path(text: str, flag: str) -> list[str | int]:
    """``stages[2].repeats`` -> ``["stages", 2, "repeats"]``."""
    parts: list[str | int] = []
    for segment in text.split("."):
        match = _SEGMENT.fullmatch(segment)
        if match is None:
            raise flag_error(
                flag,
                f"{text!r} is not a field path (write it like stages[2].repeats or block.groups)",
            )
        parts.append(match.group(1))
        parts += [int(i) for i in re.findall(r"-?[0-9]+", match.group(2))]
    return parts


def _flag_mark(flag: str) -> yaml.Mark:
    mark = yaml.Mark(flag, 0, 0, 0, None, None)
    mark.flag = flag  # type: ignore[attr-defined]  # read by SourceMap
    return mark


def _tag(node: yaml.Node, flag: str) -> None:
    """Mark every node of an override's value as written by ``flag``."""
    stack = [node]
    while stack:
        n = stack.pop()
        n.start_mark = _flag_mark(flag)
        if isinstance(n, yaml.MappingNode):
            for k, v in n.value:
                k.start_mark = _flag_mark(flag)
                stack.append(v)
        elif isinstance(n, yaml.SequenceNode):
            stack.extend(n.value)


def parse_value(text: str, flag: str) -> yaml.Node:
    """``VALUE`` as a YAML node, with the loader's rules for spec files (no aliases, no
    duplicate or non-string keys); an empty value is YAML's null."""
    from resgraph.spec.compose import construct
    from resgraph.spec.loader import MAX_SPEC_BYTES, _check_keys, _NoAliasLoader, _Refused

    if len(text.encode("utf-8", "replace")) > MAX_SPEC_BYTES:
        raise flag_error(flag, f"the value is larger than {MAX_SPEC_BYTES} bytes")
    loader = None
    try:
        loader = _NoAliasLoader(text)  # refuses control characters already
        node = loader.get_single_node()
        if node is None:
            node = yaml.ScalarNode("tag:yaml.org,2002:null", "")
        _check_keys(node, lambda _mark, message: flag_error(flag, message))
        construct(node)  # refuses tags like !!python/object here, at the flag
    except _Refused as exc:
        raise flag_error(flag, exc.message) from None
    except yaml.YAMLError as exc:
        problem = getattr(exc, "problem", None) or getattr(exc, "context", None) or str(exc)
        first = problem.strip().splitlines()[0]
        raise flag_error(flag, f"the value is not valid YAML: {first}") from None
    except RecursionError:
        raise flag_error(flag, "the value is nested too deeply") from None
    finally:
        if loader is not None:
            loader.dispose()
    _tag(node, flag)
    return node


def _describe(node: yaml.Node) -> str:
    if isinstance(node, yaml.SequenceNode):
        return f"a list of {len(node.value)}"
    return "a mapping" if isinstance(node, yaml.MappingNode) else "a single value"


def _shown(parts: Sequence[str | int]) -> str:
    from resgraph.spec.loader import format_path

    return format_path(tuple(parts))


def _nothing_to_index(parts: Sequence[str | int], node: yaml.MappingNode) -> str:
    """Why ``name[i]`` cannot be set when the spec has no ``name`` where the path says:
    a close field name that it has, or that a list the spec does not write is set whole."""
    *path, index = parts
    name = str(path[-1])
    close = difflib.get_close_matches(name, [k.value for k, _ in node.value], n=1)
    if close:
        return f"unknown key {name!r} (did you mean {close[0]!r}?)"
    shown = _shown(path)
    return (
        f"{shown} is not written in the spec, so it has no [{index}]; set the whole "
        f"list instead (--set '{shown}=[...]')"
    )


def apply_override(root: yaml.MappingNode, override: str) -> None:
    """Apply one ``PATH=VALUE`` to the spec tree ``root`` in place."""
    flag = getattr(override, "flag", None) or f"--set {shlex.quote(override)}"
    path_text, sep, value_text = override.partition("=")
    path_text = path_text.strip()
    if not sep or not path_text:
        raise flag_error(flag, "expected PATH=VALUE, e.g. --set stages[2].repeats=8")
    parts = parse_path(path_text, flag)
    if parts[0] == "base":
        raise flag_error(flag, "'base' is read from the file; --set changes the merged spec")
    value = parse_value(value_text, flag)
    node: yaml.Node = root
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        here = _shown(parts[:i]) or "the spec"
        if isinstance(part, int):
            if not isinstance(node, yaml.SequenceNode):
                raise flag_error(flag, f"{here} is {_describe(node)}, not a list")
            n = len(node.value)
            if not -n <= part < n:
                raise flag_error(flag, f"{here} has {n} entries, so [{part}] is out of range")
            if last:
                node.value[part] = value
            else:
                node = node.value[part]
            continue
        if not isinstance(node, yaml.MappingNode):
            raise flag_error(flag, f"{here} is {_describe(node)}, not a mapping")
        if last:
            node.merged_by = _flag_mark(flag)  # type: ignore[attr-defined]  # see SourceMap
        entry = next((j for j, (k, _) in enumerate(node.value) if k.value == part), None)
        if entry is None and not last and isinstance(parts[i + 1], int):
            raise flag_error(flag, _nothing_to_index(parts[: i + 2], node))
        if entry is None:
            key = yaml.ScalarNode(STR_TAG, part, _flag_mark(flag), _flag_mark(flag))
            child = value if last else yaml.MappingNode(MAP_TAG, [], _flag_mark(flag))
            node.value.append((key, child))
            node = child
        elif last:
            node.value[entry] = (node.value[entry][0], value)
        else:
            node = node.value[entry][1]


def apply_overrides(root: yaml.MappingNode, overrides: Sequence[str]) -> None:
    """Apply ``overrides`` in order (a later one wins over an earlier one on the same path)."""
    if isinstance(overrides, str):
        overrides = [overrides]
    for override in overrides:
        if not isinstance(override, str):
            raise SpecError(
                Problem(f"an override is a 'PATH=VALUE' string, not {type(override).__name__}")
            )
        apply_override(root, override)
