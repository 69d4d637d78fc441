"""A tiny compiler cache for Verilator's run-time library, used as make's ``$(OBJCACHE)``.

Every Verilator build compiles the same run-time sources (``verilated.cpp``,
``verilated_vpi.cpp``, ...: ~10 s of CPU) before the few design-specific files. Invoked as
``python objcache.py <compiler> <args...>``, this caches the object (and its ``-MMD`` ``.d`` file)
of a source that lives under ``$VERILATOR_ROOT/include``, keyed by the full command line, the
source text and the compiler binary; anything else (the design's own files, cocotb's
``verilator.cpp``, which includes the generated ``Vtop.h``) is compiled normally.

The cache directory is ``$EDGE_MOE_OBJCACHE_DIR``; without it this is a plain pass-through.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile


def _store(src: str, dst: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(dst), prefix=".tmp-")
    os.close(fd)
    shutil.copyfile(src, tmp)
    os.replace(tmp, dst)


def main(argv: list[str]) -> int:
    cmd = argv[1:]
    cache = os.environ.get("EDGE_MOE_OBJCACHE_DIR")
    root = os.environ.get("VERILATOR_ROOT")
    if not cmd or not cache or not root or "-c" not in cmd or "-o" not in cmd:
        return subprocess.call(cmd)
    out = cmd[cmd.index("-o") + 1]
    srcs = [a for a in cmd if a.endswith((".cpp", ".cc", ".c"))]
    include = os.path.join(os.path.realpath(root), "include") + os.sep
    if len(srcs) != 1 or not os.path.realpath(srcs[0]).startswith(include):
        return subprocess.call(cmd)

    h = hashlib.sha256()
    compiler = shutil.which(cmd[0]) or cmd[0]
    st = os.stat(compiler) if os.path.exists(compiler) else None
    h.update(repr((compiler, st and (st.st_size, st.st_mtime_ns))).encode())
    h.update("\0".join(a if a != out else "<out>" for a in cmd).encode())
    with open(srcs[0], "rb") as f:
        h.update(f.read())
    key = h.hexdigest()[:24]
    obj = os.path.join(cache, key + ".o")
    dep_out = os.path.splitext(out)[0] + ".d"
    dep = os.path.join(cache, key + ".d")
    if os.path.isfile(obj):
        shutil.copyfile(obj, out)
        if os.path.isfile(dep):
            shutil.copyfile(dep, dep_out)
        return 0
    rc = subprocess.call(cmd)
    if rc == 0 and os.path.isfile(out):
        os.makedirs(cache, exist_ok=True)
        if os.path.isfile(dep_out):
            _store(dep_out, dep)
        _store(out, obj)
    return rc


if __name__ == "__main__":
    sys.exit(main(sys.argv))
