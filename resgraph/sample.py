"""``resgraph sample``: draw distinct networks from a design space under complexity budgets.

Every draw is validated and lowered like a spec file, and measured from its IR (parameters,
multiply-adds, forward activation memory: :mod:`resgraph.summary`), so no weight is made and
torch is never imported. A draw that fails validation, does not lower, falls outside a budget
or repeats an accepted network (the same spec hash) is rejected and counted by reason; the
accepted ones are written as specs, each with a comment naming its space, seed and draw.
"""

from __future__ import annotations

import json
import random
import re
from collections import Counter
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click
import yaml

from resgraph.errors import ResgraphError, SpecError
from resgraph.fsutil import atomic_write_text, check_output
from resgraph.options import SPEC, bounded_option, folder_option, spec_overrides
from resgraph.passes import PIPELINE, lower, lower_spec
from resgraph.spec.compose import construct
from resgraph.spec.digest import spec_hash
from resgraph.spec.space import Space
from resgraph.summary import activation_bytes
from resgraph.units import binary_bytes, si

MEASURES = ("params", "macs", "memory")  # the budgets, in the order they are checked
MAX_SAMPLES = 100_000
ROUND = 64  # draws a round gives each process
_SUFFIX = {"": 1, "K": 10**3, "M": 10**6, "G": 10**9, "T": 10**12}
_SUFFIX |= {"KIB": 2**10, "MIB": 2**20, "GIB": 2**30, "TIB": 2**40}


def parse_amount(text: str) -> int:
    """``400M`` -> 400000000, ``1.5GiB`` -> 1610612736; raises ValueError."""
    match = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]*)?)\s*([A-Za-z]*)\s*", text)
    if match is None or match.group(2).upper() not in _SUFFIX:
        raise ValueError(f"{text!r} is not an amount (write e.g. 400M, 5.2M, 2GiB or 1200)")
    return round(float(match.group(1)) * _SUFFIX[match.group(2).upper()])


def parse_budget(text: str) -> tuple[int | None, int | None]:
    """``LO:HI`` (either end may be left out) -> (lo, hi); raises ValueError."""
    lo_text, sep, hi_text = text.partition(":")
    if not sep:
        raise ValueError(f"{text!r} is not LO:HI (write e.g. 360M:440M, or :5M for at most 5M)")
    lo = parse_amount(lo_text) if lo_text.strip() else None
    hi = parse_amount(hi_text) if hi_text.strip() else None
    if lo is not None and hi is not None and lo > hi:
        raise ValueError(f"{text!r} is empty: LO is above HI")
    return lo, hi


@dataclass
class Draw:
    """An accepted network: its draw index, spec data, name, hash and measures."""

    index: int
    data: dict[str, Any]
    name: str
    digest: str
    measures: dict[str, int]


@dataclass
class Result:
    accepted: list[Draw] = field(default_factory=list)
    rejected: Counter[str] = field(default_factory=Counter)
    draws: int = 0


Budgets = dict[str, tuple[int | None, int | None]]


def measure(ir: Any, batch_size: int) -> dict[str, int]:
    """Parameters, MACs (one example) and activation bytes (at ``batch_size``) of an IR."""
    nodes = ir.nodes()
    return {
        "params": sum(n.params for n in nodes),
        "macs": sum(n.macs for n in nodes),
        "memory": activation_bytes(ir, batch_size),
    }


def _verdict(values: dict[str, int], budgets: Budgets) -> str:
    """Why ``values`` miss the budgets ('' if they meet them all)."""
    for name in MEASURES:
        lo, hi = budgets.get(name, (None, None))
        if lo is not None and values[name] < lo:
            return f"{name} below the budget"
        if hi is not None and values[name] > hi:
            return f"{name} above the budget"
    return ""


def _invalid(exc: SpecError) -> str:
    """A rejection reason: the first problem's field path and message, numbers left out so
    that draws failing the same way count together."""
    p = exc.problems[0]
    where = p.path if p.path is not None else (p.loc.path if p.loc else "")
    return re.sub(r"[0-9][0-9.]*", "#", f"invalid: {where}: {p.message}" if where else p.message)


