"""Safe YAML loading that keeps source positions, and pydantic errors mapped back to them.

The YAML is composed into a node tree first (which carries line and column marks), checked
for things a spec never needs (aliases, duplicate keys, several documents), then turned into
plain data and validated. Every pydantic error is reported at the line of the offending node.
"""

from __future__ import annotations

import difflib
import os
import re
import types
import typing
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from resgraph.errors import Problem, SourceLoc, SpecError
from resgraph.spec import regnet
from resgraph.spec.compose import construct, resolve_base
from resgraph.spec.overrides import FlagLoc, apply_overrides
from resgraph.spec.schema import ModelSpec
from resgraph.spec.space import refuse_space

MAX_SPEC_BYTES = 1 << 20  # 1 MiB: real specs are a few hundred bytes
MAX_ALSO = 3  # other places a location names


class _NoAliasLoader(yaml.SafeLoader):
    """SafeLoader that refuses aliases: they can expand into exponentially large documents."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            raise _Refused(
                "YAML aliases (*name) are not allowed in specs", self.peek_event().start_mark
            )
        return super().compose_node(parent, index)


class _Refused(Exception):
    def __init__(self, message: str, mark: Any) -> None:
        super().__init__(message)
        self.message, self.mark = message, mark


Path_ = tuple[str | int, ...]


class SourceMap:
    """Maps field paths like ``("stages", 1, "width")`` to where they stand in the file."""

    def __init__(self, filename: str, root: yaml.Node | None) -> None:
        self.filename = filename
        self.root = root

    def _mark_loc(self, mark: Any, path: str, also: tuple[str, ...] = ()) -> SourceLoc:
        # A value written by --set carries its flag (resgraph.spec.overrides), one merged in
        # from a base spec its own file (resgraph.spec.compose).
        if getattr(mark, "flag", None):
            return FlagLoc(mark.flag, path=path, also=also)
        file = getattr(mark, "file", self.filename)
        return SourceLoc(file, mark.line + 1, mark.column + 1, path, also)

    def locate(self, path: Path_, *, key: bool = False, causes: Sequence[Path_] = ()) -> SourceLoc:
        """The position of the deepest node along ``path`` (its key's, when ``key``).

        Path elements that are not in the document (pydantic's union tags, missing fields)
        are skipped, so a missing field is reported at the mapping that lacks it. The
        location also names the flags and other files that wrote part of what it points
        at: inside the node (not the whole spec), beside it in a mapping that a child or a
        flag merged keys into after it was written, or inside the nodes at ``causes``
        (``input``, for a shape).
        """
        node, key_node, parent, depth = self.root, None, None, 0
        for part in path:
            child = _child(node, part)
            if child is None:
                continue
            parent, depth = node, depth + 1
            key_node, node = child
        if node is None:
            return SourceLoc(self.filename, 1, 1, format_path(path))
        target = key_node if key and key_node is not None else node
        near = [*([node] if depth else []), *(self._find(c) for c in causes)]
        merger = getattr(parent, "merged_by", None)  # who merged keys into the mapping
        own = _origin(target.start_mark, self.filename)[0]
        if merger is not None and _origin(merger, self.filename)[0] != own:
            near += [v for _, v in parent.value]  # a value a later key may conflict with
        return self._mark_loc(target.start_mark, format_path(path), self._others(target, near))

    def _find(self, path: Path_) -> Any:
        node = self.root
        for part in path:
            child = _child(node, part)
            node = child[1] if child is not None else None
        return node

    def _others(self, target: yaml.Node, nodes: list[Any]) -> tuple[str, ...]:
        """The flags and files other than ``target``'s that wrote any of ``nodes``."""
        own = _origin(target.start_mark, self.filename)
        found: dict[str, None] = {}
        for mark in _marks([n for n in nodes if n is not None]):
            origin = _origin(mark, self.filename)
            if origin[0] != own[0]:
                found.setdefault(origin[1])
        return tuple(found)[:MAX_ALSO]


def _origin(mark: Any, filename: str) -> tuple[str, str]:
    """Who wrote a node: (the flag or file, how a location names it)."""
    flag = getattr(mark, "flag", None)
    if flag:
        return flag, flag
    file = getattr(mark, "file", filename)
    return file, f"{file}:{mark.line + 1}:{mark.column + 1}"


def _marks(nodes: list[yaml.Node]) -> list[Any]:
    """The marks of ``nodes`` and of everything inside them (keys included)."""
    marks, stack = [], list(nodes)
    while stack:
        n = stack.pop()
        marks.append(n.start_mark)
        if isinstance(n, yaml.MappingNode):
            for k, v in n.value:
                marks.append(k.start_mark)
                stack.append(v)
        elif isinstance(n, yaml.SequenceNode):
            stack.extend(n.value)
    return marks


def _child(node: Any, part: str | int) -> tuple[Any, Any] | None:
    if isinstance(node, yaml.MappingNode) and isinstance(part, str):
        for k, v in node.value:
            if isinstance(k, yaml.ScalarNode) and k.value == part:
                return k, v
    if (
        isinstance(node, yaml.SequenceNode)
        and isinstance(part, int)
        and 0 <= part < len(node.value)
    ):
        return None, node.value[part]
    return None


def format_path(path: Path_) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out


def load_spec(source: str | os.PathLike[str], overrides: Sequence[str] = ()) -> ModelSpec:
    """Load and validate a spec from a file path or from YAML text.

    A ``Path`` (any ``os.PathLike``) is a file. A string is YAML text (reported as
    ``<string>``) when it spans several lines or, on one line, looks like a mapping
    (``{...}`` or ``key: value``); any other one-line string is a file name, so
    ``"specs/resnet50"`` or ``"missing.YAML"`` is "no such spec file", never a YAML scalar.
    ``overrides`` are ``PATH=VALUE`` strings (``"stages[2].repeats=8"``, the command line's
    ``--set``), applied in order after the base chain is merged; see
    :mod:`resgraph.spec.overrides`. Raises :class:`SpecError` listing every problem found,
    each with file, line and column (or the ``--set`` flag that wrote the value).
    """
    text, filename = _read(source)
    root, _ = resolve_base(*_parse(text, filename), filename)
    if overrides:
        apply_overrides(root, overrides)
    refuse_space(root, SourceMap(filename, root))
    return validate_tree(root, filename)


def validate_tree(root: yaml.Node, filename: str) -> ModelSpec:
    """The ModelSpec of a merged YAML tree (a spec's, or a design space's draw): generators
    expanded (``regnet``), then validated, every problem located in the tree."""
    root = regnet.expand(root, SourceMap(filename, root))
    smap = SourceMap(filename, root)
    data = construct(root)
    try:
        spec = ModelSpec.model_validate(data)
    except ValidationError as exc:
        problems = [_problem(err, smap) for err in exc.errors()]
        problems.sort(key=lambda p: (p.loc.line, p.loc.column) if p.loc else (0, 0))
        raise SpecError(problems) from None
    spec._source = smap
    return spec


def with_outputs(spec: ModelSpec, outputs: Any) -> ModelSpec:
    """``spec`` as a backbone returning the feature maps ``outputs`` (a list of names such
    as ``["layer2", "layer3"]``; None: the classifier), validated exactly as the file's
    ``outputs:`` key would be. Raises :class:`SpecError` naming the valid names."""
    if outputs is not None and (
        isinstance(outputs, str)
        or not isinstance(outputs, (list, tuple))
        or not all(isinstance(name, str) for name in outputs)
    ):
        names, shown = ", ".join(spec.feature_names()), repr(outputs)
        shown = shown if len(shown) <= 60 else shown[:57] + "..."
        raise SpecError(
            Problem(f"outputs must be a list of feature map names ({names}), got {shown}")
        )
    data = spec.model_dump()
    data["outputs"] = None if outputs is None else list(outputs)
    try:
        # model_copy would not validate: rebuild through the validators, as load_spec does
        new = ModelSpec.model_validate(data)
    except ValidationError as exc:
        problems = [_problem(err, SourceMap("outputs", None)) for err in exc.errors()]
        raise SpecError([Problem(p.message, None, p.path) for p in problems]) from None
    new._source = spec._source  # the rest of the spec still comes from its file
    return new


def _read(source: str | os.PathLike[str]) -> tuple[str, str]:
    if not isinstance(source, (str, os.PathLike)):
        raise SpecError(Problem(f"a spec is a file path or YAML text, not {type(source).__name__}"))
    if isinstance(source, str) and _is_yaml_text(source):
        if len(source.encode("utf-8", "replace")) > MAX_SPEC_BYTES:
            raise SpecError(Problem(f"spec text is larger than {MAX_SPEC_BYTES} bytes"))
        return str(source), "<string>"
    path = Path(source)
    name = str(path)
    try:
        if path.is_dir():
            raise SpecError(Problem(f"{name}: is a directory, not a spec file"))
        with path.open("rb") as f:  # a device or a pipe has no size: read the limit only
            raw = f.read(MAX_SPEC_BYTES + 1)
        if len(raw) > MAX_SPEC_BYTES:
            raise SpecError(
                Problem(f"{name}: spec file is larger than the limit of {MAX_SPEC_BYTES} bytes")
            )
    except FileNotFoundError:
        raise SpecError(Problem(_missing(name))) from None
    except OSError as exc:
        raise SpecError(Problem(f"{name}: cannot read spec file: {exc.strerror}")) from None
    if b"\0" in raw:
        raise SpecError(Problem(f"{name}: not a text file (it contains NUL bytes)"))
    try:
        return raw.decode("utf-8"), name
    except UnicodeDecodeError as exc:
        raise SpecError(
            Problem(f"{name}: not UTF-8 text (bad byte at offset {exc.start})")
        ) from None


def _is_yaml_text(source: str) -> bool:
    text = source.strip()
    if "\n" in text:
        return True
    if os.path.isfile(source) or text.lower().endswith((".yaml", ".yml")):
        return False
    return text.startswith("{") or re.search(r":(\s|$)", text) is not None


def _missing(name: str) -> str:
    """'NAME: no such spec file', with what was probably meant."""
    if name != name.strip():
        hint = f" (the name has spaces around it; {name.strip()!r} exists)"
        if not os.path.isfile(name.strip()):
            hint = " (the name has spaces around it)"
        return f"{name!r}: no such spec file{hint}"
    path = Path(name)
    candidates = [path.with_suffix(path.suffix.lower())] if path.suffix else []
    candidates += [Path(f"{name}.yaml"), Path(f"{name}.yml")]
    found = next((str(c) for c in candidates if c != path and c.is_file()), None)
    return f"{name}: no such spec file" + (f" (did you mean {found}?)" if found else "")


def _parse(text: str, filename: str) -> tuple[yaml.Node, Any]:
    def at(mark: Any, message: str, path: str = "") -> SpecError:
        loc = SourceLoc(filename, mark.line + 1, mark.column + 1) if mark else None
        return SpecError(Problem(message, loc, path))

    loader = None
    try:
        loader = _NoAliasLoader(text)  # refuses control characters already
        root = loader.get_single_node()
        if root is None:
            raise SpecError(Problem(f"{filename}: the spec is empty"))
        if not isinstance(root, yaml.MappingNode):
            raise at(root.start_mark, f"the spec must be a mapping of fields, got a {_kind(root)}")
        _check_keys(root, at)
        data = loader.construct_document(root)
    except _Refused as exc:
        raise at(exc.mark, exc.message) from None
    except yaml.MarkedYAMLError as exc:
        problem = (exc.problem or exc.context or "invalid YAML").strip()
        if "expected a single document" in (exc.context or ""):
            problem = "a spec holds one YAML document, found more than one"
        raise at(exc.problem_mark or exc.context_mark, f"invalid YAML: {problem}") from None
    except yaml.YAMLError as exc:
        first = str(exc).splitlines()[0]  # a reader's error adds its position on a line
        raise SpecError(Problem(f"{filename}: invalid YAML: {first}")) from None
    except RecursionError:
        raise SpecError(Problem(f"{filename}: the YAML is nested too deeply")) from None
    finally:
        if loader is not None:
            loader.dispose()
    return root, data


def _check_keys(root: yaml.Node, at: Any) -> None:
    """Refuse duplicate and non-string keys anywhere (PyYAML silently keeps the last)."""
    stack = [root]
    while stack:
        node = stack.pop()
        if isinstance(node, yaml.MappingNode):
            seen: set[str] = set()
            for key, value in node.value:
                if not isinstance(key, yaml.ScalarNode) or key.tag != "tag:yaml.org,2002:str":
                    raise at(key.start_mark, "keys must be plain strings")
                if key.value in seen:
                    raise at(key.start_mark, f"duplicate key {key.value!r}")
                seen.add(key.value)
                stack.append(value)
        elif isinstance(node, yaml.SequenceNode):
            stack.extend(node.value)


def _kind(node: yaml.Node) -> str:
    if isinstance(node, yaml.SequenceNode):
        return "list"
    return "mapping" if isinstance(node, yaml.MappingNode) else "scalar"


# --- pydantic errors as one-line messages ------------------------------------------------


def _show(value: Any) -> str:
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _suggest(word: Any, choices: list[str]) -> str:
    close = difflib.get_close_matches(str(word), choices, n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


# pydantic's error types -> what a value must be
_BOUNDS = {
    "greater_than_equal": ">=",
    "greater_than": ">",
    "less_than_equal": "<=",
    "less_than": "<",
}
_TYPES = {
    "int_type": "an integer",
    "int_from_float": "an integer",
    "float_type": "a number",
    "bool_type": "true or false",
    "string_type": "a string",
    "model_type": "a mapping",
    "model_attributes_type": "a mapping",
    "dict_type": "a mapping",
    "list_type": "a list",
}


def _problem(err: Any, smap: SourceMap) -> Problem:
    kind, loc, ctx, value = err["type"], tuple(err["loc"]), err.get("ctx") or {}, err.get("input")
    loc = tuple(p for p in loc if not (isinstance(p, str) and p.startswith("function-")))
    if kind == "extra_forbidden":
        model = _model_at(loc[:-1])
        renamed = _renamed_of(model).get(str(loc[-1]))
        if renamed is not None:
            message = f"'{loc[-1]}' is now called '{renamed}' (same values): rename the key"
        else:
            allowed = sorted(_fields_of(model))
            message = f"unknown key {str(loc[-1])!r}{_suggest(loc[-1], allowed)}"
        return Problem(message, smap.locate(loc, key=True), format_path(_document_path(loc)))
    if kind == "missing":
        message = f"required field '{loc[-1]}' is missing"
        parent = format_path(_document_path(loc[:-1]))
        return Problem(message, replace(smap.locate(loc), path=parent), parent)
    if kind in ("union_tag_invalid", "literal_error"):
        expected = ctx.get("expected_tags") or ctx.get("expected", "")
        choices = [
            c.strip().strip("'") for c in expected.replace(" or ", ",").split(",") if c.strip()
        ]
        got = ctx.get("tag", value)
        listed = (
            ", ".join(f"'{c}'" for c in choices[:-1]) + f" or '{choices[-1]}'"
            if len(choices) > 1
            else expected
        )
        message = f"expected {listed}, got {_show(got)}{_suggest(got, choices)}"
        if kind == "union_tag_invalid":
            loc = loc + ("type",)
    elif kind == "union_tag_not_found":
        message = "a block mapping needs a 'type' (e.g. 'basic' or 'bottleneck')"
    elif kind in _BOUNDS:
        bound = next(iter(ctx.values()))
        if kind == "greater_than_equal" and bound == 1 and isinstance(value, int):
            message = f"must be a positive integer, got {_show(value)}"
        else:
            message = f"must be {_BOUNDS[kind]} {bound}, got {_show(value)}"
    elif kind in _TYPES:
        message = f"must be {_TYPES[kind]}, got {_show(value)}"
    elif kind == "string_pattern_mismatch":
        message = (
            f"must start with an ASCII letter or digit and use only ASCII letters, digits, "
            f"spaces and _.,+()/- (at most 80 characters), got {_show(value)}"
        )
    elif kind in ("too_short", "too_long", "string_too_short", "string_too_long"):
        message = _length_message(kind, loc, ctx, value)
    elif kind == "value_error":
        message = str(ctx.get("error", err["msg"]))
    else:
        message = f"{err['msg'][0].lower()}{err['msg'][1:]}, got {_show(value)}"
    return Problem(message, smap.locate(loc), format_path(_document_path(loc)))


def _length_message(kind: str, loc: Path_, ctx: dict[str, Any], value: Any) -> str:
    """'at most 16 stages, got 17', 'at most 2000 characters, got 2001'."""
    if kind.startswith("string"):
        noun, got = "characters", len(value) if isinstance(value, str) else ctx.get("actual_length")
    else:  # a list field is named by what it holds: stages
        noun = str(loc[-1]) if loc and isinstance(loc[-1], str) else "items"
        got = ctx.get("actual_length", len(value) if isinstance(value, list) else "?")
    if kind.endswith("too_long"):
        return f"at most {ctx['max_length']} {noun}, got {got}"
    least = ctx["min_length"]
    one = noun[:-1] if least == 1 and noun.endswith("s") else noun
    return f"at least {least} {one}, got {got or 'none'}"


def _document_path(loc: Path_) -> Path_:
    """Drop pydantic's union tags from a loc, keeping what a user wrote in the file."""
    out: list[str | int] = []
    model: Any = ModelSpec
    for part in loc:
        fields = _fields_of(model)
        keyed = any(typing.get_origin(tp) is dict for tp in _unwrap(model))
        if isinstance(part, int) or part in fields or model is None or keyed:
            out.append(part)
            model = _step(model, part)
            continue
        member = _member(model, part)
        if member is model and _open(model):  # a key of a model that takes any key
            out.append(part)
            model = None
        else:  # a union tag such as 'bottleneck': choose that member, keep the path
            model = member
    return tuple(out)


def _open(model: Any) -> bool:
    """Whether a model the annotation admits takes keys it does not declare."""
    return any(
        isinstance(tp, type)
        and issubclass(tp, BaseModel)
        and tp.model_config.get("extra") == "allow"
        for tp in _unwrap(model)
    )


def _model_at(loc: Path_) -> Any:
    model: Any = ModelSpec
    for part in loc:
        if isinstance(part, str) and part not in _fields_of(model):
            model = _member(model, part)
        else:
            model = _step(model, part)
    return model


def _unwrap(tp: Any) -> list[Any]:
    """The concrete types an annotation admits (Annotated, Optional and unions unwrapped)."""
    origin = typing.get_origin(tp)
    if origin is typing.Annotated:
        return _unwrap(typing.get_args(tp)[0])
    if origin in (typing.Union, types.UnionType):
        return [t for arg in typing.get_args(tp) for t in _unwrap(arg)]
    return [tp]


def _fields_of(model: Any) -> set[str]:
    models = [t for t in _unwrap(model) if isinstance(t, type) and issubclass(t, BaseModel)]
    return {name for m in models for name in m.model_fields}


def _renamed_of(model: Any) -> dict[str, str]:
    """Old key -> new key, for the models an annotation admits (their ``RENAMED``)."""
    models = [t for t in _unwrap(model) if isinstance(t, type) and issubclass(t, BaseModel)]
    return {old: new for m in models for old, new in getattr(m, "RENAMED", {}).items()}


def _step(model: Any, part: str | int) -> Any:
    for tp in _unwrap(model):
        if isinstance(part, int) and typing.get_origin(tp) is list:
            return typing.get_args(tp)[0]
        if isinstance(part, str) and typing.get_origin(tp) is dict:  # a key the user chose
            return typing.get_args(tp)[1]
        if isinstance(tp, type) and issubclass(tp, BaseModel) and part in tp.model_fields:
            return tp.model_fields[part].annotation
    return None


def _member(model: Any, tag: str) -> Any:
    for tp in _unwrap(model):
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            field = tp.model_fields.get("type")
            if field is not None and tag in typing.get_args(field.annotation):
                return tp
            if getattr(tp, "TAG", None) == tag:
                return tp
    return model
