"""cocotb transport for the host driver on boards/dram_system.py's DramSystem (Verilator).

:class:`DramAxiTransport` implements :class:`host.driver.Transport`: registers through a
cocotbext-axi ``AxiLiteMaster`` on ``s_axil_*`` (register ``i`` at byte ``4 * i``), memory
through a cocotbext-axi ``AxiMaster`` on the host port ``s_host_*``, i.e. into LiteDRAM's DRAM
model through the system's AXI switch. ``set_host_mode(on)`` drives the ``host_mode`` input and
waits until ``host_owner`` shows the switch has handed the port over (it changes only once the
previous owner is idle). ``mem_base``: the DRAM address of the driver's memory address 0;
``mem_size``: the DRAM's bytes (the port's address range).

Imported only inside a cocotb simulation. The synchronous driver runs in a cocotb *bridge*
thread; each access hops back into the simulator with ``cocotb.task.resume`` (as
host/axi_transport.py). The bursts of one ``write_bursts`` call are issued together, so the
AXI master keeps several in flight.
"""
from __future__ import annotations

from cocotb.task import resume
from cocotb.triggers import ClockCycles, RisingEdge, gather

from host.driver import LinkError, Transport

__all__ = ["DramAxiTransport", "OWNER_TIMEOUT"]

OWNER_TIMEOUT = 100_000       # cycles to wait for the switch to hand the port over


class DramAxiTransport(Transport):
    """Registers over AXI-Lite, memory over the host AXI port (see the module docstring)."""

    reg_bytes = 4

    def __init__(self, dut, axil, axi, cfg, *, mem_base: int = 0, mem_size: int | None = None):
        self.dut, self.axil, self.axi = dut, axil, axi
        self.beat_bytes = cfg.hw.mem_bytes_per_cycle
        self.max_burst = cfg.hw.mem_max_burst
        self.mem_base, self.mem_size = mem_base, mem_size

    def write_reg(self, addr: int, value: int) -> None:
        resume(self.axil.write_dword)(4 * addr, value)

    def read_reg(self, addr: int) -> int:
        return resume(self.axil.read_dword)(4 * addr)

    async def _host_mode(self, on: bool) -> None:
        self.dut.host_mode.value = int(on)
        for _ in range(OWNER_TIMEOUT):
            await RisingEdge(self.dut.clk)
            if int(self.dut.host_owner.value) == int(on):
                return
        raise LinkError(f"DramSystem: host_owner did not become {int(on)} within "
                        f"{OWNER_TIMEOUT} cycles")

    def set_host_mode(self, on: bool) -> None:
        resume(self._host_mode)(on)

    async def _write(self, bursts) -> None:
        await gather(*(self.axi.write(self.mem_base + a, d) for a, d in bursts))

    def write_bursts(self, bursts: list[tuple[int, bytes]]) -> None:
        for addr, data in bursts:
            self._check_addr(addr, len(data))
        resume(self._write)(bursts)

    async def _read(self, addr: int, beats: int) -> bytes:
        return bytes((await self.axi.read(self.mem_base + addr, beats * self.beat_bytes)).data)

    def read_burst(self, addr: int, beats: int) -> bytes:
        self._check_addr(addr, beats * self.beat_bytes)
        return resume(self._read)(addr, beats)

    async def _wait(self, cycles: int) -> None:
        await ClockCycles(self.dut.clk, cycles)

    def wait(self, cycles: int) -> None:
        resume(self._wait)(cycles)
