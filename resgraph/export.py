"""``resgraph export``: a spec's network as an ONNX model or a ``torch.export`` program.

The format follows the output's extension: ``.onnx`` goes through ``torch.onnx.export`` with
its default exporter (the ``torch.export``-based one, which needs the packages ``onnx`` and
``onnxscript``), ``.pt2`` is ``torch.export.save`` of the exported program. Both keep
resgraph's module names: the parameters are named after the modules (``layer1.0.conv1.weight``)
and ONNX nodes carry the module path in their ``namespace`` metadata.

``--fuse-bn`` folds every BatchNorm that directly follows a convolution into that convolution
(eval semantics: running statistics), with ``torch.fx``'s conv/BN fusion; a BatchNorm after a
join or the stem's input stays. ONNX's exporter optimises the graph the same way on its own,
so the flag changes the ONNX file little; for ``.pt2`` it removes the BatchNorm modules.
"""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from resgraph.errors import OutputError, ResgraphError
from resgraph.options import SPEC, spec_overrides

if TYPE_CHECKING:
    from torch import nn

    from resgraph.ir import IR

FORMATS = {".onnx": "onnx", ".pt2": "pt2"}
ONNX_PACKAGES = ("onnx", "onnxscript")
EXAMPLE_BATCH = 2  # the example batch for a dynamic batch (torch.export specialises 0 and 1)
MAX_EXAMPLE_BYTES = 1 << 30  # the example input a fixed --batch may need (float32)


class ExportError(ResgraphError):
    """The network cannot be exported as asked (format, output path, missing package)."""


@dataclass
class ExportResult:
    path: Path
    format: str
    batch: str  # "dynamic" or the fixed size
    params: int  # parameters of the exported network
    params_unfused: int  # parameters before BatchNorm folding
    folded: int  # BatchNorms folded into convolutions
    kept: int  # BatchNorms left (not after a convolution)

    def line(self) -> str:
        fused = (
            f", {self.folded} BatchNorm folded ({self.params_unfused:,} parameters "
            f"before)" + (f", {self.kept} kept" if self.kept else "")
            if self.folded or self.kept
            else ""
        )
        return (
            f"wrote {self.path} ({self.format}, batch {self.batch}): "
            f"{self.params:,} parameters{fused}"
        )


def output_format(out: Path) -> str:
    fmt = FORMATS.get(out.suffix.lower())
    if fmt is None:
        raise ExportError(
            f"{out}: unknown format '{out.suffix or '(no extension)'}'; use {' or '.join(FORMATS)}"
        )
    return fmt


