"""``resgraph train`` and ``resgraph eval``.

Distributed: ``torchrun --nproc_per_node N -m resgraph train SPEC ...`` (one process per GPU,
or N CPU processes with gloo).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, get_args

import click
from pydantic_core import PydanticUndefined

from resgraph.options import SPEC, spec_overrides
from resgraph.spec.train import TrainSpec

DIR = click.Path(file_okay=False, path_type=Path)
POSITIVE = click.IntRange(min=1)


def _milestones(ctx: click.Context, param: click.Parameter, value: str | None) -> list[int] | None:
    if value is None:
        return None
    if value.strip().lower() == "none":
        return []
    try:
        return [int(v) for v in value.split(",") if v.strip()]
    except ValueError:
        raise click.BadParameter(
            f"expected iterations like 32000,48000 or 'none', got {value!r}"
        ) from None


def _bound_text(value: float) -> str:
    """1e8 for large powers of ten, else the number as written."""
    if isinstance(value, int) and value >= 10**6 and str(value).rstrip("0") == "1":
        return f"1e{len(str(value)) - 1}"
    return f"{value:g}" if isinstance(value, float) else str(value)


def _range(name: str) -> tuple[click.ParamType, str]:
    """A click type and its wording ('in (0, 10]', '1 to 1e8') from a recipe field's bounds."""
    info = TrainSpec.model_fields[name]
    bounds: dict[str, float] = {}
    for item in info.metadata:
        for key in ("ge", "gt", "le", "lt"):
            if getattr(item, key, None) is not None:
                bounds[key] = getattr(item, key)
    low, high = bounds.get("ge", bounds.get("gt")), bounds.get("le", bounds.get("lt"))
    if isinstance(info.default, float) or (low is not None and isinstance(low, float)):
        kind = click.FloatRange(low, high, min_open="gt" in bounds, max_open="lt" in bounds)
        left, right = "(" if "gt" in bounds else "[", ")" if "lt" in bounds else "]"
        return kind, f"in {left}{_bound_text(low)}, {_bound_text(high)}{right}"
    return click.IntRange(low, high), f"{_bound_text(low)} to {_bound_text(high)}"


def _default_text(name: str) -> str | None:
    default = TrainSpec.model_fields[name].default
    if default is PydanticUndefined:
        return None
    if default is None:
        return "none"
    if isinstance(default, bool):
        return "on" if default else "off"
    return f"{default:g}" if isinstance(default, float) else str(default)


def recipe_option(name: str, flag: str | None = None, extra: str = "", **kw: Any):  # type: ignore[no-untyped-def]
    """A ``train`` flag that overrides the recipe field ``name``: its range, help and default
    come from :class:`resgraph.spec.train.TrainSpec` (None: the spec decides)."""
    info = TrainSpec.model_fields[name]
    text = (info.description or "").rstrip(".")
    if "type" not in kw and "/" not in (flag or ""):  # an on/off flag has no range
        kind, wording = _range(name)
        kw["type"] = kind
        extra = ", ".join(x for x in (wording, extra) if x)
    if extra:
        text += f" ({extra})"
    default = _default_text(name)
    text += f" [default: the spec's train.{name}" + (f", else {default}]" if default else "]")
    return click.option(flag or "--" + name.replace("_", "-"), default=None, help=text, **kw)


def _data_options(f):  # type: ignore[no-untyped-def]
    f = click.option(
        "--download",
        is_flag=True,
        help="Fetch CIFAR-10 (163 MiB, md5-checked) into --data-dir if missing.",
    )(f)
    f = click.option(
        "--data-dir",
        type=DIR,
        default=Path("data"),
        show_default=True,
        envvar="RESGRAPH_DATA_DIR",
        help="Folder holding cifar-10-batches-py/ [env: RESGRAPH_DATA_DIR].",
    )(f)
    f = recipe_option("dataset", metavar="NAME|PATH", type=str)(f)
    return f


def _device_options(f):  # type: ignore[no-untyped-def]
    f = click.option(
        "--engine",
        type=click.Choice(["graph", "generated"]),
        default="graph",
        show_default=True,
        help="graph: the IR executed as it stands (resgraph.nn); generated: the module "
        "from generated source.",
    )(f)
    f = click.option(
        "--device",
        type=click.Choice(["auto", "cpu", "cuda"]),
        default="auto",
        show_default=True,
        help="auto: CUDA when present, else the CPU.",
    )(f)
    return f


