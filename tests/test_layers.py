"""The package's layers point one way: data ← models ← diffusion ← pipeline ← tasks ← cli, with
train and evaluate beside tasks. Every import in src/usbrain (module level or inside a function)
is read from the source; one that climbs to a higher layer fails the test."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "usbrain"

# Higher numbers may import lower ones (and their own layer), never the reverse. Modules of one
# package (e.g. two files in tasks/) may import each other.
LAYERS = {
    "errors": 0,
    "__init__": 0,
    "files": 1,
    "progress": 1,
    "logs": 1,
    "config": 1,
    "weights": 1,
    "metrics": 1,
    "data": 2,
    "viz": 3,
    "models": 3,
    "diffusion": 4,
    "pipeline": 5,
    "tasks": 6,
    "train": 6,
    "evaluate": 7,  # scores the tasks' outputs: may call them
    "demo_tasks": 8,
    "demo": 9,
    "cli": 10,
    "__main__": 11,
}


def _unit(module: str) -> str:
    """The layer unit of a dotted ``usbrain.…`` module name: its first part below usbrain."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def upward_imports(package: Path) -> list[str]:
    """Every import in ``package`` of a module in a higher layer, as ``file:line a -> b``."""
    found = []
    for file in sorted(package.rglob("*.py")):
        relative = file.relative_to(package)
        here = relative.parts[0].removesuffix(".py")
        for node in ast.walk(ast.parse(file.read_text(), str(file))):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets = [node.module]
            elif isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                continue
            for target in targets:
                if target != "usbrain" and not target.startswith("usbrain."):
                    continue
                there = _unit(target)
                if there != here and LAYERS[there] > LAYERS[here]:
                    found.append(f"{relative}:{node.lineno} {here} -> {there}")
    return found


def test_every_module_has_a_layer():
    units = {p.relative_to(PACKAGE).parts[0].removesuffix(".py") for p in PACKAGE.rglob("*.py")}
    assert units <= set(LAYERS), sorted(units - set(LAYERS))


def test_no_import_climbs_a_layer():
    assert upward_imports(PACKAGE) == []


@pytest.mark.parametrize(
    ("where", "line"),
    [
        ("data/planted.py", "from usbrain.tasks.heal import heal\n"),
        ("models/planted.py", "def f():\n    import usbrain.pipeline\n"),
        ("train/planted.py", "from usbrain.evaluate.metrics import psnr\n"),
    ],
)
def test_a_planted_upward_import_is_caught(tmp_path, where, line):
    copy = tmp_path / "usbrain"
    for file in PACKAGE.rglob("*.py"):
        target = copy / file.relative_to(PACKAGE)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(file.read_text())
    (copy / where).write_text(line)
    found = upward_imports(copy)
    assert len(found) == 1 and found[0].startswith(where), found
