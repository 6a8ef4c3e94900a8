"""Where and how the model runs: device choice, mixed precision, channels-last, compile,
activation checkpointing, and the memory check made before training starts."""

from __future__ import annotations

import contextlib
import functools
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from resgraph.errors import TrainError
from resgraph.ir import IR
from resgraph.ops import Input
from resgraph.summary import BYTES_PER_FLOAT, activation_bytes
from resgraph.units import binary_bytes

AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def pick_device(choice: str, local_rank: int = 0) -> torch.device:
    """``auto`` is CUDA when present, else the CPU; under torchrun, GPU ``LOCAL_RANK``."""
    if choice == "auto":
        choice = "cuda" if torch.cuda.is_available() else "cpu"
    if choice == "cuda":
        if not torch.cuda.is_available():
            raise TrainError(
                "--device cuda: no CUDA GPU is available (this PyTorch build "
                f"is {torch.__version__}); use --device cpu"
            )
        if local_rank >= torch.cuda.device_count():
            raise TrainError(f"LOCAL_RANK {local_rank} but only {torch.cuda.device_count()} GPUs")
        return torch.device("cuda", local_rank)
    if choice != "cpu":
        raise TrainError(f"unknown device '{choice}' (expected auto, cpu or cuda)")
    return torch.device("cpu")


def check_amp(amp: str, device: torch.device) -> None:
    if amp == "fp16" and device.type == "cpu":
        raise TrainError("--amp fp16 needs a CUDA GPU; on the CPU use --amp bf16 or --amp off")
    # Pre-Ampere GPUs emulate bfloat16 (is_bf16_supported() says yes unless asked for native
    # support): slower than fp32, so refuse it.
    if (
        amp == "bf16"
        and device.type == "cuda"
        and not torch.cuda.is_bf16_supported(including_emulation=False)
    ):
        raise TrainError(
            "--amp bf16: this GPU has no native bfloat16 (it needs compute "
            "capability 8.0 or later); use --amp fp16"
        )


def set_precision(device: torch.device, tf32: bool | None, deterministic: bool) -> None:
    """cuDNN autotuning (off with ``deterministic``) and TF32 for fp32 matmuls and
    convolutions on Ampere and later: PyTorch's defaults use TF32 for convolutions only;
    ``tf32`` True or False sets both."""
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = not deterministic
        if tf32 is not None:
            torch.backends.cudnn.allow_tf32 = tf32
            torch.backends.cuda.matmul.allow_tf32 = tf32
    if deterministic:
        # warn_only: PyTorch flags every CUDA adaptive-average-pool backward, which the
        # networks' global pooling uses; with a 1x1 output each input gets one contribution,
        # so its atomic adds are deterministic here and that one warning is silenced. Other
        # kernels without a deterministic version still warn.
        torch.use_deterministic_algorithms(True, warn_only=True)
        warnings.filterwarnings(
            "ignore", message="adaptive_avg_pool2d_backward_cuda does not have a deterministic"
        )
        torch.backends.cudnn.deterministic = True


def seed_step(seed: int, device: torch.device) -> None:
    """Seed the generators random layers draw from (this process's device only)."""
    torch.random.default_generator.manual_seed(seed)
    if device.type == "cuda":
        torch.cuda.manual_seed(seed)


def make_optimizer(params: Any, recipe: Any, device: torch.device) -> torch.optim.SGD:
    """The paper's SGD; on CUDA the fused kernel (one launch, and with fp16 the scaler's
    inf check stays on the device instead of a host sync per step)."""
    return torch.optim.SGD(
        params,
        lr=recipe.lr,
        momentum=recipe.momentum,
        weight_decay=recipe.weight_decay,
        fused=True if device.type == "cuda" else None,
    )


def compile_module(module: nn.Module, mode: str) -> nn.Module:
    """``torch.compile`` (``mode``: default, reduce-overhead = CUDA graphs, max-autotune)."""
    return torch.compile(module, mode=None if mode == "default" else mode)


