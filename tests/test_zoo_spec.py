"""The spec language's options for timm's ResNet zoo: shorthands, located refusals of
combinations that make no sense, the
compiler's refusal to build them yet, and the 81 specs of specs/timm/ checked against timm's
state_dict shapes (tests/data/timm_reference.json.gz, made by scripts/timm_fixture.py)."""

from __future__ import annotations

import gzip
import json
import math

import pytest

from helpers import ROOT
from resgraph import SpecError, load_spec
from resgraph.spec.schema import BasicBlockSpec, ECASpec, SESpec

FIXTURE = ROOT / "tests" / "data" / "timm_reference.json.gz"
FAMILIES = ROOT / "tests" / "data" / "timm_families_reference.json.gz"
RESNET_MODELS = set(json.loads(gzip.decompress(FIXTURE.read_bytes()))["models"])
ALL_SPECS = sorted((ROOT / "specs" / "timm").glob("*.yaml"))
# the specs of timm's resnet.py (built-in blocks); the other families' are checked from their
# own fixture in test_zoo_families.py
TIMM_SPECS = [p for p in ALL_SPECS if p.stem in RESNET_MODELS]

NET = """\
name: Test net
input: {channels: 3, size: 64}
num_classes: 10
stem: {layout: imagenet, width: 32}
block: {type: bottleneck, stride_on: 3x3}
shortcut: B
stages:
  - {width: 16, repeats: 2, stride: 1}
  - {width: 32, repeats: 2, stride: 2}
"""


def _errors(text: str, write_spec) -> list[str]:
    path = write_spec(text)
    with pytest.raises(SpecError) as info:
        load_spec(path)
    lines = str(info.value).splitlines()
    assert all(line.startswith(f"{path}:") for line in lines), lines
    return [line[len(str(path)) + 1 :] for line in lines]


# --- shorthands and the rules the schema states ---------------------------------------------


def test_shorthands_expand_to_mappings():
    wide = NET.replace("{width: 32, repeats", "{width: 64, repeats").replace(
        "{width: 16, repeats", "{width: 32, repeats"
    )
    spec = load_spec(
        wide.replace("stride_on: 3x3}", "stride_on: 3x3, attention: se, anti_alias: blur}")
        + "norm: group\n"
    )
    assert isinstance(spec.block.attention, SESpec) and spec.block.attention.ratio == 1 / 16
    assert spec.block.anti_alias.type == "blur"
    assert spec.norm.type == "group" and spec.norm.group_count() == 32


@pytest.mark.parametrize(
    ("channels", "ratio", "divisor", "expected"),
    [
        (256, 1 / 16, 8, 16),
        (64, 1 / 16, 8, 8),  # 4 rounds up to the divisor
        (2048, 0.25, 8, 512),
        (200, 1 / 16, 8, 16),  # 12.5 + 4 = 16.5 -> 16
        (196, 1 / 16, 8, 16),  # 12.25 + 4 -> 16
        (180, 1 / 16, 8, 8),  # 11.25 + 4 = 15.25 -> 8
        (100, 0.1, 1, 10),
    ],
)
def test_se_width_is_rounded_like_timms_make_divisible(channels, ratio, divisor, expected):
    # make_divisible(v, d, round_limit=0) = max(d, int(v + d / 2) // d * d)
    assert SESpec(ratio=ratio, divisor=divisor).channels(channels) == expected


@pytest.mark.parametrize(
    ("channels", "expected"), [(64, 3), (128, 5), (256, 5), (512, 5), (1024, 5), (2048, 7)]
)
def test_eca_kernel_follows_the_papers_rule(channels, expected):
    t = int(abs(math.log2(channels) + 1) / 2)
    assert ECASpec().kernel(channels) == expected == max(t if t % 2 else t + 1, 3)
    assert ECASpec(kernel_size=9).kernel(channels) == 9


def test_tiered_and_deep_stem_widths():
    stem = load_spec(NET.replace("width: 32}", "width: 64, type: tiered}")).stem
    assert stem.conv_widths() == (24, 32, 64)
    stem = load_spec(NET.replace("width: 32}", "width: 128, type: deep}")).stem
    assert stem.conv_widths() == (64, 64, 128)
    stem = load_spec(NET.replace("width: 32}", "width: 64, type: deep, inner_width: 40}")).stem
    assert stem.conv_widths() == (40, 40, 64)


