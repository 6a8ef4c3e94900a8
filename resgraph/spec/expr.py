"""The arithmetic of block definitions: width, stride and group expressions such as
``width * base_width // 64 * groups`` or ``make_divisible(width / 4, 8)``.

A spec is data, never code: an expression is parsed into Python's syntax tree only to read
its structure (parsing runs nothing), every node is checked against a small grammar, and
:func:`evaluate` computes the value itself. The grammar: numbers, names (the block's
parameters), ``+ - * / //``, unary minus, parentheses, the functions ``min``, ``max``,
``round``, ``floor``, ``ceil``, ``make_divisible``, ``abs`` and ``log2``, and for
conditions (an op's ``when``)
the comparisons ``== != < <= > >=`` joined by ``and``, ``or``, ``not``, and the choice
``A if CONDITION else B``. Anything else
(attributes, subscripts, strings, lambdas, ``**``) is refused with a message that names it.
"""

from __future__ import annotations

import ast
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import lru_cache

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
    "abs": (abs, 1, 1),
    "log2": (math.log2, 1, 1),
}
_BINARY: dict[type, tuple[str, int]] = {  # operator: (text, precedence)
    ast.Add: ("+", 1),
    ast.Sub: ("-", 1),
    ast.Mult: ("*", 2),
    ast.Div: ("/", 2),
    ast.FloorDiv: ("//", 2),
}


_COMPARE: dict[type, Callable[[Number, Number], bool]] = {
    ast.Eq: lambda a, b: a == b,
    ast.NotEq: lambda a, b: a != b,
    ast.Lt: lambda a, b: a < b,
    ast.LtE: lambda a, b: a <= b,
    ast.Gt: lambda a, b: a > b,
    ast.GtE: lambda a, b: a >= b,
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
    return _parse(text)


@lru_cache(maxsize=4096, typed=True)  # 1 and 1.0 stay apart
def _parse(text: str | Number) -> Expr:
    """:func:`parse`, remembered: lowering reads the same expressions for every block (an
    Expr's tree is never changed)."""
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
    elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd | ast.Not):
        _check(node.operand, names, depth + 1)
    elif isinstance(node, ast.Compare) and all(type(op) in _COMPARE for op in node.ops):
        for part in (node.left, *node.comparators):
            _check(part, names, depth + 1)
    elif isinstance(node, ast.BoolOp):
        for part in node.values:
            _check(part, names, depth + 1)
    elif isinstance(node, ast.IfExp):
        for part in (node.test, node.body, node.orelse):
            _check(part, names, depth + 1)
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
    try:
        return _value(expr.tree, env)
    except ExprError:
        raise
    except (OverflowError, ValueError) as exc:  # inf to int, a float too large, nan
        raise ExprError(f"{python_text(expr)} cannot be computed here: {exc}") from None


def _value(node: ast.AST, env: Mapping[str, Number]) -> Number:
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.Name):
        return env[node.id]
    if isinstance(node, ast.UnaryOp):
        operand = _value(node.operand, env)
        if isinstance(node.op, ast.Not):
            return not operand
        return -operand if isinstance(node.op, ast.USub) else operand
    if isinstance(node, ast.Compare):
        left = _value(node.left, env)
        for op, part in zip(node.ops, node.comparators, strict=True):
            right = _value(part, env)
            if not _COMPARE[type(op)](left, right):
                return False
            left = right
        return True
    if isinstance(node, ast.IfExp):  # only the branch chosen is computed
        return _value(node.body if _value(node.test, env) else node.orelse, env)
    if isinstance(node, ast.BoolOp):
        values = (_value(v, env) for v in node.values)
        return all(values) if isinstance(node.op, ast.And) else any(values)
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


def substitute(expr: Expr, values: Mapping[str, Number]) -> Expr:
    """``expr`` with the names in ``values`` replaced by their numbers and every part that
    is left without names computed: ``(i + 1) * split`` with i = 2 is ``3 * split``."""
    used = expr.names & values.keys()
    if not used:
        return expr
    return _substitute(expr, tuple(sorted((n, type(values[n]), values[n]) for n in used)))


@lru_cache(maxsize=4096)
def _substitute(expr: Expr, values: tuple[tuple[str, type, Number], ...]) -> Expr:
    """:func:`substitute`, remembered: lowering puts the same values into the same
    expressions for many blocks (their types are part of the key: 1 and 1.0 write apart)."""
    found = {name: value for name, _, value in values}
    tree = _fold(_Replace(found).visit(ast.parse(python_text(expr), mode="eval").body))
    names: set[str] = set()
    _check(tree, names, 0)
    return Expr(tree, frozenset(names))