def check_output(out: Path) -> None:
    """Refuse an output path that cannot be written, before any work is done."""
    parent = out.parent if str(out.parent) else Path(".")
    if out.is_dir():
        raise ExportError(f"{out}: is a folder; give a file name ending in .onnx or .pt2")
    if not parent.exists():
        raise ExportError(f"{out}: the folder {parent} does not exist")
    if not parent.is_dir():
        raise ExportError(f"{out}: {parent} is not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ExportError(f"{out}: the folder {parent} is not writable")


def parse_batch(value: str) -> int | None:
    """``dynamic`` -> None; a positive integer -> that fixed batch size."""
    if value.strip().lower() == "dynamic":
        return None
    try:
        n = int(value)
    except ValueError:
        n = 0
    if n < 1:
        raise ExportError(f"--batch must be 'dynamic' or a positive integer, got '{value}'")
    return n


def fuse_bn(model: nn.Module) -> tuple[nn.Module, int, int]:
    """``model`` (in eval mode) with every conv -> BatchNorm pair folded into the conv.

    Returns the fused module, the number of BatchNorms folded and the number left. Module
    names are kept (the conv keeps its name; the folded BatchNorm disappears)."""
    from torch import nn
    from torch.fx.experimental.optimization import fuse

    def count(m: nn.Module) -> int:
        return sum(isinstance(x, nn.modules.batchnorm._BatchNorm) for x in m.modules())

    before = count(model)
    try:
        fused = fuse(model.eval(), inplace=False)
    except Exception as exc:  # tracing refuses a module: say so instead of a traceback
        raise ExportError(f"cannot fold BatchNorm in this network: {exc}") from None
    fused.eval()
    left = count(fused)
    return fused, before - left, left


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def prepare(ir: IR, weights: Path | None, fuse: bool) -> tuple[nn.Module, int, int, int]:
    """The network in eval mode (with ``weights`` if given, BN folded if asked), its
    parameter count before folding, and the BatchNorms folded and kept."""
    from resgraph.emit.graph_module import build_module

    model = build_module(ir, seed=0)
    if weights is not None:
        from resgraph.train import checkpoint as ckpt_io
        from resgraph.weights import check_architecture

        try:
            state, ckpt = ckpt_io.read_weights(weights)
            state = without_classifier_only(ir, model, state, str(weights))
            ckpt_io.load_model_state(model, state, str(weights))
        except ResgraphError as exc:  # torch's reasons can run over several lines
            raise ExportError(_first_line(exc)) from None
        check_architecture(ckpt, ir.spec, str(weights))
    model.eval()
    unfused = n_params(model)
    folded = kept = 0
    if fuse:
        model, folded, kept = fuse_bn(model)
    return model, unfused, folded, kept


def check_example_size(ir: IR, batch: int | None) -> None:
    """Refuse a fixed batch whose example input would take more than
    :data:`MAX_EXAMPLE_BYTES`, before anything is allocated."""
    from resgraph.units import binary_bytes

    spec = ir.spec
    n = EXAMPLE_BATCH if batch is None else batch
    need = n * spec.input.channels * spec.input.size**2 * 4
    if need > MAX_EXAMPLE_BYTES:
        shape = f"{n} x {spec.input.channels}x{spec.input.size}x{spec.input.size}"
        raise ExportError(
            f"--batch {n}: the example input ({shape} float32) would take "
            f"{binary_bytes(need)}, over the {binary_bytes(MAX_EXAMPLE_BYTES, '.0f')} limit; "
            "--batch dynamic exports one file for every batch size"
        )


def without_classifier_only(
    ir: IR, model: nn.Module, state: dict[str, Any], source: str
) -> dict[str, Any]:
    """For a backbone, ``state`` without the tensors that only its classifier has (the
    head, the stages after the last output), said on stderr; anything else as it is."""
    if ir.spec.outputs is None:
        return state
    from resgraph.emit.graph_module import build_module
    from resgraph.passes import lower

    own = model.state_dict().keys()
    extra = [k for k in state if k not in own]
    classifier = build_module(lower(ir.spec.model_copy(update={"outputs": None})), seed=0)
    if not extra or not set(extra) <= classifier.state_dict().keys():
        return state
    shown = ", ".join(extra[:3]) + (f" (+{len(extra) - 3} more)" if len(extra) > 3 else "")
    click.echo(
        f"note: {source}: {len(extra)} tensors of the classifier that the backbone does not "
        f"have are left out: {shown}",
        err=True,
    )
    return {k: v for k, v in state.items() if k in own}


def _example(ir: IR, batch: int | None) -> Any:
    import torch

    spec = ir.spec
    n = EXAMPLE_BATCH if batch is None else batch
    return torch.randn(
        n,
        spec.input.channels,
        spec.input.size,
        spec.input.size,
        generator=torch.Generator().manual_seed(0),
    )


def to_onnx_bytes(
    model: nn.Module,
    x: Any,
    dynamic: bool,
    optimize: bool = True,
    output_names: Sequence[str] = ("logits",),
) -> bytes:
    """The ONNX model as bytes (checked with ``onnx.checker``); input ``input``, outputs
    ``output_names`` (a classifier's ``logits``; a backbone's feature maps by key, in its
    dict's order), a symbolic ``batch`` dimension when ``dynamic``."""
    import importlib.util

    missing = [p for p in ONNX_PACKAGES if importlib.util.find_spec(p) is None]
    if missing:
        raise ExportError(
            f"ONNX export needs the Python packages {', '.join(missing)} "
            f"(pip install {' '.join(ONNX_PACKAGES)})"
        )
    import logging
    import warnings

    import onnx
    import torch

    shapes = ({0: torch.export.Dim("batch")},) if dynamic else None
    # the exporter logs a warning per torchvision op it cannot register when torchvision is
    # missing, and warns about its own internals: nothing a user of resgraph can act on
    quiet = logging.getLogger("torch.onnx")
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            program = torch.onnx.export(
                model,
                (x,),
                dynamo=True,
                input_names=["input"],
                output_names=list(output_names),
                dynamic_shapes=shapes,
                optimize=optimize,
                verbose=False,
            )
        except Exception as exc:
            raise ExportError(f"the ONNX exporter failed: {_first_line(exc)}") from None
        finally:
            quiet.setLevel(level)
    proto = program.model_proto
    try:
        onnx.checker.check_model(proto)
        data = proto.SerializeToString()
    except Exception as exc:
        raise ExportError(f"the exported ONNX model is not valid: {_first_line(exc)}") from None
    return data


def to_pt2_bytes(model: nn.Module, x: Any, dynamic: bool) -> bytes:
    import torch

    shapes = ({0: torch.export.Dim("batch")},) if dynamic else None
    try:
        program = torch.export.export(model, (x,), dynamic_shapes=shapes)
    except Exception as exc:
        raise ExportError(f"torch.export failed: {_first_line(exc)}") from None
    buf = io.BytesIO()
    torch.export.save(program, buf)
    return buf.getvalue()


def output_names(ir: IR) -> list[str]:
    """ONNX output names: ``logits``, or a backbone's feature map keys (``layer2``, ...)."""
    return [key or "logits" for key, _ in ir.results]


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def export_spec(
    spec: str | os.PathLike[str] | IR,
    out: str | os.PathLike[str],
    *,
    weights: str | os.PathLike[str] | None = None,
    batch: str | int = "dynamic",
    fuse: bool = False,
    optimize: bool = True,
    overrides: Sequence[str] = (),
) -> ExportResult:
    """Export a spec (a path or a lowered IR) to ``out`` (``.onnx`` or ``.pt2``).

    The file is written atomically: an existing ``out`` is replaced only by a complete,
    checked export. ``optimize=False`` skips the ONNX exporter's graph optimisation (which
    folds BatchNorm on its own). ``overrides`` (``PATH=VALUE``, like ``--set``) apply to a
    spec given as a path."""
    from resgraph.fsutil import atomic_write_bytes
    from resgraph.ir import IR as IRType

    out = Path(out)
    check_output(out)
    fmt = output_format(out)
    size = parse_batch(str(batch))
    if isinstance(spec, IRType):
        ir = spec
    else:
        from resgraph.passes import lower
        from resgraph.spec import load_spec

        ir = lower(load_spec(spec, overrides))
    check_example_size(ir, size)
    import torch

    model, unfused, folded, kept = prepare(ir, Path(weights) if weights else None, fuse)
    x = _example(ir, size)
    with torch.no_grad():
        data = (
            to_onnx_bytes(model, x, size is None, optimize, output_names(ir))
            if fmt == "onnx"
            else to_pt2_bytes(model, x, size is None)
        )
    try:
        atomic_write_bytes(out, data)
    except OSError as exc:
        raise ExportError(f"{out}: cannot write it: {exc.strerror or exc}") from None
    return ExportResult(
        out, fmt, "dynamic" if size is None else str(size), n_params(model), unfused, folded, kept
    )


@click.command("export")
@click.argument("spec", type=SPEC)
@click.option(
    "-o",
    "--output",
    "out",
    type=click.Path(path_type=Path),
    required=True,
    help="model.onnx (ONNX) or model.pt2 (torch.export program).",
)
@click.option(
    "--weights",
    type=click.Path(dir_okay=False, path_type=Path),
    help="A run's last.pt or a state_dict [default: the spec's initialisation].",
)
@click.option(
    "--batch",
    default="dynamic",
    show_default=True,
    help="'dynamic' (a symbolic batch dimension) or a fixed batch size.",
)
@click.option(
    "--fuse-bn",
    is_flag=True,
    help="Fold each BatchNorm into the convolution before it (eval semantics).",
)
@click.option("--force", is_flag=True, help="Overwrite OUTPUT if it exists.")
@spec_overrides()
def export_cmd(
    spec: Path,
    out: Path,
    weights: Path | None,
    batch: str,
    fuse_bn: bool,
    force: bool,
    overrides: tuple[str, ...],
) -> None:
    """Export SPEC's network as ONNX (.onnx) or a torch.export program (.pt2), in eval mode.

    An existing OUTPUT is kept unless --force is given."""
    if out.is_file() and not force:
        raise OutputError(out, "it exists; pass --force to overwrite it")
    result = export_spec(spec, out, weights=weights, batch=batch, fuse=fuse_bn, overrides=overrides)
    click.echo(result.line())
