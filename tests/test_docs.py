"""Committed artefacts that are produced by commands stay in step with the code."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from helpers import ROOT, load_script


@pytest.mark.slow  # summarises every spec
def test_zoo_page_spec_table_is_current():
    text = load_script(ROOT / "scripts" / "spec_table.py").table()
    page = (ROOT / "docs" / "zoo.md").read_text()
    start = page.index("<!-- spec-table:begin -->") + len("<!-- spec-table:begin -->")
    table = page[start : page.index("<!-- spec-table:end -->")].strip()
    assert table == text.strip(), (
        "docs/zoo.md's spec table differs; if this change is intended, regenerate with: "
        "python scripts/spec_table.py --update docs/zoo.md"
    )
    assert table.count("\n") - 1 == len(list((ROOT / "specs").glob("*.yaml")))


# --- the documentation's shape: a short landing page, each chapter once, links that resolve

_LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
_FENCE = re.compile(r"^```.*?^```", re.M | re.S)


def _prose(path: Path) -> str:
    """A Markdown file without its fenced code (links and headings there are not real)."""
    return _FENCE.sub("", path.read_text())


def _anchor(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces as hyphens."""
    kept = "".join(c for c in heading.strip().lower() if c.isalnum() or c in " -_")
    return kept.replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    lines = _prose(path).splitlines()
    return {_anchor(line.lstrip("#")) for line in lines if line.startswith("#")}


def _links(path: Path) -> list[str]:
    return [t for t in _LINK.findall(_prose(path)) if not re.match(r"[a-z]+:", t)]


def _pages() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))] + sorted(
        (ROOT / "benchmarks").glob("*.md")
    )


def test_anchors_follow_github():
    assert _anchor(" Composition: `base:`") == "composition-base"
    assert _anchor("Changing a field: `--set` and `--input-size`") == (
        "changing-a-field---set-and---input-size"
    )
    assert _links(ROOT / "README.md")  # the pattern finds the README's links at all


