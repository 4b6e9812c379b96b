"""The package's shape: commands over the library, no import cycles, small modules.

Layers, top to bottom (a module may import only from its own layer or below):
  3  gan_lab/commands/ and the root command names (gan_lab/train.py, ...)
  2  gan_lab/gan/       the training module, objectives, fit, checkpoints, callbacks
  1  gan_lab/models/, gan_lab/data/, gan_lab/metrics/   (independent of each other's internals
     except where listed in ALLOWED_SIDEWAYS)
  0  gan_lab/errors.py, gan_lab/io.py, gan_lab/config.py
Imports inside functions count too: they are arrows all the same.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "gan_lab"
COMMAND_NAMES = ("train", "eval", "sample", "fid", "report", "bench", "evaluators")
BASE = ("errors", "io", "config")
# The largest modules may exceed this only with a reason listed here.
MAX_LINES = 320
LONG_MODULES: dict[str, str] = {}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer(name: str) -> int:
    parts = name.split(".")
    if len(parts) == 1:
        return 3  # gan_lab/__init__.py
    top = parts[1]
    if top == "commands" or (len(parts) == 2 and top in COMMAND_NAMES):
        return 3
    if top == "gan":
        return 2
    if top in ("models", "data", "metrics"):
        return 1
    if top in BASE:
        return 0
    raise AssertionError(f"{name}: not in any layer; add it to tests/test_layout.py")


def imports_of(path: Path, name: str) -> set[str]:
    tree = ast.parse(path.read_text())
    found: set[str] = set()
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("gan_lab"))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                target = f"{base}.{node.module}" if node.module else base
            else:
                target = node.module or ""
            if target.startswith("gan_lab"):
                found.add(target)
    return found


def graph() -> dict[str, set[str]]:
    modules = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    edges: dict[str, set[str]] = {}
    for name, path in modules.items():
        targets = set()
        for imported in imports_of(path, name):
            # "from gan_lab.gan import fit" names a module; "from gan_lab.gan.fit import x" too
            while imported not in modules and "." in imported:
                imported = imported.rsplit(".", 1)[0]
            if imported in modules and imported != name:
                targets.add(imported)
        edges[name] = targets
    return edges


def test_no_upward_imports() -> None:
    upward = [
        f"{src} (layer {layer(src)}) imports {dst} (layer {layer(dst)})"
        for src, dsts in graph().items()
        for dst in dsts
        if layer(dst) > layer(src)
    ]
    assert not upward, "\n".join(upward)


def test_root_command_names_only_forward_to_commands() -> None:
    edges = graph()
    for name in COMMAND_NAMES:
        assert edges[f"gan_lab.{name}"] == {f"gan_lab.commands.{name}"}


def test_library_layers_do_not_import_each_other() -> None:
    sideways = [
        f"{src} imports {dst}"
        for src, dsts in graph().items()
        for dst in dsts
        if layer(src) == layer(dst) == 1 and src.split(".")[1] != dst.split(".")[1]
    ]
    assert not sideways, "\n".join(sideways)


def test_no_import_cycles() -> None:
    edges = graph()
    # Package __init__ files re-export their children; an edge from a child back to its own
    # package's __init__ is a cycle too, so nothing is exempt.
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(edges[node]):
            if state.get(nxt) == 1:
                cycle = stack[stack.index(nxt) :] + [nxt]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(edges):
        if node not in state:
            visit(node)


def test_modules_stay_small() -> None:
    sizes = {module_name(p): len(p.read_text().splitlines()) for p in PACKAGE.rglob("*.py")}
    too_long = [
        f"{name}: {n} lines"
        for name, n in sorted(sizes.items(), key=lambda kv: -kv[1])
        if n > MAX_LINES and name not in LONG_MODULES
    ]
    assert not too_long, "split these, or justify them in LONG_MODULES:\n" + "\n".join(too_long)
