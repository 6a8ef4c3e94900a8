"""The closed set of IR operations: one registry entry (one class) per op.

Each op is a frozen dataclass that says, in one place, everything any part of resgraph needs:

- its shape rule (``infer``, ``check``), parameter count and multiply-adds (``params``,
  ``macs``);
- how it is built as a module (``ctor``, the constructor's name, and ``ctor_args``, which op
  field goes to which constructor argument), or, for a function op, how it is called
  (``call``, a format string over its input expressions);
- which helper of :mod:`resgraph.nn` it needs (``helper``), so the generated file copies that
  helper's source and the executed graph uses the same object;
- how it is drawn (``label()`` and ``fill``, the node's fill colour).

The source emitter writes ``ctor``/``call`` text, and the executed graph evaluates the same text
in a namespace holding ``torch``, ``F``, ``nn`` and the helpers, so the two cannot drift.
Shapes exclude the batch dimension: ``(C, H, W)`` for feature maps, ``(F,)`` for flat features.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass
from math import ceil
from typing import ClassVar

from resgraph.spec.expr import parse, python_text, simplify

KEEP = object()  # a constructor argument that is always written, whatever its value

Shape = tuple[int, ...]


# The names a generated file binds besides its classes: its imports and its factory. An op's
# ``ctor`` and ``call`` text read them, and nothing a spec names may take them.
FILE_NAMES = frozenset({"torch", "F", "nn", "Tensor", "annotations", "build_model"})


def fmt_shape(shape: Shape | None) -> str:
    return "?" if shape is None else "x".join(str(d) for d in shape)


class ShapeMismatch(ValueError):
    """Raised by an op's shape rule; the shape pass adds the node and its spec location."""


def _map(shape: Shape, op: str) -> tuple[int, int, int]:
    if len(shape) != 3:
        raise ShapeMismatch(f"{op} needs a CxHxW feature map, got {fmt_shape(shape)}")
    return shape  # type: ignore[return-value]


def _window(size: int, kernel: int, stride: int, padding: int) -> int:
    return (size + 2 * padding - kernel) // stride + 1


@dataclass(frozen=True)
class Op:
    kind: ClassVar[str]
    arity: ClassVar[int | None] = 1  # number of inputs; None: two or more
    is_module: ClassVar[bool] = False  # emitted as a named nn.Module attribute
    ctor: ClassVar[str] = ""  # module ops: the constructor, e.g. "nn.Conv2d"
    # module ops: (op field, constructor keyword or None for positional, value that is left
    # out because it is the constructor's default, or KEEP)
    ctor_args: ClassVar[tuple[tuple[str, str | None, object], ...]] = ()
    call: ClassVar[str] = ""  # function ops: "F.relu({0})"; "{all}" joins every input
    helper: ClassVar[str | None] = None  # the object of helper_module it needs, if any
    helper_module: ClassVar[str] = "resgraph.nn"  # a plugin's ops name their own module
    note: ClassVar[str] = ""  # module ops: a comment the generated source puts by it
    activates: ClassVar[bool] = False  # a norm with its own nonlinearity: no ReLU after it
    fill: ClassVar[str] = "white"  # fill colour when drawn

    def infer(self, inputs: list[Shape]) -> Shape:
        return inputs[0]

    def check(self, inputs: list[Shape]) -> None:
        """Joins check that their inputs agree; other ops accept what infer accepts."""

    def params(self) -> int:
        return 0

    def macs(self, out: Shape) -> int:
        return 0

    def label(self) -> str:
        return self.kind

    def module_args(
        self, keep: frozenset[str] | dict[str, str] = frozenset()
    ) -> tuple[list[tuple[str, object]], list[tuple[str, str, object]]]:
        """The constructor's positional ``(field, value)`` and keyword ``(field, keyword,
        value)`` arguments, defaults left out unless the field is in ``keep``."""
        args: list[tuple[str, object]] = []
        kwargs: list[tuple[str, str, object]] = []
        for name, keyword, default in self.ctor_args:
            value = getattr(self, name)
            if keyword is None:
                args.append((name, value))
            elif default is KEEP or name in keep or value != default:
                kwargs.append((name, keyword, value))
        return args, kwargs

    def channels_text(self, bound: Mapping[str, str], inputs: list[str | None]) -> str | None:
        """The channels it puts out as an expression, from the expressions its fields are
        bound to and its inputs' channels (None where there is none): an op that keeps its
        input's channels by default."""
        return inputs[0]

    def call_text(self, inputs: list[str], fields: Mapping[str, str] | None = None) -> str:
        """A function op's call on the input expressions; ``call`` may also name the op's
        fields (``{start}``), written as their values or as the expressions in ``fields``."""
        values = {f.name: literal(getattr(self, f.name)) for f in dataclasses.fields(self)}
        return self.call.format(*inputs, all=", ".join(inputs), **{**values, **(fields or {})})


