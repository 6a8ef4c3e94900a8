"""The base of every spec model."""

from pydantic import BaseModel, ConfigDict


class StrictModel(BaseModel):
    """Forbids unknown keys, coerces nothing, and is immutable once validated."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)
