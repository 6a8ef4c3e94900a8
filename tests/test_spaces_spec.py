"""Design spaces as specs: ranges and choices, drawn like spec files, composed with base: and
--set, refused where one network is needed, and RegNet's quantised-linear generator."""

from __future__ import annotations

import random

import pytest
import yaml

from helpers import ROOT, run_cli
from resgraph import SpecError, load_spec
from resgraph.spec.compose import construct
from resgraph.spec.regnet import RegNetParams, XStage, compatible, stage_widths
from resgraph.spec.space import Space
from resgraph.summary import summarize

SPACE = """\
name: Small space
input: {size: 32}
num_classes: 10
stem: {layout: cifar, width: 16}
block: {choice: [basic, bottleneck]}
stages:
  - {width: {range: [8, 64], step: 8}, repeats: {range: [1, 3]}, stride: 1}
  - {width: {range: [16, 128], log: true}, repeats: 1, stride: 2}
head: {dropout: {range: [0.0, 0.5]}}
"""

REGNETX_400MF = """\
name: RegNetX-400MF
input: {size: 224}
num_classes: 1000
stem: {layout: imagenet, width: 32, kernel: 3, pool: none}
regnet: {w0: 24, wa: 24.48, wm: 2.54, depth: 22, group_width: 16}
"""


def _draws(space, count, seed=0):
    rng = random.Random(seed)
    return [construct(space.draw(rng)) for _ in range(count)]


def test_every_draw_stays_inside_its_ranges_and_choices(write_spec):
    space = Space(write_spec(SPACE))
    seen_blocks, seen_repeats = set(), set()
    for data in _draws(space, 200):
        first, second = data["stages"]
        assert first["width"] % 8 == 0 and 8 <= first["width"] <= 64
        assert isinstance(second["width"], int) and 16 <= second["width"] <= 128
        assert 0.0 <= data["head"]["dropout"] <= 0.5
        seen_blocks.add(data["block"])
        seen_repeats.add(first["repeats"])
        space.validate(space.draw(random.Random(0)))
    assert seen_blocks == {"basic", "bottleneck"}
    assert seen_repeats == {1, 2, 3}  # both ends of an integer range are drawn


def test_a_log_range_draws_small_values_as_often_as_large_ones(write_spec):
    space = Space(write_spec(SPACE))
    widths = [d["stages"][1]["width"] for d in _draws(space, 600)]
    below = sum(w < 45 for w in widths)  # sqrt(16 * 128) ~ 45: the log-uniform median
    assert 0.4 < below / len(widths) < 0.6


def test_the_same_seed_draws_the_same_networks(write_spec):
    space = Space(write_spec(SPACE))
    assert _draws(space, 20, seed=3) == _draws(space, 20, seed=3)
    assert _draws(space, 20, seed=3) != _draws(space, 20, seed=4)


def test_a_space_composes_with_base_and_set(tmp_path):
    (tmp_path / "space.yaml").write_text(SPACE)
    (tmp_path / "child.yaml").write_text(
        "base: space.yaml\nstages:\n  - {width: 16, repeats: {choice: [4, 5]}, stride: 1}\n"
    )
    space = Space(tmp_path / "child.yaml", ["block=basic"])
    for data in _draws(space, 30):
        assert data["block"] == "basic"
        assert data["stages"][0]["width"] == 16 and data["stages"][0]["repeats"] in (4, 5)
    space = Space(tmp_path / "space.yaml", ["stages[0].width={range: [24, 24]}"])
    assert {d["stages"][0]["width"] for d in _draws(space, 10)} == {24}


def test_a_drawn_value_the_schema_refuses_is_located_at_its_range(write_spec):
    path = write_spec(SPACE.replace("[0.0, 0.5]", "[1.0, 2.0]"))
    space = Space(path)
    with pytest.raises(SpecError) as info:
        space.validate(space.draw(random.Random(0)))
    assert str(info.value).startswith(f"{path}:9:17: head.dropout: must be < 1")


def test_a_range_none_of_whose_values_is_valid_is_a_located_error(write_spec):
    path = write_spec(SPACE.replace("[0.0, 0.5]", "[1.0, 2.0]"))
    with pytest.raises(SpecError) as info:
        Space(path).check(random.Random(0))
    assert str(info.value) == (
        f"{path}:9:17: head.dropout: no value of this range is valid: must be < 1.0, got 1.0"
    )


