"""The import rule of the layout: each layer imports only the layers beneath it.

``core`` imports nothing else of ours; ``objectives`` and ``backends`` only ``core``; ``pruners``
those three; ``llm`` and ``vision`` those four (not each other); ``apps`` everything. So no
backend imports a model and no objective imports a solver. Imports are read from the source with ``ast`` (inside functions
too), so a lazy import cannot hide a forbidden edge.
"""

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LAYERS = {
    "core": set(),
    "objectives": {"core"},
    "backends": {"core"},
    "pruners": {"core", "objectives", "backends"},
    "llm": {"core", "objectives", "backends", "pruners"},
    "vision": {"core", "objectives", "backends", "pruners"},
    "apps": {"core", "objectives", "backends", "pruners", "llm", "vision"},
}
FOLDERS = {name: ROOT / "qubo_prune" / name for name in LAYERS} | {"backends": ROOT / "backends"}


def imported_layers(source: str) -> set[str]:
    """The layers (``qubo_prune.<layer>``) a module's source imports, at any depth."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        for name in names:
            parts = name.split(".")
            if parts[0] == "qubo_prune" and len(parts) > 1:
                found.add(parts[1])
    return found & set(LAYERS)


def violations() -> list[str]:
    out = []
    for layer, folder in FOLDERS.items():
        for path in sorted(folder.rglob("*.py")):
            used = imported_layers(path.read_text()) - {layer}
            for bad in sorted(used - LAYERS[layer]):
                out.append(f"{path.relative_to(ROOT)} ({layer}) imports {bad}")
    return out


def test_every_module_keeps_the_import_rule():
    assert violations() == []


def test_every_module_sits_in_a_layer():
    flat = sorted(p.name for p in (ROOT / "qubo_prune").glob("*.py") if p.name != "__init__.py")
    assert flat == []


@pytest.mark.parametrize(
    "layer,source",
    [
        ("core", "from qubo_prune.backends.registry import get_backend"),
        ("objectives", "def f():\n    import qubo_prune.backends.registry\n"),
        ("backends", "from qubo_prune.pruners import icbs"),
        ("backends", "from qubo_prune import llm"),
        ("pruners", "from qubo_prune.apps.cache import cache_dir"),
        ("vision", "from qubo_prune.llm.checkpoint import save_pruned"),
    ],
)
def test_the_checker_sees_a_forbidden_import(layer, source):
    assert imported_layers(source) - LAYERS[layer] - {layer}


def documented_modules() -> set[str]:
    """Module paths named in docs/architecture.md's module table (``backends/qaoa/`` as a folder)."""
    text = (ROOT / "docs" / "architecture.md").read_text()
    return set(re.findall(r"^\| `([a-z0-9_/]+(?:\.py|/))` \|", text, re.M))


def test_the_module_table_matches_the_tree():
    tree = {
        str(p.relative_to(ROOT / "qubo_prune"))
        if p.is_relative_to(ROOT / "qubo_prune")
        else str(p.relative_to(ROOT))
        for folder in FOLDERS.values()
        for p in folder.rglob("*.py")
        if p.name != "__init__.py"
    }
    listed = documented_modules()
    folders = {m for m in listed if m.endswith("/")}
    covered = {m for m in tree if m in listed or any(m.startswith(f) for f in folders)}
    assert sorted(tree - covered) == []  # every module is documented
    stale = [
        m for m in listed if not (ROOT / m).exists() and not (ROOT / "qubo_prune" / m).exists()
    ]
    assert stale == []


def test_the_readme_folder_table_names_every_layer():
    text = (ROOT / "README.md").read_text()
    for layer, folder in FOLDERS.items():
        assert f"| `{folder.relative_to(ROOT)}/`" in text, layer
