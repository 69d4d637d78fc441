"""TopWithMemory: EdgeMoeTop on the DRAM model, with a host port into the memory (simulation top).

The DRAM model (hw/mem/onchip_memory.py, latency ``cfg.hw.mem_latency``, ``mem_bytes_per_cycle``
per cycle) serves the accelerator's read and write channels. While ``host_mode`` is high the
memory's channels belong to the host ports instead (``host_rd`` / ``host_wr``, the same burst
bus), which is how a testbench or a board's host bridge loads the image and reads the output
without a second memory port. ``image`` initialises the memory (pysim); for Verilator the
image is usually left empty (a design that does not depend on the weights is built once) and
loaded through ``host_wr``. Latency / throughput: the DRAM model's, ``mem_latency`` and one beat
per cycle: when that latency leaves room (``> OnChipMemory.MIN_LATENCY``), the memory runs one
cycle shorter and a :class:`~hw.mem.stream_slice.StreamSlice` on the accelerator's read data
takes the cycle back (a burst stays outstanding in the memory until its last beat leaves the
slice: no extra buffering, the same read timing). The slice cuts the ULX3S build's critical path (``host_mode`` -> the
host/accelerator read-data demux -> the memory's read engine -> the prefetcher's LUT-RAM write
data, 18 ns of which 16 ns routing) and the read-data ready chain (prefetcher -> read arbiter ->
demux -> the memory's block-RAM read enable) at a register, with the same read timing, so the
cycle model is unchanged. With one cycle more of room (``> MIN_LATENCY + 1``) the read
arbiter's data register (:class:`~hw.top.top.EdgeMoeTop` ``read_data_reg``) takes a second
cycle the same way: the memory runs two cycles shorter, and an accelerator burst retires when
its last beat leaves that register; with room for one more (``> MIN_LATENCY + 2``) the arbiter
adds a second stage, a copy of the beat per reader (``ARB_DATA_STAGES``), and the memory runs
three cycles shorter. The host-mode muxes are combinational (their select a register copy per
channel), and so is the disabled throttle. With the read-data slice and a banked memory, the
host's read data goes through a slice of its own (``host_rd_slice``, for its copies of the
ready into each bank's enable): host reads take one cycle more than the memory's latency.

Ports: ``csr`` (the accelerator's register port), ``host_mode``, ``host_rd``, ``host_wr``,
``busy`` / ``done`` / ``error`` (accelerator status), ``mem_error`` (the DRAM model's sticky
address error), ``mem_bytes_read`` / ``mem_bytes_written`` (the DRAM model's counters),
``throttle_en`` / ``throttle_load`` / ``throttle_seed``: a :class:`BusThrottle` between the
accelerator and the memory adds seeded random gaps and back-pressure on every bus channel;
``desc_index``: descriptors decoded so far (per-descriptor timing traces).
"""
from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from sim.config import Config

from hw.fabric.replica import SELECT_SHARE, replicas
from hw.mem.bus import MemReadSignature, MemWriteSignature
from hw.mem.onchip_memory import OnChipMemory
from hw.mem.bus_throttle import BusThrottle
from hw.mem.stream_slice import StreamSlice
from hw.top.csr import csr_signature
from hw.top.top import EdgeMoeTop

__all__ = ["TopWithMemory"]

# register stages of read data in the read arbiter, when the DRAM model's latency leaves room
ARB_DATA_STAGES = 2


def _payload_shares(payload):
    v = payload.as_value()
    return [v[i:i + SELECT_SHARE] for i in range(0, len(v), SELECT_SHARE)]


def _mux_stream(m, sel, a, b, out):
    """``out`` (slave side stream) from ``a`` when sel else ``b`` (both master side). ``sel``:
    a callable giving a fresh copy of the select per use (handshake, each payload share)."""
    h = sel()
    m.d.comb += [out.valid.eq(Mux(h, a.valid, b.valid)),
                 a.ready.eq(h & out.ready), b.ready.eq(~h & out.ready)]
    for o, x, y in zip(*(_payload_shares(s.payload) for s in (out, a, b))):
        m.d.comb += o.eq(Mux(sel(), x, y))


