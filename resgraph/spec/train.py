"""The optional ``train:`` section of a spec: the training recipe.

Defaults are the paper's CIFAR-10 recipe (He et al. 2015, sec. 4.2): SGD with momentum 0.9,
weight decay 1e-4, batch 128, lr 0.1 divided by 10 at 32k and 48k iterations, stop at 64k.
"""

from __future__ import annotations

from pydantic import Field, model_validator

from resgraph.spec.base import StrictModel


class TrainSpec(StrictModel):
    """How to train the network. Command-line flags override these values."""

    batch_size: int = Field(128, ge=1, le=65536, description="Examples per iteration.")
    lr: float = Field(0.1, gt=0.0, le=10.0, description="Base learning rate.")
    momentum: float = Field(0.9, ge=0.0, lt=1.0, description="SGD momentum.")
    weight_decay: float = Field(1e-4, ge=0.0, le=1.0, description="L2 weight decay.")
    iterations: int = Field(64000, ge=1, le=10**8, description="Iterations to train for.")
    milestones: list[int] = Field(
        default_factory=lambda: [32000, 48000],
        max_length=32,
        description="Iterations at which the lr is multiplied by gamma.",
    )
    gamma: float = Field(0.1, gt=0.0, le=1.0, description="lr multiplier at each milestone.")
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

    @model_validator(mode="after")
    def _increasing_milestones(self) -> TrainSpec:
        if any(b <= a for a, b in zip(self.milestones, self.milestones[1:])):
            raise ValueError(f"milestones must increase, got {self.milestones}")
        return self
