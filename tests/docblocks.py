"""The code blocks of README.md and docs/**/*.md, as the doc tests run them.

How a page marks its blocks (for everyone who writes a page under docs/)
-------------------------------------------------------------------------

Every fenced block whose language is ``python``, ``bash``, ``shell`` or ``sh`` is RUN by
``tests/test_docs.py``, in page order, in one fresh working directory per page (with
``scripts/`` and ``conf/`` linked in, so ``python scripts/run.py ...`` works as in the repo):

* python blocks of a page share one namespace (later blocks see earlier names), like a notebook;
* shell blocks run with ``bash -euo pipefail``; ``python`` is the test suite's interpreter, and the
  console scripts (``recsim-run``, ``recsim-report``, ...) are on the PATH;
* any other language (``text``, ``yaml``, ``console``, none) is shown, never run: use ``text`` for
  output, ``yaml`` for config.

Directives go in HTML comments (invisible on GitHub and in the docs site) on the lines right
before a block, one per line, several comments or lines allowed::

    <!-- test: args experiment.n_rounds=2000 experiment.ci.n_bootstrap=50 -->
        appended to every ``scripts/run.py`` / ``recsim-run`` / ``recsim-suite`` command of a
        shell block (Hydra overrides: the later value wins), to run a long block at a small size.
    <!-- test: replace "n_rounds=20_000" "n_rounds=2_000" -->
        textual substitution before running (python or shell); the old text must occur.
    <!-- test: file my_conf/agent/popular.yaml -->
        write the block (any language) to this path in the page's working directory, don't run it.
    <!-- test: skip needs a CUDA GPU -->
        don't run it; the reason is required and shows in the test report. Keep these rare:
        a block that cannot run here (set-up commands, GPUs, network).
    <!-- test: timeout 300 -->
        seconds this block may take (default 600).
    <!-- test: exit 2 -->
        a shell block that shows mistakes: each command line runs on its own and must exit
        with this code (a line with a comment only is skipped); what it "printed", for an
        output block after it, is each command (``$ ...``) with the ``error:`` lines it wrote.

Outputs shown in the docs are never pasted by hand: ``scripts/make_docs.py`` runs the examples
at a small size and writes ``docs/generated/<name>.txt``; a ``text`` block preceded by
``<!-- output: <name> -->`` shows that file's content, and make_docs.py rewrites the block when
the file changes (``tests/test_docs.py`` fails if the two differ).

A whole page can set args for all its shell blocks with ``<!-- test-page: args ... -->`` anywhere
on the page (block-level args come after and win).
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RUN_LANGS = {"python": "python", "py": "python", "bash": "shell", "shell": "shell", "sh": "shell"}
RUN_COMMANDS = ("scripts/run.py", "scripts/suite.py", "recsim-run", "recsim-suite")
DEFAULT_TIMEOUT = 600

_FENCE = re.compile(r"^(?P<indent>[ ]{0,3})(?P<fence>`{3,}|~{3,})\s*(?P<info>[^`]*)$")
_COMMENT = re.compile(r"<!--(.*?)-->", re.S)


@dataclass
class Block:
    """One fenced block of a page: where it is, its language, its text and its directives."""

    path: Path
    line: int                      # 1-based line of the opening fence
    lang: str
    code: str
    args: list[str] = field(default_factory=list)
    replace: list[tuple[str, str]] = field(default_factory=list)
    file: str | None = None
    skip: str | None = None
    output: str | None = None
    timeout: float = DEFAULT_TIMEOUT
    exit: int | None = None

    @property
    def kind(self) -> str | None:
        """``python`` or ``shell`` when the block runs, else None."""
        if self.skip is not None or self.file is not None:
            return None
        return RUN_LANGS.get(self.lang)

    @property
    def where(self) -> str:
        try:
            rel = self.path.relative_to(ROOT)
        except ValueError:
            rel = self.path
        return f"{rel}:{self.line}"

    def source(self) -> str:
        """The code as it runs: replacements made, args appended to the run commands."""
        code = self.code
        for old, new in self.replace:
            if old not in code:
                raise ValueError(f"{self.where}: 'test: replace' text {old!r} does not occur in the block")
            code = code.replace(old, new)
        if self.kind == "shell" and self.args:
            code = append_args(code, self.args)
        return code


def doc_pages(root: Path = ROOT) -> list[Path]:
    """README.md and every Markdown page under docs/ (sorted, so the ids are stable)."""
    pages = [root / "README.md"] if (root / "README.md").exists() else []
    docs = root / "docs"
    if docs.is_dir():
        pages += sorted(p for p in docs.rglob("*.md") if "generated" not in p.relative_to(docs).parts)
    return pages


def _directives(comment: str) -> list[tuple[str, str, str]]:
    """``(scope, name, value)`` for each ``test:``/``test-page:``/``output:`` line of a comment."""
    out = []
    for raw in comment.strip().splitlines():
        m = re.match(r"\s*(test|test-page|output)\s*:\s*(.*?)\s*$", raw)
        if not m:
            continue
        scope, rest = m.group(1), m.group(2)
        if scope == "output":
            out.append(("output", "output", rest))
            continue
        name, _, value = rest.partition(" ")
        out.append((scope, name.strip(), value.strip()))
    return out


def parse_page(path: Path) -> list[Block]:
    """The fenced blocks of one Markdown page with the directives of the comments before them."""
    text = path.read_text(encoding="utf-8")
    lines = text.splitlines()
    page_args: list[str] = []
    for m in _COMMENT.finditer(text):  # a comment that starts a line (not one quoted in `code`)
        if text[:m.start()].rsplit("\n", 1)[-1].strip():
            continue
        for scope, name, value in _directives(m.group(1)):
            if scope == "test-page":
                if name != "args":
                    raise ValueError(f"{path}: unknown page directive 'test-page: {name}' (known: args)")
                page_args += shlex.split(value)
    blocks: list[Block] = []
    pending: list[tuple[str, str, str]] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        m = _FENCE.match(line)
        if m:
            fence, info = m.group("fence"), m.group("info").strip()
            lang = info.split()[0].lower() if info else ""
            body = []
            j = i + 1
            while j < len(lines) and not (lines[j].strip().startswith(fence[0] * len(fence))
                                          and lines[j].strip().strip(fence[0]) == ""):
                body.append(lines[j][len(m.group("indent")):] if lines[j].startswith(m.group("indent")) else lines[j])
                j += 1
            block = Block(path=path, line=i + 1, lang=lang, code="\n".join(body) + "\n")
            _apply(block, pending, page_args)
            blocks.append(block)
            pending = []
            i = j + 1
            continue
        stripped = line.strip()
        if stripped.startswith("<!--"):
            # a comment, possibly over several lines
            j, chunk = i, [line]
            while "-->" not in chunk[-1] and j + 1 < len(lines):
                j += 1
                chunk.append(lines[j])
            for cm in _COMMENT.finditer("\n".join(chunk)):
                pending += [d for d in _directives(cm.group(1)) if d[0] != "test-page"]
            i = j + 1
            continue
        if stripped:
            pending = []  # directives attach only to the block right after them
        i += 1
    return blocks


def _apply(block: Block, directives: list[tuple[str, str, str]], page_args: list[str]) -> None:
    block.args = list(page_args) if RUN_LANGS.get(block.lang) == "shell" else []
    for scope, name, value in directives:
        if scope == "output":
            block.output = value
        elif name == "args":
            block.args += shlex.split(value)
        elif name == "replace":
            parts = shlex.split(value)
            if len(parts) != 2:
                raise ValueError(f"{block.where}: 'test: replace' expects two quoted strings, got {value!r}")
            block.replace.append((parts[0], parts[1]))
        elif name == "file":
            if not value:
                raise ValueError(f"{block.where}: 'test: file' expects a path")
            block.file = value
        elif name == "skip":
            if not value:
                raise ValueError(f"{block.where}: 'test: skip' needs a reason")
            block.skip = value
        elif name == "timeout":
            block.timeout = float(value)
        elif name == "exit":
            block.exit = int(value)
        else:
            raise ValueError(f"{block.where}: unknown directive 'test: {name}' "
                             "(known: args, replace, file, skip, timeout, exit)")


def _comment_start(line: str) -> int:
    """Index of a shell comment's ``#`` outside quotes, or -1."""
    quote = None
    for k, ch in enumerate(line):
        if quote:
            if ch == quote:
                quote = None
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and (k == 0 or line[k - 1].isspace()):
            return k
    return -1


