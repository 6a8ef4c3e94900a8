"""Print (or, with --update docs/zoo.md, refresh in place) the table of every spec in specs/
with its canonical name, parameters and multiply-adds. The zoo page's table comes from here:

    .venv/bin/python scripts/spec_table.py --update docs/zoo.md

and the zoo's (specs/timm/, one spec per timm ResNet) from here:

    .venv/bin/python scripts/spec_table.py --zoo docs/zoo_table.md
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from resgraph import load_spec  # noqa: E402
from resgraph.summary import summarize  # noqa: E402

BEGIN, END = "<!-- spec-table:begin -->", "<!-- spec-table:end -->"


def table() -> str:
    rows = ["| spec | what it is | input | params | MACs |", "|---|---|---|---:|---:|"]
    for path in sorted((ROOT / "specs").glob("*.yaml")):
        info = summarize(load_spec(path))
        rows.append(
            f"| `{path.name}` | {info.canonical_name} | {info.input} | {info.params:,} | "
            f"{info.macs / 1e9:.3f} G |"
        )
    return "\n".join(rows)


ZOO_HEADER = """\
# The zoo: timm's ResNets as specs

Produced by `.venv/bin/python scripts/spec_table.py --zoo docs/zoo_table.md` (a test fails
when it is stale). One spec per architecture of timm 1.0.31's `resnet.py`, and of its Res2Net,
SKNet, ResNeSt, RegNet (X, Y, V, Z), ResNetV2 and DenseNet families (`res2net.py`, `sknet.py`,
`resnest.py`, `regnet.py`, `resnetv2.py`, `densenet.py`, whose blocks are defined in the block
language), in `specs/timm/`, named after the timm model;
`generated/timm/` holds their generated code. Parameters are
exact (a timm checkpoint loads with `load_state_dict(sd, strict=True)`). MACs are the
multiply-adds of every conv and fc layer (squeeze-and-excitation's 1x1 convs included; ECA's
1-D conv, pools, blur filters and activations not counted) for one input, at timm's default
input size and at 224x224. The options each uses are described in docs/zoo.md.
"""


def zoo_table() -> str:
    rows = [
        "| timm model | what it is | input | params | MACs | MACs at 224 |",
        "|---|---|---|---:|---:|---:|",
    ]
    for path in sorted((ROOT / "specs" / "timm").glob("*.yaml")):
        spec = load_spec(path)
        info = summarize(spec)
        at_224 = spec.model_copy(update={"input": spec.input.model_copy(update={"size": 224})})
        rows.append(
            f"| `{path.stem}` | {info.canonical_name} | {info.input} | {info.params:,} | "
            f"{info.macs / 1e9:.3f} G | {summarize(at_224).macs / 1e9:.3f} G |"
        )
    return ZOO_HEADER + "\n" + "\n".join(rows) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--update", type=Path, help="rewrite the table between the markers")
    parser.add_argument("--zoo", type=Path, help="write the zoo's table to this file")
    args = parser.parse_args()
    if args.zoo is not None:
        args.zoo.write_text(zoo_table())
        return
    text = table()
    if args.update is None:
        print(text)
        return
    doc = args.update.read_text()
    start, end = doc.index(BEGIN) + len(BEGIN), doc.index(END)
    args.update.write_text(doc[:start] + "\n" + text + "\n" + doc[end:])


if __name__ == "__main__":
    main()