def test_a_range_with_some_valid_values_passes_the_check(write_spec):
    Space(write_spec(SPACE.replace("[0.0, 0.5]", "[0.5, 2.0]"))).check(random.Random(0))


def test_a_choice_none_of_whose_values_is_valid_is_a_located_error(write_spec):
    path = write_spec(SPACE.replace("[basic, bottleneck]", "[basik, dense2]"))
    with pytest.raises(SpecError) as info:
        Space(path).check(random.Random(0))
    assert str(info.value).startswith(f"{path}:5:8: block: no value of this choice is valid")


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("{range: [8]}", "range must be a list of two numbers, [lo, hi]"),
        ("{range: [64, 8]}", "range [64, 8] is empty: lo must not be above hi"),
        ("{range: [0, 8], log: true}", "a log range needs lo > 0, got 0"),
        ("{range: [8, 64], step: 0}", "step must be a number above 0"),
        ("{range: [8, 64], step: 8, log: true}", "a range takes log or step, not both"),
        ("{range: [8, 64], sigma: 2}", "unknown key 'sigma' in a range"),
        ("{choice: []}", "choice must be a non-empty list of at most 1000 values"),
        ("{choice: 8}", "choice must be a non-empty list of at most 1000 values"),
        ("{choice: [" + ", ".join(["8"] * 1001) + "]}", "choice must be a non-empty list of at"),
        ("{range: [8, 64], log: 1}", "log must be true or false"),
        ("{range: [8, .inf]}", "range must be a list of two numbers, [lo, hi]"),
        ("{range: [8, 16, 32]}", "range must be a list of two numbers, [lo, hi]"),
        ("{choice: [8], range: [1, 2]}", "a choice is written {choice: [a, b, ...]}"),
        ("{range: ['8', 64]}", "range must be a list of two numbers, [lo, hi]"),
        ("{range: [true, 64]}", "range must be a list of two numbers, [lo, hi]"),
    ],
)
def test_a_malformed_range_or_choice_is_a_located_error(write_spec, value, message):
    path = write_spec(SPACE.replace("{range: [8, 64], step: 8}", value))
    with pytest.raises(SpecError) as info:
        Space(path)
    assert str(info.value).startswith(f"{path}:7:13: stages[0].width: {message}")


def test_a_range_is_data_never_code(write_spec):
    path = write_spec(SPACE.replace("[8, 64]", "['__import__(\"os\")', 64]"))
    with pytest.raises(SpecError, match="range must be a list of two numbers"):
        Space(path)


@pytest.mark.subprocess
@pytest.mark.parametrize("command", ["validate", "summary", "build", "show"])
def test_a_command_that_needs_one_network_refuses_a_space(command, tmp_path):
    path = tmp_path / "space.yaml"
    path.write_text(SPACE)
    args = [command, str(path)] + (["-o", str(tmp_path / "out")] if command == "build" else [])
    result = run_cli(*args)
    assert result.returncode == 1, result
    first, *rest = result.stderr.splitlines()
    assert first == (
        f"error: {path}:5:8: block: a choice makes this spec a design space, not one "
        "network: draw networks from it with 'resgraph sample'"
    )
    assert rest in ([], ["nothing was written"])
    assert not (tmp_path / "out").exists()


def test_a_range_given_by_set_is_refused_at_the_flag(write_spec):
    path = write_spec(
        SPACE.replace("{choice: [basic, bottleneck]}", "basic")
        .replace("{range: [8, 64], step: 8}", "8")
        .replace("{range: [1, 3]}", "1")
        .replace("{range: [16, 128], log: true}", "16")
        .replace("{range: [0.0, 0.5]}", "0.0")
    )
    load_spec(path)
    with pytest.raises(SpecError) as info:
        load_spec(path, ["stages[0].width={range: [8, 16]}"])
    assert str(info.value).startswith("--set 'stages[0].width={range: [8, 16]}': stages[0].width")


# --- RegNet's quantised-linear widths ----------------------------------------------------


