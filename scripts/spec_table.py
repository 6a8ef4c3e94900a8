"""Print (or, with --update README.md, refresh in place) the table of every spec in specs/
with its canonical name, parameters and multiply-adds. The README's table comes from here:

    .venv/bin/python scripts/spec_table.py --update README.md
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--update", type=Path, help="rewrite the table between the markers")
    args = parser.parse_args()
    text = table()
    if args.update is None:
        print(text)
        return
    doc = args.update.read_text()
    start, end = doc.index(BEGIN) + len(BEGIN), doc.index(END)
    args.update.write_text(doc[:start] + "\n" + text + "\n" + doc[end:])


if __name__ == "__main__":
    main()
