"""The arithmetic grammar of block definitions: what it computes, what it writes back as
Python, and everything it refuses (a spec is data: nothing in it may run)."""

from __future__ import annotations

import pytest

from resgraph.spec.expr import (
    MAX_DEPTH,
    MAX_LENGTH,
    ExprError,
    evaluate,
    make_divisible,
    parse,
    python_text,
    simplify,
    substitute,
)

ENV = {"width": 64, "stride": 2, "groups": 32, "ratio": 0.25, "in_channels": 48}


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("width // 3", 21),
        ("width / 5", 12.8),
        ("width - in_channels", 16),
        ("width + stride * 3", 70),
        ("(width + stride) * 3", 198),
        ("width - (in_channels - stride)", 18),
        ("-stride + 1", -1),
        ("+stride", 2),
        ("width * ratio", 16.0),
        ("min(width, in_channels, 100)", 48),
        ("max(width, in_channels)", 64),
        ("round(width / 3)", 21),
        ("round(2.5)", 3),
        ("round(-2.5)", -2),
        ("floor(width / 5)", 12),
        ("ceil(width / 5)", 13),
        ("make_divisible(width * ratio)", 16),
        (7, 7),
        (0.5, 0.5),
    ],
)
def test_values(text, value):
    assert evaluate(parse(text), ENV) == value


@pytest.mark.parametrize(
    ("args", "value"),
    [
        ((4, 8), 8),  # never under the divisor
        ((37, 8), 40),  # nearest multiple, up
        ((33, 8), 32),  # nearest multiple, down: within 10%
        ((10, 8), 16),  # down to 8 would lose 20%: one multiple more
        ((90, 32), 96),
        ((3, 8, 4), 4),  # an explicit minimum
    ],
)
def test_make_divisible(args, value):
    assert make_divisible(*args) == value
    text = f"make_divisible({', '.join(map(str, args))})"
    assert evaluate(parse(text), {}) == value


@pytest.mark.parametrize(
    ("text", "written"),
    [
        ("width//2", "width // 2"),
        ("(width + stride) * 3", "(width + stride) * 3"),
        ("width + (stride * 3)", "width + stride * 3"),
        ("width - (in_channels - stride)", "width - (in_channels - stride)"),
        ("width * groups // 64", "width * groups // 64"),
        ("width // (groups * 2)", "width // (groups * 2)"),
        ("-(width - 1)", "-(width - 1)"),
        ("max(width,stride*2)", "max(width, stride * 2)"),
    ],
)
def test_written_back_as_python_with_the_same_value(text, written):
    expr = parse(text)
    assert python_text(expr) == written
    assert evaluate(parse(written), ENV) == evaluate(expr, ENV)


@pytest.mark.parametrize(
    ("text", "simple"),
    [
        ("width", True),
        ("width // 2 + stride", True),
        ("width * 4", True),
        ("width / 2", False),  # Python's / gives a float: the value is written instead
        ("width * 0.5", False),
        ("-width", False),
        ("round(width)", False),
    ],
)
def test_simple_expressions_are_the_ones_python_computes_alike(text, simple):
    assert parse(text).simple is simple


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("__import__('os').system('true')", "unknown function"),
        ("width.real", "attribute"),
        ("stages[0]", "subscript"),
        ("'64'", "only numbers"),
        ("True", "only numbers"),
        ("width ** 2", "operator"),
        ("width % 3", "operator"),
        ("width is 3", "operator"),
        ("width in 3", "operator"),
        ("lambda: 1", "lambda"),
        ("[width]", "list"),
        ("open('x')", "unknown function 'open'"),
        ("min(width)", "min() takes 2 to 8 arguments, got 1"),
        ("round(width, 2)", "round() takes 1 arguments, got 2"),
        ("max(width, b=1)", "by position only"),
        ("width +", "cannot read"),
        ("width; 1", "cannot read"),
        ("x" * (MAX_LENGTH + 1), f"at most {MAX_LENGTH} characters"),
        ("-" * (MAX_DEPTH + 2) + "1", f"nests at most {MAX_DEPTH}"),
    ],
)
def test_refused(text, message):
    with pytest.raises(ExprError) as info:
        parse(text)
    assert message in str(info.value)


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("stride > 1", True),
        ("stride >= 3", False),
        ("width == 64 and stride != 2", False),
        ("width < 3 or stride <= 2", True),
        ("not width", False),
        ("1 < stride < 3", True),
        ("1 < stride < 2", False),
        ("stride == 2 == 2", True),
    ],
)
def test_conditions(text, value):
    assert evaluate(parse(text), ENV) is value


