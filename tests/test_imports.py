"""No import cycles, of any length, among the modules of ``expr_models/``, ``train/`` and ``space/``; small rooms.

The graph is read with ``ast`` from the source, so imports inside functions and under ``TYPE_CHECKING`` count as much
as those at the top of a file. ``from pkg import name`` is an edge to the module ``pkg.name`` when there is one, else
to ``pkg`` (its ``__init__``). A package's ``__init__`` that Python runs before a submodule is not an edge of that
submodule: the edge is there only where a module names the package itself.
"""

from __future__ import annotations

import ast
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("expr_models", "train", "space")


def module_name(path: Path, root: Path) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph(root: Path, packages: tuple[str, ...] = PACKAGES) -> dict[str, set[str]]:
    """``{module: the modules of packages it imports anywhere in its code}``, for every ``.py`` under ``packages``."""
    files = {module_name(path, root): path for package in packages for path in sorted((root / package).rglob("*.py"))}

    def known(name: str) -> str | None:  # the module itself, or the deepest package of ours that holds the name
        while name and name not in files:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {}
    for name, path in files.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        found: set[str | None] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                found.update(known(alias.name) for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                    base = f"{anchor}.{base}" if base else anchor
                for alias in node.names:
                    found.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in files else known(base))
        graph[name] = {module for module in found if module is not None and module != name}
    return graph


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's strongly connected components with more than one module (each one holds at least one cycle)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]  # iterative: no recursion limit on long chains
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    components.append(sorted(component))
    return components


def one_cycle(graph: dict[str, set[str]], component: list[str]) -> list[str]:
    """A shortest cycle through the component's first module, as ``[a, b, ..., a]`` (for the failure message)."""
    members, start = set(component), component[0]
    paths = {start: [start]}
    queue = [start]
    while queue:
        node = queue.pop(0)
        for child in sorted(graph[node] & members):
            if child == start:
                return paths[node] + [start]
            if child not in paths:
                paths[child] = paths[node] + [child]
                queue.append(child)
    raise AssertionError(f"{component} is not strongly connected")


def cycles(root: Path, packages: tuple[str, ...] = PACKAGES) -> list[str]:
    graph = import_graph(root, packages)
    return [" -> ".join(one_cycle(graph, component)) + f"  ({len(component)} modules in this knot)"
            for component in strongly_connected(graph)]


def test_no_import_cycles():
    graph = import_graph(REPO_ROOT)
    # The walk sees what it should: a top-level import, a deferred one, and the three packages.
    assert {"expr_models.faces.detection", "expr_models.faces.processing"} <= graph["expr_models.pipeline"]
    assert "expr_models.hub.editor_repo" in graph["expr_models.pipeline"]  # imported inside from_pretrained
    assert any(name.startswith("train.") for name in graph) and "space.actions" in graph
    found = cycles(REPO_ROOT)
    assert found == [], "import cycles:\n" + "\n".join(found)


def test_the_check_finds_a_planted_cycle(tmp_path):
    """A cycle of three through a deferred import, a TYPE_CHECKING import and ``from . import``, beside a clean
    module: the check names the three and only them."""
    package = tmp_path / "planted"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("def f():\n    from . import b\n    return b\n")
    (package / "b.py").write_text("from .c import VALUE\n")
    (package / "c.py").write_text("from typing import TYPE_CHECKING\n\nVALUE = 1\nif TYPE_CHECKING:\n"
                                  "    from planted.a import f\n")
    (package / "clean.py").write_text("from .b import VALUE\nimport planted.c\n")
    assert cycles(tmp_path, ("planted",)) == [
        "planted.a -> planted.b -> planted.c -> planted.a  (3 modules in this knot)"]

    (package / "c.py").write_text("VALUE = 1\n")  # cut the cycle: nothing left
    assert cycles(tmp_path, ("planted",)) == []


def test_two_modules_that_import_each_other_are_a_cycle(tmp_path):
    package = tmp_path / "pair"
    (package / "sub").mkdir(parents=True)
    for init in (package / "__init__.py", package / "sub" / "__init__.py"):
        init.write_text("")
    (package / "x.py").write_text("from .sub import y\n")
    (package / "sub" / "y.py").write_text("import pair.x\n")
    assert cycles(tmp_path, ("pair",)) == ["pair.sub.y -> pair.x -> pair.sub.y  (2 modules in this knot)"]


def test_the_rooms_stay_small():
    """At most 14 entries at the top of ``expr_models/`` (the rooms, not every module), no file of the library, the
    training code or the Space over 500 lines."""
    top = sorted(path.name for path in (REPO_ROOT / "expr_models").iterdir()
                 if path.name != "__pycache__" and not path.name.startswith(".") and not path.name.endswith(".pyc"))
    assert len(top) <= 14, top
    long = {str(path.relative_to(REPO_ROOT)): lines
            for package in PACKAGES for path in (REPO_ROOT / package).rglob("*.py")
            if (lines := len(path.read_text().splitlines())) > 500}
    assert long == {}, f"files over 500 lines: {long}"
