"""A small mutation-testing runner: how many plausible one-line bugs do the tests catch?

Each mutant is one small change to one expression or statement of the compiler core, made
on the syntax tree (``ast``): a comparison operator flipped (``<`` to ``<=``, ``==`` to
``!=``, ``in`` to ``not in``), an integer constant moved by one, ``and`` swapped with
``or``, ``+`` with ``-``, a condition negated, a returned value replaced, a statement
deleted, ``True`` swapped with ``False``. Only the changed expression's text is replaced,
so the rest of the file keeps its lines. Every mutant runs the chosen test files in a
temporary copy of the repository (the working tree is never modified) with a timeout; a
mutant is *killed* when the tests fail or time out and *survives* when they pass.

    python scripts/mutate.py --sample 80 --seed 1               # a sample over the core
    python scripts/mutate.py --files passes/ --tests tests/test_passes.py
    python scripts/mutate.py --list --files ops.py              # the mutants, not run
    python scripts/mutate.py --sample 80 --before tests/test_spec.py tests/test_passes.py

``--before FILES`` scores two test sets in one pass: each mutant first meets the smaller
set (FILES); only its survivors also meet the rest of ``--tests`` (a mutant that the
smaller set kills, the larger one kills too).

Needs only the standard library and pytest. The score is killed / (killed + survived);
mutants that do not compile are left out.
"""

from __future__ import annotations

import argparse
import ast
import fnmatch
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CORE = (
    "resgraph/spec/*.py",
    "resgraph/passes/*.py",
    "resgraph/ops.py",
    "resgraph/emit/*.py",
    "resgraph/summary.py",
    "resgraph/ir.py",
    "resgraph/transfer.py",
    "resgraph/diff.py",
    "resgraph/options.py",
    "resgraph/render/*.py",
)
FAST_TESTS = (
    "tests/test_spec.py",
    "tests/test_passes.py",
    "tests/test_families.py",
    "tests/test_golden_families.py",
    "tests/test_spec_limits.py",
    "tests/test_emit_engines.py",
    "tests/test_import_weights.py",
    "tests/test_spec_hash.py",
    "tests/test_zoo_spec.py",
    "tests/test_diff_sections.py",
    "tests/test_transfer_counters.py",
)
SKIP_COPY = (
    ".git",
    ".venv",
    "runs",
    "data",
    "__pycache__",
    ".pytest_cache",
    ".ruff_cache",
    ".mypy_cache",
    ".hypothesis",
)

FLIP = {
    ast.Lt: ast.LtE,
    ast.LtE: ast.Lt,
    ast.Gt: ast.GtE,
    ast.GtE: ast.Gt,
    ast.Eq: ast.NotEq,
    ast.NotEq: ast.Eq,
    ast.In: ast.NotIn,
    ast.NotIn: ast.In,
    ast.Is: ast.IsNot,
    ast.IsNot: ast.Is,
}
ARITH = {
    ast.Add: ast.Sub,
    ast.Sub: ast.Add,
    ast.Mult: ast.FloorDiv,
    ast.FloorDiv: ast.Mult,
    ast.Div: ast.Mult,
}
SYMBOL = {
    ast.Lt: "<",
    ast.LtE: "<=",
    ast.Gt: ">",
    ast.GtE: ">=",
    ast.Eq: "==",
    ast.NotEq: "!=",
    ast.In: "in",
    ast.NotIn: "not in",
    ast.Is: "is",
    ast.IsNot: "is not",
    ast.Add: "+",
    ast.Sub: "-",
    ast.Mult: "*",
    ast.FloorDiv: "//",
    ast.Div: "/",
}


@dataclass(frozen=True)
class Mutant:
    path: str  # relative to the repository root
    line: int
    col: int
    end_line: int
    end_col: int
    replacement: str  # the new text of the span
    description: str

    @property
    def where(self) -> str:
        return f"{self.path}:{self.line}:{self.col + 1}"


# --- finding mutants ------------------------------------------------------------------------


def _skipped_spans(tree: ast.Module) -> set[int]:
    """ids of nodes where a change means nothing: annotations, docstrings, type-checking
    blocks, ``__all__``."""
    skip: set[int] = set()

    def mark(node: ast.AST | None) -> None:
        if node is not None:
            skip.update(id(n) for n in ast.walk(node))

    for node in ast.walk(tree):
        if isinstance(node, ast.arg | ast.AnnAssign):
            mark(node.annotation)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            mark(node.returns)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                mark(body[0])
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            mark(node)
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets
        ):
            mark(node)
        if isinstance(node, ast.JoinedStr):  # text inside f-strings: messages, not logic
            mark(node)
        if isinstance(node, ast.ImportFrom | ast.Import):
            mark(node)
    return skip


def _expr(node: ast.expr, new: ast.expr, what: str, path: str) -> Mutant:
    return Mutant(
        path,
        node.lineno,
        node.col_offset,
        node.end_lineno or node.lineno,
        node.end_col_offset or node.col_offset,
        "(" + ast.unparse(new) + ")",
        what,
    )


