"""BridgedSystem: a device (the accelerator with its memory, or the demo) behind the host bridge.

``BridgedSystem(device, cfg, divisor=None, rx_fifo_depth=16)`` wires

    host bytes -> [UartRx] -> SyncFIFO -> HostBridge -> device.csr / host_mode / host_rd / host_wr
    host bytes <- [UartTx] <------------- HostBridge

``device`` is any component with the ports of :class:`hw.top.top_with_memory.TopWithMemory` (the top level
on its DRAM model, which doubles as on-chip "external" memory on a board) or
:class:`boards.demo_device.DemoDevice`: ``csr`` (In, a register port), ``host_mode`` (In 1),
``host_rd`` / ``host_wr`` (In, the burst memory bus), ``busy`` / ``done`` / ``error`` (Out 1).

With ``divisor`` (cycles per UART bit) the ports are the serial pins ``uart_rx`` (In 1) and
``uart_tx`` (Out 1); with ``divisor=None`` they are the byte streams ``rx`` (In
``stream.Signature(8)``) and ``tx`` (Out ``stream.Signature(8)``), for simulations that skip
the serial bit level. Both have ``busy`` / ``done`` / ``error`` (the device's) and
``link_error`` (Out 1: a UART framing error or receive overrun was seen; sticky).

The FIFO between receiver and bridge absorbs bytes that arrive while the bridge is busy
answering (the driver pipelines up to a few commands); it is ``rx_fifo_depth`` bytes.
Latency / throughput: those of hw/link/uart.py and hw/link/host_bridge.py plus one FIFO cycle.
"""
from __future__ import annotations

from amaranth.hdl import Module
from amaranth.lib import fifo, stream, wiring
from amaranth.lib.wiring import In, Out

from hw.link.host_bridge import HostBridge
from hw.link.uart import BYTE_BITS, connect_byte_link
from sim.config import Config

__all__ = ["BridgedSystem"]


class BridgedSystem(wiring.Component):
    def __init__(self, device: wiring.Component, cfg: Config, divisor: int | None = None,
                 rx_fifo_depth: int = 16, csr_read_latency: int | None = None):
        self.cfg = cfg
        self.device = device
        self.divisor = divisor
        self.rx_fifo_depth = rx_fifo_depth
        csr_sig = device.signature.members["csr"].signature.flip()
        if csr_read_latency is None:        # the device's own (1 unless it says otherwise)
            csr_read_latency = getattr(device, "csr_read_latency", 1)
        self.bridge = HostBridge(cfg, csr_sig, csr_read_latency=csr_read_latency)
        ports = {"busy": Out(1), "done": Out(1), "error": Out(1), "link_error": Out(1)}
        if divisor is None:
            ports.update(rx=In(stream.Signature(BYTE_BITS)), tx=Out(stream.Signature(BYTE_BITS)))
        else:
            ports.update(uart_rx=In(1, init=1), uart_tx=Out(1, init=1))
        super().__init__(ports)

    def elaborate(self, platform):
        m = Module()
        m.submodules.bridge = br = self.bridge
        m.submodules.device = dev = self.device
        m.submodules.rx_fifo = rxf = fifo.SyncFIFOBuffered(width=BYTE_BITS,
                                                           depth=self.rx_fifo_depth)
        connect_byte_link(m, self, rxf, br)
        wiring.connect(m, br.csr, dev.csr)
        wiring.connect(m, br.mem_rd, dev.host_rd)
        wiring.connect(m, br.mem_wr, dev.host_wr)
        m.d.comb += [dev.host_mode.eq(br.host_mode), self.busy.eq(dev.busy),
                     self.done.eq(dev.done), self.error.eq(dev.error)]
        return m
