"""Weight import: a state_dict from another implementation of the same architecture,
renamed to resgraph's (torchvision's) names.

Tensors are matched by their order in the forward computation and their shapes, not by
name, so ``linear`` vs ``fc``, ``shortcut`` vs ``downsample`` and ``module.`` prefixes do
not matter (:mod:`resgraph.torchio` reads and unwraps the file). BN's
``num_batches_tracked`` is optional on both sides.
"""

from __future__ import annotations

from collections.abc import Mapping

from torch import Tensor

from resgraph.errors import WeightsError
from resgraph.ir import IR
from resgraph.torchio import unwrap_state_dict

__all__ = ["convert_state_dict", "match_names", "unwrap_state_dict"]

OPTIONAL = "num_batches_tracked"


def convert_state_dict(
    ir: IR, source: Mapping[str, Tensor], where: str = "checkpoint"
) -> dict[str, Tensor]:
    """Rename ``source``'s tensors to the names of the network ``ir`` describes.

    Raises :class:`WeightsError` at the first place where the two disagree."""
    from resgraph.emit.graph_module import build_module

    target = build_module(ir).state_dict()
    names = match_names(target, source, where)
    return {
        key: (source[names[key]] if key in names else value).detach().clone()
        for key, value in target.items()
    }


def match_names(
    target: Mapping[str, Tensor], source: Mapping[str, Tensor], where: str = "checkpoint"
) -> dict[str, str]:
    """For each tensor of ``target`` (a state_dict of resgraph's network), the name of its
    partner in ``source``: by their order and shapes. A ``num_batches_tracked`` without a
    partner is left out. Raises :class:`WeightsError` at the first disagreement."""
    ours = [k for k in target if not k.endswith(OPTIONAL)]
    theirs = [k for k in source if not k.endswith(OPTIONAL)]
    for i, (mine, other) in enumerate(zip(ours, theirs, strict=False)):
        if target[mine].shape != source[other].shape:
            raise WeightsError(
                f"{where}: tensor #{i} disagrees: resgraph's {mine} has shape "
                f"{_shape(target[mine])}, the checkpoint's {other} has shape "
                f"{_shape(source[other])}"
            )
    if len(ours) != len(theirs):
        longer, name, rest = (
            (ours, "resgraph", "the checkpoint")
            if len(ours) > len(theirs)
            else (theirs, "the checkpoint", "resgraph")
        )
        extra = longer[min(len(ours), len(theirs))]
        raise WeightsError(
            f"{where}: {name} has {len(longer)} tensors and {rest} {min(len(ours), len(theirs))}; "
            f"the first without a partner is {name}'s {extra}"
        )
    mapping = dict(zip(ours, theirs, strict=True))
    for key in target:
        if key not in mapping:  # num_batches_tracked: theirs when the module's other tensors
            module = key.rsplit(".", 1)[0]  # came from it
            partner = mapping.get(f"{module}.running_mean", "").rsplit(".", 1)[0]
            if f"{partner}.{OPTIONAL}" in source:
                mapping[key] = f"{partner}.{OPTIONAL}"
    return mapping


def _shape(t: Tensor) -> str:
    return "x".join(map(str, t.shape)) or "scalar"
