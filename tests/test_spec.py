"""The spec language: loading, validation, located errors, hostile input."""

from __future__ import annotations

import json

import pytest

from helpers import CIFAR20, ROOT, SPECS, run_cli
from resgraph import SpecError, load_spec


@pytest.mark.parametrize("path", SPECS, ids=lambda p: p.stem)
def test_every_shipped_spec_validates_and_carries_the_schema_comment(path):
    spec = load_spec(path)
    assert spec.name
    assert path.read_text().startswith("# yaml-language-server: $schema=schema.json")


def test_load_spec_accepts_text_and_paths(write_spec):
    from_text = load_spec(CIFAR20)
    from_file = load_spec(write_spec(CIFAR20))
    assert from_text.model_dump() == from_file.model_dump()
    assert from_text.stages[1].stride == 2
    assert from_text.block.type == "basic"  # "block: basic" is shorthand for {type: basic}


def _errors(text: str, write_spec) -> list[str]:
    path = write_spec(text)
    with pytest.raises(SpecError) as info:
        load_spec(path)
    lines = str(info.value).splitlines()
    assert all(line.startswith(f"{path}:") for line in lines), lines
    return [line[len(str(path)) + 1 :] for line in lines]


def test_negative_width_is_located(write_spec):
    text = CIFAR20.replace("{width: 32, repeats: 1", "{width: -64, repeats: 1")
    assert _errors(text, write_spec) == [
        "9:13: stages[1].width: must be a positive integer, got -64"
    ]


def test_unknown_key_suggests_the_closest_valid_one(write_spec):
    text = CIFAR20.replace("{width: 32, repeats: 1", "{width: 32, repaets: 1")
    errors = _errors(text, write_spec)
    assert errors == [
        "9:5: stages[1]: required field 'repeats' is missing",
        "9:17: stages[1]: unknown key 'repaets' (did you mean 'repeats'?)",
    ]


@pytest.mark.subprocess
def test_the_stems_old_kind_key_names_its_new_name(write_spec):
    text = CIFAR20.replace("stem: {layout: cifar", "stem: {kind: cifar")
    assert _errors(text, write_spec) == [
        "4:8: stem: 'kind' is now called 'layout' (same values): rename the key"
    ]
    res = run_cli("validate", str(write_spec(text, "old.yaml")))
    assert res.returncode == 1 and "Traceback" not in res.stderr
    assert res.stderr.count("\n") == 1 and "'kind' is now called 'layout'" in res.stderr
    # any other unknown key of the stem is still an unknown key
    other = CIFAR20.replace("stem: {layout: cifar", "stem: {layout: cifar, knd: 1")
    assert "unknown key 'knd'" in _errors(other, write_spec)[0]


def test_misspelt_block_type_suggests_the_right_one(write_spec):
    errors = _errors(CIFAR20.replace("block: basic", "block: botleneck"), write_spec)
    assert errors == [
        "5:8: block.type: expected 'basic', 'bottleneck', 'dense' or a type defined under "
        "'blocks', got 'botleneck' (did you mean 'bottleneck'?)"
    ]


def test_unknown_key_inside_a_block_mapping_is_located(write_spec):
    text = CIFAR20.replace("block: basic", "block: {type: bottleneck, groupz: 32}")
    assert _errors(text, write_spec) == [
        "5:27: block: unknown key 'groupz' (did you mean 'groups'?)"
    ]


def test_all_errors_of_a_file_are_reported_at_once_in_line_order(write_spec):
    text = (
        CIFAR20.replace("shortcut: A", "shortcut: E")
        .replace("num_classes: 10", "num_classes: ten")
        .replace("{width: 16, repeats: 1", "{width: 16.5, repeats: 1")
    )
    errors = _errors(text, write_spec)
    assert [e.split(":")[0] for e in errors] == ["3", "6", "8"]
    assert "must be an integer, got 'ten'" in errors[0]
    assert "expected 'A', 'B', 'C', 'D', 'identity' or 'none', got 'E'" in errors[1]
    assert "stages[0].width: must be an integer, got 16.5" in errors[2]


def test_no_coercion_of_strings_to_numbers(write_spec):
    errors = _errors(CIFAR20.replace("size: 32", 'size: "32"'), write_spec)
    assert errors == ["2:28: input.size: must be an integer, got '32'"]