def _demux_stream(m, sel, src, a, b):
    """``src`` (master side) to ``a`` when sel else ``b`` (``sel``: as for :func:`_mux_stream`;
    the payload fans out without a select)."""
    h = sel()
    m.d.comb += [a.valid.eq(h & src.valid), b.valid.eq(~h & src.valid),
                 a.payload.eq(src.payload), b.payload.eq(src.payload),
                 src.ready.eq(Mux(h, a.ready, b.ready))]


class TopWithMemory(wiring.Component):
    """EdgeMoeTop on the on-chip DRAM model with a host port into the memory (simulation top).

    Parameters
    ----------
    cfg : Config
    image : bytes
        Initial memory contents (the weight / program image); empty for a design built once.
    size : int, optional
        Memory size in bytes (default: the DRAM model's).
    array : str
        The DRAM model's storage (``OnChipMemory``'s ``array``): "amaranth" (a Memory, the
        default) or "verilog" (hw/mem/sim_ram.v, for Verilator frames of big images).

    Ports
    -----
    csr : In :func:`~hw.top.csr.csr_signature`
        The accelerator's register port (``rdata`` :attr:`csr_read_latency` cycles after
        ``addr``).
    host_mode : In(1)
        The memory's channels belong to ``host_rd`` / ``host_wr`` instead of the accelerator,
        from the cycle after it rises until the cycle after it falls (registered copies).
    host_rd, host_wr : In :func:`~hw.mem.bus.MemReadSignature` / ``MemWriteSignature``
        The host's burst ports into the memory.
    throttle_en, throttle_load, throttle_seed : In
        Seeded random gaps and back-pressure between the accelerator and the memory.
    busy, done, error, desc_index : Out
        Accelerator status.
    mem_error, mem_bytes_read, mem_bytes_written : Out
        The DRAM model's sticky address error and byte counters.

    Latency / throughput: the DRAM model's (``mem_latency``, ``mem_bytes_per_cycle``), with the
    accelerator's read-data slice inside that latency (module docstring); the muxes and the
    disabled throttle are combinational.
    """

    csr_read_latency = EdgeMoeTop.csr_read_latency

    def __init__(self, cfg: Config, image=b"", size: int | None = None,
                 array: str = "amaranth"):
        self.cfg = cfg
        latency = max(cfg.hw.mem_latency, OnChipMemory.MIN_LATENCY)
        self.rd_slice = latency > OnChipMemory.MIN_LATENCY
        # the read arbiter's data registers (EdgeMoeTop read_data_reg) take the next two cycles
        self.arb_reg = min(ARB_DATA_STAGES, max(0, latency - OnChipMemory.MIN_LATENCY - 1))
        self.top = EdgeMoeTop(cfg, read_data_reg=self.arb_reg)
        self.dram = OnChipMemory(cfg, image, size=size, array=array,
                                 latency=latency - self.rd_slice - self.arb_reg,
                                 retire_port=self.rd_slice, ready_copies=self.rd_slice)
        super().__init__({
            "csr": In(csr_signature(cfg)),
            "host_mode": In(1),
            "host_rd": In(MemReadSignature(cfg)),
            "host_wr": In(MemWriteSignature(cfg)),
            "throttle_en": In(1), "throttle_load": In(1), "throttle_seed": In(32),
            "busy": Out(1), "done": Out(1), "error": Out(1), "mem_error": Out(1),
            "desc_index": Out(16),
            "mem_bytes_read": Out(cfg.hw.moe_counter_bits),
            "mem_bytes_written": Out(cfg.hw.moe_counter_bits),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.top = top = self.top
        m.submodules.dram = dram = self.dram
        wiring.connect(m, wiring.flipped(self.csr), top.csr)
        m.submodules.throttle = thr = BusThrottle(self.cfg)
        wiring.connect(m, top.mem_rd, thr.up_rd)
        wiring.connect(m, top.mem_wr, thr.up_wr)
        m.d.comb += [thr.enable.eq(self.throttle_en), thr.load.eq(self.throttle_load),
                     thr.seed.eq(self.throttle_seed)]
        # host_mode only changes with the accelerator idle and the host's own bursts done (the
        # host switches it between frames), so the muxes take it a cycle late, from registered
        # copies: one per handshake and per SELECT_SHARE payload bits. As one net it drove every
        # mux select and the DRAM model's queue and block-RAM pins behind them (the ULX3S HeAP
        # build's worst group, 12.8 ns with one LUT of logic).
        copies = []

        def h():
            copies.append(Signal(name=f"host_mode_c{len(copies)}"))
            return copies[-1]
        hr, hw, tr, tw = self.host_rd, self.host_wr, thr.down_rd, thr.down_wr
        _mux_stream(m, h, hr.rd_req, tr.rd_req, dram.rd.rd_req)
        if self.rd_slice:
            n_ready = dram.banks if dram.ready_copies else 0
            m.submodules.rd_slice = rd_slice = StreamSlice(
                tr.rd_data.payload.shape(), ready_copies=n_ready,
                fanout_target=self.cfg.hw.fanout_target)
            wiring.connect(m, rd_slice.o, tr.rd_data)
            host_in = hr.rd_data
            if n_ready:
                # The host's read data through a slice of its own, so its ready into the bank
                # enables is kept copies too: as one net (the host bridge's slice register) it
                # reached every bank's enable LUT (ULX3S routed 17.9 ns, one LUT of logic).
                # A cycle more on the host's reads, nothing next to the UART's byte time.
                m.submodules.host_rd_slice = host_slice = StreamSlice(
                    hr.rd_data.payload.shape(), ready_copies=n_ready,
                    fanout_target=self.cfg.hw.fanout_target)
                wiring.connect(m, host_slice.o, wiring.flipped(hr.rd_data))
                host_in = host_slice.i
            _demux_stream(m, h, dram.rd.rd_data, host_in, rd_slice.i)
            for k in range(n_ready):
                # the DRAM's block RAM enables, per bank: the ready as _demux_stream makes it
                m.d.comb += dram.rd_ready_copies[k].eq(
                    Mux(h(), host_slice.i_ready_copies[k], rd_slice.i_ready_copies[k]))
            # a burst stays outstanding until its last beat has left the slice: the slice is
            # a register stage, not two more beats of buffering (same timing as without it)
            last_out = [s.valid & s.ready & s.payload.last for s in (hr.rd_data, tr.rd_data)]
            for k in range(self.arb_reg):
                # an accelerator burst retires when its last beat leaves the arbiter's data
                # registers, a cycle per stage after it leaves the slice (the readers' time)
                acc_last = Signal(name=f"acc_last_out{k}")
                m.d.sync += acc_last.eq(last_out[1])
                last_out[1] = acc_last
            m.d.comb += dram.rd_retire.eq(Mux(h(), *last_out))
        else:
            _demux_stream(m, h, dram.rd.rd_data, hr.rd_data, tr.rd_data)
        _mux_stream(m, h, hw.wr_req, tw.wr_req, dram.wr.wr_req)
        _mux_stream(m, h, hw.wr_data, tw.wr_data, dram.wr.wr_data)
        _demux_stream(m, h, dram.wr.wr_resp, hw.wr_resp, tw.wr_resp)
        m.d.comb += [c.eq(q) for c, q in zip(copies, replicas(m, self.host_mode, len(copies),
                                                                 self.cfg.hw.fanout_target,
                                                                 "host_mode"))]
        m.d.comb += [self.busy.eq(top.busy), self.done.eq(top.done), self.error.eq(top.error),
                     self.desc_index.eq(top.desc_index),
                     self.mem_error.eq(dram.error), self.mem_bytes_read.eq(dram.bytes_read),
                     self.mem_bytes_written.eq(dram.bytes_written)]
        return m
