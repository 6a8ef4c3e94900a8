"""Run options: the spec's ``train:`` section, command-line overrides, the run folder.

The recipe (what decides the numbers a run produces) is the spec's ``train:`` section after
the flags that override it; the execution settings (device, precision, compile, ...) only
decide how fast it runs. A resumed run keeps its recipe: a flag that would change it is
refused. ``--iterations`` or ``--epochs`` move the lr milestones with the run's length.
"""

from __future__ import annotations

import hashlib
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from resgraph.errors import TrainError
from resgraph.spec.train import TrainSpec

CHECKPOINT = "last.pt"
OWN_FILES = {"config.yaml", "metrics.csv", "curves.png", "ddp_check.json", CHECKPOINT}
SYNC_EVERY = 20  # iterations between reads of the running statistics (progress, warm-up)

# flag name -> TrainSpec field, for flags that override the recipe
RECIPE_FLAGS = {
    "dataset": "dataset", "batch_size": "batch_size", "lr": "lr", "seed": "seed",
    "augment": "augment", "eval_every": "eval_every", "iterations": "iterations",
}


@dataclass
class TrainOptions:
    """What the ``train`` command was asked (None: not given, the spec decides)."""

    spec: Path
    dataset: str | None = None
    data_dir: Path = Path("data")
    download: bool = False
    epochs: int | None = None
    iterations: int | None = None
    batch_size: int | None = None
    lr: float | None = None
    seed: int | None = None
    augment: bool | None = None
    eval_every: int | None = None
    device: str = "auto"
    engine: str = "graph"
    checkpoint_every: int | None = None
    resume: bool = False
    out: Path | None = None
    amp: str = "off"
    compile: bool = False
    channels_last: bool = False
    checkpoint_activations: bool = False
    deterministic: bool = False
    quiet: bool = False
    cifar_url: str | None = None  # for tests; else $RESGRAPH_CIFAR_URL or the official one
    cifar_md5: str | None = None

    @property
    def run_dir(self) -> Path:
        return self.out if self.out is not None else Path("runs") / self.spec.stem


@dataclass
class RunConfig:
    """The resolved configuration, written to config.yaml and kept in every checkpoint."""

    spec: str
    spec_name: str
    spec_sha256: str
    train: dict[str, Any]  # the recipe after overrides
    iterations: int
    milestones: list[int]
    steps_per_epoch: int
    eval_every: int
    sync_every: int
    checkpoint_every: int
    data_dir: str
    device: str
    engine: str
    amp: str
    compile: bool
    channels_last: bool
    checkpoint_activations: bool
    deterministic: bool
    world_size: int
    torch: str
    command: str = field(default_factory=lambda: " ".join(["resgraph", *sys.argv[1:]]))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def recipe(self) -> dict[str, Any]:
        """What decides the numbers: it must not change when a run is resumed."""
        return {"train": self.train, "iterations": self.iterations,
                "milestones": self.milestones, "sync_every": self.sync_every}


def override(train: TrainSpec, opts: TrainOptions) -> TrainSpec:
    """The spec's recipe with the flags given on the command line, validated again."""
    updates = {f: getattr(opts, flag) for flag, f in RECIPE_FLAGS.items()
               if getattr(opts, flag) is not None}
    if not updates:
        return train
    data = train.model_dump(exclude_unset=True)
    data.update(updates)
    if "iterations" in updates and "milestones" in data:
        data["milestones"] = train.scaled_milestones(updates["iterations"])
    try:
        return TrainSpec.model_validate(data)
    except ValidationError as exc:
        from resgraph.spec.loader import SourceMap, _problem

        smap = SourceMap("<command line>", None)
        lines = []
        for err in exc.errors():
            name = str(err["loc"][0]) if err["loc"] else ""
            flag = next((k for k, v in RECIPE_FLAGS.items() if v == name), name)
            lines.append(f"--{flag.replace('_', '-')}: {_problem(err, smap).message}")
        raise TrainError("; ".join(lines)) from None


def resolve(
    spec_path: Path, spec_name: str, train: TrainSpec, opts: TrainOptions,
    steps_per_epoch: int, world: int, device: str, torch_version: str,
) -> RunConfig:
    """Fill in everything a run needs; ``train`` already holds the overrides except epochs."""
    iterations = train.iterations if opts.epochs is None else opts.epochs * steps_per_epoch
    milestones = train.scaled_milestones(iterations)
    # Record the milestones in force (scaled with the run's length) in the recipe itself.
    train = TrainSpec.model_validate({**train.model_dump(exclude_unset=True),
                                      "iterations": iterations, "milestones": milestones})
    eval_every = train.eval_every or steps_per_epoch
    return RunConfig(
        spec=str(spec_path),
        spec_name=spec_name,
        spec_sha256=hashlib.sha256(Path(spec_path).read_bytes()).hexdigest(),
        train=train.model_dump(),
        iterations=iterations,
        milestones=milestones,
        steps_per_epoch=steps_per_epoch,
        eval_every=eval_every,
        sync_every=min(SYNC_EVERY, eval_every),
        checkpoint_every=opts.checkpoint_every or eval_every,
        data_dir=str(opts.data_dir),
        device=device,
        engine=opts.engine,
        amp=opts.amp,
        compile=opts.compile,
        channels_last=opts.channels_last,
        checkpoint_activations=opts.checkpoint_activations,
        deterministic=opts.deterministic,
        world_size=world,
        torch=torch_version,
    )


def recipe_changes(saved: dict[str, Any], now: RunConfig) -> list[str]:
    """How the recipe asked for now differs from the one a run was started with."""
    old, new = saved, now.recipe()
    changes = []
    for key in new:
        if key == "train":
            for name, value in new["train"].items():
                if old["train"].get(name) != value:
                    changes.append(f"{name}: the run has {old['train'].get(name)!r}, now {value!r}")
        elif old.get(key) != new[key]:
            changes.append(f"{key}: the run has {old.get(key)!r}, now {new[key]!r}")
    return changes


def run_state(run_dir: Path, resume: bool) -> str:
    """'fresh' or 'resume'; raises when an existing run would be overwritten."""
    if not run_dir.exists():
        return "fresh"
    if not run_dir.is_dir():
        raise TrainError(f"{run_dir} exists and is not a folder; choose another --out")
    if (run_dir / CHECKPOINT).is_file():
        if resume:
            return "resume"
        raise TrainError(
            f"{run_dir} already holds a run ({CHECKPOINT}); continue it with --resume, or "
            "choose another --out (nothing was overwritten)"
        )
    names = {p.name for p in run_dir.iterdir() if not p.name.startswith(".")}
    if names and not (resume and names <= OWN_FILES):
        hint = "" if resume else "; --resume continues a run only from its checkpoint"
        raise TrainError(
            f"{run_dir} is not empty (it holds {', '.join(sorted(names)[:5])}) and has no "
            f"{CHECKPOINT} to resume from; choose another --out (nothing was overwritten){hint}"
        )
    return "fresh"