def test_missing_required_field(write_spec):
    errors = _errors(CIFAR20.replace("num_classes: 10\n", ""), write_spec)
    assert errors == ["1:1: required field 'num_classes' is missing"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a: &x [1, 2]\nb: *x\n", "YAML aliases (*name) are not allowed"),
        ("- 1\n- 2\n", "the spec must be a mapping of fields, got a list"),
        ("just a string\n", "the spec must be a mapping of fields, got a scalar"),
        ("name: a\n---\nname: b\n", "a spec holds one YAML document"),
        ("name: a\nname: b\n", "duplicate key 'name'"),
        ("name: !!python/object:os.system ls\n", "invalid YAML"),
        ("name: [unclosed\n", "invalid YAML"),
        ("", "the spec is empty"),
        ("1: x\n", "keys must be plain strings"),
    ],
)
def test_malformed_yaml_gets_one_located_message(write_spec, text, message):
    path = write_spec(text)
    with pytest.raises(SpecError) as info:
        load_spec(path)
    assert message in str(info.value)
    assert str(path) in str(info.value)


def test_alias_bomb_is_refused_quickly(write_spec):
    lines = ['a0: &a0 ["x", "x", "x", "x", "x", "x", "x", "x", "x"]']
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, 12)]
    with pytest.raises(SpecError, match="aliases"):
        load_spec(write_spec("\n".join(lines) + "\n"))


def test_deep_nesting_and_huge_and_binary_files_are_refused(write_spec, tmp_path):
    with pytest.raises(SpecError, match="nested too deeply|invalid YAML"):
        load_spec(write_spec("name: " + "[" * 5000 + "]" * 5000 + "\n"))
    huge = tmp_path / "huge.yaml"
    huge.write_text("# " + "x" * (2 << 20))
    with pytest.raises(SpecError, match="spec file is larger than the limit of .* bytes"):
        load_spec(huge)
    junk = tmp_path / "junk.yaml"
    junk.write_bytes(bytes(range(256)) * 4)
    with pytest.raises(SpecError, match="not a text file"):
        load_spec(junk)
    latin = tmp_path / "latin.yaml"
    latin.write_bytes("name: caf\xe9\n".encode("latin-1"))
    with pytest.raises(SpecError, match="not UTF-8"):
        load_spec(latin)


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(SpecError, match="no such spec file"):
        load_spec(tmp_path / "nope.yaml")
    (tmp_path / "dir.yaml").mkdir()
    with pytest.raises(SpecError, match="is a directory"):
        load_spec(tmp_path / "dir.yaml")


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("{width: 32, repeats: 1", "{width: 100000, repeats: 1", "must be <= 65536, got 100000"),
        ("{width: 32, repeats: 1,", "{width: 32, repeats: 5000,", "must be <= 1000, got 5000"),
        ("size: 32", "size: 100000", "must be <= 2048, got 100000"),
        ("num_classes: 10", "num_classes: 0", "num_classes: must be a positive integer, got 0"),
    ],
)
def test_absurd_sizes_are_refused_with_documented_limits(write_spec, old, new, message):
    errors = _errors(CIFAR20.replace(old, new), write_spec)
    assert any(message in e for e in errors), errors


def test_total_blocks_limit_is_located_at_the_stage_that_crosses_it(write_spec):
    stages = "".join(f"  - {{width: 16, repeats: {n}}}\n" for n in (900, 900, 900, 5))
    text = CIFAR20.split("stages:")[0] + "stages:\n" + stages
    errors = _errors(text, write_spec)
    # stages[2] takes the total from 1,800 to 2,700: its repeats (line 10, column 26)
    assert errors == [
        "10:26: stages[2].repeats: at most 2000 blocks in all, got 2705 (this stage crosses it)"
    ]
    exact = CIFAR20.split("stages:")[0] + "stages:\n  - {width: 16, repeats: 1000}\n" * 1
    assert load_spec(exact + "  - {width: 16, repeats: 1000}\n")  # 2,000 is allowed


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        (
            "stages:\n",
            "stages:\n" + "  - {width: 16, repeats: 1}\n" * 15,
            "at most 16 stages, got 17",
        ),
        (
            "name: Test net",
            'name: a\ndescription: "' + "x" * 2001 + '"',
            "at most 2000 characters, got 2001",
        ),
    ],
)
def test_length_limits_speak_of_what_is_counted(write_spec, old, new, message):
    errors = _errors(CIFAR20.replace(old, new), write_spec)
    assert len(errors) == 1 and errors[0].endswith(message), errors
    assert "validation" not in errors[0] and "should have" not in errors[0]


def test_an_empty_stage_list_is_one_plain_message(write_spec):
    errors = _errors(CIFAR20.split("stages:")[0] + "stages: []\n", write_spec)
    assert errors == ["7:9: stages: at least 1 stage, got none"]


def test_a_non_ascii_name_is_refused_as_not_ascii(write_spec):
    errors = _errors(CIFAR20.replace("name: Test net", "name: Réseau"), write_spec)
    assert len(errors) == 1
    assert errors[0].startswith(
        "1:7: name: must start with an ASCII letter or digit and use only ASCII letters"
    )
    assert errors[0].endswith("got 'Réseau'")


