"""The JSON Schema of a spec file (``resgraph schema``, specs/schema.json), for YAML editors.

Built from the models that validate a spec, nothing written by hand:

* :func:`language_schema`: ModelSpec's schema with the stage generators of
  :data:`resgraph.spec.regnet.GENERATORS` (``regnet``, ``anynet``) beside ``stages``, and
  ``block: bottleneck`` for ``block: {type: bottleneck}`` wherever the model takes that
  shorthand; the key reference (docs/spec.md) lists it.
* :func:`file_schema`: what a file may hold. ``stages`` or one generator is required, with
  the other top-level keys ModelSpec requires, unless the file names a ``base``: then every
  mapping may be partial, since the base's keys are merged into it. As a design space, any
  value may be a ``{choice: [...]}`` of its values and any number a ``{range: [lo, hi]}``
  (:class:`resgraph.spec.space.ChoiceSpec` and :class:`~resgraph.spec.space.RangeSpec`).
"""

from __future__ import annotations

from itertools import combinations
from typing import Annotated, Any, get_args, get_origin

from pydantic import BaseModel, Field, create_model
from pydantic.fields import FieldInfo

from resgraph.spec.regnet import GENERATORS
from resgraph.spec.schema import ModelSpec, _type_shorthand
from resgraph.spec.space import ChoiceSpec, RangeSpec

STAGES, BASE = "stages", "base"
DEFS, PARTIAL = "#/$defs/", "Partial"
ANNOTATIONS = ("title", "description", "default")  # what stays beside a value's alternatives
NUMBERS = ("integer", "number")
# mappings that name their type even in a partial spec: a defined block type takes any
# option, so only its type tells its options from a built-in block's misspelt ones
KEEP_TYPE = ("DefinedBlockSpec",)
Schema = dict[str, Any]


def language_schema() -> Schema:
    """ModelSpec's JSON Schema with each generator key right after ``stages``."""
    fields: Any = {
        key: (model, Field(None, description=text)) for key, (model, text) in GENERATORS.items()
    }
    model = create_model("ModelSpec", __base__=ModelSpec, __doc__=ModelSpec.__doc__, **fields)
    schema = model.model_json_schema()
    for cls in _models(model):
        holder = schema if cls is model else schema["$defs"][cls.__name__]
        for name, field in cls.model_fields.items():
            names = _shorthand_names(field)
            if names:
                short: Schema = {"type": "string"}  # a type a spec defines may take any name
                if "" not in names:
                    short["enum"] = names
                holder["properties"][name] = _alternative(holder["properties"][name], short)
    props = schema["properties"]
    order = [name for name in props if name not in GENERATORS]
    at = order.index(STAGES) + 1
    schema["properties"] = {k: props[k] for k in [*order[:at], *GENERATORS, *order[at:]]}
    return schema


def _classes(annotation: Any) -> list[type[BaseModel]]:
    """The models an annotation names, at any depth (unions, Annotated, lists)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [cls for arg in get_args(annotation) for cls in _classes(arg)]


def _models(top: type[BaseModel]) -> list[type[BaseModel]]:
    """``top`` and every model its fields reach."""
    found = [top]
    for cls in found:
        for field in cls.model_fields.values():
            found += [c for c in _classes(field.annotation) if c not in found]
    return found


def _shorthand_names(field: FieldInfo) -> list[str]:
    """The names a field also takes for ``{type: name}`` (schema._type_shorthand), or []."""
    stack: list[tuple[Any, list[Any]]] = [(field.annotation, list(field.metadata))]
    while stack:
        annotation, meta = stack.pop()
        if any(getattr(m, "func", None) is _type_shorthand for m in meta):
            kinds = [get_args(c.model_fields["type"].annotation) for c in _classes(annotation)]
            return [name for names in kinds for name in (names or ("",))]  # "": any name
        if get_origin(annotation) is Annotated:
            base, *more = get_args(annotation)
            stack.append((base, more))
        else:
            stack += [(arg, []) for arg in get_args(annotation)]
    return []


def _split(prop: Schema) -> tuple[Schema, list[Schema]]:
    """A value's annotations (title, description, default) and its alternatives."""
    outer = {k: v for k, v in prop.items() if k in ANNOTATIONS}
    inner = {k: v for k, v in prop.items() if k not in ANNOTATIONS}
    return outer, inner["anyOf"] if list(inner) == ["anyOf"] else [inner]


def _alternative(prop: Schema, extra: Schema) -> Schema:
    """A value's schema that also admits ``extra``."""
    outer, plain = _split(prop)
    return {**outer, "anyOf": [*plain, extra]}


def file_schema() -> Schema:
    """The schema a spec file, a design space or a spec with ``base`` is checked against:
    ModelSpec's, every value spaced (:func:`_spaced`); with ``base``, every mapping partial
    (:func:`_partial`: the base's keys are merged in)."""
    schema = language_schema()
    defs = schema.pop("$defs")
    for holder in [schema, *defs.values()]:
        for name, prop in holder["properties"].items():
            if name != BASE:  # resolved before anything is drawn
                holder["properties"][name] = _spaced(prop)
    names = set(defs)
    defs |= {PARTIAL + name: _partial(d, names) for name, d in defs.items()}
    top = {**_partial(schema, names), "$defs": defs}
    required = [name for name in schema.pop("required") if name != STAGES]
    bodies = (STAGES, *GENERATORS)
    schema["anyOf"] = [{"required": [*required, body]} for body in bodies]
    defs[schema["title"]] = schema
    defs |= {m.model_config["title"]: m.model_json_schema() for m in (RangeSpec, ChoiceSpec)}
    top["if"] = {"required": [BASE]}
    top["else"] = {"$ref": DEFS + schema["title"]}
    top["not"] = {"anyOf": [{"required": list(pair)} for pair in combinations(bodies, 2)]}
    return top


def _partial(node: Any, names: set[str]) -> Any:
    """A copy of ``node`` with no key required and no type tag needed (a mapping of a spec
    with ``base`` is merged with the base's), its references to ``names`` made partial."""
    if isinstance(node, list):
        return [_partial(item, names) for item in node]
    if not isinstance(node, dict):
        return node
    out = {}
    for key, value in node.items():
        if key == "$ref" and value.removeprefix(DEFS) in names:
            out[key] = DEFS + PARTIAL + value.removeprefix(DEFS)
        elif key == "oneOf":  # without its type tag, a mapping may match several members
            out["anyOf"] = _partial(value, names)
        elif key not in ("required", "discriminator") or node.get("title") in KEEP_TYPE:
            out[key] = _partial(value, names)
    return out


def _ref(model: Any) -> Schema:
    return {"$ref": DEFS + model.model_config["title"]}


def _spaced(prop: Schema) -> Schema:
    """A value's schema that also admits a choice of its values, and a range where it admits
    a number; the items of a list the same."""
    outer, plain = _split(prop)
    branches = [_items_spaced(b) for b in plain]
    ranges = [_ref(RangeSpec)] if any(b.get("type") in NUMBERS for b in plain) else []
    values = {"anyOf": plain} if len(plain) > 1 else plain[0]
    choice = {"allOf": [_ref(ChoiceSpec), {"properties": {"choice": {"items": values}}}]}
    return {**outer, "anyOf": [*branches, *ranges, choice]}


def _items_spaced(branch: Schema) -> Schema:
    if branch.get("type") == "array" and "items" in branch:
        return {**branch, "items": _spaced(branch["items"])}
    return branch
