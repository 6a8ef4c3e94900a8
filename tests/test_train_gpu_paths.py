"""The GPU code paths, checked on the CPU with mocks: fused SGD, bf16 without native
support, TF32 switches, device_id for NCCL, the memory estimate, fp16 skipped steps (fp16
autocast and GradScaler("cpu")), compile-then-wrap and compile failures in backward."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn
from train_helpers import (
    one_thread,  # noqa: F401 (an autouse fixture: one thread)
    write_tiny_spec,
)

from resgraph.errors import TrainError
from resgraph.passes import lower
from resgraph.spec import load_spec
from resgraph.spec.train import TrainSpec
from resgraph.train import config as cfg
from resgraph.train import device as dev
from resgraph.train import distributed, loop

pytestmark = pytest.mark.slow  # trains, exports or builds large networks

CUDA = torch.device("cuda", 0)
CPU = torch.device("cpu")


def test_fused_sgd_on_cuda_only() -> None:
    params = [nn.Parameter(torch.zeros(3))]
    assert dev.make_optimizer(params, TrainSpec(), CUDA).defaults["fused"] is True
    cpu = dev.make_optimizer(params, TrainSpec(), CPU)
    assert not cpu.defaults["fused"]
    assert (cpu.defaults["momentum"], cpu.defaults["weight_decay"]) == (0.9, 1e-4)


def test_emulated_bf16_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        torch.cuda, "is_bf16_supported", lambda including_emulation=True: including_emulation
    )
    with pytest.raises(TrainError, match="no native bfloat16"):
        dev.check_amp("bf16", CUDA)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: True)
    dev.check_amp("bf16", CUDA)


def test_tf32_switches() -> None:
    flags = (
        torch.backends.cudnn.allow_tf32,
        torch.backends.cuda.matmul.allow_tf32,
        torch.backends.cudnn.benchmark,
    )
    try:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = True, False
        torch.backends.cudnn.benchmark = False
        dev.set_precision(CUDA, tf32=None, deterministic=False)
        assert torch.backends.cudnn.allow_tf32 and not torch.backends.cuda.matmul.allow_tf32
        assert torch.backends.cudnn.benchmark
        dev.set_precision(CUDA, tf32=True, deterministic=False)
        assert torch.backends.cudnn.allow_tf32 and torch.backends.cuda.matmul.allow_tf32
        dev.set_precision(CUDA, tf32=False, deterministic=False)
        assert not torch.backends.cudnn.allow_tf32 and not torch.backends.cuda.matmul.allow_tf32
    finally:
        (
            torch.backends.cudnn.allow_tf32,
            torch.backends.cuda.matmul.allow_tf32,
            torch.backends.cudnn.benchmark,
        ) = flags


def test_deterministic_mode_warns_instead_of_failing_on_global_pooling() -> None:
    before = (
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
        torch.backends.cudnn.deterministic,
    )
    try:
        dev.set_precision(CPU, tf32=None, deterministic=True)
        assert torch.are_deterministic_algorithms_enabled()
        assert torch.is_deterministic_algorithms_warn_only_enabled()
        assert torch.backends.cudnn.deterministic
    finally:
        torch.use_deterministic_algorithms(before[0], warn_only=before[1])
        torch.backends.cudnn.deterministic = before[2]


def test_nccl_gets_the_device_id(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[tuple[str, dict[str, object]]] = []
    monkeypatch.setattr(
        distributed.dist, "init_process_group", lambda backend, **kw: seen.append((backend, kw))
    )
    monkeypatch.setattr(torch.cuda, "set_device", lambda d: None)
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    monkeypatch.setenv("MASTER_PORT", "1")
    distributed.init(distributed.Dist(rank=1, world=2, local_rank=0), CUDA)
    distributed.init(distributed.Dist(rank=1, world=2), CPU)
    (nccl, kw_gpu), (gloo, kw_cpu) = seen
    assert (nccl, kw_gpu["device_id"], kw_gpu["rank"]) == ("nccl", CUDA, 1)
    assert gloo == "gloo" and "device_id" not in kw_cpu


def test_memory_plan_counts_context_and_workspace(tmp_path: Path) -> None:
    ir = lower(load_spec(write_tiny_spec(tmp_path)))
    model = nn.Linear(10, 10)
    gpu = dev.memory_plan(ir, model, 8, "off", CUDA, data_bytes=100, free=10**9)
    cpu = dev.memory_plan(ir, model, 8, "off", CPU, data_bytes=100, free=10**9)
    assert gpu.free == cpu.free == 10**9  # the free memory read before the run moved in
    assert cpu.overhead == 0
    assert gpu.overhead == dev.CUDA_CONTEXT_BYTES + dev.CUDNN_WORKSPACE_BYTES
    assert gpu.need(False) - cpu.need(False) == gpu.overhead


def test_free_memory_is_read_before_the_trainer_moves_anything(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    order: list[str] = []
    monkeypatch.setattr(dev, "free_memory", lambda d: order.append("free") or 12345)

    class Fake:
        def __init__(self, *a: object, free_bytes: int | None = None, **k: object) -> None:
            order.append(f"trainer {free_bytes}")

        def run(self) -> int:
            return 0

        def release(self) -> None:
            order.append("release")

    monkeypatch.setattr(loop, "Trainer", Fake)
    opts = cfg.TrainOptions(spec=write_tiny_spec(tmp_path), device="cpu")
    assert loop.train(opts) == 0
    assert order == ["free", "trainer 12345", "release"]


def test_sync_bn_needs_cuda(tmp_path: Path) -> None:
    opts = cfg.TrainOptions(spec=write_tiny_spec(tmp_path), device="cpu", sync_bn=True)
    with pytest.raises(TrainError, match="--sync-bn needs CUDA"):
        loop.train(opts)


def _trainer(tmp_path: Path, **kw: object) -> loop.Trainer:
    opts = cfg.TrainOptions(spec=write_tiny_spec(tmp_path), out=tmp_path / "run", quiet=True, **kw)  # type: ignore[arg-type]
    return loop.Trainer(opts, distributed.Dist(), CPU)


def test_fp16_skipped_steps_are_counted_and_warned(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(loop, "SKIPPED_WARN", 4)
    t = _trainer(tmp_path, amp="fp16", iterations=8)  # fp16 autocast runs on the CPU too
    t.scaler = torch.amp.GradScaler("cpu", init_scale=2.0**120)  # every gradient overflows
    before = {k: v.clone() for k, v in t.raw.state_dict().items()}
    assert t.run() == 0
    assert t.meter.skipped_total == 8 and t.meter.skip_streak == 8
    err = capsys.readouterr().err
    assert err.count("skipped the last 4 steps in a row (up to iteration 4)") == 1, err
    after = t.raw.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before if "weight" in k)


def test_fp16_steps_that_are_not_skipped_reset_the_streak(tmp_path: Path) -> None:
    t = _trainer(tmp_path, amp="fp16", iterations=4)
    assert t.run() == 0
    assert t.meter.skipped_total == 0 and t.meter.skip_streak == 0
    assert t.opt.defaults["fused"] is None or not t.opt.defaults["fused"]


class Compiled(nn.Module):
    """Stands in for torch.compile's module: counts calls; can fail in backward."""

    def __init__(self, inner: nn.Module, fail_backward: bool = False) -> None:
        super().__init__()
        self.inner, self.fail_backward, self.calls = inner, fail_backward, 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        out = self.inner(x)
        return _Boom.apply(out) if self.fail_backward else out