def test_reduce_first_divides_the_first_conv_only():
    block = load_spec(NET.replace("stride_on: 3x3}", "groups: 4, base_width: 64, reduce_first: 2}"))
    assert block.block.conv_widths(64) == (128, 256, 256)
    assert BasicBlockSpec(reduce_first=2, convs=3).conv_widths(64) == (32, 64, 64)


# --- an option in use is part of the spec -----------------------------------------------------


def test_used_options_are_in_the_dump():
    spec = load_spec(NET.replace("stride_on: 3x3}", "stride_on: 3x3, reduce_first: 2}"))
    assert '"reduce_first":2' in spec.model_dump_json()
    assert load_spec(NET).model_dump_json() != spec.model_dump_json()


# --- refusals, each located at the value that decides -----------------------------------------


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        (
            "layout: imagenet, width: 32}",
            "layout: cifar, width: 32, type: deep}",
            "4:40: stem.type: a cifar stem is one 3x3 conv without a pool: 'type' needs layout "
            "'imagenet'",
        ),
        (
            "width: 32}",
            "width: 32, inner_width: 8}",
            "4:50: stem.inner_width: only deep and tiered stems have inner convs",
        ),
        (
            "width: 32}",
            "width: 32, type: tiered, inner_width: 3}",
            "4:64: stem.inner_width: a tiered stem of inner width 3 leaves a conv with no channels",
        ),
        (
            "stride_on: 3x3}",
            "stride_on: 3x3, attention: {type: eca, kernel_size: 4}}",
            "5:79: block.attention.kernel_size: must be odd (a centred 1-D conv), got 4",
        ),
        (
            "{width: 32, repeats: 2, stride: 2}",
            "{width: 32, repeats: 2, stride: 4}",
            None,  # no anti-aliasing: any stride is fine
        ),
    ],
)
def test_stem_and_block_refusals(write_spec, old, new, expected):
    text = NET.replace(old, new)
    if expected is None:
        assert load_spec(text)
        return
    errors = _errors(text, write_spec)
    assert len(errors) == 1 and errors[0].startswith(expected), errors


def test_anti_aliasing_only_halves(write_spec):
    text = NET.replace("stride_on: 3x3}", "stride_on: 3x3, anti_alias: avgpool}").replace(
        "repeats: 2, stride: 2}", "repeats: 2, stride: 4}"
    )
    assert _errors(text, write_spec) == [
        "9:37: stages[1].stride: anti-aliasing filters downsample by 2: a stride-4 stage cannot "
        "use the block's anti_alias"
    ]
    assert load_spec(text.replace("stride: 4}", "stride: 2}"))  # stride 1 and 2 are fine


def test_se_that_would_widen_a_branch_is_refused(write_spec):
    text = NET.replace(
        "block: {type: bottleneck, stride_on: 3x3}", "block: {type: basic, attention: se}"
    ).replace("{width: 16, repeats: 2", "{width: 4, repeats: 2")
    errors = _errors(text, write_spec)
    assert errors == [
        "5:33: block.attention: stages[0]: squeeze-and-excitation would widen its 4 channels to "
        "8 (ratio 0.0625 rounded to a multiple of 8): use a smaller divisor"
    ]
    assert load_spec(text.replace("attention: se", "attention: {type: se, divisor: 1}"))


def test_group_norm_groups_must_divide_every_normalised_width(write_spec):
    errors = _errors(NET + "norm: {type: group, groups: 12}\n", write_spec)
    assert errors == [
        "10:29: norm.groups: group norm with 12 groups needs channel counts divisible by 12: "
        "stem has a 32-channel layer"
    ]
    errors = _errors(NET.replace("width: 32}", "width: 64}") + "norm: group\n", write_spec)
    assert errors[0].startswith("10:7: norm: group norm with 32 groups")
    assert "stages[0] has a 16-channel layer" in errors[0]
    assert load_spec(NET + "norm: {type: group, groups: 16}\n").norm.group_count() == 16


