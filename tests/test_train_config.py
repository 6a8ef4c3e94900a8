"""The train: section, command-line overrides, milestone scaling, the run folder policy,
the lr schedule and the memory estimate (no training here)."""

from __future__ import annotations

from pathlib import Path

import pytest
from train_helpers import SPECS, write_tiny_spec

import resgraph
from resgraph.errors import SpecError, TrainError
from resgraph.spec.train import TrainSpec
from resgraph.train import config as cfg
from resgraph.train.schedule import Schedule

BASE = """\
name: Net
input: {channels: 3, size: 32}
num_classes: 10
stages: [{width: 16, repeats: 1}]
"""


def test_defaults_are_the_paper_recipe() -> None:
    t = resgraph.load_spec(SPECS / "cifar_resnet20.yaml").train
    assert (t.batch_size, t.lr, t.momentum, t.weight_decay) == (128, 0.1, 0.9, 1e-4)
    assert (t.iterations, t.milestones, t.gamma) == (64000, [32000, 48000], 0.1)
    assert t.warmup_lr is None and t.dataset == "cifar10" and t.augment
    assert resgraph.load_spec(SPECS / "cifar_resnet110.yaml").train.warmup_lr == 0.01
    assert resgraph.load_spec(SPECS / "cifar_resnet1202.yaml").train.warmup_lr == 0.01


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ("  lr: -0.1\n", "6:7: train.lr: must be > 0"),
        ("  dataset: ''\n", "6:12: train.dataset: "),
        ("  batch_size: 0\n", "6:15: train.batch_size: must be a positive integer"),
        ("  epochs: 3\n", "6:3: train: unknown key 'epochs'"),
        ("  iterations: 100\n  milestones: [50, 100]\n", "milestones must lie between 1 and"),
        ("  milestones: [50, 20]\n", "milestones must increase"),
        ("  eval_every: 0\n", "train.eval_every: must be a positive integer"),
    ],
)
def test_bad_train_section_is_located(tmp_path: Path, section: str, message: str) -> None:
    path = tmp_path / "net.yaml"
    path.write_text(BASE + "train:\n" + section)
    with pytest.raises(SpecError) as err:
        resgraph.load_spec(path)
    assert str(err.value).startswith(str(path)) and message in str(err.value)


def test_every_train_field_is_described() -> None:
    assert all(f.description for f in TrainSpec.model_fields.values())


def test_milestones_follow_the_run_length() -> None:
    paper = TrainSpec()
    assert paper.scaled_milestones() == [32000, 48000]
    assert paper.scaled_milestones(640) == [320, 480]
    assert paper.scaled_milestones(2) == [1]
    own = TrainSpec.model_validate({"iterations": 1000, "milestones": [100, 900]})
    assert own.scaled_milestones() == [100, 900] and own.scaled_milestones(100) == [10, 90]
    short = TrainSpec.model_validate({"iterations": 1000})
    assert short.scaled_milestones() == [500, 750]


def _opts(tmp_path: Path, **kw: object) -> cfg.TrainOptions:
    return cfg.TrainOptions(spec=write_tiny_spec(tmp_path), **kw)  # type: ignore[arg-type]


def test_flags_override_the_spec(tmp_path: Path) -> None:
    spec = resgraph.load_spec(SPECS / "cifar_resnet110.yaml")
    opts = _opts(tmp_path, lr=0.05, iterations=6400, batch_size=64, dataset="digits")
    t = cfg.override(spec.train, opts)
    assert (t.lr, t.iterations, t.batch_size, t.dataset, t.warmup_lr) == (
        0.05,
        6400,
        64,
        "digits",
        0.01,
    )
    run = cfg.resolve(SPECS / "cifar_resnet110.yaml", spec, t, opts, 10, 1, "cpu", "2")
    assert run.milestones == [3200, 4800] and run.train["milestones"] == [3200, 4800]
    epochs = cfg.resolve(
        SPECS / "cifar_resnet110.yaml",
        spec,
        spec.train,
        _opts(tmp_path, epochs=3),
        390,
        1,
        "cpu",
        "2",
    )
    assert epochs.iterations == 1170 and epochs.milestones == [585, 878]
    assert epochs.eval_every == 390 and epochs.checkpoint_every == 390