def test_spec_name_cannot_carry_code(write_spec):
    errors = _errors(CIFAR20.replace("name: Test net", 'name: "x\\"\\"\\"; import os"'), write_spec)
    assert len(errors) == 1 and errors[0].startswith("1:7: name: must start with an ASCII letter")


@pytest.mark.subprocess
def test_validate_cli_exit_codes_and_no_traceback(write_spec):
    good = write_spec(CIFAR20, "good.yaml")
    bad = write_spec(CIFAR20.replace("width: 32", "width: -1"), "bad.yaml")
    ok = run_cli("validate", str(good))
    assert ok.returncode == 0 and "ok (Test net, " in ok.stdout
    res = run_cli("validate", str(good), str(bad))
    assert res.returncode == 1
    assert "Traceback" not in res.stderr
    assert res.stderr == f"error: {bad}:9:13: stages[1].width: must be a positive integer, got -1\n"
    missing = run_cli("validate", "nope.yaml")
    assert missing.returncode == 1 and missing.stderr == "error: nope.yaml: no such spec file\n"


@pytest.mark.subprocess
def test_validate_prints_one_error_line_per_problem(write_spec):
    bad = write_spec(
        CIFAR20.replace("shortcut: A", "shortcut: E").replace("num_classes: 10", "num_classes: x"),
        "bad.yaml",
    )
    res = run_cli("validate", str(bad))
    assert res.returncode == 1
    assert res.stderr.splitlines() == [
        f"error: {bad}:3:14: num_classes: must be an integer, got 'x'",
        f"error: {bad}:6:11: shortcut: expected 'A', 'B', 'C', 'D', 'identity' or 'none', got 'E'",
    ]


@pytest.mark.subprocess
def test_schema_command_matches_the_committed_schema():
    res = run_cli("schema")
    assert res.returncode == 0
    schema = json.loads(res.stdout)
    assert schema == json.loads((ROOT / "specs" / "schema.json").read_text()), (
        "specs/schema.json differs from the schema; if this change is intended, regenerate with: "
        "resgraph schema -o specs/schema.json"
    )
    assert "description" in schema["properties"]["shortcut"]


def _field(schema: dict, where: str) -> dict:
    owner, name = where.split(".")
    props = schema["properties"] if owner == "ModelSpec" else schema["$defs"][owner]["properties"]
    field = props[name]
    return next((f for f in field.get("anyOf", []) if f.get("type") == "integer"), field)


@pytest.mark.parametrize(
    ("where", "line"),
    [
        ("InputSpec.size", "input: {{channels: 3, size: {}}}"),
        ("InputSpec.channels", "input: {{channels: {}, size: 32}}"),
        ("ModelSpec.num_classes", "num_classes: {}"),
        ("ModelSpec.width_factor", "width_factor: {}"),
        ("StageSpec.repeats", "stages:\n  - {{width: 16, repeats: {}, stride: 1}}"),
        ("StageSpec.width", "stages:\n  - {{width: {}, repeats: 1, stride: 1}}"),
        ("StageSpec.stride", "stages:\n  - {{width: 16, repeats: 1, stride: {}}}"),
    ],
)
def test_the_schema_editors_use_states_the_limits_the_loader_enforces(where, line):
    """An editor checking a spec against schema.json and `resgraph validate` agree: the
    schema's bounds are accepted by load_spec and one step beyond them is refused."""
    schema = json.loads((ROOT / "specs" / "schema.json").read_text())
    field = _field(schema, where)
    head, _, _ = CIFAR20.partition("stages:")
    for value, ok in [
        (field["maximum"], True),
        (field["maximum"] + 1, False),
        (field["minimum"], True),
        (field["minimum"] - 1, False),
    ]:
        text = CIFAR20 if not line.startswith("stages") else head
        key = line.split(":")[0]
        text = "\n".join(x for x in text.splitlines() if not x.startswith(key + ":")) + "\n"
        text += line.format(value) + "\n"
        if ok:
            load_spec(text)
        else:
            with pytest.raises(SpecError, match=rf"got {value}"):
                load_spec(text)


def test_the_schema_states_the_stage_count_limit():
    schema = json.loads((ROOT / "specs" / "schema.json").read_text())
    stages = schema["properties"]["stages"]["anyOf"]  # a list, or a design space's choice
    limit = next(s for s in stages if s.get("type") == "array")["maxItems"]
    head = CIFAR20.partition("stages:")[0] + "stages:\n"
    assert load_spec(head + "  - {width: 16, repeats: 1}\n" * limit)
    with pytest.raises(SpecError, match=f"at most {limit} stages, got {limit + 1}"):
        load_spec(head + "  - {width: 16, repeats: 1}\n" * (limit + 1))
