"""cocotb side of the LiteDRAM simulation tests: the core's ``wb_ctrl`` CSR port and its init.

- :func:`wb_write` / :func:`wb_read`: one Wishbone classic cycle on ``wb_ctrl_*`` (32-bit data,
  word address = byte address / 4, as LiteX's CSR bus maps it);
- :func:`dram_init`: what a host (or an init sequencer) does on the board, minus ECP5 read
  leveling: checks that the AXI port is blocked before init (``arready`` / ``awready`` low), runs
  LiteDRAM's own ``init_sequence()`` (parsed from the core's ``sdram_phy.h`` by
  :func:`boards.litedram_core.init_sequence`; ``cdelay(n)`` waits n cycles), hands the DFI to
  the controller (``sdram_dfii_control`` = SEL) and writes ``ddrctrl_init_done`` = 1;
- :class:`ChannelMonitor`: cycle numbers of every AR / R / AW / W handshake of an AXI port,
  for latency and bandwidth.

Signals are written right after a rising edge and sampled at the falling edge (the discipline
of host/cocotb_streams.py).
"""
from __future__ import annotations

import cocotb
from cocotb.triggers import ClockCycles, FallingEdge, ReadOnly, RisingEdge

__all__ = ["wb_write", "wb_read", "idle_wb", "dram_init", "ChannelMonitor", "DFII_CONTROL_SEL"]

DFII_CONTROL_SEL = 1          # sdram_dfii_control: DFI driven by the controller (hardware)
WB_TIMEOUT = 1000


async def _wb_cycle(dut, addr: int, we: bool, value: int = 0) -> int:
    dut.wb_ctrl_adr.value = addr >> 2
    dut.wb_ctrl_dat_w.value = value
    dut.wb_ctrl_sel.value = 0xF
    dut.wb_ctrl_we.value = int(we)
    dut.wb_ctrl_cyc.value = 1
    dut.wb_ctrl_stb.value = 1
    for _ in range(WB_TIMEOUT):
        await FallingEdge(dut.clk)
        await ReadOnly()
        ack, data = int(dut.wb_ctrl_ack.value), int(dut.wb_ctrl_dat_r.value)
        await RisingEdge(dut.clk)
        if ack:
            break
    else:
        raise AssertionError(f"wb_ctrl: no ack for {WB_TIMEOUT} cycles at {addr:#x}")
    dut.wb_ctrl_cyc.value = 0
    dut.wb_ctrl_stb.value = 0
    dut.wb_ctrl_we.value = 0
    return data


async def wb_write(dut, addr: int, value: int) -> None:
    await _wb_cycle(dut, addr, True, value)


async def wb_read(dut, addr: int) -> int:
    return await _wb_cycle(dut, addr, False)


def idle_wb(dut) -> None:
    for name in ("cyc", "stb", "we", "adr", "dat_w", "sel", "cti", "bte"):
        getattr(dut, f"wb_ctrl_{name}").value = 0


async def dram_init(dut, csr: dict, sequence: list, *, axi_prefix: str | None = None) -> None:
    """Run ``sequence`` (``[(csr_name, value) | ("delay", n)]``), then SEL and init_done.
    With ``axi_prefix``, first check that the core holds its AXI port's AR / AW ready low."""
    if axi_prefix is not None:
        for _ in range(8):
            await FallingEdge(dut.clk)
            await ReadOnly()
            for ch in ("ar", "aw"):
                assert int(getattr(dut, f"{axi_prefix}_{ch}ready").value) == 0, \
                    f"{ch}ready high before init_done"
            await RisingEdge(dut.clk)
    assert int(dut.init_done.value) == 0, "init_done high before the host wrote it"
    for name, value in sequence:
        if name == "delay":
            await ClockCycles(dut.clk, value)
        else:
            await wb_write(dut, csr[name], value)
    await wb_write(dut, csr["sdram_dfii_control"], DFII_CONTROL_SEL)
    await wb_write(dut, csr["ddrctrl_init_done"], 1)
    assert await wb_read(dut, csr["ddrctrl_init_done"]) == 1
    await RisingEdge(dut.clk)
    assert int(dut.init_done.value) == 1 and int(dut.init_error.value) == 0


class ChannelMonitor:
    """Cycle numbers of the handshakes on an AXI port's AR, R (with RLAST), AW and W."""

    def __init__(self, dut, prefix: str):
        self.dut, self.prefix = dut, prefix
        self.cycle = 0
        self.events = {"ar": [], "r": [], "aw": [], "w": []}
        self.r_first = []            # cycle of each burst's first R beat
        self._in_burst = False
        cocotb.start_soon(self._run())

    def _sig(self, name):
        return int(getattr(self.dut, f"{self.prefix}_{name}").value)

    async def _run(self):
        while True:
            await FallingEdge(self.dut.clk)
            await ReadOnly()
            for ch in self.events:
                if self._sig(f"{ch}valid") and self._sig(f"{ch}ready"):
                    self.events[ch].append(self.cycle)
                    if ch == "r":
                        if not self._in_burst:
                            self.r_first.append(self.cycle)
                        self._in_burst = not self._sig("rlast")
            await RisingEdge(self.dut.clk)
            self.cycle += 1