@pytest.mark.parametrize("page", _pages(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_resolves(page):
    broken = []
    for target in _links(page):
        file, _, anchor = target.partition("#")
        dest = (page.parent / file).resolve() if file else page
        if not dest.exists():
            broken.append(target)
        elif anchor and dest.suffix == ".md" and anchor not in _anchors(dest):
            broken.append(target)
    assert not broken, f"{page.relative_to(ROOT)}: links that lead nowhere: {broken}"


def test_every_docs_page_is_linked_from_the_readme():
    linked = {(ROOT / t.partition("#")[0]).resolve() for t in _links(ROOT / "README.md")}
    orphans = [p.name for p in sorted((ROOT / "docs").glob("*.md")) if p.resolve() not in linked]
    assert not orphans, f"docs pages the README does not link: {orphans}"


def test_readme_is_a_landing_page():
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 300
    assert "make demo" in readme and "make test" in readme


def test_each_chapter_is_written_once():
    headings: dict[str, list[str]] = {}
    for page in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for line in _prose(page).splitlines():
            if line.startswith("# ") or line.startswith("## "):
                headings.setdefault(line.lstrip("# ").strip(), []).append(page.name)
    twice = {h: p for h, p in headings.items() if len(p) > 1}
    assert not twice, f"chapters written in more than one place: {twice}"


# --- reference text generated from its single source (scripts/reference.py)


@pytest.fixture(scope="module")
def reference():
    return load_script(ROOT / "scripts" / "reference.py")


def test_generated_regions_are_current(reference):
    assert reference.stale() == [], "regenerate with: python scripts/reference.py"


def test_a_stale_region_is_reported(reference, tmp_path):
    for name in ("README.md", "docs/spec.md", "docs/blocks.md"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_text((ROOT / name).read_text())
    assert reference.stale(tmp_path) == []
    spec_md = tmp_path / "docs" / "spec.md"
    spec_md.write_text(spec_md.read_text().replace("| `inner_width` |", "| `inner_widht` |"))
    assert reference.stale(tmp_path) == ["docs/spec.md (spec-keys)"]


def test_the_key_reference_lists_every_field_of_every_model(reference):
    from resgraph.spec.file_schema import language_schema
    from resgraph.spec.regnet import GENERATORS

    schema = language_schema()
    models = {"ModelSpec": schema, **schema["$defs"]}
    assert {model.__name__ for model, _ in GENERATORS.values()} <= set(models)
    text = reference.spec_reference()
    sections = text.split("### ")[1:]
    assert [s.split("\n", 1)[0] for s in sections][:1] == ["ModelSpec"]
    assert sorted(s.split("\n", 1)[0] for s in sections) == sorted(models)
    for section in sections:
        name, body = section.split("\n", 1)
        rows = [line.split("|")[1].strip() for line in body.splitlines() if line.startswith("| `")]
        assert rows == [f"`{key}`" for key in models[name]["properties"]], name
    stem = next(s for s in sections if s.startswith("StemSpec"))
    assert "| `inner_width` | integer or null | `null` | >= 1, <= 65536 |" in stem
    top = sections[0]
    assert "| `num_classes` | integer | required | >= 1, <= 100000 |" in top
    assert '`"D"`' in top and "| `stem` | [StemSpec](#stemspec) | its own defaults |" in top
    assert "| `regnet` | [RegNetParams](#regnetparams) | `null` |" in top
    shorthand = '`"batch"` \\| `"group"` \\| `"evonorm_s0"` \\| `"frn"`'
    assert f"| `norm` | [NormSpec](#normspec) or {shorthand} |" in top


def test_constraints_in_words(reference):
    prop = {"anyOf": [{"type": "number", "exclusiveMinimum": 0, "maximum": 1}, {"type": "null"}]}
    assert reference.constraints(prop) == "> 0, <= 1"
    assert reference.type_text(prop) == "number or null"
    listed = {"type": "array", "items": {"type": "integer", "minimum": 1}, "maxItems": 3}
    assert reference.constraints(listed) == "at most 3 entries, >= 1"
    assert reference.type_text(listed) == "list of integer"


def test_the_command_table_lists_the_registry(reference):
    from resgraph.cli import COMMANDS

    rows = [r for r in reference.command_table().splitlines() if r.startswith("| `")]
    assert [r.split("`")[1].split()[1] for r in rows] == list(COMMANDS)
    assert (
        "| `resgraph diff A B` | Compare two specs stage by stage. |" in reference.command_table()
    )
    assert "`resgraph eval SPEC --weights WEIGHTS`" in reference.command_table()


def _definition_lines(path: Path) -> int:
    """Lines of a spec's ``blocks:`` section (of a whole shipped block file), comments aside."""
    lines = path.read_text().splitlines()
    if path.parent.name != "blocks":
        start = next(i for i, line in enumerate(lines) if line.startswith("blocks:")) + 1
        end = next(
            (i for i in range(start, len(lines)) if lines[i].strip() and lines[i][0] != " "),
            len(lines),
        )
        lines = lines[start:end]
    return sum(1 for line in lines if line.strip() and not line.lstrip().startswith("#"))


def test_the_readme_counts_the_lines_each_block_family_costs():
    text = " ".join((ROOT / "README.md").read_text().split())
    bases, shipped = ROOT / "specs" / "timm" / "bases", ROOT / "resgraph" / "blocks"
    names = ("res2net", "skresnet", "resnest", "regnet", "regnet_silu", "resnetv2", "densenet")
    lines = {name: _definition_lines(bases / f"{name}.yaml") for name in names}
    assert f"in {_definition_lines(ROOT / 'specs' / 'cifar_fire_resnet20.yaml')} lines:" in text
    assert (
        f"Res2Net {lines['res2net']}, SKNet {lines['skresnet']}, ResNeSt {lines['resnest']}, "
        f"RegNet X/Y {lines['regnet']}, RegNet V/Z {lines['regnet_silu']}, ResNetV2 "
        f"{lines['resnetv2']}, DenseNet {lines['densenet']};"
    ) in text
    built_in = [_definition_lines(shipped / f"{n}.yaml") for n in ("basic", "bottleneck", "dense")]
    assert "files {}, {} and {})".format(*built_in) in text
