"""Building the network for training, and measuring test error (``resgraph eval``)."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from resgraph.errors import TrainError
from resgraph.ir import IR
from resgraph.spec.schema import ModelSpec
from resgraph.spec.train import BUILT_IN, TrainSpec
from resgraph.train.data import ImageSet, class_difference
from resgraph.weights import check_architecture


def build(ir: IR, engine: str, seed: int | None) -> nn.Module:
    """The network from ``resgraph.emit.build_model`` with the chosen engine."""
    from resgraph.emit import build_model

    if engine not in ("graph", "generated"):
        raise TrainError(f"unknown engine '{engine}' (expected 'graph' or 'generated')")
    try:
        return build_model(ir, engine=engine, seed=seed)  # type: ignore[arg-type]
    except ImportError as exc:
        raise TrainError(
            f"--engine {engine} is not available here ({exc}); use --engine graph"
        ) from None


@torch.no_grad()
def evaluate(
    model: nn.Module,
    batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
    autocast: Callable[[], contextlib.AbstractContextManager[None]] = contextlib.nullcontext,
) -> tuple[float, float]:
    """Mean cross-entropy and error (a fraction) of ``model`` in eval mode over ``batches``."""
    was_training = model.training
    model.eval()
    sums, n, device = None, 0, None
    try:
        for x, y in batches:
            with autocast():
                out = model(x)
            part = torch.stack(
                (
                    F.cross_entropy(out.float(), y, reduction="sum"),
                    (out.argmax(1) != y).sum().float(),
                )
            )
            sums = part if sums is None else sums + part
            n += len(y)
            device = x.device
    finally:
        model.train(was_training)
    if sums is None or device is None:
        return float("nan"), float("nan")
    loss, wrong = sums.tolist()
    return loss / n, wrong / n


@torch.no_grad()
def per_class(
    model: nn.Module, batches: Iterable[tuple[torch.Tensor, torch.Tensor]], num_classes: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per true class: images, top-1 mistakes and top-5 mistakes (int64 tensors)."""
    model.eval()
    seen = torch.zeros(num_classes, dtype=torch.int64)
    wrong1, wrong5 = seen.clone(), seen.clone()
    for x, y in batches:
        out = model(x).float()
        top = out.topk(min(5, out.shape[1]), dim=1).indices.cpu()
        y = y.cpu()
        hit = top == y[:, None]
        seen += torch.bincount(y, minlength=num_classes)
        wrong1 += torch.bincount(y[~hit[:, 0]], minlength=num_classes)
        wrong5 += torch.bincount(y[~hit.any(1)], minlength=num_classes)
    return seen, wrong1, wrong5


@dataclass
class EvalResult:
    dataset: str
    images: int
    loss: float
    error: float
    top5_error: float | None = None  # image folders: also top-5 and the worst classes
    worst: list[tuple[str, int, int]] | None = None  # (class, wrong, images)

    def line(self, spec_name: str) -> str:
        wrong = round(self.error * self.images)
        text = (
            f"{spec_name} on the {self.dataset} test set: error {100 * self.error:.2f}% "
            f"({wrong:,} of {self.images:,} wrong), loss {self.loss:.4f}"
        )
        if self.top5_error is not None:
            text += f"\ntop-5 error {100 * self.top5_error:.2f}%"
        if self.worst:
            worst = ", ".join(f"{c} {100 * w / n:.1f}% ({w} of {n})" for c, w, n in self.worst)
            text += f"\nworst classes: {worst}"
        return text


def class_result(
    model: nn.Module, batches: Iterable[Any], classes: list[str], base: EvalResult
) -> EvalResult:
    """``base`` with the top-5 error and the (up to) five classes with the highest error."""
    seen, wrong1, wrong5 = per_class(model, batches, len(classes))
    rate = wrong1.double() / seen.clamp(min=1)
    order = sorted(range(len(classes)), key=lambda i: (-float(rate[i]), i))
    base.worst = [(classes[i], int(wrong1[i]), int(seen[i])) for i in order[:5] if wrong1[i] > 0]
    base.top5_error = int(wrong5.sum()) / max(1, int(seen.sum()))
    return base


def check_same_classes(saved: dict[str, Any] | None, images: ImageSet, source: str) -> None:
    """Refuse a data set whose class list differs from the one the weights were trained on."""
    if saved is None or saved.get("classes") is None:
        return
    if saved["classes"] != images.classes:
        raise TrainError(
            f"{images.name}'s classes differ from those {source} was trained on "
            f"({class_difference(saved['classes'], images.classes or [])}); evaluate on a "
            "folder with the run's classes"
        )


