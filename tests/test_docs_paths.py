"""Every repository path and project module the docs name in backticks exists.

README.md and docs/*.md name files (`` `hw/top/top.py` ``, `` `sim/golden/model.py::moe_block` ``,
`` `tests/hw/` ``), bare file names (`` `dma.py` `` next to `` `hw/mem/bus.py` ``) and modules
(`` `host.driver.EdgeMoeDriver` ``). After a file moves, a stale name in a layout table or a
design note is easy to miss; this test lists each one that no longer resolves, with the document
and line.
"""
from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
# Top-level directories and files of the repository a path in the docs can start with.
TOP_DIRS = ("hw", "sim", "host", "boards", "model_io", "edge_moe", "tests", "docs")
TOP_FILES = ("README.md", "pyproject.toml")

_FENCE = re.compile(r"^```.*?^```", re.M | re.S)
_SPAN = re.compile(r"`([^`\n]+)`")
_PATH = re.compile(r"(?:%s)/[\w./-]*|(?:%s)" % ("|".join(TOP_DIRS),
                                                 "|".join(map(re.escape, TOP_FILES))))
_MODULE = re.compile(r"(?:%s)(?:\.\w+){2,}" % "|".join(TOP_DIRS))
_FILE = re.compile(r"[\w-]+\.(?:py|md)")


@lru_cache
def repo_file_names(root: Path = ROOT) -> set[str]:
    """Names of the files under the top-level directories, and the top-level files."""
    return {f.name for d in TOP_DIRS for f in (root / d).rglob("*") if f.is_file()} | \
        set(TOP_FILES)


def doc_references(text: str) -> list[tuple[int, str]]:
    """``(line, name)`` of every repository path and dotted project name in backticks.

    A span is read up to the first character that cannot be part of a path (so `` `a/b.py:12` ``,
    `` `a/b.py::f` `` and `` `a/b.py (x)` `` give ``a/b.py``); spans with a placeholder (``<``,
    ``*``, ``{``) are skipped. Fenced code blocks are skipped (they hold commands, not names).
    """
    text = _FENCE.sub(lambda m: "\n" * m.group(0).count("\n"), text)
    out = []
    for m in _SPAN.finditer(text):
        span = m.group(1).strip()
        if any(c in span for c in "<*{"):
            continue
        line = text.count("\n", 0, m.start()) + 1
        for word in re.split(r"[\s,;()]+", span):
            path = re.sub(r":.*$", "", word)
            hit = _PATH.fullmatch(path) or _MODULE.fullmatch(word) or _FILE.fullmatch(path)
            if hit:
                out.append((line, hit.group(0)))
    return out


def resolves(name: str, root: Path = ROOT) -> bool:
    """A path exists; a bare file name is the name of a file in the repository; a dotted name's
    module (or package) exists, with at least one component after the top-level package resolved
    to a file or directory."""
    if "/" in name or name in TOP_FILES:
        return (root / name.rstrip("/")).exists()
    if _FILE.fullmatch(name):
        return name in repo_file_names(root)
    parts = name.split(".")
    path = root / parts[0]
    for depth, part in enumerate(parts[1:], start=1):
        if (path / f"{part}.py").is_file():
            return True
        if not (path / part).is_dir():
            return depth > 1
        path = path / part
    return True


def missing(text: str, root: Path = ROOT) -> list[tuple[int, str]]:
    return [(line, name) for line, name in doc_references(text) if not resolves(name, root)]


def test_extractor_finds_paths_and_modules(tmp_path):
    (tmp_path / "hw" / "top").mkdir(parents=True)
    (tmp_path / "hw" / "top" / "top.py").write_text("")
    (tmp_path / "host").mkdir()
    (tmp_path / "host" / "driver.py").write_text("")
    sample = ("See `hw/top/top.py:12` and `hw/top/` and `hw/top/gone.py`,\n"
              "`hw/top/top.py::EdgeMoeTop`, `host.driver.EdgeMoeDriver`, "
              "`boards.driver.EdgeMoeDriver`, `cfg.hw.array_rows`, `build/cocotb/<name>/`,\n"
              "`python -m host.bench.moe (sim/cycles/moe.py)`, `driver.py`, `gone.md`\n"
              "```sh\n`hw/not_a_name.py`\n```\n")
    assert doc_references(sample) == [
        (1, "hw/top/top.py"), (1, "hw/top/"), (1, "hw/top/gone.py"), (2, "hw/top/top.py"),
        (2, "host.driver.EdgeMoeDriver"), (2, "boards.driver.EdgeMoeDriver"),
        (3, "host.bench.moe"), (3, "sim/cycles/moe.py"), (3, "driver.py"), (3, "gone.md")]
    assert missing(sample, tmp_path) == [(1, "hw/top/gone.py"),
                                         (2, "boards.driver.EdgeMoeDriver"),
                                         (3, "host.bench.moe"), (3, "sim/cycles/moe.py"),
                                         (3, "gone.md")]


def test_layout_table_is_checked():
    """The README's layout table is where most names are: the extractor must see its rows."""
    names = {name for _, name in doc_references((ROOT / "README.md").read_text())}
    assert {"hw/array/", "host/bench/", "tests/harness/", "sim/weight_format.py",
            "host.driver.EdgeMoeDriver"} <= names


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_doc_paths_exist(doc):
    bad = missing(doc.read_text())
    rel = doc.relative_to(ROOT).as_posix()
    assert not bad, "names that do not exist:\n" + "\n".join(f"{rel}:{line}: {name}"
                                                              for line, name in bad)
