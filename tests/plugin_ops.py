"""A plugin module for the tests (loaded with ``--plugin plugin_ops`` or
``resgraph.load_plugin``): a weight-standardised convolution (Qiao et al. 2019, Weight
Standardization; Kolesnikov et al. 2020, BiT) as one op with a helper module of its own."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from resgraph.ops import Conv


class StdConv2d(nn.Conv2d):
    """A conv whose weights are standardised per output channel (zero mean, unit variance)
    each time it runs."""

    def forward(self, x: Tensor) -> Tensor:
        w = self.weight
        mean = w.mean(dim=(1, 2, 3), keepdim=True)
        var = w.var(dim=(1, 2, 3), unbiased=False, keepdim=True)
        w = (w - mean) / torch.sqrt(var + 1e-6)
        return F.conv2d(x, w, self.bias, self.stride, self.padding, self.dilation, self.groups)


@dataclass(frozen=True)
class StdConv(Conv):
    """Weight-standardised 2-D convolution: ``conv``'s fields, ``StdConv2d`` as its module."""

    kind: ClassVar[str] = "std_conv"
    ctor: ClassVar[str] = "StdConv2d"
    helper: ClassVar[str | None] = "StdConv2d"
    helper_module: ClassVar[str] = __name__
