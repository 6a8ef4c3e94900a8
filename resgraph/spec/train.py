"""The optional ``train:`` section of a spec: the training recipe.

Defaults are the paper's CIFAR-10 recipe (He et al. 2015, sec. 4.2): SGD with momentum 0.9,
weight decay 1e-4, batch 128, lr 0.1 divided by 10 at 32k and 48k iterations, stop at 64k,
pad-4 random crops and horizontal flips, per-pixel mean subtracted.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from resgraph.spec.base import StrictModel

PAPER_ITERATIONS = 64000
PAPER_MILESTONES = (32000, 48000)
# The length a run takes when neither the spec nor a flag gives one: the paper's for
# CIFAR-10; for the 1,397 training digits, 300 iterations (about 30 epochs at batch 128)
# reach about 1% test error.
DATASET_ITERATIONS = {"cifar10": PAPER_ITERATIONS, "digits": 300}
BUILT_IN = tuple(DATASET_ITERATIONS)  # data set names; anything else is a folder's path
FOLDER_EPOCHS = 30  # an image folder's default length, in epochs
IMAGENET_BATCH = 256  # the batch size of the 'scale' crops when neither spec nor flag sets one


def default_length(dataset: str, steps_per_epoch: int) -> int:
    """Iterations a run takes when neither the spec nor a flag gives its length."""
    return DATASET_ITERATIONS.get(dataset, FOLDER_EPOCHS * steps_per_epoch)


class TrainSpec(StrictModel):
    """How to train the network. Command-line flags override these values."""

    dataset: str = Field(
        "cifar10",
        min_length=1,
        max_length=4096,
        description="Data set: 'cifar10' (the paper's; a local folder or --download), "
        "'digits' (scikit-learn's bundled 8x8 digits, resized to the input size; no "
        "download), or the path of an image folder (PATH/train/<class>/* and "
        "PATH/val/<class>/*, or class folders alone; relative to the current folder).",
    )
    holdout: float = Field(
        0.1,
        gt=0.0,
        lt=1.0,
        description="Share of each class held out as the test set when an image folder has "
        "no val/ folder (a fixed draw per class, the same for every run).",
    )
    batch_size: int = Field(
        128,
        ge=1,
        le=65536,
        description="Examples per iteration (256 with crop 'scale', the paper's ImageNet "
        "recipe, unless given).",
    )
    lr: float = Field(0.1, gt=0.0, le=10.0, description="Base learning rate.")
    momentum: float = Field(0.9, ge=0.0, lt=1.0, description="SGD momentum.")
    weight_decay: float = Field(1e-4, ge=0.0, le=1.0, description="L2 weight decay.")
    iterations: int = Field(
        PAPER_ITERATIONS,
        ge=1,
        le=10**8,
        description="Iterations to train for. Left out, the data set's default length: "
        "64,000 for cifar10 (the paper's), 300 for digits, 30 epochs for an image folder.",
    )
    milestones: list[int] = Field(
        default_factory=lambda: list(PAPER_MILESTONES),
        max_length=32,
        description="Iterations at which the lr is multiplied by gamma. Left out, they sit at "
        "the paper's fractions of the run (1/2 and 3/4 of the iterations).",
    )
    gamma: float = Field(0.1, gt=0.0, le=1.0, description="lr multiplier at each milestone.")
    schedule: Literal["step", "cosine"] = Field(
        "step",
        description="'step': the lr is multiplied by gamma at each milestone (the paper's); "
        "'cosine': it falls from lr to 0 along a half cosine over the run (Loshchilov and "
        "Hutter 2017, SGDR), milestones unused.",
    )
    label_smoothing: float = Field(
        0.0,
        ge=0.0,
        lt=1.0,
        description="Label smoothing (Szegedy et al. 2016): the training target spreads this "
        "share of its mass evenly over all classes; 0 for none.",
    )
    warmup_lr: float | None = Field(
        None,
        gt=0.0,
        le=10.0,
        description="Warm-up lr used until the training error falls below warmup_until_error "
        "(0.01 for ResNet-110 and 1202 in the paper); null for no warm-up.",
    )
    warmup_until_error: float = Field(
        0.8, gt=0.0, le=1.0, description="Training error that ends the warm-up (paper: 80%)."
    )
    validation_split: int = Field(
        0, ge=0, description="Training examples held out for validation (paper: 5000 of 50k)."
    )
    augment: bool = Field(
        True,
        description="Pad 4 pixels and take a random crop of the input size (and flip, see flip).",
    )
    crop: Literal["auto", "pad", "scale", "resized"] = Field(
        "auto",
        description="Training crops: 'pad' (pad 4, random crop of the input size: the "
        "paper's CIFAR recipe, images decoded once to the input size), 'scale' (the paper's "
        "ImageNet recipe: shorter side at random in [256, 480], random crop of the input "
        "size, PCA lighting, read from the files at every step), 'resized' (torchvision's "
        "RandomResizedCrop, from the files); 'auto': 'scale' for an image folder and a "
        "network with an ImageNet stem, else 'pad'.",
    )
    flip: bool | None = Field(
        None,
        description="Random horizontal flips when augmenting; left out (none), where a "
        "mirror image keeps its class: CIFAR-10 and image folders, not digits.",
    )
    eval_every: int | None = Field(
        None,
        ge=1,
        le=10**8,
        description="Iterations between test-set evaluations (rows of metrics.csv); null for "
        "once per epoch.",
    )
    seed: int = Field(
        0, ge=0, le=2**31 - 1, description="Seeds the weights, the data order and augmentation."
    )

    @model_validator(mode="after")
    def _check_milestones(self) -> TrainSpec:
        if any(b <= a for a, b in zip(self.milestones, self.milestones[1:], strict=False)):
            raise ValueError(f"milestones must increase, got {self.milestones}")
        if "milestones" in self.model_fields_set and any(
            m < 1 or m >= self.iterations for m in self.milestones
        ):
            raise ValueError(
                f"milestones must lie between 1 and iterations - 1 ({self.iterations - 1}), "
                f"got {self.milestones}"
            )
        return self

    def crops_for(self, folder: bool, stem_layout: str) -> str:
        """The crop in force: 'auto' resolved for the data set and the network's stem."""
        if self.crop != "auto":
            return self.crop
        return "scale" if folder and stem_layout == "imagenet" else "pad"

    def scaled_milestones(self, iterations: int | None = None) -> list[int]:
        """Milestones for a run of ``iterations`` (default: the spec's own).

        Milestones the spec gives are scaled by ``iterations / self.iterations``; the
        default ones sit at the paper's fractions (32k/64k and 48k/64k) of the run. Scaled
        milestones are rounded; those that fall outside 1..iterations-1 and duplicates are
        dropped.
        """
        total = self.iterations if iterations is None else iterations
        if "milestones" in self.model_fields_set:
            base, ref = self.milestones, self.iterations
        else:
            base, ref = list(PAPER_MILESTONES), PAPER_ITERATIONS
        out: list[int] = []
        for m in base:
            scaled = round(m * total / ref)
            if 1 <= scaled < total and scaled not in out:
                out.append(scaled)
        return out
