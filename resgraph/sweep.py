"""``resgraph sweep``: train every spec of a folder, each as a Ray Tune trial.

Ray Tune (Liaw et al. 2018, "Tune: A Research Platform for Distributed Model Selection and
Training") schedules the trials: on this machine by default, on a Ray cluster with
``--address``, with fractional GPUs per trial (``--gpus-per-trial 0.25`` puts four trials on
one GPU). Each trial runs ``resgraph train``'s own loop and recipe (:func:`resgraph.train.
loop.train`) into ``SWEEP/runs/STEM`` and records its outcome in ``SWEEP/trials/STEM.json``
(written atomically, by the trial); ``SWEEP/results.csv`` is rebuilt from those records after
the sweep. A sweep started again over the same folder trains only the specs without a
finished record, so a killed sweep resumes and a finished trial is never trained twice. A
trial that fails is recorded with its error and the others go on. (On a cluster, SWEEP must
be a folder every node sees.)
"""

from __future__ import annotations

import csv
import io
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from resgraph.errors import ResgraphError, SpecError
from resgraph.fsutil import atomic_write_text
from resgraph.options import bounded_option, spec_overrides
from resgraph.spec.overrides import FlagLoc
from resgraph.train.cli import DIR, POSITIVE, recipe_option

COLUMNS = ["spec", "params", "macs", "error", "time_s", "status"]
OK = "ok"


class SweepError(ResgraphError):
    """A sweep cannot start (no specs, Ray missing or unreachable)."""


@dataclass
class Trial:
    spec: Path
    params: int | None
    macs: int | None
    status: str = ""  # '' until it has run or failed to load


def record_path(sweep: Path, spec: Path) -> Path:
    return sweep / "trials" / f"{spec.stem}.json"


def read_record(sweep: Path, spec: Path) -> dict[str, Any] | None:
    """A trial's record, or None when there is none that can be read (never ran, killed)."""
    try:
        data = json.loads(record_path(sweep, spec).read_text())
    except (OSError, ValueError):
        return None
    mine = isinstance(data, dict) and data.get("spec") == str(spec.resolve())
    return data if mine else None


def plan(folder: Path, sweep: Path, overrides: tuple[str, ...] = ()) -> list[Trial]:
    """Every spec of ``folder`` with its size (measured from the IR) and whether it is done."""
    from resgraph.passes import lower
    from resgraph.spec import load_spec

    specs = sorted(p for p in folder.glob("*.y*ml") if p.suffix in (".yaml", ".yml"))
    if not specs:
        raise SweepError(f"{folder}: no spec files (*.yaml) to train")
    trials = []
    for spec in specs:
        try:
            nodes = lower(load_spec(spec, overrides)).nodes()
        except ResgraphError as exc:
            if isinstance(exc, SpecError) and any(isinstance(p.loc, FlagLoc) for p in exc.problems):
                raise  # a bad --set is the command's mistake, not one spec's
            trial = Trial(spec, None, None, f"invalid: {str(exc).splitlines()[0]}")
        else:
            trial = Trial(spec, sum(n.params for n in nodes), sum(n.macs for n in nodes))
        record = read_record(sweep, spec)
        if record is not None and record.get("status") == OK:
            trial.status = OK
        trials.append(trial)
    return trials


def run_trial(config: dict[str, Any]) -> dict[str, Any]:
    """One trial, in a Ray worker: train the spec, write and return its record."""
    from resgraph.train.config import TrainOptions
    from resgraph.train.loop import train

    spec, sweep = Path(config["spec"]), Path(config["sweep"])
    record: dict[str, Any] = {"spec": str(spec), "params": config["params"]}
    record["macs"] = config["macs"]
    start = time.monotonic()
    out = sweep / "runs" / spec.stem
    try:
        # a run the sweep started before (killed) continues from its checkpoint
        options = TrainOptions(spec=spec, out=out, quiet=True, resume=True, **config["train"])
        code = train(options)
        rows = list(csv.DictReader((out / "metrics.csv").open()))
        record["error"] = float(rows[-1]["test_error"])
        record["status"] = OK if code == 0 else f"stopped (exit status {code})"
    except ResgraphError as exc:
        record["error"], record["status"] = None, f"failed: {str(exc).splitlines()[0]}"
    except Exception as exc:  # a bug or a crash: recorded, the other trials go on
        record["error"], record["status"] = None, f"failed: {type(exc).__name__}: {exc}"
    record["time_s"] = round(time.monotonic() - start, 2)
    atomic_write_text(record_path(sweep, spec), json.dumps(record))
    return record


def _trainable(config: dict[str, Any]) -> None:
    from ray import tune

    record = run_trial(config["trial"])
    tune.report({"error": record["error"] if record["error"] is not None else float("nan")})


