"""Run options: the spec's ``train:`` section, command-line overrides, the run folder.

The recipe (what decides the numbers a run produces) is the spec's ``train:`` section after
the flags that override it; the execution settings (device, precision, compile, ...) only
decide how fast it runs. A resumed run keeps its recipe: a flag that would change it is
refused. ``--iterations`` or ``--epochs`` move the lr milestones with the run's length.
"""

from __future__ import annotations

import hashlib
import shlex
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from resgraph.errors import TrainError
from resgraph.spec.schema import ModelSpec
from resgraph.spec.train import BUILT_IN, IMAGENET_BATCH, TrainSpec, default_length
from resgraph.train.data import class_difference

CHECKPOINT = "last.pt"
UNREADABLE = "unreadable.txt"  # image files left out of the run, one "path: reason" a line
OWN_FILES = {"config.yaml", "metrics.csv", "curves.png", "ddp_check.json", UNREADABLE, CHECKPOINT}
SYNC_EVERY = 20  # iterations between reads of the running statistics (progress, warm-up)

# flag name -> TrainSpec field, for flags that override the recipe
RECIPE_FLAGS = {
    "dataset": "dataset",
    "batch_size": "batch_size",
    "lr": "lr",
    "seed": "seed",
    "augment": "augment",
    "eval_every": "eval_every",
    "iterations": "iterations",
    "momentum": "momentum",
    "weight_decay": "weight_decay",
    "milestones": "milestones",
    "warmup_lr": "warmup_lr",
    "flip": "flip",
    "holdout": "holdout",
    "crop": "crop",
    "schedule": "schedule",
    "label_smoothing": "label_smoothing",
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
    flip: bool | None = None
    holdout: float | None = None
    crop: str | None = None
    workers: int | None = None  # decoding processes for crops read from files (None: auto)
    loader: str = "auto"  # who decodes crops read from files: auto, cpu (workers), dali
    schedule: str | None = None
    label_smoothing: float | None = None
    eval_every: int | None = None
    momentum: float | None = None
    weight_decay: float | None = None
    milestones: list[int] | None = None
    warmup_lr: float | None = None
    device: str = "auto"
    engine: str = "graph"
    checkpoint_every: int | None = None
    resume: bool = False
    init_from: Path | None = None  # weights a new run starts from
    out: Path | None = None
    amp: str = "off"
    compile: bool = False
    compile_mode: str = "default"
    channels_last: bool = False
    checkpoint_activations: bool = False
    deterministic: bool = False
    sync_bn: bool = False
    tf32: bool | None = None  # None: PyTorch's defaults
    skip_unreadable: bool = False  # leave unusable image files out instead of refusing
    quiet: bool = False
    cifar_url: str | None = None  # for tests; else $RESGRAPH_CIFAR_URL or the official one
    cifar_md5: str | None = None
    overrides: tuple[str, ...] = ()  # --set PATH=VALUE on the spec

    @property
    def run_dir(self) -> Path:
        return self.out if self.out is not None else Path("runs") / self.spec.stem


@dataclass
class RunConfig:
    """The resolved configuration, written to config.yaml and kept in every checkpoint."""

    spec: str
    spec_name: str
    spec_sha256: str
    arch_sha256: str  # the spec without its train: section (resgraph.emit.source.spec_hash)
    architecture: dict[str, Any]  # ... and that part itself, to name what changed
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
    compile_mode: str
    channels_last: bool
    checkpoint_activations: bool
    deterministic: bool
    sync_bn: bool
    tf32: bool | None
    world_size: int
    torch: str
    init_from: str | None = None  # the weights the run started from (--init-from)
    classes: list[str] | None = None  # an image folder's class names, in label order
    # the command line as a shell would take it back (arguments with spaces stay whole)
    command: str = field(default_factory=lambda: shlex.join(["resgraph", *sys.argv[1:]]))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def recipe(self) -> dict[str, Any]:
        """What decides the numbers: it must not change when a run is resumed (the run's
        length and milestones are part of ``train``)."""
        return {"train": self.train, "sync_every": self.sync_every, "classes": self.classes}


def override(
    train: TrainSpec, opts: TrainOptions, saved: dict[str, Any] | None = None
) -> TrainSpec:
    """The recipe with the flags given on the command line, validated again: the spec's
    ``train:`` section, or for a resumed run the recipe saved in its checkpoint (``saved``,
    a RunConfig as a dict), so ``--resume`` needs no recipe flags."""
    if saved is not None:
        train = TrainSpec.model_validate(saved["train"])
    updates = {
        f: getattr(opts, flag)
        for flag, f in RECIPE_FLAGS.items()
        if getattr(opts, flag) is not None
    }
    if not updates:
        return train
    data = train.model_dump(exclude_unset=True)
    data.update(updates)
    if "iterations" in updates and "milestones" not in updates and "milestones" in data:
        data["milestones"] = train.scaled_milestones(updates["iterations"])
    try:
        return TrainSpec.model_validate(data)
    except ValidationError as exc:
        from resgraph.spec.loader import SourceMap, _problem

        smap = SourceMap("<command line>", None)
        lines = []
        for err in exc.errors():
            message = _problem(err, smap).message
            # checks across fields (milestones within the run) have no location
            name = str(err["loc"][0]) if err["loc"] else message.split()[0]
            flag = next((k for k, v in RECIPE_FLAGS.items() if v == name), None)
            lines.append(f"--{flag.replace('_', '-')}: {message}" if flag else message)
        raise TrainError("; ".join(lines)) from None


def recipe(spec: ModelSpec, opts: TrainOptions, saved: dict[str, Any] | None) -> TrainSpec:
    """The spec's recipe (or a resumed run's own, ``saved``) with the flags, and the crop its
    data set takes: ImageNet-style scale augmentation brings the paper's mini-batch unless
    the recipe sets one."""
    train = override(spec.train, opts, saved=saved)
    crop = train.crops_for(train.dataset not in BUILT_IN, spec.stem.layout)
    update: dict[str, Any] = {"crop": crop}
    if crop == "scale" and "batch_size" not in train.model_fields_set:
        update["batch_size"] = IMAGENET_BATCH  # the paper's ImageNet mini-batch
    return train.model_copy(update=update)


def resolve(
    spec_path: Path,
    spec: ModelSpec,
    train: TrainSpec,
    opts: TrainOptions,
    steps_per_epoch: int,
    world: int,
    device: str,
    torch_version: str,
    classes: list[str] | None = None,
) -> RunConfig:
    """Fill in everything a run needs; ``train`` already holds the overrides except epochs."""
    from resgraph.spec.digest import spec_hash
    from resgraph.weights import architecture

    if opts.epochs is not None:
        iterations = opts.epochs * steps_per_epoch
    elif "iterations" in train.model_fields_set:
        iterations = train.iterations
    else:  # neither the spec nor a flag gives a length: the data set's default
        iterations = default_length(train.dataset, steps_per_epoch)
    milestones = train.scaled_milestones(iterations)
    # Record the milestones in force (scaled with the run's length) in the recipe itself.
    train = TrainSpec.model_validate(
        {**train.model_dump(exclude_unset=True), "iterations": iterations, "milestones": milestones}
    )
    eval_every = train.eval_every or steps_per_epoch
    return RunConfig(
        spec=str(spec_path),
        spec_name=spec.name,
        spec_sha256=hashlib.sha256(Path(spec_path).read_bytes()).hexdigest(),
        arch_sha256=spec_hash(spec),
        architecture=architecture(spec),
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
        compile_mode=opts.compile_mode,
        channels_last=opts.channels_last,
        checkpoint_activations=opts.checkpoint_activations,
        deterministic=opts.deterministic,
        sync_bn=opts.sync_bn,
        tf32=opts.tf32,
        world_size=world,
        torch=torch_version,
        init_from=str(opts.init_from) if opts.init_from is not None else None,
        classes=classes,
    )


def recipe_changes(saved: dict[str, Any], now: RunConfig) -> list[str]:
    """How the recipe asked for now differs from the one a run was started with."""
    old, new = saved, now.recipe()
    changes = [
        f"{name}: the run has {old['train'].get(name)!r}, now {value!r}"
        for name, value in new["train"].items()
        if old["train"].get(name) != value
    ]
    if old.get("sync_every") != new["sync_every"]:
        changes.append(
            f"sync_every: the run has {old.get('sync_every')!r}, now {new['sync_every']!r}"
        )
    if old.get("classes") != new["classes"]:
        changes.append(
            f"classes: {class_difference(old.get('classes') or [], new['classes'] or [])}"
        )
    return changes


def refuse_changed_recipe(saved: dict[str, Any], now: RunConfig, run_dir: Path) -> None:
    """A resumed run keeps its recipe (``saved``, the RunConfig it was started with)."""
    changes = recipe_changes(saved, now)
    if changes:
        raise TrainError(
            f"{run_dir} was started with another recipe ({'; '.join(changes)}); a "
            "resumed run keeps its recipe: drop the flags that change it, or start a "
            "new run with another --out"
        )


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