@click.command()
@click.argument("spec", type=SPEC)
@_data_options
@click.option(
    "--epochs",
    type=POSITIVE,
    default=None,
    help="Train this many epochs (milestones move proportionally).",
)
@recipe_option("iterations")
@recipe_option("batch_size", extra="split over torchrun processes")
@recipe_option("lr")
@recipe_option("momentum")
@recipe_option("weight_decay")
@recipe_option(
    "milestones",
    type=str,
    callback=_milestones,
    metavar="I,J,...",
    extra="increasing, between 1 and the run's length - 1; 'none' for a constant lr",
)
@recipe_option(
    "schedule", type=click.Choice(get_args(TrainSpec.model_fields["schedule"].annotation))
)
@recipe_option("label_smoothing")
@recipe_option("warmup_lr")
@recipe_option("seed")
@recipe_option("augment", flag="--augment/--no-augment")
@recipe_option("flip", flag="--flip/--no-flip")
@recipe_option("holdout")
@recipe_option("crop", type=click.Choice(get_args(TrainSpec.model_fields["crop"].annotation)))
@click.option(
    "--workers",
    type=click.IntRange(0, 256),
    default=None,
    help="Processes decoding images for crops read from files (0: in the training "
    "process) [default: the CPUs this process may use, at most 8].",
)
@click.option(
    "--loader",
    type=click.Choice(["auto", "cpu", "dali"]),
    default="auto",
    show_default=True,
    help="Who decodes crops read from an image folder's files: cpu (worker processes) or "
    "NVIDIA DALI (pip install 'resgraph[dali]'; on the GPU when training on one); auto: DALI "
    "when it is installed and the run trains on a CUDA device.",
)
@click.option(
    "--skip-unreadable",
    is_flag=True,
    help="Leave out image files that are empty, not images or too large (listed in the run "
    "folder's unreadable.txt) instead of refusing the folder.",
)
@recipe_option("eval_every")
@_device_options
@click.option(
    "--checkpoint-every",
    type=POSITIVE,
    default=None,
    help="Iterations between checkpoints [default: at each evaluation]; always "
    "also at the end and on Ctrl-C.",
)
@click.option("--resume", is_flag=True, help="Continue the run in --out from its last.pt.")
@click.option(
    "--init-from",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    metavar="WEIGHTS",
    help="Start a new run from these weights (a state_dict for exactly SPEC, e.g. from "
    "'resgraph import-weights --partial', or a run's last.pt): fresh optimizer and "
    "schedule, iteration 0.",
)
@click.option(
    "--out",
    type=DIR,
    default=None,
    help="Run folder [default: runs/<spec file stem>]; never silently overwritten.",
)
@click.option(
    "--amp",
    type=click.Choice(["off", "bf16", "fp16"]),
    default="off",
    show_default=True,
    help="Mixed precision (fp16 needs CUDA; it uses a GradScaler).",
)
@click.option(
    "--compile",
    "compile_",
    is_flag=True,
    help="torch.compile the network (evaluation stays uncompiled).",
)
@click.option(
    "--compile-mode",
    type=click.Choice(["default", "reduce-overhead", "max-autotune"]),
    default="default",
    show_default=True,
    help="torch.compile mode; reduce-overhead uses CUDA graphs (small networks "
    "at batch 128 are bound by kernel launches). Implies --compile.",
)
@click.option("--channels-last", is_flag=True, help="NHWC memory format (faster on tensor cores).")
@click.option(
    "--checkpoint-activations",
    is_flag=True,
    help="Recompute each block's activations in backward: far less memory.",
)
@click.option(
    "--deterministic",
    is_flag=True,
    help="Deterministic kernels only: needed on GPUs for a resumed run to continue "
    "exactly (slower; the CPU is deterministic anyway).",
)
@click.option(
    "--tf32/--no-tf32",
    default=None,
    help="TF32 for fp32 convolutions and matmuls on Ampere and later GPUs "
    "[default: PyTorch's, TF32 convolutions and fp32 matmuls].",
)
@click.option(
    "--sync-bn",
    is_flag=True,
    help="Under torchrun, batch-norm statistics over the global mini-batch "
    "(default: each process's share).",
)
@click.option("-q", "--quiet", is_flag=True, help="Print only warnings and errors.")
@spec_overrides(shorthands=False)
def train(spec: Path, compile_: bool, **kwargs: object) -> None:
    """Train SPEC with the paper's recipe (its train: section; flags override it).

    Writes metrics.csv, curves.png, config.yaml and last.pt into the run folder.
    Ctrl-C saves a checkpoint and exits (130); --resume continues where it stopped, with
    the recipe saved in the checkpoint: bit for bit on the CPU, and on GPUs with
    --deterministic.
    """
    from resgraph.train.config import TrainOptions
    from resgraph.train.loop import train as run

    if kwargs["epochs"] is not None and kwargs["iterations"] is not None:
        raise click.UsageError("give --epochs or --iterations, not both")
    compile_ = compile_ or kwargs["compile_mode"] != "default"
    code = run(TrainOptions(spec=spec, compile=compile_, **kwargs))  # type: ignore[arg-type]
    if code:
        raise click.exceptions.Exit(code)


