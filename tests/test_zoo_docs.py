"""The zoo's table (docs/zoo_table.md) is current, and the README and the zoo page point at
it and say how the timm fixture is made."""

from __future__ import annotations

import pytest

from helpers import ROOT, load_script


@pytest.mark.zoo  # summarises every model of the zoo at two sizes
def test_zoo_table_is_current():
    table = load_script(ROOT / "scripts" / "spec_table.py").zoo_table()
    committed = (ROOT / "docs" / "zoo_table.md").read_text()
    assert table == committed, "run: python scripts/spec_table.py --zoo docs/zoo_table.md"
    rows = [line for line in committed.splitlines() if line.startswith("| `")]
    assert [r.split("`")[1] for r in rows] == sorted(
        p.stem for p in (ROOT / "specs" / "timm").glob("*.yaml")
    )
    resnet50d = next(r for r in rows if r.startswith("| `resnet50d` |"))
    assert "| 25,576,264 |" in resnet50d  # timm's count


def test_the_zoo_table_is_linked_and_the_fixture_explained():
    assert "(docs/zoo_table.md)" in (ROOT / "README.md").read_text()
    page = (ROOT / "docs" / "zoo.md").read_text()
    assert "(zoo_table.md)" in page
    assert "scripts/timm_fixture.py" in page and "throwaway environment" in page
