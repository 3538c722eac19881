"""No import circle anywhere in the package: every import, lazy in-function ones included."""

import ast
from pathlib import Path

import recsim_causal
import recsim_causal.agents
import recsim_causal.envs

# where each package's source lives (agents/ and envs/ sit beside recsim_causal/ in the repo)
ROOTS = {"recsim_causal": Path(recsim_causal.__file__).parent,
         "recsim_causal.agents": Path(recsim_causal.agents.__file__).parent,
         "recsim_causal.envs": Path(recsim_causal.envs.__file__).parent}


def _module_name(path: Path) -> str:
    pkg, root = max(((k, r) for k, r in ROOTS.items() if path.is_relative_to(r)), key=lambda kr: len(kr[0]))
    rel = path.relative_to(root).with_suffix("")
    parts = [*pkg.split("."), *rel.parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, modules: set[str]) -> set[str]:
    """The package's modules that ``path`` imports (a ``from pkg import name`` of a submodule
    counts as that submodule; of anything else, as ``pkg``)."""
    me = _module_name(path)
    is_pkg = path.name == "__init__.py"
    out = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = me.split(".") if is_pkg else me.split(".")[:-1]
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, *([base] if base else [])])
            names = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
        else:
            continue
        for name in names:
            while name and name not in modules:  # a name inside a module: the module
                name = name.rpartition(".")[0]
            if name and name != me:
                out.add(name)
    return out


def _graph() -> dict[str, set[str]]:
    files = sorted({p for r in ROOTS.values() for p in r.rglob("*.py") if "__pycache__" not in p.parts})
    modules = {_module_name(p) for p in files}
    return {_module_name(p): _imports(p, modules) for p in files}


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    colour: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str) -> list[str] | None:
        colour[m] = 1
        stack.append(m)
        for n in sorted(graph.get(m, ())):
            # a package's __init__ importing its own submodules is not a circle (Python loads
            # the package first); a submodule importing its package's __init__ is an edge
            if m.startswith(n + ".") or n.startswith(m + "."):
                continue
            if colour.get(n) == 1:
                return stack[stack.index(n):] + [n]
            if n not in colour:
                found = visit(n)
                if found:
                    return found
        stack.pop()
        colour[m] = 2
        return None

    for m in sorted(graph):
        if m not in colour:
            found = visit(m)
            if found:
                return found
    return None


def test_the_checker_finds_a_circle():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None


def test_no_import_circle():
    graph = _graph()
    assert "recsim_causal.ope.simulate" in graph and "recsim_causal.build" in graph["recsim_causal.ope.simulate"]
    cycle = _cycle(graph)
    assert cycle is None, "import circle: " + " -> ".join(cycle)