def literal(value: object) -> str:
    """Python source for a constructor argument."""
    return repr(float(value)) if isinstance(value, float) else repr(value)


@dataclass(frozen=True)
class Input(Op):
    kind: ClassVar[str] = "input"
    arity: ClassVar[int | None] = 0
    fill: ClassVar[str] = "#f4f4f4"
    channels: int
    size: int

    def infer(self, inputs: list[Shape]) -> Shape:
        return (self.channels, self.size, self.size)

    def label(self) -> str:
        return "input"


@dataclass(frozen=True)
class Output(Op):
    """Marks a feature map a backbone returns, under ``key`` (``layer2``): a sink of the
    graph that computes nothing; forward returns ``{key: its input, ...}`` in IR order."""

    kind: ClassVar[str] = "output"
    fill: ClassVar[str] = "#f4f4f4"
    key: str

    def label(self) -> str:
        return f"output {self.key}"


@dataclass(frozen=True)
class Conv(Op):
    """2-D convolution (``nn.Conv2d``), no bias unless asked; ``dilation`` spaces the taps."""

    kind: ClassVar[str] = "conv"
    ctor: ClassVar[str] = "nn.Conv2d"
    ctor_args: ClassVar = (
        ("in_channels", None, KEEP),
        ("out_channels", None, KEEP),
        ("kernel", "kernel_size", KEEP),
        ("stride", "stride", 1),
        ("padding", "padding", 0),
        ("dilation", "dilation", 1),
        ("groups", "groups", 1),
        ("bias", "bias", KEEP),
    )
    fill: ClassVar[str] = "#dce8f6"
    is_module: ClassVar[bool] = True
    in_channels: int
    out_channels: int
    kernel: int
    stride: int = 1
    padding: int = 0
    groups: int = 1
    bias: bool = False
    dilation: int = 1  # taps this far apart (Yu & Koltun 2016): the kernel spans more pixels

    def infer(self, inputs: list[Shape]) -> Shape:
        c, h, w = _map(inputs[0], "conv")
        if c != self.in_channels:
            raise ShapeMismatch(f"conv expects {self.in_channels} input channels, got {c}")
        if self.in_channels % self.groups or self.out_channels % self.groups:
            raise ShapeMismatch(
                f"conv groups={self.groups} must divide in ({self.in_channels}) and out "
                f"({self.out_channels}) channels"
            )
        span = self.dilation * (self.kernel - 1) + 1
        oh, ow = (_window(s, span, self.stride, self.padding) for s in (h, w))
        if oh < 1 or ow < 1:
            raise ShapeMismatch(
                f"{self.kernel}x{self.kernel} conv with stride {self.stride} leaves no pixels "
                f"of a {h}x{w} input"
            )
        return (self.out_channels, oh, ow)

    def channels_text(self, bound: Mapping[str, str], inputs: list[str | None]) -> str | None:
        return bound.get("out_channels")

    def params(self) -> int:
        weights = self.out_channels * (self.in_channels // self.groups) * self.kernel**2
        return weights + (self.out_channels if self.bias else 0)

    def macs(self, out: Shape) -> int:
        return (
            out[1] * out[2] * self.out_channels * (self.in_channels // self.groups) * self.kernel**2
        )

    def label(self) -> str:
        text = f"{self.kernel}x{self.kernel} conv, {self.out_channels}"
        if self.groups > 1:
            text += f", g{self.groups}"
        if self.dilation > 1:
            text += f", dilation {self.dilation}"
        return text + (f", /{self.stride}" if self.stride > 1 else "")


@dataclass(frozen=True)
class StdConv(Conv):
    """2-D convolution whose weight is standardised per output channel before each use, to
    zero mean and unit variance over its taps (Qiao et al. 2019; BiT, Kolesnikov et al.
    2020): (w - mean) / sqrt(biased variance + 1e-8). State and multiply-adds as `conv`."""

    kind: ClassVar[str] = "std_conv"
    ctor: ClassVar[str] = "StdConv2d"
    helper: ClassVar[str | None] = "StdConv2d"

    def label(self) -> str:
        return "std " + super().label()


CONVS: dict[str, type[Conv]] = {"conv": Conv, "std_conv": StdConv}
"""The convolutions a spec may choose for every conv it lays out (its ``conv``)."""


@dataclass(frozen=True)
class ZeroPad(Op):
    """Zero padding of ``padding`` pixels on every side (before a max pool whose padding
    must count as zeros, not as minus infinity: BiT's stem, Kolesnikov et al. 2020)."""

    kind: ClassVar[str] = "zero_pad"
    call: ClassVar[str] = "F.pad({0}, [{padding}] * 4)"
    fill: ClassVar[str] = "#e9e9e9"
    padding: int

    def infer(self, inputs: list[Shape]) -> Shape:
        c, h, w = _map(inputs[0], "zero pad")
        return (c, h + 2 * self.padding, w + 2 * self.padding)

    def label(self) -> str:
        return f"zero pad {self.padding}"


class _ChannelNorm:
    """What every norm op shares: the map's shape unchanged, checked against ``channels``
    (and divided into ``groups``, where the norm has them), and ``per_channel`` parameters
    for each channel."""

    fill: ClassVar[str] = "#fbf0c9"
    is_module: ClassVar[bool] = True
    per_channel: ClassVar[int] = 2  # a scale and a shift

    def infer(self, inputs: list[Shape]) -> Shape:
        kind, channels = self.kind, self.channels  # type: ignore[attr-defined]
        c, _, _ = _map(inputs[0], kind)
        if c != channels:
            raise ShapeMismatch(f"{kind} expects {channels} channels, got {c}")
        groups = getattr(self, "groups", 1)
        if c % groups:
            raise ShapeMismatch(f"{kind}: {groups} groups do not divide {c} channels")
        return inputs[0]

    def params(self) -> int:
        return self.per_channel * self.channels  # type: ignore[attr-defined,no-any-return]


@dataclass(frozen=True)
class BatchNorm(_ChannelNorm, Op):
    """Batch norm (Ioffe & Szegedy 2015, ``nn.BatchNorm2d``) on ``channels`` channels."""

    kind: ClassVar[str] = "batchnorm"
    ctor: ClassVar[str] = "nn.BatchNorm2d"
    ctor_args: ClassVar = (("channels", None, KEEP),)
    channels: int
    zero_init: bool = False  # last BN of a residual branch, zeroed when the spec asks

    def label(self) -> str:
        return "BN"


@dataclass(frozen=True)
class ReLU(Op):
    """ReLU, as a function call (no module, no state)."""

    kind: ClassVar[str] = "relu"
    call: ClassVar[str] = "F.relu({0})"
    fill: ClassVar[str] = "#e0f0da"

    def label(self) -> str:
        return "ReLU"


@dataclass(frozen=True)
class SiLU(Op):
    """SiLU, x * sigmoid(x) (Elfwing et al. 2018; 'Swish', Ramachandran et al. 2017), as a
    function call (no module, no state)."""

    kind: ClassVar[str] = "silu"
    call: ClassVar[str] = "F.silu({0})"
    fill: ClassVar[str] = "#e0f0da"

    def label(self) -> str:
        return "SiLU"


@dataclass(frozen=True)
class Sigmoid(Op):
    """Logistic sigmoid, as a function call (a gate in (0, 1))."""

    kind: ClassVar[str] = "sigmoid"
    call: ClassVar[str] = "torch.sigmoid({0})"
    fill: ClassVar[str] = "#e0f0da"

    def label(self) -> str:
        return "sigmoid"


@dataclass(frozen=True)
class _Pool(Op):
    is_module: ClassVar[bool] = True
    ctor_args: ClassVar = (
        ("kernel", "kernel_size", KEEP),
        ("stride", "stride", KEEP),
        ("padding", "padding", 0),
    )
    fill: ClassVar[str] = "#e9e9e9"
    kernel: int
    stride: int
    padding: int = 0

    def infer(self, inputs: list[Shape]) -> Shape:
        c, h, w = _map(inputs[0], self.label())
        oh, ow = (_window(s, self.kernel, self.stride, self.padding) for s in (h, w))
        if oh < 1 or ow < 1:
            raise ShapeMismatch(f"{self.label()} leaves no pixels of {h}x{w}")
        return (c, oh, ow)


@dataclass(frozen=True)
class MaxPool(_Pool):
    """Max pool (``nn.MaxPool2d``) over ``kernel`` x ``kernel`` windows."""

    kind: ClassVar[str] = "maxpool"
    ctor: ClassVar[str] = "nn.MaxPool2d"

    def label(self) -> str:
        return f"{self.kernel}x{self.kernel} max pool, /{self.stride}"


@dataclass(frozen=True)
class AvgPool(_Pool):
    """Average pool (``nn.AvgPool2d``) over ``kernel`` x ``kernel`` windows.

    ``ceil_mode``: a last window that starts inside the input but runs past it is kept
    (the output size rounds up); ``count_include_pad``: padded zeros count in the mean. Both
    as torch's ``nn.AvgPool2d`` (option D's pool sets ceil_mode and not count_include_pad)."""

    kind: ClassVar[str] = "avgpool"
    ctor: ClassVar[str] = "nn.AvgPool2d"
    ctor_args: ClassVar = (
        *_Pool.ctor_args,
        ("ceil_mode", "ceil_mode", False),
        ("count_include_pad", "count_include_pad", True),
    )
    ceil_mode: bool = False
    count_include_pad: bool = True

    def infer(self, inputs: list[Shape]) -> Shape:
        if not self.ceil_mode:
            return super().infer(inputs)
        c, h, w = _map(inputs[0], self.label())
        return (c, *(self._ceil_window(s) for s in (h, w)))

    def _ceil_window(self, size: int) -> int:
        """torch's rule: round up, but drop a last window that would start in the padding."""
        span = size + 2 * self.padding - self.kernel
        if span < 0:
            raise ShapeMismatch(f"{self.label()} leaves no pixels of a {size}x{size} input")
        out = -(-span // self.stride) + 1
        if (out - 1) * self.stride >= size + self.padding:
            out -= 1
        return out

    def label(self) -> str:
        return f"{self.kernel}x{self.kernel} avg pool, /{self.stride}" + (
            ", ceil" if self.ceil_mode else ""
        )


@dataclass(frozen=True)
class GlobalAvgPool(Op):
    """Mean over height and width, flattened to C features (before a classifier)."""

    kind: ClassVar[str] = "global_avgpool"
    call: ClassVar[str] = "torch.flatten(F.adaptive_avg_pool2d({0}, 1), 1)"
    fill: ClassVar[str] = "#e9e9e9"

    def infer(self, inputs: list[Shape]) -> Shape:
        return (_map(inputs[0], "global average pool")[0],)

    def label(self) -> str:
        return "global avg pool"


@dataclass(frozen=True)
class Flatten(Op):
    """A map flattened to C x H x W features (after a 1x1 conv classifier on a pooled map)."""

    kind: ClassVar[str] = "flatten"
    call: ClassVar[str] = "torch.flatten({0}, 1)"
    fill: ClassVar[str] = "#e9e9e9"

    def infer(self, inputs: list[Shape]) -> Shape:
        c, h, w = _map(inputs[0], "flatten")
        return (c * h * w,)

    def label(self) -> str:
        return "flatten"


@dataclass(frozen=True)
class Dropout(Op):
    """Dropout with probability ``p`` in training (``nn.Dropout``)."""

    kind: ClassVar[str] = "dropout"
    ctor: ClassVar[str] = "nn.Dropout"
    ctor_args: ClassVar = (("p", "p", KEEP),)
    fill: ClassVar[str] = "#eee3f5"
    is_module: ClassVar[bool] = True
    p: float

    def label(self) -> str:
        return f"dropout {self.p:g}"


@dataclass(frozen=True)
class DropPath(Op):
    """Stochastic depth: keep the whole branch with probability ``survival`` in training,
    scale it by ``survival`` in evaluation (Huang et al. 2016, sec. 3)."""

    kind: ClassVar[str] = "drop_path"
    ctor: ClassVar[str] = "DropPath"
    ctor_args: ClassVar = (("survival", None, KEEP),)
    helper: ClassVar[str | None] = "DropPath"
    fill: ClassVar[str] = "#eee3f5"
    is_module: ClassVar[bool] = True
    survival: float

    def label(self) -> str:
        return f"drop path, p={self.survival:.3g}"


@dataclass(frozen=True)
class Linear(Op):
    """Fully connected layer (``nn.Linear``) on flat features."""

    kind: ClassVar[str] = "linear"
    ctor: ClassVar[str] = "nn.Linear"
    ctor_args: ClassVar = (
        ("in_features", None, KEEP),
        ("out_features", None, KEEP),
        ("bias", "bias", KEEP),
    )
    fill: ClassVar[str] = "#f6dcdc"
    is_module: ClassVar[bool] = True
    in_features: int
    out_features: int
    bias: bool = True

    def infer(self, inputs: list[Shape]) -> Shape:
        if len(inputs[0]) != 1 or inputs[0][0] != self.in_features:
            raise ShapeMismatch(
                f"fc expects {self.in_features} features, got {fmt_shape(inputs[0])}"
            )
        return (self.out_features,)

    def channels_text(self, bound: Mapping[str, str], inputs: list[str | None]) -> str | None:
        return bound.get("out_features")

    def params(self) -> int:
        return self.in_features * self.out_features + (self.out_features if self.bias else 0)

    def macs(self, out: Shape) -> int:
        return self.in_features * self.out_features

    def label(self) -> str:
        return f"fc, {self.out_features}"


@dataclass(frozen=True)
class PadShortcut(Op):
    """Paper option A: identity on every ``stride``-th pixel, extra channels zero."""

    kind: ClassVar[str] = "pad_shortcut"
    ctor: ClassVar[str] = "PadShortcut"
    ctor_args: ClassVar = (
        ("in_channels", None, KEEP),
        ("out_channels", None, KEEP),
        ("stride", "stride", KEEP),
    )
    helper: ClassVar[str | None] = "PadShortcut"
    fill: ClassVar[str] = "#ffffff"
    is_module: ClassVar[bool] = True
    in_channels: int
    out_channels: int
    stride: int

    def infer(self, inputs: list[Shape]) -> Shape:
        c, h, w = _map(inputs[0], "option-A shortcut")
        if c != self.in_channels:
            raise ShapeMismatch(f"option-A shortcut expects {self.in_channels} channels, got {c}")
        return (self.out_channels, ceil(h / self.stride), ceil(w / self.stride))

    def label(self) -> str:
        text = f"zero-pad {self.in_channels}->{self.out_channels}"
        return text + (f", /{self.stride}" if self.stride > 1 else "")


@dataclass(frozen=True)
class Add(Op):
    """Residual join: port 0 the branch F(x), port 1 the shortcut x."""

    kind: ClassVar[str] = "add"
    call: ClassVar[str] = "{0} + {1}"
    arity: ClassVar[int | None] = 2

    def infer(self, inputs: list[Shape]) -> Shape:
        return inputs[0]  # the branch decides; check() verifies the shortcut agrees

    def check(self, inputs: list[Shape]) -> None:
        branch, shortcut = inputs
        if branch != shortcut:
            raise ShapeMismatch(
                f"cannot add branch {fmt_shape(branch)} and shortcut {fmt_shape(shortcut)}"
            )

    def label(self) -> str:
        return "+"


@dataclass(frozen=True)
class GateMix(Op):
    """Highway join: port 0 branch H(x), port 1 carry x, port 2 gate T(x) in (0, 1);
    output T*H + (1-T)*x (Srivastava et al. 2015)."""

    kind: ClassVar[str] = "gate_mix"
    call: ClassVar[str] = "gate_mix({0}, {1}, {2})"
    helper: ClassVar[str | None] = "gate_mix"
    arity: ClassVar[int | None] = 3

    def infer(self, inputs: list[Shape]) -> Shape:
        return inputs[0]

    def check(self, inputs: list[Shape]) -> None:
        if len(set(inputs)) != 1:
            shown = ", ".join(fmt_shape(s) for s in inputs)
            raise ShapeMismatch(
                f"gated join needs equal branch, shortcut and gate shapes, got {shown}"
            )

    def label(self) -> str:
        return "T*F + (1-T)*x"


@dataclass(frozen=True)
class Concat(Op):
    """Channel concatenation, inputs in port order (DenseNet)."""

    kind: ClassVar[str] = "concat"
    call: ClassVar[str] = "torch.cat([{all}], 1)"
    arity: ClassVar[int | None] = None

    def infer(self, inputs: list[Shape]) -> Shape:
        self.check(inputs)
        return (sum(s[0] for s in inputs), *inputs[0][1:])

    def check(self, inputs: list[Shape]) -> None:
        maps = [_map(s, "concat") for s in inputs]
        if len({s[1:] for s in maps}) != 1:
            shown = ", ".join(fmt_shape(s) for s in maps)
            raise ShapeMismatch(f"concat needs equal spatial sizes, got {shown}")

    def channels_text(self, bound: Mapping[str, str], inputs: list[str | None]) -> str | None:
        return " + ".join(inputs) if all(inputs) else None  # type: ignore[arg-type]

    def label(self) -> str:
        return "concat"


@dataclass(frozen=True)
class ChannelSlice(Op):
    """Channels ``start`` to ``stop - 1`` of a map: one part of a split (Res2Net's scales,
    Gao et al. 2019)."""

    kind: ClassVar[str] = "slice"
    call: ClassVar[str] = "{0}[:, {start}:{stop}]"  # spaced as call_text says
    start: int
    stop: int

    def infer(self, inputs: list[Shape]) -> Shape:
        c, h, w = _map(inputs[0], "slice")
        if not 0 <= self.start < self.stop <= c:
            raise ShapeMismatch(
                f"cannot take channels {self.start} to {self.stop - 1} of {c} channels"
            )
        return (self.stop - self.start, h, w)

    def call_text(self, inputs: list[str], fields: Mapping[str, str] | None = None) -> str:
        """``x[:, 2:5]``, or ``x[:, a : 2 * a]`` where a bound is not a name or a number (the
        slice spacing of black and ruff, so generated files stay formatted)."""
        text = {"start": literal(self.start), "stop": literal(self.stop), **(fields or {})}
        simple = all(re.fullmatch(r"\w+", text[f]) for f in ("start", "stop"))
        return f"{inputs[0]}[:, {text['start']}{':' if simple else ' : '}{text['stop']}]"

    def channels_text(self, bound: Mapping[str, str], inputs: list[str | None]) -> str | None:
        if "start" not in bound or "stop" not in bound:
            return None
        return python_text(simplify(parse(f"{bound['stop']} - ({bound['start']})")))

    def label(self) -> str:
        return f"channels {self.start}:{self.stop}"


@dataclass(frozen=True)
class RadixSoftmax(Op):
    """Softmax across ``radix`` splits of the channels, within each of ``groups`` groups:
    the weights of split attention (Li et al. 2019, SKNet; Zhang et al. 2020, ResNeSt)."""

    kind: ClassVar[str] = "radix_softmax"
    call: ClassVar[str] = "radix_softmax({0}, {radix}, {groups})"
    helper: ClassVar[str | None] = "radix_softmax"
    radix: int
    groups: int = 1

    def infer(self, inputs: list[Shape]) -> Shape:
        c = inputs[0][0]
        if self.radix < 1 or self.groups < 1 or c % (self.radix * self.groups):
            raise ShapeMismatch(
                f"{c} channels do not split into {self.radix} splits of {self.groups} groups"
            )
        return inputs[0]

    def label(self) -> str:
        return f"softmax over {self.radix} splits"


JOINS = (Add, GateMix, Concat)
RESIDUAL_JOINS = (Add, GateMix)
"""Joins whose port 1 is a shortcut that the shortcut options may replace. A Concat has
none: it carries its inputs forward whole."""


# -- block internals of the timm zoo: channel attention, anti-aliasing, group norm ----------
@dataclass(frozen=True)
class GlobalMean(Op):
    """Mean over height and width, kept as a C x 1 x 1 map (the 'squeeze' of SE and ECA)."""

    kind: ClassVar[str] = "global_mean"
    call: ClassVar[str] = "{0}.mean((2, 3), keepdim=True)"
    fill: ClassVar[str] = "#e9e9e9"

    def infer(self, inputs: list[Shape]) -> Shape:
        return (_map(inputs[0], "global mean")[0], 1, 1)

    def label(self) -> str:
        return "mean over HxW"


@dataclass(frozen=True)
class Mul(Op):
    """Channel-wise rescaling: port 0 a C x H x W map, port 1 a C x 1 x 1 gate."""

    kind: ClassVar[str] = "mul"
    call: ClassVar[str] = "{0} * {1}"
    arity: ClassVar[int | None] = 2

    def infer(self, inputs: list[Shape]) -> Shape:
        self.check(inputs)
        return inputs[0]

    def check(self, inputs: list[Shape]) -> None:
        x, gate = _map(inputs[0], "mul"), _map(inputs[1], "mul")
        if gate != (x[0], 1, 1):
            raise ShapeMismatch(
                f"cannot scale {fmt_shape(x)} by {fmt_shape(gate)}: the gate needs {x[0]}x1x1"
            )

    def label(self) -> str:
        return "x"


@dataclass(frozen=True)
class ChannelConv(Op):
    """ECA's 1-D convolution across the channels of a C x 1 x 1 map (Wang et al. 2020): one
    k-tap filter, no bias, padding (k-1)/2. Its multiply-adds are not counted (timm's and the
    ECA paper's convention: they are C x k, negligible)."""

    kind: ClassVar[str] = "channel_conv"
    ctor: ClassVar[str] = "ChannelConv"
    ctor_args: ClassVar = (("kernel", None, KEEP),)
    helper: ClassVar[str | None] = "ChannelConv"
    fill: ClassVar[str] = "#dce8f6"
    is_module: ClassVar[bool] = True
    kernel: int

    def infer(self, inputs: list[Shape]) -> Shape:
        c, h, w = _map(inputs[0], "channel conv")
        if (h, w) != (1, 1):
            raise ShapeMismatch(f"channel conv needs a Cx1x1 map, got {fmt_shape(inputs[0])}")
        return inputs[0]

    def params(self) -> int:
        return self.kernel

    def label(self) -> str:
        return f"1-D conv k={self.kernel} over channels"


@dataclass(frozen=True)
class BlurPool(Op):
    """Anti-aliased downsampling (Zhang 2019): reflection padding by 1, then each channel
    convolved with the fixed binomial filter [1, 2, 1]^T [1, 2, 1] / 16 at ``stride``. The
    filter is a buffer that is not saved; no parameters."""

    kind: ClassVar[str] = "blurpool"
    ctor: ClassVar[str] = "BlurPool2d"
    ctor_args: ClassVar = (("channels", None, KEEP), ("stride", "stride", 2))
    helper: ClassVar[str | None] = "BlurPool2d"
    fill: ClassVar[str] = "#e9e9e9"
    is_module: ClassVar[bool] = True
    channels: int
    stride: int = 2

    def infer(self, inputs: list[Shape]) -> Shape:
        c, h, w = _map(inputs[0], "blur pool")
        if c != self.channels:
            raise ShapeMismatch(f"blur pool expects {self.channels} channels, got {c}")
        if min(h, w) < 2:
            raise ShapeMismatch(f"blur pool reflects 1 pixel: it needs 2x2 or more, got {h}x{w}")
        return (c, _window(h, 3, self.stride, 1), _window(w, 3, self.stride, 1))

    def label(self) -> str:
        return f"blur pool, /{self.stride}"


@dataclass(frozen=True)
class GroupNorm(_ChannelNorm, Op):
    """Group norm (Wu & He 2018): ``groups`` groups, eps 1e-5, per-channel scale and shift."""

    kind: ClassVar[str] = "groupnorm"
    ctor: ClassVar[str] = "nn.GroupNorm"
    ctor_args: ClassVar = (("groups", None, KEEP), ("channels", None, KEEP))
    groups: int
    channels: int
    zero_init: bool = False  # last norm of a residual branch, zeroed when the spec asks

    def label(self) -> str:
        return f"GN, {self.groups} groups"


@dataclass(frozen=True)
class EvoNormS0(_ChannelNorm, Op):
    """EvoNorm-S0 (Liu et al. 2020), a norm with its own nonlinearity: x * sigmoid(v * x)
    divided by the standard deviation of x over each of ``groups`` groups of channels (eps
    1e-5), then a per-channel scale and shift. Parameters ``weight``, ``bias``, ``v``."""

    kind: ClassVar[str] = "evonorm_s0"
    ctor: ClassVar[str] = "EvoNorm2dS0"
    ctor_args: ClassVar = (("channels", None, KEEP), ("groups", "groups", 32))
    helper: ClassVar[str | None] = "EvoNorm2dS0"
    activates: ClassVar[bool] = True
    per_channel: ClassVar[int] = 3  # a scale, a shift and v
    channels: int
    groups: int = 32
    zero_init: bool = False  # last norm of a residual branch, zeroed when the spec asks

    def label(self) -> str:
        return f"EvoNorm-S0, {self.groups} groups"


@dataclass(frozen=True)
class FilterResponseNorm(_ChannelNorm, Op):
    """Filter response normalisation with a thresholded linear unit (Singh & Krishnan 2020):
    x / sqrt(mean over H and W of x^2 + 1e-5), a per-channel scale and shift, then the
    larger of that and a learned per-channel threshold. Parameters ``weight``, ``bias``,
    ``tau``."""

    kind: ClassVar[str] = "frn_tlu"
    ctor: ClassVar[str] = "FilterResponseNormTlu2d"
    ctor_args: ClassVar = (("channels", None, KEEP),)
    helper: ClassVar[str | None] = "FilterResponseNormTlu2d"
    activates: ClassVar[bool] = True
    per_channel: ClassVar[int] = 3  # a scale, a shift and tau
    channels: int
    zero_init: bool = False  # last norm of a residual branch, zeroed when the spec asks

    def label(self) -> str:
        return "FRN + TLU"


NORMS = (BatchNorm, GroupNorm, EvoNormS0, FilterResponseNorm)
"""Norm ops: a residual branch's last one may be zero-initialised (``zero_init``)."""


# --- ops added with timm's ResNet zoo: stems and shortcut D ----------------------------------


@dataclass(frozen=True)
class Identity(Op):
    """A module that returns its input: option D's pool where the stride is 1, kept so the
    projection's state sits at ``downsample.1`` and ``downsample.2`` as timm's does."""

    kind: ClassVar[str] = "identity"
    ctor: ClassVar[str] = "nn.Identity"
    note: ClassVar[str] = "no pool at stride 1: timm's indices"
    is_module: ClassVar[bool] = True
    fill: ClassVar[str] = "#e9e9e9"

    def label(self) -> str:
        return "identity"


@dataclass(frozen=True)
class ReLUModule(ReLU):
    """ReLU as a module: a member of an ``nn.Sequential`` that holds state at the indices
    around it (a deep stem's ``conv1.2``), so the indices match timm's."""

    kind: ClassVar[str] = "relu_module"
    ctor: ClassVar[str] = "nn.ReLU"
    call: ClassVar[str] = ""
    is_module: ClassVar[bool] = True


def op_classes() -> list[type[Op]]:
    """Every op class, resgraph's own first (the order they were defined in, then their
    subclasses, a plugin's among them): the registry block definitions and plugins read."""
    found: list[type[Op]] = []
    stack = list(Op.__subclasses__())
    while stack:
        cls = stack.pop(0)
        stack.extend(cls.__subclasses__())
        found.append(cls)
    return found
