"""docs/design.md's layer table is true: it lists every module, and each module imports only
kmeans_exp modules of the rows above its own (read from the source, function-level imports
included)."""

from __future__ import annotations

import ast
import re

from conftest import ROOT

PACKAGE = ROOT / "kmeans_exp"


def table_order() -> list[str]:
    text = (ROOT / "docs" / "design.md").read_text()
    return re.findall(r"^\| `(kmeans_exp/[\w/]+\.py)` \|", text, re.M)


def module_file(dotted: str) -> str | None:
    """``kmeans_exp.engine.passes`` -> ``kmeans_exp/engine/passes.py`` (a package: its
    ``__init__.py``); None when it is no module of ours."""
    path = ROOT / dotted.replace(".", "/")
    for candidate in (path.with_suffix(".py"), path / "__init__.py"):
        if candidate.is_file():
            return str(candidate.relative_to(ROOT))
    return None


def imported_modules(path: str) -> set[str]:
    """Every kmeans_exp module that ``path`` imports, anywhere in the file."""
    found = set()
    for node in ast.walk(ast.parse((ROOT / path).read_text())):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            # ``from kmeans_exp.engine import passes``: the submodule if there is one.
            names = [
                f"{node.module}.{a.name}" if module_file(f"{node.module}.{a.name}") else node.module
                for a in node.names
            ]
        else:
            continue
        found |= {module_file(n) for n in names if n.split(".")[0] == "kmeans_exp"}
    return found - {None, path}


def test_the_layer_table_lists_every_module_once():
    listed = table_order()
    on_disk = sorted(str(p.relative_to(ROOT)) for p in PACKAGE.rglob("*.py"))
    assert sorted(listed) == on_disk
    assert len(set(listed)) == len(listed)


def test_every_module_imports_only_the_layers_above_it():
    order = table_order()
    wrong = {
        path: sorted(m for m in imported_modules(path) if order.index(m) > order.index(path))
        for path in order
    }
    assert not {path: later for path, later in wrong.items() if later}
