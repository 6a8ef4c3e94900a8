"""resgraph: a graph-spec compiler for residual networks."""

from resgraph.errors import ResgraphError, ShapeError, SpecError
from resgraph.passes import lower
from resgraph.spec import ModelSpec, load_spec

__version__ = "0.1.0"

__all__ = ["ModelSpec", "ResgraphError", "ShapeError", "SpecError", "load_spec", "lower"]
