"""Control / status register block of the top level: a simple word-addressed register port.

Bus (:func:`csr_signature`, slave view ``In``): ``addr`` (word index), ``wdata``, ``we`` (write
in this cycle), ``rdata`` (the register at ``addr`` of :data:`CSR_READ_LATENCY` = 2 cycles
before, with its value then; no read side effects; a write takes effect at the clock edge).
The read is two stages, an 8-way select by the low address bits into one register per group
of 8 registers, then the group: as one 32-way select from the bridge's address register into
``rdata`` it was 6 LUT levels and 9 ns of routing (ULX3S, 11.0-11.45 ns routed). The register width is
:func:`csr_bits` = ``max(cfg.hw.mem_addr_bits, cfg.hw.moe_counter_bits)`` (32 in every preset). A UART bridge or a
soft core maps it at byte address ``4 * addr``. docs/top_level.md has the register map; it is
:data:`REGISTERS` here (name -> word index), the single definition that the host driver
(:mod:`host.run`) uses too.

- ``CTRL`` (write): bit 0 starts a frame (ignored while busy); bit 1 clears ``done``/``error``.
- ``TASK`` (read/write): task id of the next frame (selects the router's gate weights); a
  start with ``TASK >= tasks`` is refused with ``ErrorCode.BAD_TASK``.
- ``STATUS`` (read): bit 0 busy, bit 1 done, bit 2 error.
- ``ERROR`` (read): error code in bits 0-7 (:class:`hw.top.error_codes.ErrorCode`: 0 none,
  1 bad magic, 2 bad check word, 3 bad opcode, 4 field out of range, 5 memory error (a
  write response, an AXI bus error or a prefetcher overrun), 6 router queue overflow, 7 bad task, 8 a base register
  not a multiple of the memory beat) and the failing
  descriptor index (bits 16-31).
- ``*_BASE`` (read/write): byte addresses of the program, weight image, input image and output
  regions; descriptor addresses are offsets from them.
- counters (read): cycles of the frame, bytes read / written, MAC-active cycles (a beat entered
  the PE array), per-unit busy cycles, descriptor count. They restart at each start.
"""
from __future__ import annotations

from amaranth.hdl import Array, Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from sim.config import Config

from hw.top.error_codes import ErrorCode

__all__ = ["REGISTERS", "COUNTERS", "ErrorCode", "csr_bits", "csr_signature", "CsrBlock",
           "CSR_ID", "CSR_READ_LATENCY", "CTRL_BITS", "STATUS_BITS"]

CSR_ID = 0xED6E_0008           # "edge-moe", register map version 8
CSR_READ_LATENCY = 2           # cycles from ``addr`` to its ``rdata`` (every reader takes this)
_GROUP_BITS = 3                # the first read stage selects among 2^3 registers

COUNTERS = ("CYCLES", "BYTES_READ", "BYTES_WRITTEN", "MAC_ACTIVE", "GEMM_BUSY", "LN_BUSY",
            "ATTN_BUSY", "ROUTE_BUSY", "EXPERTS_BUSY", "LOAD_BUSY", "STORE_BUSY", "FETCH_WAIT",
            "PREFETCH_STALL", "DESCRIPTORS")

REGISTERS = {"ID": 0, "CTRL": 1, "TASK": 2, "STATUS": 3, "ERROR": 4, "PROG_BASE": 5,
             "WEIGHT_BASE": 6, "IMAGE_BASE": 7, "OUT_BASE": 8,
             **{name: 16 + i for i, name in enumerate(COUNTERS)}}


# Single-bit fields (name -> bit) of CTRL (write strobes) and STATUS (read).
CTRL_BITS = {"START": 0, "CLEAR": 1}
STATUS_BITS = {"BUSY": 0, "DONE": 1, "ERROR": 2}


def csr_bits(cfg: Config) -> int:
    return max(cfg.hw.mem_addr_bits, cfg.hw.moe_counter_bits)


def csr_signature(cfg: Config) -> wiring.Signature:
    """Register port, master view (the host drives addr / wdata / we)."""
    w = csr_bits(cfg)
    return wiring.Signature({"addr": Out(range(max(REGISTERS.values()) + 1)), "wdata": Out(w),
                             "we": Out(1), "rdata": In(w)})