def launch(trials: list[Trial], sweep: Path, train: dict[str, Any], ray_opts: dict[str, Any]):
    """Run the trials that are not done as Ray Tune trials."""
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")  # Tune's older reporter obeys verbose=0
    try:
        import ray
        from ray import tune
    except ImportError:
        raise SweepError("resgraph sweep needs Ray Tune: pip install 'resgraph[sweep]'") from None
    todo = [t for t in trials if t.status == ""]
    if not todo:
        return
    try:
        ray.init(
            address=ray_opts["address"],
            include_dashboard=False,
            log_to_driver=False,
            configure_logging=False,
            ignore_reinit_error=True,
        )
    except (ConnectionError, ValueError, RuntimeError) as exc:
        raise SweepError(f"cannot start or reach Ray: {str(exc).splitlines()[0]}") from None
    resources = {"cpu": ray_opts["cpus"], "gpu": ray_opts["gpus"]}
    space = [
        {
            "spec": str(t.spec.resolve()),
            "sweep": str(sweep.resolve()),
            "params": t.params,
            "macs": t.macs,
            "train": train,
        }
        for t in todo
    ]
    tuner = tune.Tuner(
        tune.with_resources(_trainable, resources),
        param_space={"trial": tune.grid_search(space)},
        tune_config=tune.TuneConfig(max_concurrent_trials=ray_opts["concurrent"]),
        run_config=tune.RunConfig(
            name="tune",
            storage_path=str((sweep / "ray").resolve()),
            verbose=0,
            failure_config=tune.FailureConfig(max_failures=0, fail_fast=False),
        ),
    )
    try:
        tuner.fit()
    finally:
        ray.shutdown()


def results(trials: list[Trial], sweep: Path) -> list[dict[str, Any]]:
    """One row per spec: its record, or why it did not run."""
    rows = []
    for t in trials:
        record = read_record(sweep, t.spec) if not t.status.startswith("invalid") else None
        status = record["status"] if record else (t.status or "not run")
        rows.append(
            {
                "spec": str(t.spec),
                "params": t.params if t.params is not None else "",
                "macs": t.macs if t.macs is not None else "",
                "error": record["error"] if record and record["error"] is not None else "",
                "time_s": record["time_s"] if record else "",
                "status": status,
            }
        )
    return rows


def write_results(rows: list[dict[str, Any]], path: Path) -> None:
    text = io.StringIO()
    writer = csv.DictWriter(text, COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(path, text.getvalue())


TRAIN_FLAGS = ("dataset", "iterations", "batch_size", "lr", "seed", "eval_every")


@click.command()
@click.argument("folder", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--out", "sweep", type=DIR, required=True, help="The sweep's folder.")
@recipe_option("dataset", metavar="NAME|PATH", type=str)
@click.option(
    "--data-dir",
    type=DIR,
    default=Path("data"),
    show_default=True,
    help="Folder holding cifar-10-batches-py/.",
)
@click.option("--epochs", type=POSITIVE, default=None, help="Train this many epochs.")
@recipe_option("iterations")
@recipe_option("batch_size")
@recipe_option("lr")
@recipe_option("seed")
@recipe_option("eval_every")
@click.option(
    "--device",
    type=click.Choice(["auto", "cpu", "cuda"]),
    default="auto",
    show_default=True,
    help="auto: CUDA when the trial has a GPU, else the CPU.",
)
@click.option("--address", default=None, help="A Ray cluster's address [default: this machine].")
@bounded_option("--cpus-per-trial", lo=0, hi=1024, default=1.0)
@bounded_option(
    "--gpus-per-trial",
    lo=0,
    hi=64,
    default=0.0,
    help="Fractions share a GPU: 0.25 runs four trials on each.",
)
@bounded_option(
    "--concurrent",
    lo=1,
    hi=4096,
    help="At most this many trials at once [default: as resources allow].",
)
@spec_overrides(shorthands=False, what="every spec")
def sweep_cmd(
    folder: Path,
    sweep: Path,
    data_dir: Path,
    epochs: int | None,
    device: str,
    address: str | None,
    cpus_per_trial: float,
    gpus_per_trial: float,
    concurrent: int | None,
    overrides: tuple[str, ...],
    **recipe: Any,
) -> None:
    """Train every spec in FOLDER (e.g. from resgraph sample) with resgraph train's loop and
    recipe, each a Ray Tune trial, and write SWEEP/results.csv. Run it again to resume:
    finished trials are kept."""
    if epochs is not None and recipe["iterations"] is not None:
        raise click.UsageError("give --epochs or --iterations, not both")
    trials = plan(folder, sweep, overrides)
    train = {k: v for k, v in recipe.items() if v is not None}
    train["overrides"] = tuple(str(o) for o in overrides)
    train |= {"epochs": epochs, "device": device, "data_dir": data_dir.resolve()}
    ray_opts = {
        "address": address,
        "cpus": cpus_per_trial,
        "gpus": gpus_per_trial,
        "concurrent": concurrent,
    }
    done = sum(t.status == OK for t in trials)
    if done:
        click.echo(f"{done} of {len(trials)} trials already finished: kept")
    try:
        launch(trials, sweep, train, ray_opts)
    finally:
        rows = results(trials, sweep)
        write_results(rows, sweep / "results.csv")
    failed = [r for r in rows if r["status"] != OK]
    click.echo(
        f"wrote {sweep / 'results.csv'}: {len(rows) - len(failed)} trials ok, {len(failed)} not"
    )
    for row in failed:
        click.echo(f"  {row['spec']}: {row['status']}")
    if len(failed) < len(rows):
        from resgraph.analyze import analyze

        analyze([sweep], sweep / "analysis")
        click.echo(f"wrote {sweep / 'analysis' / 'index.html'} (resgraph analyze)")
