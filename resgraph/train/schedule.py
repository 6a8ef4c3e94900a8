"""The paper's learning-rate schedule and the running training statistics."""

from __future__ import annotations

import math
from typing import Any

import torch

from resgraph.errors import TrainError


class Schedule:
    """lr = base * gamma ** (milestones passed), or with ``cosine_over`` = N
    base * (1 + cos(pi * iteration / N)) / 2; during the warm-up (ResNet-110/1202 in the
    paper) the lr is ``warmup_lr`` until the training error over a window of iterations
    falls below ``warmup_until_error``; the milestones count from iteration 0 either way."""

    def __init__(
        self,
        lr: float,
        milestones: list[int],
        gamma: float,
        warmup_lr: float | None = None,
        warmup_until_error: float = 0.8,
        cosine_over: int | None = None,
    ) -> None:
        self.base, self.milestones, self.gamma = lr, list(milestones), gamma
        self.cosine_over = cosine_over  # the run's length for a cosine schedule, else None
        self.warmup_lr, self.until = warmup_lr, warmup_until_error
        self.warming_up = warmup_lr is not None
        self.warmup_ended_at: int | None = None

    def lr(self, iteration: int) -> float:
        """The lr of iteration ``iteration`` (0-based)."""
        if self.cosine_over is not None:
            lr = self.base * 0.5 * (1.0 + math.cos(math.pi * iteration / self.cosine_over))
        else:
            lr = self.base * self.gamma ** sum(iteration >= m for m in self.milestones)
        if self.warming_up and self.warmup_lr is not None:
            lr = min(lr, self.warmup_lr)
        return lr

    def observe(self, iteration: int, train_error: float) -> bool:
        """Feed the training error of the last window; True when this ends the warm-up."""
        if self.warming_up and train_error < self.until:
            self.warming_up, self.warmup_ended_at = False, iteration
            return True
        return False

    def state_dict(self) -> dict[str, Any]:
        return {
            "warming_up": self.warming_up,
            "warmup_ended_at": self.warmup_ended_at,
            "base": self.base,
            "milestones": self.milestones,
            "gamma": self.gamma,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.warming_up = bool(state["warming_up"])
        self.warmup_ended_at = state["warmup_ended_at"]


class NonFiniteLoss(TrainError):
    """The training loss became NaN or infinite."""


class Meter:
    """Sums of loss and errors, kept on the device between reads (a read is a device sync).

    ``pending`` collects every iteration; a read (every ``sync_every`` iterations, before
    evaluations and checkpoints) adds it, summed over processes, to the ``window`` (progress,
    warm-up; reset at fixed iterations) and the ``period`` (a metrics.csv row; reset at each
    evaluation). Counts are exact, so warm-up decisions do not depend on when reads happen.
    """

    def __init__(self, device: torch.device) -> None:
        self.pending = torch.zeros(2, device=device)
        self.pending_n = 0
        self.window = [0.0, 0.0, 0, 0.0]  # loss sum, wrong, examples, training seconds
        self.period = [0.0, 0.0, 0, 0.0]
        # fp16: steps the gradient scaler skipped, counted on the device (no sync per step):
        # the current run of consecutive skips and the total
        self.streak = torch.zeros((), device=device)
        self.skipped = torch.zeros((), device=device)
        self.skip_streak = 0  # the streak as of the last read
        self.skipped_total = 0
        self.warned_skips = False

    def add(
        self, loss: torch.Tensor, wrong: torch.Tensor, n: int, skipped: torch.Tensor | None = None
    ) -> None:
        self.pending += torch.stack((loss.float() * n, wrong.float()))
        self.pending_n += n
        if skipped is not None:
            s = skipped.float()
            self.streak.mul_(s).add_(s)  # +1 when skipped, back to 0 when not
            self.skipped.add_(s)

    def read(self, total: Any, stop: bool, world: int, seconds: float) -> bool:
        """Fold the pending sums in (``total`` sums a tensor over processes); returns whether
        any process asked to stop; raises NonFiniteLoss when the loss is not finite."""
        flags = torch.cat((self.pending, torch.tensor([float(stop)], device=self.pending.device)))
        loss, wrong, stops = total(flags).tolist()
        streak, skipped = torch.stack((self.streak, self.skipped)).tolist()
        self.skip_streak, self.skipped_total = int(streak), int(skipped)
        n = self.pending_n * world
        self.pending.zero_()
        self.pending_n = 0
        if not math.isfinite(loss):
            raise NonFiniteLoss("nan" if math.isnan(loss) else "inf")
        for acc in (self.window, self.period):
            acc[0] += loss
            acc[1] += wrong
            acc[2] += n
            acc[3] += seconds
        return stops > 0

    @staticmethod
    def _take(acc: list[Any]) -> tuple[float, float, float]:
        loss, wrong, n, seconds = acc
        acc[:] = [0.0, 0.0, 0, 0.0]
        return loss / max(n, 1), wrong / max(n, 1), n / max(seconds, 1e-9)

    def take_window(self) -> tuple[float, float, float]:
        """Mean loss, error and images/s since the last call."""
        return self._take(self.window)

    def take_period(self) -> tuple[float, float, float]:
        return self._take(self.period)

    def state_dict(self) -> dict[str, Any]:
        return {"window": list(self.window), "period": list(self.period)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.window, self.period = list(state["window"]), list(state["period"])
