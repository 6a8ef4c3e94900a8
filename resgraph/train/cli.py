"""``resgraph train`` and ``resgraph eval``.

Distributed: ``torchrun --nproc_per_node N -m resgraph train SPEC ...`` (one process per GPU,
or N CPU processes with gloo).
"""

from __future__ import annotations

from pathlib import Path

import click

SPEC = click.Path(dir_okay=False, path_type=Path)
DIR = click.Path(file_okay=False, path_type=Path)
POSITIVE = click.IntRange(min=1)


def _data_options(f):  # type: ignore[no-untyped-def]
    f = click.option("--download", is_flag=True,
                     help="Fetch CIFAR-10 (163 MiB, md5-checked) into --data-dir if missing.")(f)
    f = click.option("--data-dir", type=DIR, default=Path("data"), show_default=True,
                     envvar="RESGRAPH_DATA_DIR",
                     help="Folder holding cifar-10-batches-py/ [env: RESGRAPH_DATA_DIR].")(f)
    f = click.option("--dataset", type=click.Choice(["cifar10", "digits"]), default=None,
                     help="Data set [default: the spec's train.dataset, else cifar10]; "
                     "'digits' is scikit-learn's bundled digits (no download).")(f)
    return f


def _device_options(f):  # type: ignore[no-untyped-def]
    f = click.option("--engine", type=click.Choice(["graph", "generated"]), default="graph",
                     show_default=True,
                     help="Executed fx graph, or the module from generated source.")(f)
    f = click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto",
                     show_default=True, help="auto: CUDA when present, else the CPU.")(f)
    return f


@click.command()
@click.argument("spec", type=SPEC)
@_data_options
@click.option("--epochs", type=POSITIVE, default=None,
              help="Train this many epochs (milestones move proportionally).")
@click.option("--iterations", type=POSITIVE, default=None,
              help="Train this many iterations (milestones move proportionally) "
              "[default: the spec's, 64000].")
@click.option("--batch-size", type=POSITIVE, default=None,
              help="Global mini-batch (split over torchrun processes) [default: spec, 128].")
@click.option("--lr", type=float, default=None, help="Base learning rate [default: spec, 0.1].")
@click.option("--seed", type=click.IntRange(0, 2**31 - 1), default=None,
              help="Seeds weights, data order and augmentation [default: spec, 0].")
@click.option("--augment/--no-augment", default=None,
              help="Random crops (and flips on CIFAR) [default: spec, on].")
@click.option("--eval-every", type=POSITIVE, default=None,
              help="Iterations between test evaluations [default: one epoch].")
@_device_options
@click.option("--checkpoint-every", type=POSITIVE, default=None,
              help="Iterations between checkpoints [default: at each evaluation]; always "
              "also at the end and on Ctrl-C.")
@click.option("--resume", is_flag=True, help="Continue the run in --out from its last.pt.")
@click.option("--out", type=DIR, default=None,
              help="Run folder [default: runs/<spec file stem>]; never silently overwritten.")
@click.option("--amp", type=click.Choice(["off", "bf16", "fp16"]), default="off",
              show_default=True, help="Mixed precision (fp16 needs CUDA; it uses a GradScaler).")
@click.option("--compile", "compile_", is_flag=True, help="torch.compile the network.")
@click.option("--channels-last", is_flag=True, help="NHWC memory format (faster on tensor cores).")
@click.option("--checkpoint-activations", is_flag=True,
              help="Recompute each block's activations in backward: far less memory.")
@click.option("--deterministic", is_flag=True,
              help="Deterministic kernels only (slower on GPUs; the CPU is deterministic anyway).")
@click.option("-q", "--quiet", is_flag=True, help="Print only warnings and errors.")
def train(spec: Path, compile_: bool, **kwargs: object) -> None:
    """Train SPEC with the paper's recipe (its train: section; flags override it).

    Writes metrics.csv, curves.png, config.yaml and last.pt into the run folder.
    Ctrl-C saves a checkpoint and exits (130); --resume continues exactly where it stopped.
    """
    from resgraph.train.config import TrainOptions
    from resgraph.train.loop import train as run

    if kwargs["epochs"] is not None and kwargs["iterations"] is not None:
        raise click.UsageError("give --epochs or --iterations, not both")
    code = run(TrainOptions(spec=spec, compile=compile_, **kwargs))  # type: ignore[arg-type]
    if code:
        raise click.exceptions.Exit(code)


@click.command("eval")
@click.argument("spec", type=SPEC)
@click.option("--weights", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="A run's last.pt or a plain state_dict file.")
@_data_options
@_device_options
@click.option("--batch-size", type=POSITIVE, default=500, show_default=True,
              help="Images per forward pass.")
def evaluate(spec: Path, weights: Path, dataset: str | None, data_dir: Path, download: bool,
             device: str, engine: str, batch_size: int) -> None:
    """Report the test error of trained weights for SPEC."""
    from resgraph.train.evaluate import evaluate_weights

    name, result = evaluate_weights(
        spec, weights, dataset=dataset, data_dir=data_dir, device=device, engine=engine,
        batch_size=batch_size, download=download,
    )
    click.echo(result.line(name))