def logical_lines(script: str) -> list[str]:
    """The command lines of a shell script: continuations joined, blank and comment-only lines dropped."""
    out = []
    for line in append_args(script, []).splitlines():
        cut = _comment_start(line)
        if (line if cut < 0 else line[:cut]).strip():
            out.append(line)
    return out


def append_args(script: str, args: list[str]) -> str:
    """Append ``args`` to every command line that runs an experiment (``scripts/run.py``,
    ``recsim-run``, the suite), before its trailing comment; continuation lines are joined."""
    logical, buf = [], ""
    for line in script.splitlines():
        if line.rstrip().endswith("\\"):
            buf += (line.rstrip()[:-1].strip() if buf else line.rstrip()[:-1].rstrip()) + " "
            continue
        logical.append(buf + line.lstrip() if buf else line)
        buf = ""
    if buf:
        logical.append(buf)
    extra = " ".join(shlex.quote(a) for a in args)
    out = []
    for line in logical:
        cut = _comment_start(line)
        cmd, comment = (line, "") if cut < 0 else (line[:cut].rstrip(), "  " + line[cut:])
        if extra and any(c in cmd for c in RUN_COMMANDS) and cmd.strip():
            cmd = f"{cmd} {extra}"
        out.append(cmd + comment)
    return "\n".join(out) + "\n"


