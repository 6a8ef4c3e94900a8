"""The spec's hash: what generated files, training runs and checkpoints record to tell one
architecture from another.

The rule needs no list of fields: a field that holds its default is left out (so adding a
field with a default keeps every older spec's hash), except a type tag (a field that can
hold one value only, such as a block's ``type: bottleneck``), which stays because it names
the model it belongs to.
"""

from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING, Any, Literal, get_args, get_origin

from pydantic import BaseModel
from pydantic.fields import FieldInfo

if TYPE_CHECKING:
    from resgraph.spec.schema import ModelSpec


def _is_tag(field: FieldInfo) -> bool:
    return get_origin(field.annotation) is Literal and len(get_args(field.annotation)) == 1


def essential(value: Any) -> Any:
    """``value`` as plain data without the fields that hold their defaults (tags kept)."""
    if isinstance(value, BaseModel):
        out = {}
        for name, field in type(value).model_fields.items():
            item = getattr(value, name)
            if _is_tag(field) or item != field.get_default(call_default_factory=True):
                out[name] = essential(item)
        out.update({key: essential(item) for key, item in (value.model_extra or {}).items()})
        return out
    if isinstance(value, dict):
        return {key: essential(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [essential(item) for item in value]
    return value


def spec_hash(spec: ModelSpec) -> str:
    """First 16 hex digits of the sha256 of the validated architecture (the spec without its
    training recipe, and without the values that are defaults), independent of formatting,
    comments and of how the spec spells a default."""
    data = essential(spec)
    data.pop("train", None)
    return digest(data)


def digest(value: Any) -> str:
    """First 16 hex digits of the sha256 of ``value``'s essential data (see above): a part of
    a spec (a block definition) compared across specs."""
    text = json.dumps(essential(value), separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()[:16]
