"""The layers import one way: tests -> commands -> host -> boards -> hw -> sim (model_io beside hw).

Walks every module outside ``tests/`` (top-level and function-level imports alike, via ``ast``)
and checks each imported project module against the layer table below, so a product module that
reaches into the tests or up into a higher layer fails here, naming the file and the line.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# package -> the project packages it may import (itself included)
ALLOWED = {
    "sim": {"sim"},
    "hw": {"sim", "hw"},
    "model_io": {"sim", "model_io"},
    "boards": {"sim", "hw", "boards"},
    "host": {"sim", "hw", "boards", "model_io", "host"},
    "edge_moe": {"sim", "hw", "boards", "model_io", "host", "edge_moe"},
}
PROJECT = set(ALLOWED) | {"tests"}
# The one software-model module that also builds RTL expressions: the Q-format helpers are shared
# by the golden model and the RTL generators so that rounding is written once.
SIM_AMARANTH_OK = {"sim/fixed.py"}


def _modules():
    for pkg in ALLOWED:
        yield from sorted((ROOT / pkg).rglob("*.py"))


def _imports(path: Path):
    tree = ast.parse(path.read_text(), str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                yield node.lineno, a.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:          # relative: stays inside its own package
                continue
            yield node.lineno, node.module or ""


def _violations():
    out = []
    for path in _modules():
        rel = path.relative_to(ROOT).as_posix()
        layer = rel.split("/")[0]
        for line, mod in _imports(path):
            top = mod.split(".")[0]
            if top in PROJECT and top not in ALLOWED[layer]:
                out.append(f"{rel}:{line}: {layer} imports {mod}")
            if layer == "sim" and top == "amaranth" and rel not in SIM_AMARANTH_OK:
                out.append(f"{rel}:{line}: sim builds no RTL, imports {mod}")
    return out


def test_imports_run_one_way():
    assert _violations() == []


def test_the_checker_sees_imports(tmp_path):
    """The walker finds function-level imports too (a checker that sees nothing passes anything)."""
    p = tmp_path / "m.py"
    p.write_text("import os\n\ndef f():\n    from tests.harness import seeds\n")
    assert ("tests.harness" in [m for _, m in _imports(p)])


def test_tests_is_not_a_shipped_package():
    text = (ROOT / "pyproject.toml").read_text()
    line = next(l for l in text.splitlines() if l.strip().startswith("include"))
    assert "tests" not in line, line


@pytest.mark.parametrize("pkg", sorted(ALLOWED))
def test_every_layer_exists(pkg):
    assert (ROOT / pkg / "__init__.py").is_file()
