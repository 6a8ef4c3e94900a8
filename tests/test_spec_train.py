"""The `train:` section of a spec: the paper's recipe by default (He et al. 2015, sec. 4.2)
and every documented bound at its edge."""

from __future__ import annotations

import pytest

import resgraph
from helpers import CIFAR20


def _train(section: str):  # type: ignore[no-untyped-def]
    return resgraph.load_spec(CIFAR20 + "train:\n" + section).train


def test_defaults_are_the_papers_cifar_recipe() -> None:
    recipe = resgraph.load_spec(CIFAR20).train
    assert (recipe.dataset, recipe.batch_size, recipe.lr, recipe.momentum) == (
        "cifar10",
        128,
        0.1,
        0.9,
    )
    assert (recipe.weight_decay, recipe.iterations, list(recipe.milestones), recipe.gamma) == (
        1e-4,
        64000,
        [32000, 48000],
        0.1,
    )
    assert (recipe.warmup_lr, recipe.warmup_until_error, recipe.validation_split) == (None, 0.8, 0)
    assert (recipe.augment, recipe.eval_every, recipe.seed) == (True, None, 0)


@pytest.mark.parametrize(
    "ok, bad",
    [
        ("batch_size: 65536", "batch_size: 65537"),
        ("batch_size: 1", "batch_size: 0"),
        ("lr: 10.0", "lr: 10.5"),
        ("momentum: 0.0", "momentum: 1.0"),
        ("weight_decay: 1.0", "weight_decay: 1.5"),
        ("gamma: 1.0", "gamma: 0.0"),
        ("warmup_until_error: 1.0", "warmup_until_error: 0.0"),
        ("iterations: 1", "iterations: 0"),
        ("eval_every: 1", "eval_every: 0"),
        ("seed: 2147483647", "seed: 2147483648"),
        ("validation_split: 0", "validation_split: -1"),
    ],
)
def test_recipe_bounds_hold_at_their_edges(ok: str, bad: str) -> None:
    field = ok.split(":")[0]
    assert getattr(_train(f"  {ok}\n"), field) == pytest.approx(float(ok.split(": ")[1]))
    with pytest.raises(resgraph.SpecError, match=f"train.{field}"):
        _train(f"  {bad}\n")


@pytest.mark.parametrize(
    "milestones, valid",
    [
        ("[1, 299]", True),
        ("[100, 200]", True),
        ("[0, 200]", False),
        ("[100, 300]", False),
        ("[200, 100]", False),
        ("[100, 100]", False),
    ],
)
def test_milestones_increase_and_lie_inside_the_run(milestones: str, valid: bool) -> None:
    section = f"  iterations: 300\n  milestones: {milestones}\n"
    if valid:
        assert _train(section).milestones == [int(m) for m in milestones[1:-1].split(",")]
    else:
        with pytest.raises(resgraph.SpecError, match="milestones"):
            _train(section)