def compile_error(exc: BaseException) -> TrainError:
    """One line for a failure of torch.compile (forward or backward graph)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    why = " ".join(lines[:2])[:300]
    return TrainError(f"--compile failed ({type(exc).__name__}: {why}); run without --compile")


def autocast(
    amp: str, device: torch.device
) -> Callable[[], contextlib.AbstractContextManager[None]]:
    """A factory of the autocast context for the forward pass (a no-op when ``amp`` is off)."""
    if amp == "off":
        return contextlib.nullcontext
    return functools.partial(torch.autocast, device_type=device.type, dtype=AMP_DTYPES[amp])


def checkpoint_blocks(model: nn.Module, ir: IR) -> int:
    """Recompute each residual block's activations in the backward pass instead of keeping
    them: only block inputs stay in memory. Works on both engines, whose blocks are
    submodules at the IR's block paths; the module tree and state_dict are unchanged.

    The recomputation runs the block's forward a second time: its batch-norm running
    statistics are put back afterwards, so they are updated once per step, as without
    checkpointing (random draws are replayed by torch.utils.checkpoint)."""
    for path in ir.blocks:
        block = model.get_submodule(path)
        block.forward = functools.partial(  # type: ignore[method-assign]
            _checkpointed, block.forward, functools.partial(_contexts, block)
        )
    return len(ir.blocks)


def _checkpointed(
    forward: Callable[..., torch.Tensor],
    contexts: Callable[[], tuple[Any, Any]],
    *args: torch.Tensor,
) -> torch.Tensor:
    if not torch.is_grad_enabled():  # evaluation: nothing to save
        return forward(*args)
    if torch.compiler.is_compiling():
        # Compiled graphs apply buffer updates once, in the forward; the recomputation in
        # the backward graph does not repeat them (and takes no custom contexts).
        return checkpoint(forward, *args, use_reentrant=False)
    return checkpoint(forward, *args, use_reentrant=False, context_fn=contexts)


def _contexts(block: nn.Module) -> tuple[contextlib.AbstractContextManager[None], _KeepStats]:
    return contextlib.nullcontext(), _KeepStats(block)


class _KeepStats:
    """Restores the batch-norm buffers of ``block`` when the recomputation is over."""

    def __init__(self, block: nn.Module) -> None:
        self.block = block
        self.saved: list[tuple[torch.Tensor, torch.Tensor]] = []

    def __enter__(self) -> None:
        self.saved = [
            (buf, buf.clone())
            for m in self.block.modules()
            if isinstance(m, nn.modules.batchnorm._BatchNorm)
            for buf in m.buffers()
        ]

    def __exit__(self, *exc: object) -> None:
        with torch.no_grad():
            for buf, value in self.saved:
                buf.copy_(value)
        self.saved = []


# --- memory -----------------------------------------------------------------------------


CUDA_CONTEXT_BYTES = 600 * 2**20  # the CUDA context and kernels, per process (approx.)
CUDNN_WORKSPACE_BYTES = 256 * 2**20  # cuDNN's convolution workspace with benchmark on (approx.)


@dataclass
class MemoryPlan:
    activations: int
    activations_checkpointed: int
    weights: int  # parameters, gradients and momentum
    data: int
    free: int | None
    where: str
    overhead: int = 0  # CUDA context and cuDNN workspace

    def need(self, checkpointed: bool) -> int:
        acts = self.activations_checkpointed if checkpointed else self.activations
        return acts + self.weights + self.data + self.overhead

    def describe(self, checkpointed: bool) -> str:
        """'memory about 1.2 GiB of 10 GiB free' (the free part when it is known)."""
        text = f"memory about {fmt_bytes(self.need(checkpointed))}"
        return text if self.free is None else f"{text} of {fmt_bytes(self.free)} free"


def _elements(n: object) -> int:
    size = 1
    for d in getattr(n, "shape", None) or ():
        size *= d
    return size


def checkpointed_activation_bytes(ir: IR, batch_size: int) -> int:
    """Activations kept with block checkpointing: everything outside blocks, each block's
    output (the next block's saved input), and one block's internals during recompute."""
    outside, outputs, inside = 0, 0, {path: 0 for path in ir.blocks}
    block_outputs = {b.output for b in ir.blocks.values()}
    for n in ir.nodes():
        if isinstance(n.op, Input) or n.op.arity is None or (n.op.arity or 0) >= 2:
            if n.name in block_outputs:
                outputs += _elements(n)
            continue
        if n.name in block_outputs:
            outputs += _elements(n)
        if n.scope in inside:
            inside[n.scope] += _elements(n)
        else:
            outside += _elements(n)
    peak_block = max(inside.values(), default=0)
    return (outside + outputs + peak_block) * BYTES_PER_FLOAT * batch_size


def memory_plan(
    ir: IR,
    model: nn.Module,
    batch_size: int,
    amp: str,
    device: torch.device,
    data_bytes: int,
    free: int | None = None,
) -> MemoryPlan:
    """The memory a run needs, and ``free``: the free memory read before anything of the
    run was moved to the device (read now when not given)."""
    scale = 2 if amp != "off" else 1  # half-precision activations take half the room
    params = sum(p.numel() * p.element_size() for p in model.parameters())
    cuda = device.type == "cuda"
    return MemoryPlan(
        activations=activation_bytes(ir, batch_size) // scale,
        activations_checkpointed=checkpointed_activation_bytes(ir, batch_size) // scale,
        weights=3 * params,
        data=data_bytes,
        free=free if free is not None else free_memory(device),
        where=str(device),
        overhead=CUDA_CONTEXT_BYTES + CUDNN_WORKSPACE_BYTES if cuda else 0,
    )


def free_memory(device: torch.device) -> int | None:
    """Free bytes on a CUDA device before this process used it, or the CPU's MemAvailable;
    None when unknown. Read it before moving anything of the run to the device."""
    if device.type == "cuda":
        # The query itself creates this process's CUDA context; count its room as free, as
        # the plan counts the context among what the run needs.
        return torch.cuda.mem_get_info(device)[0] + CUDA_CONTEXT_BYTES
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def fmt_bytes(value: float) -> str:
    return binary_bytes(value, ".1f")


def memory_warning(plan: MemoryPlan, batch_size: int, amp: str, checkpointed: bool) -> str | None:
    """A warning when the estimate exceeds 90% of the free memory, with what would help."""
    need = plan.need(checkpointed)
    if plan.free is None or need <= 0.9 * plan.free:
        return None
    tips = [f"--batch-size {max(1, batch_size // 2)}"]
    if amp == "off":
        tips.append(
            f"--amp bf16 (about {fmt_bytes(need - plan.activations // 2)})"
            if not checkpointed
            else "--amp bf16"
        )
    if not checkpointed:
        tips.append(f"--checkpoint-activations (about {fmt_bytes(plan.need(True))})")
    return (
        f"warning: this run needs about {fmt_bytes(need)} (activations at batch {batch_size}: "
        f"{fmt_bytes(plan.activations_checkpointed if checkpointed else plan.activations)}, "
        f"weights, gradients and momentum: {fmt_bytes(plan.weights)}, data: "
        f"{fmt_bytes(plan.data)}) but only {fmt_bytes(plan.free)} is free on {plan.where}; "
        f"it may run out of memory. Try {', or '.join(tips)}."
    )