def evaluate(space: Space, seed: int, index: int, budgets: Budgets, batch: int) -> Draw | str:
    """Draw number ``index`` of ``seed``: the network if it is valid, lowers and meets the
    budgets, else why not. A draw depends on (seed, index) only, not on the draws before."""
    tree = space.draw(random.Random(f"{seed}/{index}"))
    try:
        spec = space.validate(tree)
        values = measure(_measured(spec), batch)
        reason = _verdict(values, budgets)
        if not reason:
            lower(spec)  # every pass again, each followed by the IR's verifier
    except SpecError as exc:
        return _invalid(exc)
    except ResgraphError as exc:
        return f"does not lower: {str(exc).splitlines()[0]}"
    return reason or Draw(index, construct(tree), spec.name, spec_hash(spec), values)


def _measured(spec: Any) -> Any:
    """The IR of ``spec`` after every pass, without the verifier between them (it checks the
    passes, not the spec; accepted draws are lowered again with it)."""
    ir = lower_spec(spec)
    for _, run, _ in PIPELINE:
        ir = run(ir)
    return ir


_WORKER: dict[str, Any] = {}  # a worker process's space and arguments


def _start(source: Any, overrides: Sequence[str], args: tuple[Any, ...]) -> None:
    _WORKER["space"], _WORKER["args"] = Space(source, overrides), args


def _evaluate(index: int) -> Draw | str:
    seed, budgets, batch = _WORKER["args"]
    return evaluate(_WORKER["space"], seed, index, budgets, batch)