def simplify(expr: Expr) -> Expr:
    """A sum of whole multiples of names and a whole number, written in its shortest form
    (``2 * mid - mid`` -> ``mid``, ``(i + 1) * w - i * w`` -> ``w``); anything else as it is."""
    terms = _linear(expr.tree)
    if terms is None:
        return expr
    const = terms.pop("", 0)
    parts = [
        (name if abs(k) == 1 else f"{abs(k)} * {name}", k < 0)
        for name, k in sorted(terms.items())
        if k
    ]
    if const or not parts:
        parts.append((str(abs(const)), const < 0))
    text = ("-" if parts[0][1] else "") + parts[0][0]
    text += "".join(f" {'-' if neg else '+'} {part}" for part, neg in parts[1:])
    return parse(text)


def _linear(node: ast.AST) -> dict[str, int] | None:
    """``node`` as {name: whole coefficient, "": whole constant}, if it is one."""
    if isinstance(node, ast.Constant):
        return {"": node.value} if type(node.value) is int else None
    if isinstance(node, ast.Name):
        return {node.id: 1}
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
        inner = _linear(node.operand)
        sign = -1 if isinstance(node.op, ast.USub) else 1
        return None if inner is None else {k: sign * v for k, v in inner.items()}
    if not isinstance(node, ast.BinOp) or not isinstance(node.op, ast.Add | ast.Sub | ast.Mult):
        return None
    left, right = _linear(node.left), _linear(node.right)
    if left is None or right is None:
        return None
    if isinstance(node.op, ast.Mult):
        for scale, other in ((left, right), (right, left)):
            if set(scale) <= {""}:
                return {k: v * scale.get("", 0) for k, v in other.items()}
        return None  # a product of two names
    sign = 1 if isinstance(node.op, ast.Add) else -1
    out = dict(left)
    for k, v in right.items():
        out[k] = out.get(k, 0) + sign * v
    return out


class _Replace(ast.NodeTransformer):
    def __init__(self, values: Mapping[str, Number]) -> None:
        self.values = values

    def visit_Name(self, node: ast.Name) -> ast.expr:  # noqa: N802 (ast's naming)
        return ast.Constant(self.values[node.id]) if node.id in self.values else node


def _fold(node: ast.expr) -> ast.expr:
    """Compute the parts of a tree that read no name."""
    for field, value in ast.iter_fields(node):
        if isinstance(value, ast.expr):
            setattr(node, field, _fold(value))
        elif isinstance(value, list):
            setattr(node, field, [_fold(v) if isinstance(v, ast.expr) else v for v in value])
    if isinstance(node, ast.Constant):
        return node
    if _reads_names(node):
        return _identity(node)
    return ast.Constant(_value(node, {}))


def _identity(node: ast.expr) -> ast.expr:
    """``1 * x``, ``x * 1``, ``x + 0``, ``0 + x``, ``x - 0`` -> ``x``; ``0 * x`` -> ``0``;
    ``A if C else B`` whose condition is computed -> the branch it chooses."""
    if isinstance(node, ast.IfExp) and isinstance(node.test, ast.Constant):
        return node.body if node.test.value else node.orelse
    if not isinstance(node, ast.BinOp):
        return node
    left, right = node.left, node.right
    for const, other in ((left, right), (right, left)):
        if isinstance(const, ast.Constant) and type(const.value) is int:
            if isinstance(node.op, ast.Mult) and const.value in (0, 1):
                return other if const.value == 1 else ast.Constant(0)
            if isinstance(node.op, ast.Add) and const.value == 0:
                return other
    if isinstance(node.op, ast.Sub) and isinstance(right, ast.Constant) and right.value == 0:
        return left
    return node


def _reads_names(node: ast.AST) -> bool:
    """Whether a tree reads a name (a function's own name is not read)."""
    if isinstance(node, ast.Name):
        return True
    if isinstance(node, ast.Call):
        return any(_reads_names(a) for a in node.args)
    return any(_reads_names(child) for child in ast.iter_child_nodes(node))


def python_text(expr: Expr, prefix: str = "") -> str:
    """The expression written back as Python, from its tree (never the user's text), with
    only the parentheses its precedence needs: ``width * base_width // 64``; ``prefix`` goes
    before every name (``self.``)."""
    return _text(expr.tree, 0, prefix)


def _text(node: ast.AST, outer: int, prefix: str) -> str:
    if isinstance(node, ast.Constant):
        return repr(node.value)
    if isinstance(node, ast.Name):
        return prefix + node.id
    if isinstance(node, ast.UnaryOp) and not isinstance(node.op, ast.Not):
        sign = "-" if isinstance(node.op, ast.USub) else "+"
        return _paren(f"{sign}{_text(node.operand, 3, prefix)}", 3, outer)
    if isinstance(node, ast.Call):
        args = ", ".join(_text(a, 0, prefix) for a in node.args)
        return f"{node.func.id}({args})"  # type: ignore[attr-defined]
    if not isinstance(node, ast.BinOp):  # a condition: never bound, written as Python does
        return f"({ast.unparse(node)})" if outer else ast.unparse(node)
    text, level = _BINARY[type(node.op)]
    left, right = _text(node.left, level, prefix), _text(node.right, level + 1, prefix)
    return _paren(f"{left} {text} {right}", level, outer)


def _paren(text: str, level: int, outer: int) -> str:
    return f"({text})" if level < outer else text
