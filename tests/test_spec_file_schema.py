"""specs/schema.json as an editor uses it: every shipped spec, base-derived spec and design
space passes it (checked with the jsonschema package), and it flags what the loader refuses."""

from __future__ import annotations

import json
import random

import jsonschema
import pytest
import yaml
from test_spaces_spec import REGNETX_400MF

from helpers import CIFAR20, ROOT
from resgraph import SpecError, load_spec
from resgraph.spec.file_schema import file_schema
from resgraph.spec.space import Space

SCHEMA = json.loads((ROOT / "specs" / "schema.json").read_text())
VALIDATOR = jsonschema.Draft202012Validator(SCHEMA)
SHIPPED = sorted((ROOT / "specs").rglob("*.yaml"))

REGNET = REGNETX_400MF


def _problems(text: str) -> list[str]:
    """Each schema error as 'where: message' (where: the dotted path of the value)."""
    data = yaml.safe_load(text)
    found = VALIDATOR.iter_errors(data)
    return [".".join(map(str, e.absolute_path)) + ": " + e.message for e in found]


def _reasons(text: str) -> list[str]:
    """Every error and, under an alternative none of which matched, each alternative's."""
    stack, out = list(VALIDATOR.iter_errors(yaml.safe_load(text))), []
    while stack:
        error = stack.pop()
        out.append(".".join(map(str, error.absolute_path)) + ": " + error.message)
        stack += error.context
    return out


def test_the_committed_schema_is_a_valid_json_schema_and_the_one_the_code_gives():
    jsonschema.Draft202012Validator.check_schema(SCHEMA)
    assert SCHEMA == json.loads(json.dumps(file_schema()))


def test_every_spec_under_specs_is_checked():
    kinds = {p.parent.name for p in SHIPPED}
    assert {"specs", "timm", "bases", "spaces"} <= kinds
    assert len(SHIPPED) > 100


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: str(p.relative_to(ROOT / "specs")))
def test_every_shipped_spec_passes_the_schema(path):
    assert _problems(path.read_text()) == []


@pytest.mark.parametrize(
    ("old", "new", "reason"),
    [
        (
            "w0: 24",
            "w_0: 24",
            "regnet: Additional properties are not allowed ('w_0' was unexpected)",
        ),
        ("depth: 22", "depth: 22, slope: 3", "regnet: Additional properties are not allowed"),
        ("wm: 2.54", "wm: 0.5", "regnet.wm: 0.5 is less than or equal to the minimum of 1.0"),
        ("group_width: 16", "group_width: '16'", "regnet.group_width: '16' is not of type"),
    ],
)
def test_a_wrong_key_or_value_in_a_regnet_block_is_flagged_by_the_schema_and_the_loader(
    old, new, reason
):
    text = REGNET.replace(old, new)
    assert {p.split(":")[0] for p in _problems(text)} == {"regnet"}
    assert any(r.startswith(reason) for r in _reasons(text)), _reasons(text)
    with pytest.raises(SpecError, match=r"regnet\."):
        load_spec(text)


def test_the_regnet_block_and_the_right_stem_pass():
    assert _problems(REGNET) == []
    assert _problems(REGNET.replace("pool: none", "pool: nothing")) != []


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (REGNET.replace("regnet:", "anynet:"), "unknown key 'w0'"),
        (REGNET + "stages: [{width: 8, repeats: 1}]\n", "write one of stages or regnet"),
        (REGNET.replace("regnet: {", "stem_x: {"), "required field 'stages' is missing"),
    ],
)
def test_the_schema_needs_stages_or_one_generator_as_the_loader_does(text, message):
    assert _problems(text) != []
    with pytest.raises(SpecError, match=message):
        load_spec(text)


def test_a_spec_with_base_may_leave_out_what_its_base_gives(write_spec):
    base = write_spec(CIFAR20, "base.yaml")
    derived = f"base: {base.name}\nname: derived\n"
    assert _problems(derived) == []
    assert load_spec(write_spec(derived, "derived.yaml")).stages
    assert _problems("name: derived\n") != []
    assert _problems(derived + "block: {attention: se}\n") == []  # the base's block type
    assert _problems(derived + "block: {attention: sse}\n") != []
    assert _problems(derived + "stem: {widht: 8}\n") != []


SPACE = REGNET.replace("w0: 24", "w0: {range: [8, 256], step: 8}").replace(
    "group_width: 16", "group_width: {choice: [8, 16]}"
)


@pytest.mark.parametrize(
    ("old", "new", "ok"),
    [
        ("", "", True),
        ("step: 8", "stpe: 8", False),
        ("[8, 256]", "[8]", False),
        ("[8, 256]", "['8', 256]", False),
        ("step: 8", "step: 0", False),
        ("step: 8", "log: 1", False),
        ("{choice: [8, 16]}", "{choice: []}", False),
        ("{choice: [8, 16]}", "{choice: [8, 16], range: [1, 2]}", False),
        ("{choice: [8, 16]}", "{range: [8, 16]}", True),
        ("pool: none", "pool: {choice: [none, max]}", True),
        ("pool: none", "pool: {range: [1, 2]}", False),  # not a number field
        ("name: RegNetX-400MF", "base: {choice: [a.yaml]}\nname: x", False),  # not drawn
    ],
)
def test_ranges_and_choices_pass_or_fail_the_schema_as_they_pass_or_fail_the_loader(
    write_spec, old, new, ok
):
    text = SPACE.replace(old, new)
    assert (_problems(text) == []) is ok, _problems(text)
    if ok:
        Space(write_spec(text)).check(random.Random(0))
    else:
        with pytest.raises(SpecError):
            Space(write_spec(text)).check(random.Random(0))


def test_the_schema_flags_a_choice_value_the_field_never_takes():
    """Stricter than the loader, which refuses a choice only when none of its values is
    valid: an editor points at the value that can never be drawn into a valid network."""
    text = SPACE.replace("{choice: [8, 16]}", "{choice: [8, '16']}")
    assert any(
        r.startswith("regnet.group_width.choice.1: '16' is not of type") for r in _reasons(text)
    )


@pytest.mark.parametrize(
    ("old", "new", "ok"),
    [
        (
            "  - {width: 32, repeats: 1, stride: 2}",
            "  - {choice: [{width: 32}, {width: 64}]}",
            True,
        ),
        ("{width: 32, repeats: 1, stride: 2}", "{width: 32, repeats: {range: [1, 3]}}", True),
        ("{width: 32, repeats: 1, stride: 2}", "{choice: [{width: 32, repaets: 1}]}", False),
    ],
)
def test_a_list_item_may_be_a_choice_of_items_and_hold_ranges(write_spec, old, new, ok):
    text = CIFAR20.replace(old, new).replace("{width: 32}", "{width: 32, repeats: 1}")
    text = text.replace("{width: 64}", "{width: 64, repeats: 1}")
    assert (_problems(text) == []) is ok, _problems(text)
    if ok:
        Space(write_spec(text)).check(random.Random(0))
