"""The arithmetic of block definitions: width, stride and group expressions such as
``width * base_width // 64 * groups`` or ``make_divisible(width / 4, 8)``.

A spec is data, never code: an expression is parsed into Python's syntax tree only to read
its structure (parsing runs nothing), every node is checked against a small grammar, and
:func:`evaluate` computes the value itself. The grammar: numbers, names (the block's
parameters), ``+ - * / //``, unary minus, parentheses, and the functions ``min``, ``max``,
``round``, ``floor``, ``ceil`` and ``make_divisible``. Anything else (attributes, subscripts,
strings, lambdas, comparisons, ``**``) is refused with a message that names it.
"""

from __future__ import annotations

import ast
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

MAX_LENGTH = 200  # characters of one expression
MAX_DEPTH = 24  # nesting of one expression
Number = int | float


class ExprError(ValueError):
    """An expression is not in the grammar or cannot be evaluated; the message says why."""


def make_divisible(value: Number, divisor: Number = 8, min_value: Number | None = None) -> int:
    """``value`` rounded to the nearest multiple of ``divisor`` (at least ``min_value``, by
    default ``divisor``), one multiple higher where rounding would lose more than 10% (the
    channel rule of MobileNetV2, Sandler et al. 2018, that timm's SE and RegNet widths use)."""
    divisor = int(divisor)
    if divisor < 1:
        raise ExprError(f"make_divisible needs a divisor of 1 or more, got {divisor}")
    least = int(divisor if min_value is None else min_value)
    rounded = max(least, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


def _round(value: Number) -> int:
    return int(math.floor(value + 0.5))  # half up, the same on every platform


FUNCTIONS: dict[str, tuple[Callable[..., Number], int, int]] = {
    # name: (function, fewest arguments, most arguments)
    "min": (min, 2, 8),
    "max": (max, 2, 8),
    "round": (_round, 1, 1),
    "floor": (math.floor, 1, 1),
    "ceil": (math.ceil, 1, 1),
    "make_divisible": (make_divisible, 1, 3),
}
_BINARY: dict[type, tuple[str, int]] = {  # operator: (text, precedence)
    ast.Add: ("+", 1),
    ast.Sub: ("-", 1),
    ast.Mult: ("*", 2),
    ast.Div: ("/", 2),
    ast.FloorDiv: ("//", 2),
}


@dataclass(frozen=True)
class Expr:
    """A parsed expression: its checked syntax tree and the names it reads."""

    tree: ast.expr
    names: frozenset[str]

    def __str__(self) -> str:
        return python_text(self)

    @property
    def simple(self) -> bool:
        """Only names, integers and ``+ - * //``: the same text computes it in Python, so
        generated code may write it as it is."""
        return all(
            isinstance(n, ast.Name | ast.BinOp | ast.Load | ast.operator)
            or (isinstance(n, ast.Constant) and type(n.value) is int)
            for n in ast.walk(self.tree)
        ) and not any(isinstance(n, ast.Div) for n in ast.walk(self.tree))


def parse(text: str | Number) -> Expr:
    """Parse ``text`` (or take a number as it is) into a checked :class:`Expr`."""
    if isinstance(text, bool) or not isinstance(text, str | int | float):
        raise ExprError(f"expected a number or an expression, got {text!r}")
    source = repr(text) if not isinstance(text, str) else text
    if len(source) > MAX_LENGTH:
        raise ExprError(f"an expression has at most {MAX_LENGTH} characters, got {len(source)}")
    try:
        tree = ast.parse(source.strip(), mode="eval").body
    except SyntaxError as exc:
        raise ExprError(f"cannot read {source!r} as arithmetic: {exc.msg}") from None
    names: set[str] = set()
    _check(tree, names, 0)
    return Expr(tree, frozenset(names))


def _check(node: ast.AST, names: set[str], depth: int) -> None:
    if depth > MAX_DEPTH:
        raise ExprError(f"an expression nests at most {MAX_DEPTH} deep")
    if isinstance(node, ast.Constant):
        if type(node.value) not in (int, float):
            raise ExprError(f"only numbers may be written, got {node.value!r}")
    elif isinstance(node, ast.Name):
        names.add(node.id)
    elif isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        _check(node.left, names, depth + 1)
        _check(node.right, names, depth + 1)
    elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
        _check(node.operand, names, depth + 1)
    elif isinstance(node, ast.Call):
        _check_call(node, names, depth)
    else:
        raise ExprError(
            f"{_describe(node)} is not allowed: use numbers, names, + - * / //, "
            f"parentheses and {', '.join(FUNCTIONS)}"
        )


def _check_call(node: ast.Call, names: set[str], depth: int) -> None:
    if not isinstance(node.func, ast.Name) or node.func.id not in FUNCTIONS:
        raise ExprError(
            f"unknown function {ast.unparse(node.func)!r}: the functions are {', '.join(FUNCTIONS)}"
        )
    if node.keywords:
        raise ExprError(f"{node.func.id}() takes its arguments by position only")
    _, least, most = FUNCTIONS[node.func.id]
    if not least <= len(node.args) <= most:
        count = str(least) if least == most else f"{least} to {most}"
        raise ExprError(f"{node.func.id}() takes {count} arguments, got {len(node.args)}")
    for arg in node.args:
        _check(arg, names, depth + 1)


def _describe(node: ast.AST) -> str:
    if isinstance(node, ast.BinOp | ast.BoolOp | ast.Compare | ast.UnaryOp):
        return f"the operator in {ast.unparse(node)!r}"
    return f"{type(node).__name__.lower()} {ast.unparse(node)!r}"


def evaluate(expr: Expr, env: Mapping[str, Number]) -> Number:
    """The value of ``expr`` with its names taken from ``env``."""
    missing = sorted(expr.names - env.keys())
    if missing:
        known = ", ".join(sorted(env))
        raise ExprError(f"unknown name {missing[0]!r} (known here: {known})")
    return _value(expr.tree, env)


def _value(node: ast.AST, env: Mapping[str, Number]) -> Number:
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.Name):
        return env[node.id]
    if isinstance(node, ast.UnaryOp):
        operand = _value(node.operand, env)
        return -operand if isinstance(node.op, ast.USub) else operand
    if isinstance(node, ast.Call):
        function = FUNCTIONS[node.func.id][0]  # type: ignore[attr-defined]
        return function(*(_value(a, env) for a in node.args))
    assert isinstance(node, ast.BinOp)
    left, right = _value(node.left, env), _value(node.right, env)
    if isinstance(node.op, ast.Div | ast.FloorDiv) and right == 0:
        raise ExprError(f"division by zero in {ast.unparse(node)!r}")
    if isinstance(node.op, ast.Add):
        return left + right
    if isinstance(node.op, ast.Sub):
        return left - right
    if isinstance(node.op, ast.Mult):
        return left * right
    if isinstance(node.op, ast.Div):
        return left / right
    return left // right


def python_text(expr: Expr) -> str:
    """The expression written back as Python, from its tree (never the user's text), with
    only the parentheses its precedence needs: ``width * base_width // 64``."""
    return _text(expr.tree, 0)


def _text(node: ast.AST, outer: int) -> str:
    if isinstance(node, ast.Constant):
        return repr(node.value)
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.UnaryOp):
        sign = "-" if isinstance(node.op, ast.USub) else "+"
        return _paren(f"{sign}{_text(node.operand, 3)}", 3, outer)
    if isinstance(node, ast.Call):
        args = ", ".join(_text(a, 0) for a in node.args)
        return f"{node.func.id}({args})"  # type: ignore[attr-defined]
    assert isinstance(node, ast.BinOp)
    text, level = _BINARY[type(node.op)]
    left, right = _text(node.left, level), _text(node.right, level + 1)
    return _paren(f"{left} {text} {right}", level, outer)


def _paren(text: str, level: int, outer: int) -> str:
    return f"({text})" if level < outer else text