def test_groups_belong_to_group_norm(write_spec):
    assert _errors(NET + "norm: {type: batch, groups: 4}\n", write_spec) == [
        "10:29: norm.groups: groups are for group norm: set type 'group'"
    ]


def test_reduce_first_that_breaks_the_grouped_conv_is_refused(write_spec):
    text = NET.replace("stride_on: 3x3}", "groups: 32, base_width: 4, reduce_first: 3}")
    errors = _errors(text, write_spec)
    assert errors == [
        "5:35: block.groups: stages[0]: the grouped 3x3 conv has 10 input or output channels, "
        "not divisible by 32 groups"
    ]


def test_reduce_first_that_leaves_no_channels_is_refused(write_spec):
    text = NET.replace("stride_on: 3x3}", "stride_on: 3x3, reduce_first: 32}")
    assert _errors(text, write_spec)[0].startswith(
        "5:57: block.reduce_first: stages[0]: a conv of the branch is left with no channels"
    )


def test_projection_kernel_rules(write_spec):
    assert _errors(NET + "projection_kernel: 2\n", write_spec) == [
        "10:20: projection_kernel: must be odd (a centred kernel), got 2"
    ]
    errors = _errors(
        NET.replace("shortcut: B", "shortcut: D") + "projection_kernel: 3\n", write_spec
    )
    assert errors == [
        "10:20: projection_kernel: option D projects with a 1x1 conv after its pool (used at "
        "shortcut): projection_kernel must be 1"
    ]
    assert load_spec(NET + "projection_kernel: 3\n").projection_kernel == 3


WIDTHS = NET.replace(
    "  - {width: 16, repeats: 2, stride: 1}\n",
    "  - {repeats: 2, stride: 1, widths: [[5, 6, 7], [8, 9, 7]]}\n",
)


def test_per_block_widths_are_accepted_and_checked(write_spec):
    spec = load_spec(WIDTHS)
    assert spec.stages[0].widths == [[5, 6, 7], [8, 9, 7]] and spec.stages[0].width is None
    cases = {
        "[[5, 6, 7], [8, 9, 7]]}": "[[5, 6, 7]]}",
        "[8, 9, 7]]}": "[8, 9]]}",
        "[8, 9, 7]]}\n": "[8, 9, 6]]}\n",
    }
    messages = [
        "8:37: stages[0].widths: 1 lists of widths for 2 blocks (repeats): give one per block",
        "8:49: stages[0].widths[1]: a bottleneck block has 3 convs: give 3 widths, got 2",
        "8:56: stages[0].widths[1][2]: every block of a stage puts out the same width (they add "
        "up): block 0 has 7, block 1 has 6",
    ]
    for (old, new), message in zip(cases.items(), messages, strict=True):
        assert _errors(WIDTHS.replace(old, new), write_spec) == [message]


def test_per_block_widths_exclude_width_and_width_factor(write_spec):
    both = WIDTHS.replace("{repeats: 2, stride: 1,", "{width: 16, repeats: 2, stride: 1,")
    assert _errors(both, write_spec) == [
        "8:13: stages[0].width: give either 'width' or per-block 'widths', not both"
    ]
    assert _errors(WIDTHS + "width_factor: 2\n", write_spec) == [
        "10:15: width_factor: stages[0] lists its conv widths exactly: width_factor cannot "
        "scale them"
    ]
    missing = NET.replace("{width: 16, repeats: 2, stride: 1}", "{repeats: 2, stride: 1}")
    assert _errors(missing, write_spec) == [
        "8:5: stages[0]: required field 'width' is missing (a bottleneck stage needs it)"
    ]


def test_grouped_per_block_widths_must_divide(write_spec):
    text = WIDTHS.replace("stride_on: 3x3}", "stride_on: 3x3, groups: 2}")
    assert _errors(text, write_spec) == [
        "5:51: block.groups: stages[0] block 0: the grouped 3x3 conv has 5 input or output "
        "channels, not divisible by 2 groups"
    ]


# --- the 81 timm specs against timm -------------------------------------------------------------


@pytest.fixture(scope="module")
def timm_reference():
    return json.loads(gzip.decompress(FIXTURE.read_bytes()))