def test_bad_flag_values_name_the_flag(tmp_path: Path) -> None:
    with pytest.raises(TrainError, match=r"--lr: must be <= 10"):
        cfg.override(TrainSpec(), _opts(tmp_path, lr=50.0))
    with pytest.raises(TrainError, match=r"--lr: must be > 0"):
        cfg.override(TrainSpec(), _opts(tmp_path, lr=0.0))


def test_run_folder_is_never_overwritten(tmp_path: Path) -> None:
    run = tmp_path / "run"
    assert cfg.run_state(run, resume=False) == "fresh"
    run.mkdir()
    assert cfg.run_state(run, resume=False) == "fresh"  # empty
    (run / "notes.txt").write_text("mine")
    with pytest.raises(TrainError, match="is not empty"):
        cfg.run_state(run, resume=True)
    (run / "notes.txt").unlink()
    (run / "config.yaml").write_text("x")  # a run that died before its first checkpoint
    with pytest.raises(TrainError, match="is not empty"):
        cfg.run_state(run, resume=False)
    assert cfg.run_state(run, resume=True) == "fresh"
    (run / "last.pt").write_bytes(b"x")
    with pytest.raises(TrainError, match="--resume"):
        cfg.run_state(run, resume=False)
    assert cfg.run_state(run, resume=True) == "resume"


def test_schedule_steps_and_warms_up() -> None:
    s = Schedule(0.1, [10, 20], 0.1)
    assert [s.lr(i) for i in (0, 9, 10, 19, 20)] == pytest.approx([0.1, 0.1, 0.01, 0.01, 0.001])
    w = Schedule(0.1, [10, 20], 0.1, warmup_lr=0.01, warmup_until_error=0.8)
    assert w.lr(0) == 0.01 and not w.observe(4, 0.85)
    assert w.lr(5) == 0.01 and w.observe(5, 0.79) and w.lr(5) == 0.1
    assert w.lr(15) == pytest.approx(0.01) and w.warmup_ended_at == 5
    again = Schedule(0.1, [10, 20], 0.1, warmup_lr=0.01)
    again.load_state_dict(w.state_dict())
    assert again.lr(5) == 0.1


def test_memory_estimate_and_warning() -> None:
    import torch

    from resgraph.emit import build_model
    from resgraph.train import device as dev

    ir = resgraph.lower(resgraph.load_spec(SPECS / "cifar_resnet110.yaml"))
    model = build_model(ir)
    plan = dev.memory_plan(ir, model, 128, "off", torch.device("cpu"), 0)
    assert plan.activations_checkpointed < plan.activations / 4
    plan.free = plan.need(False) // 2
    text = dev.memory_warning(plan, 128, "off", checkpointed=False)
    assert text and "--batch-size 64" in text and "--checkpoint-activations" in text
    assert "--amp bf16" in text
    plan.free = plan.need(False) * 4
    assert dev.memory_warning(plan, 128, "off", checkpointed=False) is None


def test_fp16_is_refused_on_the_cpu() -> None:
    import torch

    from resgraph.train import device as dev

    with pytest.raises(TrainError, match="fp16 needs a CUDA GPU"):
        dev.check_amp("fp16", torch.device("cpu"))
    dev.check_amp("bf16", torch.device("cpu"))


def test_memory_plan_describes_itself_with_the_free_memory_when_known() -> None:
    from resgraph.train import device as dev

    plan = dev.MemoryPlan(2**20, 2**19, 2**20, 0, None, "cpu")
    assert plan.describe(False) == "memory about 2.0 MiB"
    assert plan.describe(True) == "memory about 1.5 MiB"
    plan.free = 2**30
    assert plan.describe(False) == "memory about 2.0 MiB of 1.0 GiB free"


def test_saved_random_states_are_restored_only_for_as_many_processes() -> None:
    import torch

    from resgraph.train import checkpoint as ckpt_io

    cpu = torch.device("cpu")
    states = [ckpt_io.rng_state(cpu), None]
    expected = torch.rand(3)
    states[1] = ckpt_io.rng_state(cpu)  # rank 1's state: the draw after `expected`
    ckpt = {"rng": states}
    assert not ckpt_io.restore_rng(ckpt, 0, 3, cpu)  # 2 saved, 3 now: left alone
    assert ckpt_io.restore_rng(ckpt, 0, 2, cpu)
    assert torch.equal(torch.rand(3), expected)  # rank 0's state
    assert ckpt_io.restore_rng(ckpt, 1, 2, cpu)
    assert not torch.equal(torch.rand(3), expected)
