"""CPU inference: onnxruntime against PyTorch eager, with and without BatchNorm folding.

For ResNet-50 (224x224) and CIFAR ResNet-56 (32x32), batch 1 and 32, it times
- PyTorch eager: the network resgraph builds (executed graph), in eval mode under no_grad;
- PyTorch eager, BN folded: the same after ``resgraph.export.fuse_bn``;
- onnxruntime: ``resgraph export`` to ONNX (the exporter's optimiser already folds BN);
- onnxruntime, BN folded: ``resgraph export --fuse-bn`` (folded in PyTorch first);
and checks that every variant gives the eager outputs (max abs difference).

    nice -n 10 python benchmarks/export_inference.py [--threads 2] [--repeats 5]

Every variant gets the same threads; each time is the median of ``--repeats`` runs after
one warm-up run. Needs onnx, onnxscript and onnxruntime.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))  # machine.py

from machine import describe  # noqa: E402

NETS = {"ResNet-50": "resnet50", "CIFAR ResNet-56": "cifar_resnet56"}


def median_time(fn, repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--batches", type=int, nargs="+", default=[1, 32])
    p.add_argument("--nets", nargs="+", default=list(NETS), choices=list(NETS))
    args = p.parse_args(argv)
    load_start = os.getloadavg()[0]

    import onnxruntime as ort
    import torch

    from resgraph import load_spec, lower
    from resgraph.export import export_spec, fuse_bn, prepare

    torch.set_num_threads(args.threads)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = args.threads
    opts.inter_op_num_threads = 1
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for label in args.nets:
            stem = NETS[label]
            ir = lower(load_spec(ROOT / "specs" / f"{stem}.yaml"))
            model, _, _, _ = prepare(ir, None, fuse=False)
            fused, _, _ = fuse_bn(model)
            sessions = {}
            for fuse in (False, True):
                path = Path(tmp) / f"{stem}_{fuse}.onnx"
                t0 = time.perf_counter()
                export_spec(ir, path, fuse=fuse)
                print(
                    f"exported {label} (fuse {fuse}) in {time.perf_counter() - t0:.1f} s",
                    flush=True,
                )
                sessions[fuse] = ort.InferenceSession(
                    str(path), opts, providers=["CPUExecutionProvider"]
                )
            size = ir.spec.input.size
            for batch in args.batches:
                x = torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(0))
                with torch.no_grad():
                    ref = model(x)
                variants = {
                    "PyTorch eager": lambda m=model, x=x: m(x),
                    "PyTorch eager, BN folded": lambda m=fused, x=x: m(x),
                    "onnxruntime": lambda s=sessions[False], x=x: torch.from_numpy(
                        s.run(None, {"input": x.numpy()})[0]
                    ),
                    "onnxruntime, BN folded": lambda s=sessions[True], x=x: torch.from_numpy(
                        s.run(None, {"input": x.numpy()})[0]
                    ),
                }
                base = None
                for name, fn in variants.items():
                    with torch.no_grad():
                        # relative to the largest logit: untrained deep nets give large ones
                        err = ((fn() - ref).abs().max() / ref.abs().max()).item()
                        secs = median_time(fn, args.repeats)
                    base = base or secs
                    rows.append((label, batch, name, secs, base / secs, err))
                    print(
                        f"{label} batch {batch} {name}: {1000 * secs:.1f} ms "
                        f"({batch / secs:.0f} img/s), x{base / secs:.2f}, max rel. diff {err:.1e}",
                        flush=True,
                    )
    lines = [
        "# Export: onnxruntime against PyTorch eager on the CPU",
        "",
        f"Machine: {describe()} (load average {load_start:.1f} at the start, "
        f"{os.getloadavg()[0]:.1f} at the end); Python {platform.python_version()}, "
        f"torch {torch.__version__}, onnxruntime {ort.__version__}, {args.threads} thread(s) "
        f"each; median of {args.repeats} runs after a warm-up.",
        "",
        "```sh",
        "nice -n 10 python benchmarks/export_inference.py " + " ".join(argv or sys.argv[1:]),
        "```",
        "",
        "| network | batch | runtime | time per batch | images/s | speed-up vs eager | "
        "max diff vs eager (relative to the largest logit) |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for label, batch, name, secs, speed, err in rows:
        lines.append(
            f"| {label} | {batch} | {name} | {1000 * secs:.1f} ms | "
            f"{batch / secs:.1f} | x{speed:.2f} | {err:.1e} |"
        )
    text = "\n".join(lines) + "\n"
    print(text)
    out = ROOT / "benchmarks" / "export_RESULTS.md"
    out.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
