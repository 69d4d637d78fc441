"""The generated register map (boards/regmap.py): the C header and the Python map match the RTL.

- the header passes ``cc -fsyntax-only -Wall -Werror`` and a C program built against it prints
  every offset, field and error code, which must equal the RTL's word index times 4, the bits
  documented in hw/top/csr.py and ``ErrorCode`` -- checked against values written out here, not
  against the generator's own tables;
- every ``REGISTERS`` entry, ``BUS_ERROR`` and every ``ErrorCode`` appears in the header;
- the ERROR fields of the map decode a register value the way :func:`decode_error` does;
- the header is include-guarded (included twice compiles).
"""
from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from boards.regmap import REGMAP, c_header
from hw.link.axil_csr import AXIL_REGISTERS
from hw.top.csr import CSR_ID, REGISTERS
from hw.top.error_codes import ErrorCode, decode_error

CC = shutil.which("cc") or shutil.which("gcc")
needs_cc = pytest.mark.skipif(CC is None, reason="no C compiler")

# Written out from the documentation (hw/top/csr.py, hw/link/axil_csr.py docstrings).
DOCUMENTED = {"ID": 0x00, "CTRL": 0x04, "TASK": 0x08, "STATUS": 0x0C, "ERROR": 0x10,
              "PROG_BASE": 0x14, "WEIGHT_BASE": 0x18, "IMAGE_BASE": 0x1C, "OUT_BASE": 0x20,
              "BUS_ERROR": 0x3C, "CYCLES": 0x40}
DOCUMENTED_FIELDS = {"CTRL_START": (0, 0x1), "CTRL_CLEAR": (1, 0x2), "STATUS_BUSY": (0, 0x1),
                     "STATUS_DONE": (1, 0x2), "STATUS_ERROR": (2, 0x4),
                     "ERROR_CODE": (0, 0xFF), "ERROR_DESC": (16, 0xFFFF0000),
                     "BUS_ERROR_STICKY": (0, 0x1)}


def _defines(text: str) -> dict[str, int]:
    return {m[1]: int(m[2], 0) for m in
            re.finditer(r"^#define (EDGE_MOE_\w+) (0x[0-9A-Fa-f]+|\d+)u\b", text, re.M)}


def test_header_parsed_back_matches_rtl():
    d = _defines(c_header())
    for name, word in {**REGISTERS, **AXIL_REGISTERS}.items():
        assert d[f"EDGE_MOE_{name}_OFFSET"] == 4 * word, name
    for name, off in DOCUMENTED.items():
        assert d[f"EDGE_MOE_{name}_OFFSET"] == off, name
    for name, (shift, mask) in DOCUMENTED_FIELDS.items():
        assert (d[f"EDGE_MOE_{name}_SHIFT"], d[f"EDGE_MOE_{name}_MASK"]) == (shift, mask), name
    for code in ErrorCode:
        assert d[f"EDGE_MOE_ERR_{code.name}"] == int(code), code
    assert d["EDGE_MOE_CSR_ID"] == CSR_ID
    offsets = [v for k, v in d.items() if k.endswith("_OFFSET")]
    assert len(offsets) == len(set(offsets)) == len(REGISTERS) + len(AXIL_REGISTERS)


def test_python_map():
    assert {n: r.offset for n, r in REGMAP.items()} == \
        {n: 4 * w for n, w in {**REGISTERS, **AXIL_REGISTERS}.items()}
    err = REGMAP["ERROR"]
    value = (0x1234 << 16) | int(ErrorCode.BAD_FIELD)
    assert (err.field("CODE").get(value), err.field("DESC").get(value)) == decode_error(value)
    assert decode_error(value) == (4, 0x1234)
    with pytest.raises(KeyError, match="Register STATUS: no field 'NOPE'"):
        REGMAP["STATUS"].field("NOPE")


@needs_cc
def test_header_compiles_and_c_sees_the_same_values(tmp_path):
    (tmp_path / "edge_moe_regs.h").write_text(c_header())
    names = ([f"{n}_OFFSET" for n in {**REGISTERS, **AXIL_REGISTERS}]
             + [f"{n}_{s}" for n in DOCUMENTED_FIELDS for s in ("SHIFT", "MASK")]
             + [f"ERR_{c.name}" for c in ErrorCode] + ["CSR_ID"])
    prog = ['#include <stdio.h>', '#include "edge_moe_regs.h"', '#include "edge_moe_regs.h"',
            "int main(void) {"]
    prog += [f'    printf("{n} %lu\\n", (unsigned long)(EDGE_MOE_{n}));' for n in names]
    prog += ["    return 0;", "}"]
    (tmp_path / "main.c").write_text("\n".join(prog) + "\n")
    subprocess.run([CC, "-fsyntax-only", "-Wall", "-Werror", "-x", "c", "edge_moe_regs.h"],
                   cwd=tmp_path, check=True)
    subprocess.run([CC, "-std=c99", "-Wall", "-Werror", "-o", "main", "main.c"], cwd=tmp_path,
                   check=True)
    out = subprocess.run([str(tmp_path / "main")], capture_output=True, text=True,
                         check=True).stdout
    got = {k: int(v) for k, v in (line.split() for line in out.splitlines())}
    want = {f"{n}_OFFSET": 4 * w for n, w in {**REGISTERS, **AXIL_REGISTERS}.items()}
    want |= {f"{n}_SHIFT": s for n, (s, _) in DOCUMENTED_FIELDS.items()}
    want |= {f"{n}_MASK": m for n, (_, m) in DOCUMENTED_FIELDS.items()}
    want |= {f"ERR_{c.name}": int(c) for c in ErrorCode}
    want["CSR_ID"] = CSR_ID
    assert got == want
