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

__all__ = [
    "PadShortcut",
    "DropPath",
    "radix_softmax",
    "gate_mix",
    "ChannelConv",
    "BlurPool2d",
    "StdConv2d",
    "EvoNorm2dS0",
    "FilterResponseNormTlu2d",
]  # in the order generated files define them


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


def radix_softmax(x: Tensor, radix: int, groups: int) -> Tensor:
    """Softmax across the ``radix`` splits of each of ``groups`` groups of a map's channels,
    which are laid out split-major: channel ``r * C / radix + j`` belongs to split ``r``
    (split attention: Li et al. 2019, SKNet, one group; Zhang et al. 2020, ResNeSt)."""
    b = x.shape[0]
    return x.view(b, groups, radix, -1).transpose(1, 2).softmax(dim=1).reshape(x.shape)


def gate_mix(branch: Tensor, carry: Tensor, gate: Tensor) -> Tensor:
    """Highway join T*H + (1-T)*x (Srivastava et al. 2015)."""
    return gate * branch + (1 - gate) * carry


class ChannelConv(nn.Conv1d):
    """ECA's convolution across channels (Wang et al. 2020): a (N, C, 1, 1) map is read as
    N sequences of C values, convolved with one k-tap filter (no bias, padding (k-1)/2), and
    returned as (N, C, 1, 1). State: ``weight`` of shape (1, 1, k), as nn.Conv1d's. It starts
    at zero (every gate 1/2), so its initial value does not depend on the order in which a
    network builds its modules."""

    def __init__(self, kernel: int) -> None:
        super().__init__(1, 1, kernel, padding=(kernel - 1) // 2, bias=False)
        nn.init.zeros_(self.weight)

    def forward(self, x: Tensor) -> Tensor:
        y = F.conv1d(x.view(x.shape[0], 1, -1), self.weight, None, 1, self.padding)
        return y.view(x.shape)


class BlurPool2d(nn.Module):
    """Anti-aliased downsampling (Zhang 2019): reflection padding by 1, then every channel
    convolved with the binomial filter [1, 2, 1]^T [1, 2, 1] / 16 at ``stride``. The filter
    is a buffer ``filt`` of shape (channels, 1, 3, 3) that is not saved in the state_dict."""

    def __init__(self, channels: int, stride: int = 2) -> None:
        super().__init__()
        self.channels, self.stride = channels, stride
        taps = torch.tensor([1.0, 2.0, 1.0]) / 4
        filt = (taps[:, None] * taps[None, :]).expand(channels, 1, 3, 3).clone()
        self.register_buffer("filt", filt, persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        x = F.pad(x, (1, 1, 1, 1), mode="reflect")
        return F.conv2d(x, self.filt, stride=self.stride, groups=self.channels)

    def extra_repr(self) -> str:
        return f"{self.channels}, stride={self.stride}"


class StdConv2d(nn.Conv2d):
    """A conv whose weight is standardised per output channel before each use (weight
    standardisation, Qiao et al. 2019, as BiT uses it, Kolesnikov et al. 2020): zero mean
    and unit variance over each filter's taps, the variance biased, plus ``eps``. State as
    nn.Conv2d's."""

    def __init__(self, *args: int | bool, eps: float = 1e-8, **kwargs: int | bool) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.eps = eps

    def forward(self, x: Tensor) -> Tensor:
        w = self.weight
        var, mean = torch.var_mean(w, dim=(1, 2, 3), unbiased=False, keepdim=True)
        w = (w - mean) / torch.sqrt(var + self.eps)
        return F.conv2d(x, w, self.bias, self.stride, self.padding, self.dilation, self.groups)


class EvoNorm2dS0(nn.Module):
    """EvoNorm-S0 (Liu et al. 2020): ``x * sigmoid(v * x) / std``, the standard deviation
    taken over each of ``groups`` groups of channels and the whole map (biased, plus eps),
    then ``* weight + bias``. Parameters ``weight``, ``bias``, ``v``, one per channel."""

    def __init__(self, channels: int, groups: int = 32, eps: float = 1e-5) -> None:
        super().__init__()
        self.groups, self.eps = groups, eps
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.v = nn.Parameter(torch.ones(channels))

    def forward(self, x: Tensor) -> Tensor:
        shape = (1, -1, 1, 1)
        grouped = x.reshape(x.shape[0], self.groups, -1)
        var = grouped.var(dim=2, unbiased=False, keepdim=True)
        std = (var + self.eps).sqrt().expand_as(grouped).reshape(x.shape)
        y = x * torch.sigmoid(self.v.view(shape) * x) / std
        return y * self.weight.view(shape) + self.bias.view(shape)


class FilterResponseNormTlu2d(nn.Module):
    """Filter response normalisation and a thresholded linear unit (Singh & Krishnan
    2020): ``x / sqrt(mean_hw(x^2) + eps) * weight + bias``, then its maximum with ``tau``.
    Parameters ``weight``, ``bias``, ``tau``, one per channel."""

    def __init__(self, channels: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.tau = nn.Parameter(torch.zeros(channels))

    def forward(self, x: Tensor) -> Tensor:
        shape = (1, -1, 1, 1)
        x = x * torch.rsqrt(x.square().mean(dim=(2, 3), keepdim=True) + self.eps)
        x = x * self.weight.view(shape) + self.bias.view(shape)
        return torch.maximum(x, self.tau.view(shape))
