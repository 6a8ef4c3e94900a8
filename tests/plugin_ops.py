"""A plugin module for the tests (loaded with ``--plugin plugin_ops`` or
``resgraph.load_plugin``): a weight-centred convolution (Qiao et al. 2019, Weight
Standardization, whose weight centring subtracts each filter's mean) as one op with a helper
module of its own."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch.nn.functional as F
from torch import Tensor, nn

from resgraph.ops import Conv


class CenteredConv2d(nn.Conv2d):
    """A conv whose weights are centred per output channel (zero mean) each time it runs."""

    def forward(self, x: Tensor) -> Tensor:
        w = self.weight - self.weight.mean(dim=(1, 2, 3), keepdim=True)
        return F.conv2d(x, w, self.bias, self.stride, self.padding, self.dilation, self.groups)


@dataclass(frozen=True)
class CenteredConv(Conv):
    """Weight-centred 2-D convolution: ``conv``'s fields, ``CenteredConv2d`` as its module."""

    kind: ClassVar[str] = "centered_conv"
    ctor: ClassVar[str] = "CenteredConv2d"
    helper: ClassVar[str | None] = "CenteredConv2d"
    helper_module: ClassVar[str] = __name__
