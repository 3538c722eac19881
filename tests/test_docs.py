"""Every python and shell block of README.md and docs/ runs, at the size its directives set.

How a page marks its blocks: see the docstring of tests/docblocks.py (and docs/index.md).
One test per page: its blocks run in order in one fresh directory, python blocks in one
namespace. Output blocks (``<!-- output: name -->``) must equal docs/generated/<name>.txt,
which scripts/make_docs.py writes from real runs.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.docblocks import (ROOT, BlockFailed, append_args, doc_pages, logical_lines, parse_page, run_blocks,
                              sync_mirrors, sync_outputs)

PAGES = doc_pages()
GENERATED = ROOT / "docs" / "generated"


def _page_id(path: Path) -> str:
    return str(path.relative_to(ROOT))


def _has_shell(path: Path) -> bool:
    return any(b.kind == "shell" for b in parse_page(path))


@pytest.mark.parametrize(
    "page", [pytest.param(p, id=_page_id(p), marks=[pytest.mark.slow] if _has_shell(p) else [])
             for p in PAGES])
def test_page_blocks_run(page: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocks = parse_page(page)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    before = set(sys.modules)
    try:
        run_blocks(blocks, tmp_path)
    except BlockFailed as e:
        pytest.fail(str(e), pytrace=False)
    finally:
        for name in set(sys.modules) - before:  # the page's own modules (my_policy, ...) go with it
            mod = sys.modules.get(name)
            if mod is not None and str(getattr(mod, "__file__", "") or "").startswith(str(tmp_path)):
                del sys.modules[name]


def test_output_blocks_match_generated_files(tmp_path: Path) -> None:
    """An output block shows exactly docs/generated/<name>.txt (make_docs.py keeps them equal)."""
    for page in PAGES:
        copy = tmp_path / page.name
        copy.write_text(page.read_text(encoding="utf-8"), encoding="utf-8")
        changed = sync_outputs(copy, GENERATED)
        assert not changed, (f"{_page_id(page)}: output blocks {changed} differ from docs/generated/ "
                             "(run python scripts/make_docs.py, never edit outputs by hand)")


def test_mirror_blocks_match_their_source_region(tmp_path: Path) -> None:
    """A ``<!-- mirror: PAGE NAME -->`` block shows exactly the region NAME of PAGE (make_docs.py
    copies it); the copy is checked against a hand-made page too."""
    for page in PAGES:
        copy = tmp_path / page.name
        copy.write_text(page.read_text(encoding="utf-8"), encoding="utf-8")
        assert not sync_mirrors(copy), f"{_page_id(page)}: mirror blocks differ (run scripts/make_docs.py)"
    (tmp_path / "src.md").write_text("a\n<!-- t -->\n### head\n| x |\n<!-- /t -->\n", encoding="utf-8")
    page = tmp_path / "p.md"
    page.write_text("<!-- mirror: src.md t -->\nold\n<!-- /mirror -->\n", encoding="utf-8")
    assert sync_mirrors(page, tmp_path) == ["src.md t"]
    assert page.read_text(encoding="utf-8") == "<!-- mirror: src.md t -->\n| x |\n<!-- /mirror -->\n"


def test_the_nav_names_existing_pages() -> None:
    import yaml

    nav = yaml.safe_load((ROOT / "mkdocs.yml").read_text())["nav"]

    def walk(entry):
        if isinstance(entry, str):
            yield entry
        elif isinstance(entry, list):
            for e in entry:
                yield from walk(e)
        elif isinstance(entry, dict):
            for v in entry.values():
                yield from walk(v)

    listed = set(walk(nav))
    pages = {str(p.relative_to(ROOT / "docs")) for p in PAGES if p.parent != ROOT}
    # a page not (yet) in the nav still builds and is tested; a nav entry without its page breaks the site
    assert not listed - pages, f"mkdocs.yml's nav names missing pages: {sorted(listed - pages)}"


@pytest.mark.slow
def test_docs_site_builds(tmp_path: Path) -> None:
    """``make docs``: mkdocs-material builds the site with no warning (broken links, bad nav)."""
    pytest.importorskip("material", reason="the docs extra (make test installs it: pip install -e '.[docs]')")
    proc = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-q", "-d", str(tmp_path / "site")],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert (tmp_path / "site" / "index.html").exists()


def test_collector_directives(tmp_path: Path) -> None:
    """The collector itself, on a hand-written page: languages, directives, args placement."""
    page = tmp_path / "p.md"
    page.write_text(
        "# p\n\n<!-- test: args a=1 -->\n```bash\npython scripts/run.py x=2 \\\n  y=3   # a 'comment'\necho hi\n```\n\n"
        "<!-- test: file sub/m.py -->\n```python\nX = 1\n```\n\n```text\nout\n```\n\n"
        "<!--\ntest: skip no GPU here\n-->\n```python\nimport cuda\n```\n\n"
        "<!-- test: replace \"10_000\" \"10\" -->\n```python\nn = 10_000\n```\n\n"
        "<!-- output: demo -->\n```text\nold\n```\n", encoding="utf-8")
    b = parse_page(page)
    assert [x.lang for x in b] == ["bash", "python", "text", "python", "python", "text"]
    assert [x.kind for x in b] == ["shell", None, None, None, "python", None]
    assert b[0].source() == "python scripts/run.py x=2 y=3 a=1  # a 'comment'\necho hi\n"
    assert b[1].file == "sub/m.py" and b[3].skip == "no GPU here"
    assert b[4].source() == "n = 10\n" and b[5].output == "demo"
    assert append_args("recsim-run -m 'p=[a,#b]'\n", ["s=1"]) == "recsim-run -m 'p=[a,#b]' s=1\n"
    assert logical_lines("a \\\n  b  # c\n# only a comment\n\nd\n") == ["a b  # c", "d"]
    (tmp_path / "gen").mkdir()
    (tmp_path / "gen" / "demo.txt").write_text("new 1\nnew 2\n")
    assert sync_outputs(page, tmp_path / "gen") == ["demo"]
    assert page.read_text().endswith("<!-- output: demo -->\n```text\nnew 1\nnew 2\n```\n")
    assert sync_outputs(page, tmp_path / "gen") == []


def test_a_block_of_mistakes_shows_each_command_and_its_error_lines(tmp_path: Path) -> None:
    page = tmp_path / "p.md"
    page.write_text("<!-- test: exit 2 -->\n```bash\necho 'error: no such agent' >&2; echo noise >&2; exit 2  # a\n"
                    "# a comment line\nexit 2\n```\n", encoding="utf-8")
    printed = run_blocks(parse_page(page), tmp_path)
    assert printed == {0: "$ echo 'error: no such agent' >&2; echo noise >&2; exit 2\nerror: no such agent\n$ exit 2\n"}