@pytest.mark.parametrize(
    ("params", "stages"),
    [
        # RegNetX-400MF and -3.2GF (Radosavovic et al. 2020, Table; pycls model zoo)
        (
            dict(w0=24, wa=24.48, wm=2.54, depth=22, group_width=16),
            [(32, 1, 16), (64, 2, 16), (160, 7, 16), (384, 12, 16)],
        ),
        (
            dict(w0=88, wa=26.31, wm=2.25, depth=25, group_width=48),
            [(96, 2, 48), (192, 6, 48), (432, 15, 48), (1008, 2, 48)],
        ),
        # RegNetX-200MF: w0=24, wa=36.44, wm=2.49, d=13, g=8
        (
            dict(w0=24, wa=36.44, wm=2.49, depth=13, group_width=8),
            [(24, 1, 8), (56, 1, 8), (152, 4, 8), (368, 7, 8)],
        ),
    ],
)
def test_regnet_widths_match_the_published_networks(params, stages):
    assert stage_widths(RegNetParams(**params)) == stages


def test_regnetx_400mf_has_the_published_parameters_and_multiply_adds():
    """pycls's RegNetX-400MF: 5,157,512 parameters, 0.40 GMACs ("400MF"); timm's regnetx_004
    counts the same parameters."""
    info = summarize(load_spec(REGNETX_400MF))
    assert info.params == 5_157_512
    assert abs(info.macs - 400e6) / 400e6 < 0.01
    # RegNet's stem: one 3x3/2 conv to 32 channels at 112x112 and its BN, no pool
    assert info.stages[0].name == "stem"
    assert info.stages[0].macs == 3 * 32 * 9 * 112 * 112
    assert info.stages[0].params == 3 * 32 * 9 + 2 * 32


def test_group_width_is_capped_and_the_bottleneck_width_made_a_multiple_of_it():
    assert compatible(XStage(depth=1, width=24, group_width=32)) == (24, 24, 24)
    assert compatible(XStage(depth=1, width=40, group_width=16)) == (32, 32, 16)
    assert compatible(XStage(depth=1, width=56, group_width=16)) == (64, 64, 16)
    assert compatible(XStage(depth=1, width=64, bottleneck_ratio=2, group_width=24)) == (
        24,
        48,
        24,
    )


def test_regnet_lowers_to_x_blocks_with_groups_of_the_group_width():
    spec = load_spec(REGNETX_400MF)
    assert [s.repeats for s in spec.stages] == [1, 2, 7, 12]
    assert [s.block.groups for s in spec.stages] == [2, 4, 10, 24]
    assert [s.stride for s in spec.stages] == [2, 2, 2, 2]
    assert spec.stages[2].widths[0] == [160, 160, 160]


def test_a_bad_regnet_parameter_is_located(write_spec):
    path = write_spec(REGNETX_400MF.replace("wm: 2.54", "wm: 0.5"))
    with pytest.raises(SpecError) as info:
        load_spec(path)
    assert str(info.value).startswith(f"{path}:5:33: regnet.wm: input should be greater than 1")


def test_regnet_beside_stages_is_refused(write_spec):
    path = write_spec(REGNETX_400MF + "stages: [{width: 8, repeats: 1}]\n")
    with pytest.raises(SpecError, match="regnet: write one of stages or regnet or anynet"):
        load_spec(path)


def test_a_stage_count_the_rule_does_not_give_is_an_error(write_spec):
    path = write_spec(REGNETX_400MF.replace("group_width: 16}", "group_width: 16, stages: 2}"))
    with pytest.raises(SpecError, match="the rule gives 4 stages, not 2"):
        load_spec(path)


@pytest.mark.parametrize("name", ["anynetx", "regnetx", "cifar_regnet"])
def test_the_shipped_spaces_draw_valid_networks(name):
    space = Space(ROOT / "specs" / "spaces" / f"{name}.yaml")
    rng = random.Random(0)
    space.check(rng)
    valid = 0
    for _ in range(20):
        try:
            space.validate(space.draw(rng))
            valid += 1
        except SpecError:
            pass
    assert valid >= 4


def test_cifar_regnet_draws_have_two_stages_on_the_cifar_stem():
    space = Space(ROOT / "specs" / "spaces" / "cifar_regnet.yaml")
    rng, found = random.Random(1), 0
    for _ in range(60):
        try:
            spec = space.validate(space.draw(rng))
        except SpecError:
            continue
        found += 1
        assert len(spec.stages) == 2 and spec.stem.layout == "cifar"
        assert 6 <= sum(s.repeats for s in spec.stages) <= 16
    assert found > 0


def test_a_space_file_holds_nothing_yaml_would_construct_as_an_object(write_spec):
    path = write_spec(
        SPACE.replace("{choice: [basic, bottleneck]}", "!!python/object:os.system {}")
    )
    with pytest.raises(SpecError):
        Space(path)
    assert yaml  # the file is read by the safe loader only