def test_every_timm_model_has_exactly_one_spec(timm_reference):
    assert len(timm_reference["models"]) == 81
    assert [p.stem for p in TIMM_SPECS] == sorted(timm_reference["models"])
    families = json.loads(gzip.decompress(FAMILIES.read_bytes()))["models"]
    assert set(p.stem for p in ALL_SPECS) <= set(timm_reference["models"]) | set(families)


@pytest.mark.parametrize("path", ALL_SPECS, ids=lambda p: p.stem)
def test_timm_spec_loads_and_is_named_after_its_model(path):
    spec = load_spec(path)
    assert spec.name == path.stem
    assert path.read_text().startswith("# yaml-language-server: $schema=../schema.json")


def _branch_convs(block) -> int:
    return block.convs if isinstance(block, BasicBlockSpec) else 3


@pytest.mark.parametrize("path", TIMM_SPECS, ids=lambda p: p.stem)
def test_timm_spec_describes_timms_state_dict(path, timm_reference):
    """Every width, kernel and module the spec implies is the one timm's model has."""
    entry, spec = timm_reference["models"][path.stem], load_spec(path)
    shapes = {key: shape for key, shape, _ in entry["state"]}
    unsaved = {name for name, _ in entry["non_persistent"]}
    assert spec.input.size == entry["input_size"]
    assert sum(math.prod(s) for _, s, kind in entry["state"] if kind == "p") == entry["params"]

    stem = spec.stem
    if stem.type == "single":
        assert shapes["conv1.weight"] == [stem.width, 3, 7, 7]
    else:
        assert [shapes[f"conv1.{i}.weight"][0] for i in (0, 3, 6)] == list(stem.conv_widths())
    assert ("maxpool.0.weight" in shapes) == (stem.pool == "conv")
    assert ("maxpool.1.filt" in unsaved) == (
        stem.anti_alias is not None and stem.anti_alias.type == "blur"
    )
    assert ("bn1.running_mean" in shapes) == (spec.norm.type == "batch")

    channels = stem.width
    for si, stage in enumerate(spec.stages):
        block = spec.stage_block(si)
        for bi in range(stage.repeats):
            at = f"layer{si + 1}.{bi}"
            widths = (
                stage.widths[bi]
                if stage.widths
                else block.conv_widths(stage.width * spec.width_factor)
            )
            n = _branch_convs(block)
            assert [shapes[f"{at}.conv{c}.weight"][0] for c in range(1, n + 1)] == list(widths)
            assert f"{at}.conv{n + 1}.weight" not in shapes
            groups = getattr(block, "groups", 1)
            assert shapes[f"{at}.conv2.weight"][1] == widths[0] // groups
            attention = block.attention
            if isinstance(attention, SESpec):
                assert shapes[f"{at}.se.fc1.weight"] == [
                    attention.channels(widths[-1]),
                    widths[-1],
                    1,
                    1,
                ]
            elif isinstance(attention, ECASpec):
                assert shapes[f"{at}.se.conv.weight"] == [1, 1, attention.kernel(widths[-1])]
            else:
                assert not any(k.startswith(f"{at}.se.") for k in shapes)
            stride = stage.stride if bi == 0 else 1
            blur = block.anti_alias is not None and block.anti_alias.type == "blur"
            assert (f"{at}.aa.filt" in unsaved) == (blur and stride == 2)
            shortcut = spec.stage_shortcut(si)
            projects = stride > 1 or channels != widths[-1]
            conv = f"{at}.downsample.{1 if shortcut == 'D' else 0}.weight"
            assert (conv in shapes) == projects
            assert sum(k.startswith(f"{at}.downsample.") for k in shapes) == (
                0 if not projects else 6 if spec.norm.type == "batch" else 3
            )
            if projects:
                kernel = spec.projection_kernel if stride > 1 else 1
                assert shapes[conv] == [widths[-1], channels, kernel, kernel]
            channels = widths[-1]
    assert f"layer{len(spec.stages) + 1}.0.conv1.weight" not in shapes
    assert shapes["fc.weight"] == [spec.num_classes, channels]