@pytest.mark.parametrize(
    ("text", "values", "written"),
    [
        ("(i + 1) * split", {"i": 2}, "3 * split"),
        ("i * split", {"i": 0}, "0"),
        ("i * split + w", {"i": 1}, "split + w"),
        ("w - i", {"i": 0}, "w"),
        ("min(i, 3) * w", {"i": 5}, "3 * w"),
        ("make_divisible(i * 8) + w // (i + 1)", {"i": 1}, "8 + w // 2"),
        ("w - i", {"j": 1}, "w - i"),
    ],
)
def test_substitution_computes_what_no_longer_reads_a_name(text, values, written):
    result = substitute(parse(text), values)
    assert python_text(result) == written
    assert result.names == parse(written).names


@pytest.mark.parametrize(
    ("text", "written"),
    [
        ("2 * mid - mid", "mid"),
        ("(3 * w + 4) - (2 * w + 1)", "w + 3"),
        ("a - b - 3", "a - b - 3"),
        ("-a + 2", "-a + 2"),
        ("w - w", "0"),
        ("2 * (a - b)", "2 * a - 2 * b"),
        ("w * expansion", "w * expansion"),  # not a whole multiple: left as it is
        ("w // 2 - 1", "w // 2 - 1"),
    ],
)
def test_simplify_writes_whole_multiples_of_names_shortest(text, written):
    assert python_text(simplify(parse(text))) == written
    env = {"mid": 7, "w": 5, "a": 11, "b": 3, "expansion": 4}
    assert evaluate(parse(written), env) == evaluate(parse(text), env)


def test_booleans_and_other_values_are_not_expressions():
    for value in (True, None, [1], {"a": 1}):
        with pytest.raises(ExprError, match="expected a number or an expression"):
            parse(value)  # type: ignore[arg-type]


def test_names_are_read_and_checked_when_evaluated():
    expr = parse("width * base_width // 64")
    assert expr.names == {"width", "base_width"}
    with pytest.raises(ExprError, match="unknown name 'base_width'"):
        evaluate(expr, {"width": 64})


def test_division_by_zero_is_an_error_not_a_crash():
    for text in ("width / (stride - 2)", "width // (stride - 2)"):
        with pytest.raises(ExprError, match="division by zero"):
            evaluate(parse(text), ENV)
    with pytest.raises(ExprError, match="divisor of 1 or more"):
        evaluate(parse("make_divisible(width, 0)"), ENV)


def test_the_arity_limits_are_exact():
    eight = ", ".join(str(i) for i in range(8))
    assert evaluate(parse(f"min({eight})"), {}) == 0 and evaluate(parse(f"max({eight})"), {}) == 7
    with pytest.raises(ExprError, match=r"min\(\) takes 2 to 8 arguments, got 9"):
        parse(f"min({eight}, 8)")
    assert evaluate(parse("make_divisible(20, 8, 24)"), {}) == 24  # the third: a minimum
    with pytest.raises(ExprError, match=r"make_divisible\(\) takes 1 to 3 arguments, got 4"):
        parse("make_divisible(1, 2, 3, 4)")


def test_a_condition_is_written_back_without_parentheses():
    assert python_text(parse("index == 0 and stride > 1")) == "index == 0 and stride > 1"
    assert python_text(parse("not (stride > 1)")) == "not stride > 1"


def test_a_choice_computes_only_the_branch_its_condition_picks():
    assert evaluate(parse("width if stride > 1 else 1"), ENV) == ENV["width"]
    assert evaluate(parse("width if stride > 2 else 1"), ENV) == 1
    assert evaluate(parse("1 if stride > 1 else width // 0"), ENV) == 1  # the other: never run
    assert parse("a if c else b").names == {"a", "b", "c"}
    assert not parse("a if c else b").simple


@pytest.mark.parametrize(
    ("text", "values", "written"),
    [
        ("4 * g if i < b else g", {"i": 0, "b": 1}, "4 * g"),
        ("4 * g if i < b else g", {"i": 1, "b": 1}, "g"),
        ("4 * g if i < b else g", {"i": 0}, "4 * g if 0 < b else g"),
        ("w // r if r > 1 else w", {"r": 1}, "w"),
    ],
)
def test_a_choice_whose_condition_is_computed_is_replaced_by_its_branch(text, values, written):
    assert python_text(substitute(parse(text), values)) == written


def test_abs_and_log2():
    assert evaluate(parse("abs(1 - width)"), ENV) == 63
    assert evaluate(parse("log2(width)"), ENV) == 6.0
    with pytest.raises(ExprError, match="cannot be computed"):
        evaluate(parse("log2(width - 64)"), ENV)
