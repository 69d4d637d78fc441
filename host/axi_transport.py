"""cocotb transport for the host driver on the AXI top level (hw/top/axi_top.py, Verilator).

:class:`AxiTransport` implements :class:`host.driver.Transport` with cocotbext-axi models:
registers through an ``AxiLiteMaster`` on ``s_axil_*`` (register ``i`` at byte ``4 * i``),
memory straight into the ``AxiRam`` that serves ``m_axi_*`` (the host's side of a shared DDR:
on a board the CPU writes the buffer the accelerator reads). ``set_host_mode`` does nothing:
host and accelerator reach the memory independently. ``mem_base`` is the RAM address of the
driver's memory address 0 (:attr:`host.driver.Transport.mem_base`): the driver adds it to the
region addresses it programs into the base registers.

Imported only inside a cocotb simulation. :class:`host.driver.EdgeMoeDriver` is synchronous,
so it runs in a cocotb *bridge* thread (``cocotb.task.bridge``); each register access hops back
into the simulator with ``cocotb.task.resume``::

    t = AxiTransport(AxiLiteMaster(...), AxiRam(...), dut.clk, cfg)
    result = await bridge(lambda: EdgeMoeDriver(t, cfg).run_frame(task))()
"""
from __future__ import annotations

from cocotb.task import resume
from cocotb.triggers import ClockCycles

from host.driver import Transport

__all__ = ["AxiTransport"]


class AxiTransport(Transport):
    """Registers over AXI-Lite, memory in the AXI RAM model (see the module docstring)."""

    reg_bytes = 4

    def __init__(self, axil, ram, clk, cfg, *, mem_base: int = 0):
        self.axil, self.ram, self.clk = axil, ram, clk
        self.beat_bytes = cfg.hw.mem_bytes_per_cycle
        self.max_burst = cfg.hw.mem_max_burst
        self.mem_base = mem_base

    def write_reg(self, addr: int, value: int) -> None:
        resume(self.axil.write_dword)(4 * addr, value)

    def read_reg(self, addr: int) -> int:
        return resume(self.axil.read_dword)(4 * addr)

    def set_host_mode(self, on: bool) -> None:
        pass

    def write_bursts(self, bursts: list[tuple[int, bytes]]) -> None:
        for addr, data in bursts:
            self._check_addr(addr)
            self.ram.write(self.mem_base + addr, data)

    def read_burst(self, addr: int, beats: int) -> bytes:
        self._check_addr(addr)
        return self.ram.read(self.mem_base + addr, beats * self.beat_bytes)

    async def _wait(self, cycles: int) -> None:
        await ClockCycles(self.clk, cycles)

    def wait(self, cycles: int) -> None:
        resume(self._wait)(cycles)
