"""A deterministic fill for any state_dict, computed from each tensor's key and shape alone.

No random generator is involved, and a tensor's values do not depend on the order of the
state_dict, so two implementations with the same keys and shapes get the same weights and
the same batch-norm statistics. scripts/timm_fixture.py fills timm's models with it; the zoo
tests fill resgraph's models with it and compare the outputs.

The rule, for a tensor named ``key`` with ``n`` elements, ``phase = 2*pi*crc32(key)/2**32`` and
``wave[i] = sin(0.37*i + phase)`` (computed in the tensor's dtype from float64 angles, so a
float32 tensor is within a rounding of the float64 one):

- integer tensors (``num_batches_tracked``): 0;
- ``*.running_var``: ``1.5 + 0.5*wave`` (in [1, 2]);
- ``*.running_mean`` and every ``*.bias``: ``0.05*wave``;
- other one-dimensional ``*.weight`` (a norm's scale): ``0.5 + 0.1*wave``, or ``0.2 + 0.05*wave``
  for the last norm of a residual branch (``layerS.B.bnK`` with no ``layerS.B.bn(K+1)``), so
  that the activations of 200-layer networks stay finite without batch statistics;
- weights of two or more dimensions (conv, linear): ``wave*sqrt(4/fan_in)``, ``fan_in`` the
  product of all dimensions but the first.
"""

from __future__ import annotations

import math
import re
import zlib
from collections.abc import Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

_BRANCH_NORM = re.compile(r"^(layer\d+\.\d+\.bn)(\d+)\.weight$")


def _wave(key: str, numel: int, offset: float, scale: float, dtype: torch.dtype) -> torch.Tensor:
    """``offset + scale * wave``, flat, in ``dtype``."""
    import torch

    phase = 2 * math.pi * zlib.crc32(key.encode("utf-8")) / 2**32
    # sin(0.37 i + phase) for i = 1024 r + c, by angle addition: two rank-one updates in the
    # tensor's own dtype instead of one sine per element (large models have hundreds of
    # millions of elements); the scale rides on the short row vectors.
    rows = torch.arange(-(-numel // 1024), dtype=torch.float64) * (0.37 * 1024) + phase
    cols = torch.arange(1024, dtype=torch.float64) * 0.37
    wave = torch.outer((scale * torch.sin(rows)).to(dtype), torch.cos(cols).to(dtype))
    wave.addr_((scale * torch.cos(rows)).to(dtype), torch.sin(cols).to(dtype))
    if offset:
        wave += offset
    return wave.reshape(-1)[:numel]


def last_branch_norms(keys: set[str] | Mapping[str, object]) -> set[str]:
    """The ``*.weight`` keys of the last norm of each residual branch."""
    out = set()
    for key in keys:
        match = _BRANCH_NORM.match(key)
        if match and f"{match[1]}{int(match[2]) + 1}.weight" not in keys:
            out.add(key)
    return out


def fill_value(key: str, shape: tuple[int, ...], dtype: torch.dtype, last_norm: bool = False):
    """The value of one tensor under the rule above."""
    import torch

    numel = math.prod(shape)
    if not dtype.is_floating_point:
        return torch.zeros(shape, dtype=dtype)
    if key.endswith("running_var"):
        offset, scale = 1.5, 0.5
    elif key.endswith("running_mean") or key.endswith("bias"):
        offset, scale = 0.0, 0.05
    elif len(shape) <= 1:
        offset, scale = (0.2, 0.05) if last_norm else (0.5, 0.1)
    else:
        offset, scale = 0.0, math.sqrt(4.0 / math.prod(shape[1:]))
    return _wave(key, numel, offset, scale, dtype).reshape(shape)


def fill(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A new state_dict with the same keys, shapes and dtypes, filled by the rule."""
    last = last_branch_norms(set(state))
    return {k: fill_value(k, tuple(t.shape), t.dtype, k in last) for k, t in state.items()}


def fill_(module: torch.nn.Module) -> None:
    """Fill a module's state_dict tensors in place (no second copy of a large model)."""
    import torch

    state = module.state_dict(keep_vars=True)
    last = last_branch_norms(set(state))
    with torch.no_grad():
        for key, tensor in state.items():
            tensor.copy_(fill_value(key, tuple(tensor.shape), tensor.dtype, key in last))


def reference_input(batch: int = 2, size: int = 64) -> torch.Tensor:
    """The fixed input the reference outputs were computed on: ``batch x 3 x size x size``."""
    import torch

    n = batch * 3 * size * size
    return torch.sin(torch.arange(n, dtype=torch.float64) * 0.01).reshape(batch, 3, size, size)