@click.command("eval")
@click.argument("spec", type=SPEC)
@click.option(
    "--weights",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="A run's last.pt or a plain state_dict file.",
)
@_data_options
@_device_options
@click.option(
    "--batch-size", type=POSITIVE, default=500, show_default=True, help="Images per forward pass."
)
@click.option(
    "--ten-crop",
    is_flag=True,
    help="The paper's 10-crop testing: scores of the four corner and the centre crops and "
    "their mirror images averaged (image folders read with the 'scale' or 'resized' crops).",
)
@spec_overrides(shorthands=False)
def evaluate(
    spec: Path,
    weights: Path,
    dataset: str | None,
    data_dir: Path,
    download: bool,
    device: str,
    engine: str,
    batch_size: int,
    ten_crop: bool,
    overrides: tuple[str, ...],
) -> None:
    """Report the test error of trained weights for SPEC."""
    from resgraph.train.evaluate import evaluate_weights

    name, result = evaluate_weights(
        spec,
        weights,
        dataset=dataset,
        data_dir=data_dir,
        device=device,
        engine=engine,
        batch_size=batch_size,
        download=download,
        overrides=overrides,
        ten_crop=ten_crop,
    )
    click.echo(result.line(name))


@click.command("pack")
@click.argument("folder", type=click.Path(path_type=Path))
@click.option("-o", "--out", type=DIR, required=True, help="The shard set's folder.")
@click.option(
    "--shard-size",
    type=POSITIVE,
    default=1000,
    show_default=True,
    help="Samples per tar shard (torchrun needs at least one training shard per process).",
)
@click.option(
    "--holdout",
    type=click.FloatRange(0, 1, min_open=True, max_open=True),
    default=TrainSpec.model_fields["holdout"].default,
    show_default=True,
    help=TrainSpec.model_fields["holdout"].description,
)
@click.option(
    "--skip-unreadable",
    is_flag=True,
    help="Leave out image files that are empty, not images or too large instead of refusing.",
)
@click.option("--force", is_flag=True, help="Replace an existing shard set in --out.")
def pack(
    folder: Path,
    out: Path,
    shard_size: int,
    holdout: float,
    skip_unreadable: bool,
    force: bool,
) -> None:
    """Pack an image FOLDER into WebDataset tar shards for 'train --dataset SHARDS/'.

    Reads the folder as training does (train/ and val/, or the held-out split; the same
    bad-file rules) and writes train-*.tar, test-*.tar and index.json (classes and counts).
    """
    from resgraph.train import shards
    from resgraph.train.report import plural, progress

    s = shards.pack(
        folder,
        out,
        shard_size=shard_size,
        holdout=holdout,
        skip_unreadable=skip_unreadable,
        force=force,
        progress=progress(True),
    )
    test = sum(n for _, n in s.test)
    click.echo(
        f"{out}: {plural(s.train_size, 'training sample')} in {plural(len(s.train), 'shard')}, "
        f"{plural(test, 'test sample')} in {plural(len(s.test), 'shard')}, "
        f"{len(s.classes)} classes"
        + (f"; {plural(len(s.skipped), 'unreadable file')} left out" if s.skipped else "")
    )