def _copy(node: ast.AST) -> ast.AST:
    return ast.parse(ast.unparse(node), mode="eval").body  # type: ignore[attr-defined]


def mutants_of(path: str, source: str) -> Iterator[Mutant]:
    tree = ast.parse(source)
    skip = _skipped_spans(tree)
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Compare):
            for i, op in enumerate(node.ops):
                if type(op) in FLIP:
                    new = _copy(node)
                    new.ops[i] = FLIP[type(op)]()
                    yield _expr(node, new, f"{SYMBOL[type(op)]} -> {SYMBOL[FLIP[type(op)]]}", path)
        elif isinstance(node, ast.BinOp) and type(node.op) in ARITH:
            new = _copy(node)
            new.op = ARITH[type(node.op)]()
            yield _expr(node, new, f"{SYMBOL[type(node.op)]} -> {SYMBOL[type(new.op)]}", path)
        elif isinstance(node, ast.BoolOp):
            new = _copy(node)
            new.op = ast.Or() if isinstance(node.op, ast.And) else ast.And()
            swap = "and -> or" if isinstance(node.op, ast.And) else "or -> and"
            yield _expr(node, new, swap, path)
        elif isinstance(node, ast.Constant) and type(node.value) is bool:
            yield _expr(
                node, ast.Constant(not node.value), f"{node.value} -> {not node.value}", path
            )
        elif isinstance(node, ast.Constant) and type(node.value) is int:
            for delta in (1, -1):
                value = node.value + delta
                yield _expr(node, ast.Constant(value), f"{node.value} -> {value}", path)
        if isinstance(node, ast.If | ast.While | ast.IfExp) and id(node.test) not in skip:
            test = node.test
            yield _expr(test, ast.UnaryOp(ast.Not(), _copy(test)), "condition negated", path)
        if isinstance(node, ast.Return) and node.value is not None:
            value = node.value
            if isinstance(value, ast.Constant) and value.value is None:
                continue
            if isinstance(value, ast.Constant) and type(value.value) is bool:
                continue  # the True/False swap covers it
            yield _expr(value, ast.Constant(None), "return value -> None", path)
        if isinstance(node, ast.Expr | ast.AugAssign | ast.Assign) and not (
            isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)
        ):
            if isinstance(node, ast.Assign) and all(_local(t) for t in node.targets):
                continue  # deleting a local's assignment is a NameError, not a bug
            text = ast.unparse(node).splitlines()[0][:60]
            yield Mutant(
                path,
                node.lineno,
                node.col_offset,
                node.end_lineno or node.lineno,
                node.end_col_offset or node.col_offset,
                "pass",
                f"statement deleted: {text}",
            )


def _local(target: ast.expr) -> bool:
    if isinstance(target, ast.Tuple | ast.List):
        return all(_local(t) for t in target.elts)
    return isinstance(target, ast.Name | ast.Starred)


def apply(source: str, m: Mutant) -> str:
    """Replace the span of ``m`` (line/column offsets in UTF-8 bytes, as ast gives them)."""
    lines = source.encode("utf-8").splitlines(keepends=True)
    start = sum(len(line) for line in lines[: m.line - 1]) + m.col
    end = sum(len(line) for line in lines[: m.end_line - 1]) + m.end_col
    data = source.encode("utf-8")
    return (data[:start] + m.replacement.encode("utf-8") + data[end:]).decode("utf-8")


def collect(patterns: tuple[str, ...], filters: list[str]) -> list[Mutant]:
    found: list[Mutant] = []
    files = sorted({p for pattern in patterns for p in ROOT.glob(pattern)})
    for file in files:
        rel = file.relative_to(ROOT).as_posix()
        if filters and not any(f in rel or fnmatch.fnmatch(rel, f) for f in filters):
            continue
        source = file.read_text(encoding="utf-8")
        for m in mutants_of(rel, source):
            try:
                compile(apply(source, m), rel, "exec")
            except SyntaxError:
                continue
            found.append(m)
    return found


# --- running them ---------------------------------------------------------------------------


def copy_tree(dest: Path) -> None:
    def ignore(folder: str, names: list[str]) -> list[str]:
        top = Path(folder).resolve() == ROOT
        return [n for n in names if n in SKIP_COPY and (top or n == "__pycache__")]

    shutil.copytree(ROOT, dest, ignore=ignore, symlinks=True)


