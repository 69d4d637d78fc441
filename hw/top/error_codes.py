"""Error codes of the top level: the one list shared by the RTL, the register map and the host.

The sequencer (hw/top/sequencer.py) writes a code into bits 0-7 of the ``ERROR`` register
(hw/top/csr.py) and the index of the failing descriptor into bits 16-31; the host runners
(host/run.py, host/driver.py) decode the register with :func:`decode_error` and name the code
in their exceptions. No Amaranth import: host-only code uses this module too.
"""
from __future__ import annotations

import enum

__all__ = ["ErrorCode", "decode_error", "describe_error", "ERROR_CODE_BITS", "ERROR_DESC_SHIFT",
           "ERROR_DESC_BITS"]

# Fields of the ``ERROR`` register: the code in bits 0-7, the failing descriptor in bits 16-31.
ERROR_CODE_BITS = 8
ERROR_DESC_SHIFT = 16
ERROR_DESC_BITS = 16


class ErrorCode(enum.IntEnum):
    """Code in bits 0-7 of the ``ERROR`` register (0: no error)."""

    NONE = 0
    BAD_MAGIC = 1            # descriptor magic byte is wrong (not a descriptor)
    BAD_CHECK = 2            # descriptor check word does not match words 0..14
    BAD_OPCODE = 3           # descriptor opcode is not an HwOp
    BAD_FIELD = 4            # a descriptor field is out of range (sim.memory_image.desc_ranges)
    MEM_ERROR = 5            # a memory error: a write burst answered with an error, or an AXI
    #                          error response (RRESP / BRESP); BUS_ERROR tells the AXI case apart
    QUEUE_OVERFLOW = 6       # an expert queue of the router overflowed
    BAD_TASK = 7             # start with TASK >= the config's tasks (refused)
    BAD_BASE = 8             # start with a *_BASE register not a multiple of the memory beat

    @property
    def description(self) -> str:
        return _DESCRIPTIONS[self]


_DESCRIPTIONS = {
    ErrorCode.NONE: "none",
    ErrorCode.BAD_MAGIC: "bad descriptor magic",
    ErrorCode.BAD_CHECK: "bad descriptor check word",
    ErrorCode.BAD_OPCODE: "bad opcode",
    ErrorCode.BAD_FIELD: "descriptor field out of range",
    ErrorCode.MEM_ERROR: "memory error (write response or AXI bus error)",
    ErrorCode.QUEUE_OVERFLOW: "router queue overflow",
    ErrorCode.BAD_TASK: "task id out of range",
    ErrorCode.BAD_BASE: "base address not a multiple of the memory beat",
}


def decode_error(error_reg: int) -> tuple[int, int]:
    """``ERROR`` register -> (code, descriptor index)."""
    return (error_reg & ((1 << ERROR_CODE_BITS) - 1),
            (error_reg >> ERROR_DESC_SHIFT) & ((1 << ERROR_DESC_BITS) - 1))


def describe_error(error_reg: int) -> str:
    """``ERROR`` register as text: ``BAD_FIELD (descriptor field out of range) at descriptor 3``."""
    code, pc = decode_error(error_reg)
    try:
        name = f"{ErrorCode(code).name} ({ErrorCode(code).description})"
    except ValueError:
        name = f"unknown code {code}"
    return f"{name} at descriptor {pc}"