class _Boom(torch.autograd.Function):
    @staticmethod
    def forward(ctx: object, x: torch.Tensor) -> torch.Tensor:
        return x.clone()

    @staticmethod
    def backward(ctx: object, grad: torch.Tensor) -> torch.Tensor:
        raise RuntimeError("backward graph: inductor could not lower aten.foo\nmore detail")


def test_compile_wraps_the_inner_module_and_eval_stays_uncompiled(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    modes: list[str] = []

    def fake(module: nn.Module, mode: str) -> nn.Module:
        modes.append(mode)
        return Compiled(module)

    monkeypatch.setattr(dev, "compile_module", fake)
    t = _trainer(tmp_path, compile=True, compile_mode="reduce-overhead", iterations=4)
    assert isinstance(t.net, Compiled) and t.net.inner is t.raw and modes == ["reduce-overhead"]
    assert t.run() == 0
    assert t.net.calls == 4  # training steps only: the evaluations used the plain module


def test_backward_compile_failure_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(dev, "compile_module", lambda m, mode: Compiled(m, fail_backward=True))
    t = _trainer(tmp_path, compile=True, iterations=4)
    with pytest.raises(TrainError) as info:
        t.run()
    message = str(info.value)
    assert message.startswith("--compile failed (RuntimeError: backward graph: inductor")
    assert "more detail" in message and "\n" not in message and "without --compile" in message