def _outcomes(space: Space, args: tuple[Any, ...], limit: int, jobs: int) -> Iterator[Draw | str]:
    """Every draw's outcome, in draw order, computed by ``jobs`` processes."""
    if jobs == 1:
        yield from (evaluate(space, args[0], i, *args[1:]) for i in range(limit))
        return
    init = (space.source, space.overrides, args)
    with ProcessPoolExecutor(jobs, initializer=_start, initargs=init) as pool:
        for start in range(0, limit, ROUND * jobs):
            stop = min(limit, start + ROUND * jobs)
            yield from pool.map(_evaluate, range(start, stop), chunksize=ROUND // 4)


def sample(
    space: Space,
    n: int,
    budgets: Budgets,
    seed: int,
    max_draws: int,
    batch_size: int = 1,
    jobs: int = 1,
) -> Result:
    """Draw until ``n`` distinct networks meet every budget or ``max_draws`` are spent. The
    result does not depend on ``jobs``: outcomes are taken in draw order."""
    result, seen = Result(), set()
    for outcome in _outcomes(space, (seed, budgets, batch_size), max_draws, jobs):
        result.draws += 1
        if isinstance(outcome, Draw) and outcome.digest in seen:
            outcome = "a network already drawn"
        if isinstance(outcome, str):
            result.rejected[outcome] += 1
            continue
        seen.add(outcome.digest)
        result.accepted.append(outcome)
        if len(result.accepted) == n:
            break
    return result


class SampleError(ResgraphError):
    """The budgets could not be met within the draws allowed."""


def _reasons(rejected: Counter[str], top: int = 3) -> str:
    shown = [f"{count} {reason}" for reason, count in rejected.most_common(top)]
    more = sum(rejected.values()) - sum(c for _, c in rejected.most_common(top))
    return "; ".join(shown + ([f"{more} for other reasons"] if more else []))


def _header(source: str, overrides: Sequence[str], seed: int, draw: Draw) -> str:
    m = draw.measures
    flags = "".join(f" --set {json.dumps(str(o))}" for o in overrides)  # one line, escaped
    return (
        f"# drawn by resgraph sample from the design space {json.dumps(source)}{flags} "
        f"(seed {seed}, draw {draw.index})\n"
        f"# {si(m['params'])} parameters, {si(m['macs'])} MACs, "
        f"{binary_bytes(m['memory'])} of activations\n"
    )


def render(space: Space, source: str, seed: int, draw: Draw) -> str:
    """The text of an accepted draw's spec file."""
    data = dict(draw.data)
    suffix = f" d{draw.index}"
    data["name"] = draw.name[: 80 - len(suffix)].rstrip() + suffix
    body = yaml.safe_dump(data, sort_keys=False, allow_unicode=False, width=100)
    return _header(source, space.overrides, seed, draw) + body


def targets(out_dir: Path, source: str, n: int) -> list[Path]:
    """The files ``n`` samples are written to: ``DIR/STEM_0000.yaml``, ..."""
    stem = re.sub(r"[^A-Za-z0-9_-]+", "_", Path(source).stem)[:40] or "sample"
    stem = stem if source != "<string>" else "sample"
    return [out_dir / f"{stem}_{k:04d}.yaml" for k in range(n)]


def budget_option(name: str, what: str) -> Any:
    def convert(ctx: click.Context, param: click.Parameter, value: str | None) -> Any:
        if value is None:
            return None
        try:
            return parse_budget(value)
        except ValueError as exc:
            raise click.BadParameter(str(exc)) from None

    return click.option(f"--{name}", metavar="LO:HI", callback=convert, help=what)


@click.command()
@click.argument("space_file", metavar="SPACE", type=SPEC)
@click.option("-n", "count", type=click.IntRange(1, MAX_SAMPLES), required=True, help="Networks.")
@budget_option("macs", "Multiply-adds for one example, e.g. 360M:440M (either end optional).")
@budget_option("params", "Parameters, e.g. :6M.")
@budget_option("memory", "Forward activations kept for backward at --batch-size, e.g. :2GiB.")
@bounded_option(
    "--batch-size", lo=1, hi=1 << 20, default=1, help="Batch size of the --memory budget."
)
@bounded_option("--seed", lo=0, hi=2**63 - 1, default=0)
@bounded_option(
    "--max-draws",
    lo=1,
    hi=10**8,
    help="Give up after this many draws [default: 200 per network, at least 2000].",
)
@folder_option("out_dir", "Folder to write the specs to.", required=True)
@click.option("--force", is_flag=True, help="Overwrite sample files already in the folder.")
@bounded_option(
    "--jobs",
    lo=1,
    hi=256,
    default=1,
    help="Processes that check draws (the result is the same for any number).",
)
@spec_overrides(shorthands=False, what="the space")
def sample_cmd(
    space_file: Path,
    count: int,
    macs: Any,
    params: Any,
    memory: Any,
    batch_size: int,
    seed: int,
    max_draws: int | None,
    out_dir: Path,
    force: bool,
    jobs: int,
    overrides: tuple[str, ...],
) -> None:
    """Draw N (-n) distinct valid networks from the design space SPACE (a spec whose values
    may be {range: [lo, hi]} or {choice: [...]}) inside every budget, and write each as a
    spec to the output folder. Nothing is written unless all N are found."""
    space = Space(space_file, overrides)
    files = targets(out_dir, str(space_file), count)
    for path in files:
        if path.exists() and not force:
            raise SampleError(f"{path}: it exists; pass --force to overwrite it")
        check_output(path)
    space.check(random.Random(seed))
    budgets = {k: v for k, v in zip(MEASURES, (params, macs, memory), strict=True) if v}
    limit = max_draws or max(2000, 200 * count)
    result = sample(space, count, budgets, seed, limit, batch_size, jobs)
    if len(result.accepted) < count:
        raise SampleError(
            f"only {len(result.accepted)} of {count} networks met the budgets in "
            f"{result.draws} draws (rejected: {_reasons(result.rejected)}); widen the "
            "budgets or the space, or allow more draws with --max-draws"
        )
    for path, draw in zip(files, result.accepted, strict=True):
        atomic_write_text(path, render(space, str(space_file), seed, draw))
    click.echo(f"wrote {count} specs to {out_dir} ({result.draws} draws, seed {seed})")
    for reason, n in result.rejected.most_common():
        click.echo(f"  rejected {n}: {reason}")
