"""The docs stay findable: one naming style, measurements apart, no dead references.

* reference docs in docs/ are named in UPPER_SNAKE_CASE (`STAFF_GUIDE.md`);
* dated measurements live in docs/measurements/ as `YYYY-MM-DD_TOPIC.md`;
* every relative Markdown link, and every repository path a doc names in
  backticks (`bench/http_throughput.py`), exists.
"""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
MARKDOWN = sorted(
    [ROOT / "README.md", ROOT / "CONTRIBUTING.md", *DOCS.rglob("*.md")],
    key=lambda path: str(path),
)
LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")
# A path in backticks that starts at a top-level directory of the repository.
TOP_LEVEL = sorted(p.name for p in ROOT.iterdir() if p.is_dir() and not p.name.startswith("."))
PATH = re.compile(
    r"`((?:" + "|".join(map(re.escape, TOP_LEVEL)) + r")/[\w./-]*\.(?:py|md|sql|sh|html|toml))`"
)


def ids(path: Path) -> str:
    return str(path.relative_to(ROOT))


def test_reference_docs_are_named_in_upper_snake_case():
    names = [p.name for p in DOCS.glob("*.md")]
    assert {"API.md", "ARCHITECTURE.md", "STAFF_GUIDE.md"} <= set(names)
    assert [n for n in names if not re.fullmatch(r"[A-Z][A-Z0-9_]*\.md", n)] == []


def test_measurements_are_dated():
    names = [p.name for p in (DOCS / "measurements").glob("*.md") if p.name != "README.md"]
    assert names
    pattern = r"\d{4}-\d{2}-\d{2}_[A-Z][A-Z0-9_]*\.md"
    assert [n for n in names if not re.fullmatch(pattern, n)] == []


@pytest.mark.parametrize("doc", MARKDOWN, ids=ids)
def test_every_relative_link_resolves(doc):
    targets = [t for t in LINK.findall(doc.read_text()) if not re.match(r"[a-z]+:", t)]
    assert [t for t in targets if not (doc.parent / t).exists()] == []


@pytest.mark.parametrize("doc", MARKDOWN, ids=ids)
def test_every_file_a_doc_names_exists(doc):
    named = set(PATH.findall(doc.read_text()))
    assert sorted(p for p in named if not (ROOT / p).exists()) == []
