"""Spec composition: a spec names another with ``base: PATH`` and overrides what it changes.

The path is relative to the file that writes it (to the working folder for spec text). The base
is loaded like any spec (and may have a base of its own, at most ``MAX_BASE_DEPTH`` deep); then
the two YAML node trees are merged: mappings key by key, recursively; lists and scalars are
replaced whole by the child's. Merging node trees rather than plain data keeps every value's
source position, each tagged with the file it was written in, so an error in the merged spec
points at the file and line that wrote the offending value, base or child.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from resgraph.errors import Problem, SourceLoc, SpecError

MAX_BASE_DEPTH = 8
BASE_KEY = "base"


def resolve_base(root: yaml.MappingNode, data: Any, filename: str) -> tuple[yaml.Node, Any]:
    """The spec ``root`` (parsed from ``filename``) merged onto its base chain, and its data.

    A spec without a ``base`` key comes back unchanged. The merged tree has no ``base`` key.
    """
    if _base_entry(root) is None:
        return root, data
    start = [] if filename == "<string>" else [Path(filename).resolve()]
    merged = _resolve(root, filename, start, 0)
    return merged, construct(merged)


def construct(root: yaml.Node) -> Any:
    """Plain data (dicts, lists, scalars) of a node tree."""
    loader = yaml.SafeLoader("")
    try:
        return loader.construct_document(root)
    finally:
        loader.dispose()


def _base_entry(root: yaml.MappingNode) -> tuple[yaml.Node, yaml.Node] | None:
    for key, value in root.value:
        if isinstance(key, yaml.ScalarNode) and key.value == BASE_KEY:
            return key, value
    return None


def _resolve(
    root: yaml.MappingNode, filename: str, chain: list[Path], depth: int
) -> yaml.MappingNode:
    """``root`` merged onto its bases; ``chain``: the files above it, ``depth``: bases followed."""
    entry = _base_entry(root)
    if entry is None:
        return root
    _, value = entry
    own = yaml.MappingNode(
        root.tag,
        [(k, v) for k, v in root.value if not (isinstance(k, yaml.ScalarNode) and k is entry[0])],
        root.start_mark,
        root.end_mark,
        flow_style=root.flow_style,
    )

    def at(message: str) -> SpecError:
        mark = value.start_mark
        loc = SourceLoc(getattr(mark, "file", filename), mark.line + 1, mark.column + 1, BASE_KEY)
        return SpecError(Problem(message, loc))

    if (
        not isinstance(value, yaml.ScalarNode)
        or value.tag != "tag:yaml.org,2002:str"
        or not value.value.strip()
    ):
        raise at("must be the path of a spec file (a string), relative to this spec")
    folder = Path.cwd() if filename == "<string>" else Path(filename).parent
    resolved = (folder / value.value).resolve()
    path = _shown(resolved)
    if resolved in chain:
        names = " -> ".join(str(p) for p in [*chain, resolved])
        raise at(f"the chain of bases comes back to a spec it started from: {names}")
    if depth >= MAX_BASE_DEPTH:
        raise at(f"more than {MAX_BASE_DEPTH} levels of base: the chain is too deep")

    from resgraph.spec.loader import _parse, _read  # the loader calls this module

    try:
        text, name = _read(path)
    except SpecError as exc:
        raise at(exc.problems[0].message) from None
    base_root, _ = _parse(text, name)
    _tag(base_root, name)
    base = _resolve(base_root, name, [*chain, resolved], depth + 1)
    return _merge(base, own)


def _shown(path: Path) -> Path:
    """How a base file is named in messages: relative to the working folder when inside
    it (``specs/resnet50.yaml``, not ``specs/timm/bases/../../resnet50.yaml``)."""
    try:
        return path.relative_to(Path.cwd().resolve())
    except ValueError:
        return path


def _tag(node: yaml.Node, name: str) -> None:
    """Record on every mark of a base file's tree which file it comes from."""
    stack = [node]
    while stack:
        n = stack.pop()
        n.start_mark.file = name
        if isinstance(n, yaml.MappingNode):
            for k, v in n.value:
                k.start_mark.file = name
                stack.append(v)
        elif isinstance(n, yaml.SequenceNode):
            stack.extend(n.value)


def _merge(base: yaml.Node, child: yaml.Node) -> yaml.Node:
    """``child`` over ``base``: mappings merged key by key, anything else replaced whole."""
    if not (isinstance(base, yaml.MappingNode) and isinstance(child, yaml.MappingNode)):
        return child
    pairs = list(base.value)
    index = {k.value: i for i, (k, _) in enumerate(pairs)}
    for key, value in child.value:
        i = index.get(key.value)
        if i is None:
            pairs.append((key, value))
        else:
            pairs[i] = (key, _merge(pairs[i][1], value))
    merged = yaml.MappingNode(
        child.tag, pairs, child.start_mark, child.end_mark, flow_style=child.flow_style
    )
    merged.merged_by = child.start_mark  # type: ignore[attr-defined]  # read by SourceMap
    return merged
