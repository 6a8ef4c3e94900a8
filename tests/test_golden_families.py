"""Golden parameter and multiply-add counts for every block family, from sources that do not
run resgraph: the figures published with each architecture (tests/data/golden_families.json)
and closed-form counts written here from the architecture descriptions in the papers.

Multiply-adds count what convolutions and the classifier compute (one multiply-add per weight
per output position), the convention of torchvision's published GFLOPS figures."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

import pytest

from helpers import ROOT
from resgraph import load_spec, lower, summarize

GOLDEN = json.loads((ROOT / "tests" / "data" / "golden_families.json").read_text())
TORCHVISION = json.loads((ROOT / "tests" / "data" / "torchvision_reference.json").read_text())


@dataclass
class Tally:
    """Parameters and multiply-adds of a network, added up layer by layer."""

    params: int = 0
    macs: int = 0

    def conv(
        self, cin: int, cout: int, k: int, out_size: int, groups: int = 1, bias: bool = False
    ) -> None:
        weights = cout * (cin // groups) * k * k
        self.params += weights + (cout if bias else 0)
        self.macs += weights * out_size * out_size

    def bn(self, c: int) -> None:
        self.params += 2 * c

    def fc(self, cin: int, cout: int) -> None:
        self.params += cin * cout + cout
        self.macs += cin * cout


# --- closed forms from the papers -----------------------------------------------------------


def cifar_basic(
    n: int,
    shortcut: str = "A",
    *,
    convs: int = 2,
    k: int = 1,
    preact: bool = False,
    gate: bool = False,
) -> Tally:
    """He et al. 2015 sec. 4.2 (6n+2 layers, widths 16/32/64 on 32/16/8 maps); the
    pre-activation variant with width factor k is Zagoruyko & Komodakis 2016 (WRN-(6n+4)-k);
    ``gate`` adds a highway transform gate (1x1 conv with bias) per block."""
    t = Tally()
    t.conv(3, 16, 3, 32)
    if not preact:
        t.bn(16)
    c = 16
    for stage, (width, size) in enumerate(zip((16 * k, 32 * k, 64 * k), (32, 16, 8), strict=True)):
        for i in range(n):
            first = i == 0
            cin = c
            for j in range(convs):
                if preact:
                    t.bn(c if j == 0 else width)
                t.conv(c if j == 0 else width, width, 3, size)
                if not preact:
                    t.bn(width)
            changes = cin != width or (first and stage > 0)
            if (shortcut == "B" and changes) or shortcut == "C":
                t.conv(cin, width, 1, size)
                t.bn(width)
            if gate:
                t.conv(cin, width, 1, size, bias=True)
            c = width
    if preact:
        t.bn(c)
    t.fc(c, 10)
    return t


def cifar_preact_bottleneck(n: int) -> Tally:
    """He et al. 2016 ("Identity Mappings"): 9n+2 layers, bottleneck units 1x1-3x3-1x1 with
    widths 16/32/64 (x4 out), stride on the first 1x1, BN-ReLU before each conv, projection
    (1x1 conv + BN) where the shape changes, BN-ReLU before the pool."""
    t = Tally()
    t.conv(3, 16, 3, 32)
    c = 16
    for width, size in zip((16, 32, 64), (32, 16, 8), strict=True):
        for i in range(n):
            t.bn(c)
            t.conv(c, width, 1, size)
            t.bn(width)
            t.conv(width, width, 3, size)
            t.bn(width)
            t.conv(width, 4 * width, 1, size)
            if i == 0:
                t.conv(c, 4 * width, 1, size)
                t.bn(4 * width)
            c = 4 * width
    t.bn(c)
    t.fc(c, 10)
    return t


def densenet_bc(depth: int, k: int, compression: float = 0.5) -> Tally:
    """Huang et al. 2017: three dense blocks of (depth - 4) / 6 bottleneck layers (BN-ReLU-1x1
    conv to 4k, BN-ReLU-3x3 conv to k), transitions BN-ReLU-1x1 conv to floor(c * theta) and
    2x2 average pooling, a first conv of 2k filters, BN-ReLU before the pool."""
    layers = (depth - 4) // 6
    t = Tally()
    c = 2 * k
    t.conv(3, c, 3, 32)
    for stage, size in enumerate((32, 16, 8)):
        if stage:
            t.bn(c)
            out = math.floor(c * compression)
            t.conv(c, out, 1, 2 * size)  # the 1x1 conv runs before the pooling
            c = out
        for _ in range(layers):
            t.bn(c)
            t.conv(c, 4 * k, 1, size)
            t.bn(4 * k)
            t.conv(4 * k, k, 3, size)
            c += k
    t.bn(c)
    t.fc(c, 10)
    return t


def imagenet(
    block: str,
    repeats: tuple[int, ...],
    *,
    shortcut: str = "B",
    stride_on: str = "3x3",
    groups: int = 1,
    base_width: int = 64,
) -> Tally:
    """He et al. 2015 Table 1 (7x7/2 conv, 3x3/2 max pool, four stages on 56/28/14/7 maps);
    bottlenecks of width planes * base_width / 64 * groups (ResNeXt, Xie et al. 2017; Wide
    ResNet-50-2), stride on the 1x1 (v1) or the 3x3 (torchvision's v1.5)."""
    t = Tally()
    t.conv(3, 64, 7, 112)
    t.bn(64)
    c = 64
    for stage, (planes, reps) in enumerate(zip((64, 128, 256, 512), repeats, strict=True)):
        size = 56 >> stage
        for i in range(reps):
            stride = 2 if (i == 0 and stage > 0) else 1
            before = size * stride
            if block == "basic":
                out = planes
                t.conv(c, planes, 3, size)
                t.bn(planes)
                t.conv(planes, planes, 3, size)
                t.bn(planes)
            else:
                width = planes * base_width // 64 * groups
                out = 4 * planes
                t.conv(c, width, 1, size if stride_on == "1x1" else before)
                t.bn(width)
                t.conv(width, width, 3, size, groups=groups)
                t.bn(width)
                t.conv(width, out, 1, size)
                t.bn(out)
            if shortcut == "B" and (stride > 1 or c != out):
                t.conv(c, out, 1, size)
                t.bn(out)
            c = out
    t.fc(c, 1000)
    return t


BASIC = {18: (2, 2, 2, 2), 34: (3, 4, 6, 3)}
BOTTLENECK = {50: (3, 4, 6, 3), 101: (3, 4, 23, 3), 152: (3, 8, 36, 3)}


def cifar_fire(n: int, mids: tuple[int, int, int]) -> Tally:
    """The fire network of specs/cifar_fire_resnet20.yaml (a block type the spec defines): the
    CIFAR layout of He et al. 2015 with blocks of a 1x1 squeeze conv to ``mid`` then a 1x1
    and a 3x3 expand conv side by side to half the width each (Iandola et al. 2016),
    concatenated, BN; option B projections where the shape changes."""
    t = Tally()
    t.conv(3, 16, 3, 32)
    t.bn(16)
    c = 16
    for width, size, mid in zip((16, 32, 64), (32, 16, 8), mids, strict=True):
        for _ in range(n):
            t.conv(c, mid, 1, 2 * size if c != width and size < 32 else size)
            t.bn(mid)
            t.conv(mid, width // 2, 1, size)
            t.conv(mid, width // 2, 3, size)
            t.bn(width)
            if c != width:
                t.conv(c, width, 1, size)
                t.bn(width)
            c = width
    t.fc(c, 10)
    return t


CLOSED_FORM = {
    **{f"cifar_resnet{6 * n + 2}": cifar_basic(n) for n in (3, 5, 7, 9, 18, 200)},
    **{f"cifar_plain{6 * n + 2}": cifar_basic(n, "none") for n in (3, 5, 7, 9)},
    "cifar_resnet110_stochastic_depth": cifar_basic(18),
    "cifar_resnet_skip3": cifar_basic(6, convs=3),
    "cifar_highway_resnet20": cifar_basic(3, gate=True),
    "cifar_wrn_28_10": cifar_basic(4, "B", k=10, preact=True),
    "cifar_wrn_40_4": cifar_basic(6, "B", k=4, preact=True),
    "cifar_preact_resnet164": cifar_preact_bottleneck(18),
    "cifar_preact_resnet1001": cifar_preact_bottleneck(111),
    "cifar_densenet_bc_100_12": densenet_bc(100, 12),
    # squeeze 1/4, 1/4, 1/2 of 16, 32, 64, each rounded to a multiple of 8 (at least 8)
    "cifar_fire_resnet20": cifar_fire(3, (8, 8, 32)),
    "resnet18": imagenet("basic", BASIC[18]),
    "resnet34": imagenet("basic", BASIC[34]),
    "plain18": imagenet("basic", BASIC[18], shortcut="none"),
    "plain34": imagenet("basic", BASIC[34], shortcut="none"),
    **{f"resnet{d}": imagenet("bottleneck", r, stride_on="1x1") for d, r in BOTTLENECK.items()},
    **{f"resnet{d}_torchvision": imagenet("bottleneck", r) for d, r in BOTTLENECK.items()},
    "resnext50_32x4d": imagenet("bottleneck", BOTTLENECK[50], groups=32, base_width=4),
    "wide_resnet50_2": imagenet("bottleneck", BOTTLENECK[50], base_width=128),
}


def _summary(stem: str):  # type: ignore[no-untyped-def]
    return summarize(lower(load_spec(ROOT / "specs" / f"{stem}.yaml")))


def test_every_shipped_spec_has_a_closed_form() -> None:
    shipped = {p.stem for p in (ROOT / "specs").glob("*.yaml")}
    assert shipped == set(CLOSED_FORM)


@pytest.mark.parametrize("stem", sorted(CLOSED_FORM))
def test_params_and_macs_equal_the_closed_form(stem: str) -> None:
    expected = CLOSED_FORM[stem]
    info = _summary(stem)
    assert (info.params, info.macs) == (expected.params, expected.macs)


@pytest.mark.parametrize("stem", sorted(GOLDEN["params"]))
def test_closed_forms_reproduce_the_published_parameter_counts(stem: str) -> None:
    """The closed forms are checked against the published figures, so a wrong formula and a
    wrong compiler cannot agree by accident."""
    figure = GOLDEN["params"][stem]
    # the authors' projections are convs without BN; here (and in torchvision) they have one
    assert CLOSED_FORM[stem].params == figure["published"] + 2 * sum(figure["projection_bn"])


@pytest.mark.parametrize("stem", sorted(GOLDEN["gmacs"]))
def test_closed_forms_reproduce_the_published_multiply_adds(stem: str) -> None:
    figure = GOLDEN["gmacs"][stem]["figure"]
    digits = len(figure.split(".")[1])
    assert f"{CLOSED_FORM[stem].macs / 1e9:.{digits}f}" == figure


@pytest.mark.parametrize(
    "stem, tv_name",
    [
        ("resnet18", "resnet18"),
        ("resnet34", "resnet34"),
        ("resnet50_torchvision", "resnet50"),
        ("resnet101_torchvision", "resnet101"),
        ("resnet152_torchvision", "resnet152"),
        ("resnext50_32x4d", "resnext50_32x4d"),
        ("wide_resnet50_2", "wide_resnet50_2"),
    ],
)
def test_torchvision_parameter_counts_from_its_state_dict(stem: str, tv_name: str) -> None:
    """torchvision's own tensors (recorded in tests/data): weights and biases, not buffers."""
    counted = sum(
        math.prod(shape)
        for key, shape in TORCHVISION["keys"][tv_name]
        if key.endswith(("weight", "bias"))
    )
    assert counted == CLOSED_FORM[stem].params == _summary(stem).params


def test_grouped_convs_divide_the_cost_by_the_groups() -> None:
    """ResNeXt-50 32x4d and Wide ResNet-50-2 have the same widths (twice ResNet-50's inside
    the bottlenecks); only ResNeXt's 3x3 convs are split in 32 groups, so they cost 1/32 of
    the dense ones in parameters and multiply-adds."""
    grouped, dense = _summary("resnext50_32x4d"), _summary("wide_resnet50_2")
    params = macs = 0
    for stage, (planes, reps) in enumerate(zip((64, 128, 256, 512), BOTTLENECK[50], strict=True)):
        weights = (2 * planes) ** 2 * 9
        params += reps * weights
        macs += reps * weights * (56 >> stage) ** 2
    assert dense.params - grouped.params == params - params // 32
    assert dense.macs - grouped.macs == macs - macs // 32


@pytest.mark.parametrize("shortcut", ["A", "B", "C", "none"])
@pytest.mark.parametrize("n", [1, 2])
def test_cifar_shortcut_options(shortcut: str, n: int) -> None:
    """Option A pads (no parameters), B projects where the shape changes, C projects in
    every block, none is the plain net: each differs from the others by its projections."""
    text = (ROOT / "specs" / "cifar_resnet20.yaml").read_text()
    text = text.replace("shortcut: A", f"shortcut: {shortcut}").replace(
        "repeats: 3", f"repeats: {n}"
    )
    info = summarize(lower(load_spec(text)))
    expected = cifar_basic(n, shortcut)
    assert (info.params, info.macs) == (expected.params, expected.macs)