class AverageCrops(nn.Module):
    """Scores of several crops of each image averaged as probabilities: a batch of
    B x K x C x H x W gives B log-probabilities (which cross-entropy takes as logits)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, k = x.shape[:2]
        out = self.model(x.flatten(0, 1)).float().log_softmax(-1).view(b, k, -1)
        return out.logsumexp(1) - torch.log(torch.tensor(float(k), device=x.device))


def _eval_images(
    spec: ModelSpec,
    ckpt: dict[str, Any] | None,
    dataset: str,
    data_dir: Path,
    download: bool,
    ten_crop: bool,
) -> ImageSet:
    """The test images as the run's recipe saw them (resized and cropped like its crops)."""
    from resgraph.train.data import load_images
    from resgraph.train.stream import CROPS, eval_resize

    recipe = TrainSpec.model_validate(ckpt["config"]["train"]) if ckpt else spec.train
    crop = recipe.crops_for(dataset not in BUILT_IN, spec.stem.layout)
    if ten_crop and crop not in CROPS:
        raise TrainError(
            f"--ten-crop cuts ten crops from images larger than the input: it needs an image "
            f"folder and the 'scale' or 'resized' crops, not '{crop}' on {dataset}"
        )
    inp = spec.input
    images = load_images(
        dataset,
        data_dir,
        inp.channels,
        inp.size,
        download=download,
        holdout=recipe.holdout,
        resize=eval_resize(inp.size) if crop in CROPS else None,
        ten_crop=ten_crop,
    )
    check_same_classes(ckpt["config"] if ckpt else None, images, dataset)
    check_classes(spec.num_classes, images)
    return images


def evaluate_weights(
    spec_path: Path,
    weights: Path,
    *,
    dataset: str | None,
    data_dir: Path,
    device: str,
    engine: str,
    batch_size: int,
    download: bool = False,
    overrides: Sequence[str] = (),
    ten_crop: bool = False,
) -> tuple[str, EvalResult]:
    """Test error of ``weights`` (a run's last.pt or a plain state_dict) for a spec."""
    from resgraph.passes import lower
    from resgraph.spec import load_spec
    from resgraph.train import checkpoint as ckpt_io
    from resgraph.train.batches import DeviceData
    from resgraph.train.device import pick_device

    spec = load_spec(spec_path, overrides)
    refuse_backbone(spec, "evaluate")
    ir = lower(spec)
    state, ckpt = ckpt_io.read_weights(weights)
    if dataset is None:
        dataset = ckpt["config"]["train"]["dataset"] if ckpt else spec.train.dataset
    where = pick_device(device)
    model = build(ir, engine, seed=0)
    ckpt_io.load_model_state(model, state, str(weights))
    check_architecture(ckpt, spec, str(weights))
    model.to(where)
    images = _eval_images(spec, ckpt, dataset, data_dir, download, ten_crop)
    data = DeviceData(images, where, batch_size=1, seed=0, augment=False)
    if ckpt is not None and ckpt.get("data_mean") is not None:
        mean = ckpt["data_mean"]
        if tuple(mean.shape) == tuple(data.mean.shape):
            data.mean = mean.to(where)  # the mean of the run's own training images
    net = AverageCrops(model) if ten_crop else model
    loss, error = evaluate(net, data.eval_batches("test", batch_size))
    name = f"{dataset} (10 crops)" if ten_crop else dataset
    result = EvalResult(name, len(images.test_y), loss, error)
    if images.classes is not None:
        result = class_result(net, data.eval_batches("test", batch_size), images.classes, result)
    return spec.name, result


def refuse_backbone(spec: ModelSpec, what: str) -> None:
    """A backbone (a spec with ``outputs``) returns feature maps, not class scores: there is
    nothing to train or evaluate against labels."""
    if spec.outputs is not None:
        raise TrainError(
            f"cannot {what} a backbone: the spec's outputs ({', '.join(spec.outputs)}) make it "
            f"return feature maps, not class scores; remove 'outputs' to {what} the classifier"
        )


def check_classes(num_classes: int, images: ImageSet) -> str | None:
    """Refuse a classifier with fewer outputs than the data set has classes; return a
    warning (or None) when some outputs will never see a label. An image folder's classes
    must match the outputs exactly."""
    if images.classes is not None and num_classes != images.num_classes:
        raise TrainError(
            f"the spec has num_classes {num_classes} but {images.name} has "
            f"{images.num_classes} classes ({_short(images.classes)}): add --set "
            f"num_classes={images.num_classes}; for a pretrained network, convert its weights "
            f"with 'resgraph import-weights SPEC WEIGHTS -o OUT.pt --partial --set "
            f"num_classes={images.num_classes}' and start from OUT.pt with --init-from"
        )
    if num_classes < images.num_classes:
        raise TrainError(
            f"the spec has num_classes {num_classes} but {images.name} has "
            f"{images.num_classes} classes; set num_classes: {images.num_classes}"
        )
    if num_classes > images.num_classes:
        return (
            f"the spec has num_classes {num_classes} but {images.name} has only "
            f"{images.num_classes} classes: outputs {images.num_classes}.."
            f"{num_classes - 1} are never a label"
        )
    return None


def _short(value: Any) -> str:
    text = json.dumps(value, separators=(", ", ": "))
    return text if len(text) <= 60 else text[:57] + "..."
