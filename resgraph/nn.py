"""The few torch building blocks that torch.nn lacks: the helpers an op's registry entry
names (``Op.helper``).

The executed graph uses these objects; the source emitter copies their source text into each
generated file that needs them (a generated file stands alone and imports only torch), so the
two engines run the same code. Each helper may use only ``torch``, ``F``, ``nn`` and
``Tensor``, the names a generated file imports.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["PadShortcut", "DropPath", "gate_mix"]  # in the order generated files define them


class PadShortcut(nn.Module):
    """Option A shortcut (He et al. 2015, sec. 3.3): identity on every ``stride``-th pixel,
    the extra channels zero (split evenly before and after, as common CIFAR code does)."""

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.in_channels, self.out_channels, self.stride = in_channels, out_channels, stride

    def forward(self, x: Tensor) -> Tensor:
        if self.stride > 1:
            x = x[:, :, :: self.stride, :: self.stride]
        extra = self.out_channels - self.in_channels
        return F.pad(x, (0, 0, 0, 0, extra // 2, extra - extra // 2))

    def extra_repr(self) -> str:
        return f"{self.in_channels}, {self.out_channels}, stride={self.stride}"


class DropPath(nn.Module):
    """Stochastic depth (Huang et al. 2016): in training keep the branch with probability
    ``survival`` for the whole mini-batch, else zero it; in evaluation scale it by
    ``survival``."""

    def __init__(self, survival: float) -> None:
        super().__init__()
        self.survival = survival

    def forward(self, x: Tensor) -> Tensor:
        if not self.training:
            return x * self.survival
        keep = torch.rand((), device=x.device) < self.survival
        return x * keep.to(x.dtype)

    def extra_repr(self) -> str:
        return f"survival={self.survival}"


def gate_mix(branch: Tensor, carry: Tensor, gate: Tensor) -> Tensor:
    """Highway join T*H + (1-T)*x (Srivastava et al. 2015)."""
    return gate * branch + (1 - gate) * carry
