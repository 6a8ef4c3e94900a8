"""Committed artefacts that are produced by commands stay in step with the code."""

from __future__ import annotations

import subprocess
import sys

from helpers import ROOT


def test_readme_spec_table_is_current():
    res = subprocess.run(
        [sys.executable, "scripts/spec_table.py"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    readme = (ROOT / "README.md").read_text()
    start = readme.index("<!-- spec-table:begin -->") + len("<!-- spec-table:begin -->")
    table = readme[start : readme.index("<!-- spec-table:end -->")].strip()
    assert table == res.stdout.strip(), (
        "README's spec table differs; if this change is intended, regenerate with: "
        "python scripts/spec_table.py --update README.md"
    )
    assert table.count("\n") - 1 == len(list((ROOT / "specs").glob("*.yaml")))