def run_tests(
    tree: Path, tests: list[str], timeout: float, keyword: str | None = None
) -> tuple[str, float]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    env.update(PYTHONPATH=str(tree), PYTHONDONTWRITEBYTECODE="1", OMP_NUM_THREADS="1")
    t0 = time.monotonic()
    try:
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "pytest",
                "-x",
                "-q",
                "-p",
                "no:cacheprovider",
                "-p",
                "no:randomly",
                *tests,
            ],
            cwd=tree,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        return "timeout", time.monotonic() - t0
    status = {0: "survived", 1: "killed"}.get(done.returncode, "error")
    if status == "error" and done.returncode == 2:  # collection failed: the mutant broke imports
        status = "killed"
    return status, time.monotonic() - t0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--files",
        action="append",
        default=[],
        help="only files whose path contains this text or matches this glob "
        "(repeatable; default: the compiler core)",
    )
    parser.add_argument(
        "--tests",
        nargs="+",
        default=list(FAST_TESTS),
        help="test files run against each mutant (default: the fast ones)",
    )
    parser.add_argument(
        "--before",
        nargs="+",
        default=[],
        help="also score this smaller set of test files (see above)",
    )
    parser.add_argument("-k", dest="keyword", help="pytest -k expression for every run")
    parser.add_argument("--sample", type=int, help="run a random sample of N mutants")
    parser.add_argument("--seed", type=int, default=0, help="the sample's seed (0)")
    parser.add_argument(
        "--timeout", type=float, help="seconds per mutant (default: 3 x the unmutated run + 10)"
    )
    parser.add_argument(
        "--survivors-of",
        type=Path,
        metavar="JSON",
        help="run only the mutants that survived in an earlier --json report",
    )
    parser.add_argument("--list", action="store_true", help="print the mutants, run nothing")
    parser.add_argument("--json", type=Path, help="also write the results to this file")
    args = parser.parse_args(argv)

    mutants = collect(CORE, args.files)
    if args.survivors_of:
        earlier = json.loads(args.survivors_of.read_text())["results"]
        wanted = {
            (r["path"], r["line"], r["col"], r["description"])
            for r in earlier
            if r["status"] == "survived"
        }
        mutants = [m for m in mutants if (m.path, m.line, m.col, m.description) in wanted]
    if args.sample is not None and args.sample < len(mutants):
        mutants = random.Random(args.seed).sample(mutants, args.sample)
        mutants.sort(key=lambda m: (m.path, m.line, m.col))
    if args.list:
        for m in mutants:
            print(f"{m.where}: {m.description}")
        print(f"{len(mutants)} mutants")
        return 0
    if not mutants:
        print("no mutants: check --files", file=sys.stderr)
        return 2

    # SIGTERM unwinds like Ctrl-C: the running test process is killed, the copy deleted
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    extra = [t for t in args.tests if t not in args.before]
    results: list[dict[str, object]] = []
    with tempfile.TemporaryDirectory(prefix="resgraph-mutants-") as tmp:
        tree = Path(tmp) / "tree"
        copy_tree(tree)
        status, baseline = run_tests(tree, args.tests, 3600, args.keyword)
        if status != "survived":
            print(f"the tests fail without any mutant ({status}); fix them first", file=sys.stderr)
            return 2
        timeout = args.timeout or 3 * baseline + 10
        print(
            f"{len(mutants)} mutants; tests: {' '.join(args.tests)}; unmutated run "
            f"{baseline:.1f} s, timeout {timeout:.0f} s",
            flush=True,
        )
        for i, m in enumerate(mutants, 1):
            target = tree / m.path
            original = target.read_text(encoding="utf-8")
            target.write_text(apply(original, m), encoding="utf-8")
            before = None
            try:
                if args.before:
                    before, seconds = run_tests(tree, args.before, timeout, args.keyword)
                    status = before
                    if before == "survived" and extra:
                        status, more = run_tests(tree, extra, timeout, args.keyword)
                        seconds += more
                else:
                    status, seconds = run_tests(tree, args.tests, timeout, args.keyword)
            finally:
                target.write_text(original, encoding="utf-8")
            results.append(
                {**asdict(m), "status": status, "before": before, "seconds": round(seconds, 1)}
            )
            shown = f"{status:8}" + (f" (before: {before})" if before else "")
            print(f"[{i}/{len(mutants)}] {shown} {m.where}: {m.description}", flush=True)

    if args.before:
        _report([{**r, "status": r["before"]} for r in results], "before: " + " ".join(args.before))
    _report(results, "tests: " + " ".join(args.tests))
    if args.json:
        args.json.write_text(json.dumps({"results": results}, indent=1) + "\n")
    return 0


def _report(results: list[dict[str, object]], title: str) -> None:
    counts = {
        s: sum(r["status"] == s for r in results)
        for s in ("killed", "timeout", "survived", "error")
    }
    caught = counts["killed"] + counts["timeout"]
    scored = caught + counts["survived"]
    score = caught / scored if scored else 0.0
    print(
        f"\n{title}\nscore {100 * score:.1f}%: {caught} of {scored} mutants caught "
        f"({counts['killed']} failed, {counts['timeout']} timed out); "
        f"{counts['error']} errors left out"
    )
    survivors = [r for r in results if r["status"] == "survived"]
    if survivors:
        print("survivors:")
        for r in survivors:
            print(f"  {r['path']}:{r['line']}:{int(r['col']) + 1}: {r['description']}")


if __name__ == "__main__":
    sys.exit(main())
