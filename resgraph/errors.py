"""Typed errors that point at the spec.

Every error a user can cause derives from :class:`ResgraphError`. The CLI prints
``str(error)`` and exits non-zero; it never shows a traceback for these.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SourceLoc:
    """Where in a spec file something came from (1-based line and column)."""

    file: str
    line: int
    column: int
    path: str = ""  # field path, e.g. "stages[1].width"
    also: tuple[str, ...] = ()  # other places that wrote part of it: flags, other files

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}{self.with_also()}"

    def with_also(self) -> str:
        return f" (with {', '.join(self.also)})" if self.also else ""


class ResgraphError(Exception):
    """Base class of every error resgraph reports to users."""

    exit_status = 1  # the command line's exit status (``diff`` uses 2, like diff(1))


@dataclass
class Problem:
    """One located problem: ``file:line:col: path: message``."""

    message: str
    loc: SourceLoc | None = None
    path: str | None = None  # the field path shown; None: the location's own

    def __str__(self) -> str:
        where = f"{self.loc}: " if self.loc else ""
        path = self.path if self.path is not None else (self.loc.path if self.loc else "")
        what = f"{path}: " if path else ""
        return f"{where}{what}{self.message}"


class LocatedError(ResgraphError):
    """An error made of one or more located problems, and an optional closing note
    (e.g. "nothing was written")."""

    def __init__(self, problems: list[Problem] | Problem, note: str = "") -> None:
        self.problems = problems if isinstance(problems, list) else [problems]
        self.note = note
        super().__init__("\n".join([*(str(p) for p in self.problems), *([note] if note else [])]))


def error_lines(exc: ResgraphError, where: str = "") -> list[str]:
    """How the command line prints ``exc``: one ``error: ...`` line per problem, then any
    further lines of explanation as they are. ``where`` (a file name) is put in front of a
    problem that does not already start with it."""

    def located(text: str) -> str:
        if not where or text.startswith((where, repr(where))):
            return text
        return f"{where}: {text}"

    if isinstance(exc, LocatedError):
        lines = [f"error: {located(str(p))}" for p in exc.problems]
        return lines + ([exc.note] if exc.note else [])
    first, *rest = str(exc).splitlines() or [type(exc).__name__]
    return [f"error: {located(first)}", *rest]


class SpecError(LocatedError):
    """The spec file cannot be read or does not validate."""


class ShapeError(LocatedError):
    """Tensor shapes do not fit together (a join disagrees, a size reaches zero, ...)."""


class IRError(ResgraphError):
    """An internal invariant of the IR is broken: a bug in a pass, not in the spec."""


class WeightsError(ResgraphError):
    """A checkpoint cannot be read or does not match the architecture."""


class ArgumentError(ResgraphError, ValueError):
    """A function of the Python API was given a value it does not take."""


class OutputError(ResgraphError, OSError):
    """A file cannot be written: ``PATH: cannot write: REASON``. It is an :class:`OSError`
    too, so code that catches ``OSError`` around a write still catches it."""

    def __init__(self, path: object, reason: str) -> None:
        super().__init__(f"{path}: cannot write: {reason}")
        self.path, self.reason = str(path), reason
        self.strerror = reason  # what code that catches OSError usually shows


class TrainError(ResgraphError):
    """Training cannot start or cannot go on (bad data folder, NaN loss, ...)."""
