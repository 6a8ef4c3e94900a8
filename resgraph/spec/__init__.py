"""The spec language: YAML files validated by pydantic models, with located errors."""

from resgraph.spec.digest import spec_hash
from resgraph.spec.loader import SourceMap, load_spec, with_outputs
from resgraph.spec.schema import (
    BasicBlockSpec,
    BottleneckBlockSpec,
    ModelSpec,
    StageSpec,
)
from resgraph.spec.train import TrainSpec

__all__ = [
    "BasicBlockSpec",
    "BottleneckBlockSpec",
    "ModelSpec",
    "SourceMap",
    "StageSpec",
    "TrainSpec",
    "load_spec",
    "spec_hash",
    "with_outputs",
]