def output_blocks(path: Path) -> list[Block]:
    """The blocks of a page that show a generated output (``<!-- output: name -->``)."""
    return [b for b in parse_page(path) if b.output]


def sync_outputs(path: Path, generated: Path) -> list[str]:
    """Rewrite each ``<!-- output: name -->`` block of ``path`` with ``generated/name.txt``;
    returns the names whose block changed. A missing file is an error naming it."""
    lines = path.read_text(encoding="utf-8").splitlines()
    changed = []
    for block in sorted(output_blocks(path), key=lambda b: -b.line):
        src = generated / f"{block.output}.txt"
        if not src.exists():
            raise FileNotFoundError(f"{block.where}: output {block.output!r} has no file {src}")
        new = src.read_text(encoding="utf-8").rstrip("\n").splitlines()
        start = block.line  # index of the first body line (fence at block.line - 1)
        end = start + len(block.code.rstrip("\n").splitlines()) if block.code.strip() else start
        if lines[start:end] != new:
            lines[start:end] = new
            changed.append(block.output)
    if changed:
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return changed


MIRROR = re.compile(r"<!-- mirror: (\S+) (\S+) -->\n(.*?)<!-- /mirror -->", re.S)


def marked_region(page: Path, name: str) -> str:
    """The lines of ``page`` between its markers ``<!-- name -->`` and ``<!-- /name -->`` (or
    ``<!-- name:begin ...`` and ``<!-- name:end ...``), headings left out."""
    lines = page.read_text(encoding="utf-8").splitlines()
    starts, ends = (f"<!-- {name} -->", f"<!-- {name}:begin"), (f"<!-- /{name} -->", f"<!-- {name}:end")
    try:
        i = next(k for k, line in enumerate(lines) if line.startswith(starts))
        j = next(k for k in range(i + 1, len(lines)) if lines[k].startswith(ends))
    except StopIteration:
        raise LookupError(f"{page}: no region marked {name!r}") from None
    return "\n".join(line for line in lines[i + 1 : j] if not line.startswith("#")).strip("\n") + "\n"


