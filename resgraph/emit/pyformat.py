"""A tiny layout engine for the Python expressions the source emitter writes.

Calls that fit in the line stay on one line; longer ones break one argument per line with
a trailing comma, the way black and ruff format them, so generated files are already
formatted and need no formatter at build time.
"""

from __future__ import annotations

from dataclasses import dataclass, field

WIDTH = 100


@dataclass(frozen=True)
class Call:
    func: str
    args: tuple[object, ...] = ()
    kwargs: tuple[tuple[str, object], ...] = field(default=())


@dataclass(frozen=True)
class Tuple:
    items: tuple[object, ...]


@dataclass(frozen=True)
class Dict:
    """``{"key": value, ...}`` with string keys."""

    items: tuple[tuple[str, object], ...]


@dataclass(frozen=True)
class Repeat:
    """``*(call for _ in range(count))`` or ``*(call for var in values)``."""

    call: object
    count: int = 0
    var: str = "_"
    values: Tuple | None = None


@dataclass(frozen=True)
class Commented:
    """An expression with a comment after it: it forces the layout that ends its line."""

    expr: object
    note: str


def _commented(e: object) -> bool:
    if isinstance(e, Commented):
        return True
    if isinstance(e, Call):
        return any(map(_commented, e.args)) or any(_commented(v) for _, v in e.kwargs)
    if isinstance(e, Tuple):
        return any(map(_commented, e.items))
    if isinstance(e, Dict):
        return any(_commented(v) for _, v in e.items)
    return isinstance(e, Repeat) and _commented(e.call)


def _line(text: str, e: object) -> str:
    """An item of a broken-up call: its text, a comma and its comment if it has one."""
    return f"{text},  # {e.note}" if isinstance(e, Commented) else f"{text},"


def flat(e: object) -> str:
    if isinstance(e, Commented):
        return flat(e.expr)
    if isinstance(e, Call):
        parts = [flat(a) for a in e.args] + [f"{k}={flat(v)}" for k, v in e.kwargs]
        return f"{e.func}({', '.join(parts)})"
    if isinstance(e, Tuple):
        inner = ", ".join(flat(i) for i in e.items)
        return f"({inner},)" if len(e.items) == 1 else f"({inner})"
    if isinstance(e, Repeat):
        return f"*({flat(e.call)} {_loop(e)})"
    if isinstance(e, Dict):
        return "{" + ", ".join(f'"{k}": {flat(v)}' for k, v in e.items) + "}"
    return str(e)


def _loop(e: Repeat) -> str:
    if e.values is None:
        return f"for _ in range({e.count})"
    return f"for {e.var} in {flat(e.values)}"


def render(e: object, indent: int = 0, lead: int = 0, tail: int = 1) -> str:
    """Lay out ``e`` starting at column ``indent + lead`` (``lead``: text already on the line,
    e.g. ``self.layer1 = ``) and followed by ``tail`` characters (an argument's comma, or
    nothing); continuation lines are indented relative to ``indent``."""
    if isinstance(e, Commented):  # the expression ends the line: the comment follows it
        return f"{render(e.expr, indent, lead)}  # {e.note}"
    text = flat(e)
    commented = _commented(e)
    if (indent + lead + len(text) + tail <= WIDTH or isinstance(e, str)) and not commented:
        return text
    pad = " " * (indent + 4)
    if isinstance(e, Call):
        hugged = flat(Call("", e.args, e.kwargs))[1:-1]
        if len(pad) + len(hugged) <= WIDTH and not commented:  # all arguments on one line
            return f"{e.func}(\n{pad}{hugged}\n{' ' * indent})"
        items = [_line(render(_bare(a), indent + 4), a) for a in e.args]
        items += [_line(f"{k}={render(_bare(v), indent + 4, len(k) + 1)}", v) for k, v in e.kwargs]
        body = "".join(f"{pad}{item}\n" for item in items)
        return f"{e.func}(\n{body}{' ' * indent})"
    if isinstance(e, Tuple):
        body = "".join(f"{pad}{_line(render(_bare(i), indent + 4), i)}\n" for i in e.items)
        return f"(\n{body}{' ' * indent})"
    if isinstance(e, Dict):
        body = "".join(
            f'{pad}"{k}": {_line(render(_bare(v), indent + 4, len(k) + 4), v)}\n'
            for k, v in e.items
        )
        return f"{{\n{body}{' ' * indent}}}"
    assert isinstance(e, Repeat)
    loop = _loop(e)
    if e.values is not None and len(pad) + len(loop) > WIDTH:
        loop = f"for {e.var} in {render(e.values, indent + 4, len(e.var) + 8, tail=0)}"
    return f"*(\n{pad}{render(e.call, indent + 4, tail=0)}\n{pad}{loop}\n{' ' * indent})"


def _bare(e: object) -> object:
    return e.expr if isinstance(e, Commented) else e
