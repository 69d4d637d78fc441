"""Ecp5Bram: a memory with one write port and one registered read port, built from ECP5 DP16KD
block RAMs whose read output register is the block's own (``REGMODE_B="OUTREG"``).

The drop-in ECP5 twin of ``lib.memory.Memory`` + :class:`hw.fabric.bram.RegisteredReadPort`:
same read latency (``2 + address_reg`` cycles: the block's registered address, its output
register, plus the optional fabric address register), same clock enable (``r_en`` drives
``CEB`` and ``OCEB``: the whole read pipeline holds when it is low), writes take effect at the
clock edge (``w_en``). Why: Yosys' ``synth_ecp5`` only ever emits ``REGMODE="NOREG"``, so an
output register written in RTL stays in the fabric; the DP16KD's own one cuts the ~5.8 ns
clock-to-data of a speed-6 block RAM to ~1 ns.

Geometry: each DP16KD is used as a simple dual-port RAM (port A writes, port B reads) in the
widest configuration that holds ``depth`` words: 1024 x 18, 2048 x 9, 4096 x 4, 8192 x 2 or
16384 x 1, and ``ceil(width / that)`` blocks side by side. Deeper memories (cascading blocks
by address) are not supported. No initial contents (the blocks start at zero). A read of the
address being written in the same cycle returns undefined data (the block's port collision),
unlike ``Memory``'s read-before-write.

Parameters: ``shape`` (the word's shape), ``depth``, ``address_reg`` (bool), ``domain``
(default ``"sync"``).
Ports: ``w_addr``, ``w_data``, ``w_en`` (in); ``r_addr``, ``r_en`` (in, default 1),
``r_data`` (out).
"""
from __future__ import annotations

from amaranth.hdl import ClockSignal, Instance, Module, Shape, Signal, Value
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

__all__ = ["Ecp5Bram", "dp16kd_geometry", "DP16KD_ADDR_BITS"]

DP16KD_ADDR_BITS = 14
# (data width per block, words per block), widest first: the 16 Kbit array (18 Kbit with the
# 9th bits) seen through each true-dual-port aspect ratio
_ASPECTS = ((18, 1024), (9, 2048), (4, 4096), (2, 8192), (1, 16384))


def dp16kd_geometry(width: int, depth: int) -> tuple[int, int]:
    """(data width of each DP16KD, number of blocks) for a ``width`` x ``depth`` memory."""
    for block_width, block_depth in _ASPECTS:
        if depth <= block_depth:
            return block_width, -(-width // block_width)
    raise ValueError(f"Ecp5Bram: depth must be at most {_ASPECTS[-1][1]} words (one DP16KD "
                     f"deep), got {depth}")


class Ecp5Bram(wiring.Component):
    def __init__(self, shape, depth: int, *, address_reg: bool = False, domain: str = "sync"):
        if depth < 1:
            self._MustUse__silence = True   # no "created but never used" warning as well
            raise ValueError(f"Ecp5Bram: depth must be at least 1, got {depth}")
        self.shape, self.depth = shape, depth
        self.width = Shape.cast(shape).width
        try:
            self.block_width, self.blocks = dp16kd_geometry(self.width, depth)
        except ValueError:
            self._MustUse__silence = True
            raise
        self.address_reg, self.domain = bool(address_reg), domain
        self.latency = 2 + self.address_reg
        super().__init__({
            "w_addr": In(range(depth)), "w_data": In(shape), "w_en": In(1),
            "r_addr": In(range(depth)), "r_en": In(1, init=1), "r_data": Out(shape),
        })

    def elaborate(self, platform):
        m = Module()
        r_addr = self.r_addr
        if self.address_reg:
            r_addr = Signal.like(self.r_addr, name="read_addr")
            with m.If(self.r_en):
                m.d[self.domain] += r_addr.eq(self.r_addr)
        w, n = self.block_width, self.blocks
        w_data = Signal(w * n)
        r_data = Signal(w * n)
        m.d.comb += [w_data.eq(Value.cast(self.w_data)), self.r_data.eq(r_data[:self.width])]
        ad_a, ad_b = self._block_address(self.w_addr), self._block_address(r_addr)
        if w == 18:
            # x18: address bits 0 and 1 of port A are its byte-write enables (both bytes)
            ad_a = [1, 1] + ad_a[2:]
        for j in range(n):
            ports = {"i_CLKA": ClockSignal(self.domain), "i_CEA": 1, "i_OCEA": 1,
                     "i_WEA": self.w_en, "i_RSTA": 0,
                     "i_CLKB": ClockSignal(self.domain), "i_CEB": self.r_en,
                     "i_OCEB": self.r_en, "i_WEB": 0, "i_RSTB": 0}
            for k in range(3):
                ports[f"i_CSA{k}"] = ports[f"i_CSB{k}"] = 0
            for k in range(DP16KD_ADDR_BITS):
                ports[f"i_ADA{k}"], ports[f"i_ADB{k}"] = ad_a[k], ad_b[k]
            for k in range(w):
                ports[f"i_DIA{k}"] = w_data[j * w + k]
                ports[f"i_DIB{k}"] = 0
                ports[f"o_DOB{k}"] = r_data[j * w + k]
            m.submodules[f"dp16kd_{j}"] = Instance(
                "DP16KD", p_DATA_WIDTH_A=w, p_DATA_WIDTH_B=w,
                p_REGMODE_A="NOREG", p_REGMODE_B="OUTREG",
                p_RESETMODE="SYNC", p_ASYNC_RESET_RELEASE="SYNC",
                p_CSDECODE_A="0b000", p_CSDECODE_B="0b000",
                p_WRITEMODE_A="NORMAL", p_WRITEMODE_B="NORMAL", p_GSR="DISABLED", **ports)
        return m

    def _block_address(self, addr):
        """The 14 address pins of a block: the word address in the top bits (as many as the
        aspect ratio has words), zeros below."""
        abits = {18: 10, 9: 11, 4: 12, 2: 13, 1: 14}[self.block_width]
        low = DP16KD_ADDR_BITS - abits
        return [0] * low + [addr[i] if i < len(addr) else 0 for i in range(abits)]