def sync_mirrors(path: Path, root: Path = ROOT) -> list[str]:
    """Rewrite each ``<!-- mirror: PAGE NAME -->`` ... ``<!-- /mirror -->`` block of ``path`` with
    the region NAME of PAGE (relative to ``root``; :func:`marked_region`), so a page can show a
    measurement another page's generator writes; returns the mirrors that changed."""
    changed: list[str] = []

    def copy(m: re.Match) -> str:
        region = marked_region(root / m[1], m[2])
        if m[3] != region:
            changed.append(f"{m[1]} {m[2]}")
        return f"<!-- mirror: {m[1]} {m[2]} -->\n{region}<!-- /mirror -->"

    text = path.read_text(encoding="utf-8")
    new = MIRROR.sub(copy, text)
    if changed:
        path.write_text(new, encoding="utf-8")
    return changed


def file_block(page: Path, name: str) -> str:
    """The text of the block that ``page`` writes to ``name`` (``<!-- test: file name -->``)."""
    for block in parse_page(page):
        if block.file == name:
            return block.code
    raise LookupError(f"{page.name} has no block marked 'test: file {name}'")


class BlockFailed(Exception):
    """A block that failed: the message names it and shows what it printed."""


def shell_env(workdir: Path) -> dict[str, str]:
    """The environment of a page's shell blocks: this interpreter's bin first on the PATH."""
    import os
    import sys

    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    # W&B is tested on its own (tests/test_tracking.py); the docs' runs skip its start-up
    env.update(HF_HUB_OFFLINE="1", MPLBACKEND="Agg", PYTHONHASHSEED="0", WANDB_MODE="disabled")
    env.pop("PYTHONPATH", None)
    return env


def run_blocks(blocks: list[Block], workdir: Path) -> dict[int, str]:
    """Run a page's blocks in order in ``workdir`` (the caller makes it the current directory and
    puts it on sys.path); python blocks share one namespace. Returns each run block's stdout by
    its index; raises :class:`BlockFailed` on the first failure."""
    import contextlib
    import io
    import subprocess
    import traceback

    (workdir / "scripts").exists() or (workdir / "scripts").symlink_to(ROOT / "scripts")
    namespace: dict = {"__name__": "__docs__"}
    env = shell_env(workdir)
    printed: dict[int, str] = {}
    for i, block in enumerate(blocks):
        if block.file is not None:
            target = workdir / block.file
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(block.source() if block.replace else block.code, encoding="utf-8")
        elif block.kind == "python":
            out = io.StringIO()
            try:
                with contextlib.redirect_stdout(out):
                    exec(compile(block.source(), block.where, "exec"), namespace)
            except Exception:
                raise BlockFailed(f"{block.where}: python block failed\n{out.getvalue()[-3000:]}"
                                  f"\n{traceback.format_exc()[-4000:]}") from None
            printed[i] = out.getvalue()
        elif block.kind == "shell":
            scripts = [block.source()] if block.exit is None else logical_lines(block.source())
            printed[i] = ""
            for script in scripts:
                try:
                    proc = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=workdir, env=env,
                                          capture_output=True, text=True, timeout=block.timeout)
                except subprocess.TimeoutExpired:
                    raise BlockFailed(f"{block.where}: shell block ran past {block.timeout:.0f} s") from None
                if proc.returncode != (block.exit or 0):
                    raise BlockFailed(f"{block.where}: shell block exited {proc.returncode} (expected {block.exit or 0})"
                                      f"\n--- ran:\n{script}\n--- stdout:\n{proc.stdout[-3000:]}"
                                      f"\n--- stderr:\n{proc.stderr[-4000:]}")
                if block.exit is None:
                    printed[i] += proc.stdout
                else:  # a block of mistakes shows each command and the error lines it printed
                    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
                    printed[i] += f"$ {script.split('  #')[0].strip()}\n" + "".join(f"{e}\n" for e in errors)
    return printed
