"""Write a reference fixture of timm's models (params, state_dict, MACs, logits) from the real timm.

timm is not a dependency of resgraph: run this in a throwaway environment that has it, e.g.
    python3 -m venv /tmp/tvenv && /tmp/tvenv/bin/pip install torch torchvision timm==1.0.31
    /tmp/tvenv/bin/python scripts/timm_fixture.py [--only NAME ...]
writes tests/data/timm_reference.json.gz (timm's resnet.py architectures), and
    /tmp/tvenv/bin/python scripts/timm_fixture.py --family resnetv2 regnet res2net sknet \
        resnest densenet --max-logit-params 100000000 \
        --out tests/data/timm_families_reference.json.gz
writes the fixture of timm's other residual families. For every model of
``timm.list_models(module=FAMILY)`` it records:

- ``params``: the number of parameters;
- ``state``: the state_dict in order, ``[key, shape, kind]``, kind ``"p"`` for a parameter and
  ``"b"`` for a persistent buffer; ``non_persistent``: ``[name, shape]`` of the buffers that
  are not saved (the blur filters);
- ``macs_224`` and ``macs``: multiply-adds of every Conv2d and Linear for one 3x224x224 input and
  for one input of timm's default size ``input_size`` (ECA's Conv1d, pools, blur filters and
  activations not counted); ``conv1d_macs_224``: those of the ECA Conv1d layers alone;
- ``output``: the logits, in eval mode and float64, of the model filled by tests/fill.py on
  tests/fill.py's ``reference_input()`` (2x3x64x64), rounded to 9 significant digits; for a
  model of more than ``--max-logit-params`` parameters (float64 weights too large for a small
  machine) ``null``, with ``output_left_out`` saying why. Everything else is computed on the
  meta device, for every model.

The file also holds ``families`` (each family's model names, in timm's order) and
``max_logit_params`` (``null``: no bound).
"""

from __future__ import annotations

import argparse
import gzip
import json
import sys
from pathlib import Path

import timm
import torch
from torch import nn

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
from fill import fill_, reference_input  # noqa: E402  (shared with the tests)

OUT = ROOT / "tests" / "data" / "timm_reference.json.gz"


def count_macs(model: nn.Module, size: int) -> tuple[int, int]:
    """(Conv2d + Linear, Conv1d) multiply-adds for one 3 x size x size input, on the meta device."""
    totals = {"2d": 0, "1d": 0}

    def hook(module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
        per_example = output.numel() // output.shape[0]
        if isinstance(module, nn.Linear):
            totals["2d"] += per_example * module.in_features
        elif isinstance(module, nn.Conv2d):
            k = module.kernel_size[0] * module.kernel_size[1]
            totals["2d"] += per_example * module.in_channels // module.groups * k
        elif isinstance(module, nn.Conv1d):
            k = module.kernel_size[0]
            totals["1d"] += per_example * module.in_channels // module.groups * k

    handles = [
        m.register_forward_hook(hook)
        for m in model.modules()
        if isinstance(m, (nn.Linear, nn.Conv2d, nn.Conv1d))
    ]
    with torch.no_grad():
        model(torch.empty(1, 3, size, size, device="meta"))
    for h in handles:
        h.remove()
    return totals["2d"], totals["1d"]


def record(name: str, max_logit_params: int | None = None) -> dict[str, object]:
    with torch.device("meta"):  # no random init: every saved tensor is filled below
        model = timm.create_model(name, pretrained=False).eval()
    size = model.pretrained_cfg["input_size"][-1]
    macs_224, conv1d_224 = count_macs(model, 224)
    macs = macs_224 if size == 224 else count_macs(model, size)[0]
    params = {n for n, _ in model.named_parameters()}
    state = model.state_dict()
    entry: dict[str, object] = {
        "params": sum(p.numel() for p in model.parameters()),
        "input_size": size,
        "macs_224": macs_224,
        "macs": macs,
        "conv1d_macs_224": conv1d_224,
        "state": [[k, list(v.shape), "p" if k in params else "b"] for k, v in state.items()],
        "non_persistent": [[n, list(b.shape)] for n, b in model.named_buffers() if n not in state],
    }
    if max_logit_params is not None and entry["params"] > max_logit_params:
        entry["output"] = None
        entry["output_left_out"] = (
            f"{entry['params']:,} parameters, over the bound of {max_logit_params:,} "
            "for a float64 forward pass"
        )
        return entry
    model = model.to_empty(device="cpu").double().eval()
    for module in model.modules():  # buffers that are not saved (blur filters) are computed
        if hasattr(module, "init_non_persistent_buffers"):
            module.init_non_persistent_buffers()
    fill_(model)
    with torch.no_grad():
        out = model(reference_input())
    if not torch.isfinite(out).all():
        raise SystemExit(f"{name}: non-finite output under the fill rule")
    entry["output"] = [[float(f"{v:.9g}") for v in row] for row in out.tolist()]
    return entry


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", help="record these models only (and print them)")
    parser.add_argument(
        "--cache", type=Path, help="keep each model's record here and reuse it on the next run"
    )
    parser.add_argument("--reverse", action="store_true", help="record from the last model")
    parser.add_argument(
        "--family",
        nargs="+",
        default=["resnet"],
        help="timm model modules to record (default: resnet)",
    )
    parser.add_argument(
        "--max-logit-params",
        type=int,
        help="leave out the logits of models with more parameters than this (default: no bound)",
    )
    parser.add_argument("--out", type=Path, default=OUT, help=f"the fixture to write ({OUT})")
    args = parser.parse_args()
    families = {family: timm.list_models(module=family) for family in args.family}
    if not all(families.values()):
        parser.error(f"no timm models in: {', '.join(f for f, n in families.items() if not n)}")
    names = args.only or [name for family in families.values() for name in family]
    order = names[::-1] if args.reverse else names
    data: dict[str, object] = {
        "timm": timm.__version__,
        "torch": torch.__version__.split("+")[0],
        "input": [2, 3, 64, 64],
        "families": families,
        "max_logit_params": args.max_logit_params,
        "models": {},
    }
    for name in order:
        cached = args.cache / f"{name}.json" if args.cache else None
        if cached and cached.exists():
            entry = json.loads(cached.read_text())
        else:
            entry = record(name, args.max_logit_params)
            if cached:
                cached.parent.mkdir(parents=True, exist_ok=True)
                cached.write_text(json.dumps(entry))
        data["models"][name] = entry
        logits = entry["output"]
        spread = f"{max(abs(v) for row in logits for v in row):.3g}" if logits else "left out"
        print(
            f"{name}: {entry['params']:,} params, {entry['macs_224'] / 1e9:.3f} GMACs, "
            f"largest |logit| {spread}",
            flush=True,
        )
    if args.only:
        return
    data["models"] = {name: data["models"][name] for name in names}
    text = json.dumps(data, separators=(",", ":")) + "\n"
    tmp = args.out.with_name(args.out.name + ".tmp")  # written whole, then renamed
    with open(tmp, "wb") as raw:  # the header names the fixture; mtime 0: the same bytes
        with gzip.GzipFile(args.out.name, "wb", fileobj=raw, mtime=0) as f:
            f.write(text.encode())
    tmp.replace(args.out)
    print(f"wrote {args.out} ({args.out.stat().st_size:,} bytes, {len(names)} models)")


if __name__ == "__main__":
    main()