class CsrBlock(wiring.Component):
    """The register file of the top level (module docstring has the map).

    Parameters
    ----------
    cfg : Config
        Sets the register width (:func:`csr_bits`).

    Ports
    -----
    bus : In(csr_signature(cfg))
        Register access: ``rdata`` :data:`CSR_READ_LATENCY` cycles after ``addr``; a write
        lands at the clock edge.
    start, clear : Out(1)
        One-cycle strobes from a write of ``CTRL`` bit 0 / bit 1: ``start`` registered (high in
        the cycle after the write's edge, so BUSY reads 1 from the second cycle after it),
        ``clear`` combinational from the bus.
    task, prog_base, weight_base, image_base, out_base : Out(w)
        The read/write registers.
    busy, done, error, error_info : In
        Status from the sequencer (``error_info``: the ``ERROR`` register, code in bits 0-7).
    cycles, bytes_read, ... : In(w)
        The live counter values, one port per name of :data:`COUNTERS` (lower case).

    Latency: reads :attr:`read_latency` (= :data:`CSR_READ_LATENCY`) cycles; writes take
    effect at the next clock edge.
    """

    read_latency = CSR_READ_LATENCY

    def __init__(self, cfg: Config):
        self.cfg = cfg
        w = csr_bits(cfg)
        ports = {
            "bus": In(csr_signature(cfg)),
            "start": Out(1), "clear": Out(1),
            "task": Out(w),
            "prog_base": Out(w), "weight_base": Out(w), "image_base": Out(w), "out_base": Out(w),
            "busy": In(1), "done": In(1), "error": In(1), "error_info": In(w),
        }
        for name in COUNTERS:
            ports[name.lower()] = In(w)
        super().__init__(ports)

    def elaborate(self, platform):
        m = Module()
        b = self.bus
        rw = {"TASK": self.task, "PROG_BASE": self.prog_base, "WEIGHT_BASE": self.weight_base,
              "IMAGE_BASE": self.image_base, "OUT_BASE": self.out_base}
        status = ((self.busy << STATUS_BITS["BUSY"]) | (self.done << STATUS_BITS["DONE"])
                  | (self.error << STATUS_BITS["ERROR"]))
        regs = {"ID": CSR_ID, "CTRL": 0, "STATUS": status,
                "ERROR": self.error_info, **rw}
        for name in COUNTERS:
            regs[name] = getattr(self, name.lower())
        table = [0] * (max(REGISTERS.values()) + 1)
        for name, idx in REGISTERS.items():
            table[idx] = regs[name]
        n = 1 << _GROUP_BITS
        table += [0] * (-len(table) % n)          # the unmapped words of the last group read 0
        groups = [table[g:g + n] for g in range(0, len(table), n)]
        picked = [Signal(len(b.rdata), name=f"rd_group{g}") for g in range(len(groups))]
        group_r = Signal(range(len(groups)), name="rd_group_sel")
        m.d.sync += [p.eq(Array(regs_g)[b.addr[:_GROUP_BITS]]) for p, regs_g in zip(picked, groups)]
        m.d.sync += [group_r.eq(b.addr[_GROUP_BITS:]), b.rdata.eq(Array(picked)[group_r])]
        with m.If(b.we):
            for name, sig in rw.items():
                with m.If(b.addr == REGISTERS[name]):
                    m.d.sync += sig.eq(b.wdata)
        # ``start`` is registered: the address decode of a write led straight to the
        # sequencer's start and every performance counter's reset (a 10-level stage of the
        # ULX3S build). ``clear`` stays combinational, so STATUS read right after a CLEAR
        # write already shows it (it only reaches the done / error registers).
        ctrl = b.we & (b.addr == REGISTERS["CTRL"])
        m.d.sync += self.start.eq(ctrl & b.wdata[CTRL_BITS["START"]])
        m.d.comb += self.clear.eq(ctrl & b.wdata[CTRL_BITS["CLEAR"]])
        return m
