"""HostBridge: a byte-stream command protocol onto a register port and the external-memory bus.

The board's UART (hw/link/uart.py) delivers bytes from the host; this block decodes commands, drives
a word-addressed register port (e.g. the top level's CSR block, hw/top/csr.py) and the
burst memory bus of hw/mem/bus.py (e.g. ``TopWithMemory``'s ``host_rd`` / ``host_wr``, which own the
memory while ``host_mode`` is high), and answers on the outgoing byte stream. The host side is
host/driver.py (:class:`host.driver.BridgeTransport`), which imports the constants below.

Protocol (all multi-byte fields little-endian; ``RB`` = register bytes, ``W`` = memory beat
bytes = ``cfg.hw.mem_bytes_per_cycle``, ``B`` = ``cfg.hw.mem_max_burst``):

============ ====== ============================== =====================================
command      byte   arguments                      response
============ ====== ============================== =====================================
NOP          0x00   --                             none (padding for resynchronisation)
IDENT        ``I``  --                             8 bytes: ``EMB``, version, RB, W, B,
                                                   register address bits
REG_WRITE    ``W``  addr (2), data (RB)            ``K``
REG_READ     ``R``  addr (2)                       data (RB)
MEM_WRITE    ``w``  addr (4), beats (1), data      ``K``, or ``E`` if the memory flagged
                    (beats x W bytes)              an error (bad address)
MEM_READ     ``r``  addr (4), beats (1)            beats x W bytes
HOST_MODE    ``H``  value (1)                      ``K`` (``host_mode`` = bit 0 of value)
other        --     --                             ``?``
============ ====== ============================== =====================================

``beats`` must be 1..B and ``addr`` a multiple of W (the driver splits and aligns transfers);
a MEM_WRITE/MEM_READ with ``beats`` outside 1..B answers ``E`` at once and has no data phase.
Register reads have no side effects; the register port's read latency is a constructor argument
(``csr_read_latency``, 1 for the top level's CSR block: ``rdata`` is the register at ``addr`` of
the previous cycle).

Ports:

- ``rx``: In ``stream.Signature(8)`` (bytes from the host), ``tx``: Out ``stream.Signature(8)``;
- ``csr``: Out ``csr_signature`` (members ``addr``, ``wdata``, ``we`` Out and ``rdata`` In;
  default :func:`bridge_csr_signature`; pass the device's own, e.g. ``csr_signature(cfg)`` of
  hw/top/csr.py, so that ``wiring.connect`` applies directly);
- ``host_mode``: Out 1; ``mem_rd``: Out ``MemReadSignature(cfg)``; ``mem_wr``: Out
  ``MemWriteSignature(cfg)``.

Timing (counted from the clock edge on which the command's last byte transfers on ``rx``,
``tx`` always ready): REG_WRITE raises ``we`` for the one cycle right after that edge and
offers ``K`` from the next cycle; REG_READ offers its first byte ``csr_read_latency + 1`` cycles
after the edge; IDENT and unknown bytes answer in the cycle right after the edge, HOST_MODE
one cycle later. MEM_WRITE: the request is offered the cycle after the edge, each beat 1 cycle
after its last byte; MEM_READ: each beat's bytes go out one per cycle as soon as the beat arrives.
Throughput: one byte per cycle on each stream, so the UART line rate is always the limit (at
115200 baud ~11.5 kB/s, minus 6 command bytes per ``B x W``-byte burst).

Resources: an argument register (``max(2 + RB, 5)`` bytes), a transmit shift register
(``max(8, RB, W)`` bytes), a beat register (``W`` bytes) and a small FSM; no multipliers, no
memories.
"""
from __future__ import annotations

from amaranth.hdl import Module, Shape, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from sim.config import Config

from hw.mem.bus import MemReadSignature, MemWriteSignature, beat_bytes

__all__ = ["HostBridge", "bridge_csr_signature", "ident_bytes", "PROTOCOL_VERSION", "CMD",
           "ACK", "NAK", "UNKNOWN", "IDENT_MAGIC", "IDENT_LEN", "REG_ADDR_BYTES", "MEM_ADDR_BYTES"]

PROTOCOL_VERSION = 1
IDENT_MAGIC = b"EMB"
CMD = {"NOP": 0x00, "IDENT": ord("I"), "REG_WRITE": ord("W"), "REG_READ": ord("R"),
       "MEM_WRITE": ord("w"), "MEM_READ": ord("r"), "HOST_MODE": ord("H")}
ACK, NAK, UNKNOWN = ord("K"), ord("E"), ord("?")
REG_ADDR_BYTES = 2            # protocol field sizes (bytes), not hardware widths
MEM_ADDR_BYTES = 4
IDENT_LEN = 8


def bridge_csr_signature(addr_bits: int, data_bits: int) -> wiring.Signature:
    """A register port, master view: ``addr``, ``wdata``, ``we`` out, ``rdata`` in."""
    return wiring.Signature({"addr": Out(addr_bits), "wdata": Out(data_bits), "we": Out(1),
                             "rdata": In(data_bits)})


def _csr_widths(sig: wiring.Signature) -> tuple[int, int]:
    mem = sig.members
    for name, flow in (("addr", Out), ("wdata", Out), ("we", Out), ("rdata", In)):
        if name not in mem or not mem[name].is_port or mem[name].flow != flow:
            raise ValueError(f"HostBridge: the register port needs a {flow.name} port "
                             f"{name!r}; got members {list(mem.keys())}")
    addr_bits = Shape.cast(mem["addr"].shape).width
    data_bits = Shape.cast(mem["wdata"].shape).width
    if Shape.cast(mem["rdata"].shape).width != data_bits or data_bits % 8:
        raise ValueError(f"HostBridge: register data must be whole bytes and rdata as wide as "
                         f"wdata ({data_bits} / {Shape.cast(mem['rdata'].shape).width} bits)")
    if addr_bits > 8 * REG_ADDR_BYTES:
        raise ValueError(f"HostBridge: {addr_bits} register address bits do not fit the "
                         f"protocol's {REG_ADDR_BYTES}-byte field")
    return addr_bits, data_bits


def ident_bytes(cfg: Config, csr_sig: wiring.Signature) -> bytes:
    """The IDENT response of a bridge built from ``cfg`` and ``csr_sig``."""
    addr_bits, data_bits = _csr_widths(csr_sig)
    return IDENT_MAGIC + bytes([PROTOCOL_VERSION, data_bits // 8, beat_bytes(cfg),
                                cfg.hw.mem_max_burst, addr_bits])


class HostBridge(wiring.Component):
    """Byte-stream command decoder (see the module docstring for protocol and timing).

    Parameters
    ----------
    cfg : Config
        Memory bus widths (``mem_addr_bits``, ``mem_bytes_per_cycle``, ``mem_max_burst``).
    csr_signature : wiring.Signature, optional
        The register port (master view); default ``bridge_csr_signature(8, csr_bits)`` with the
        top level's register width.
    csr_read_latency : int
        Cycles from a stable ``addr`` to valid ``rdata`` (>= 1).
    """

    def __init__(self, cfg: Config, csr_signature: wiring.Signature | None = None,
                 csr_read_latency: int = 1):
        if csr_signature is None:
            from hw.top.csr import csr_bits
            csr_signature = bridge_csr_signature(8, csr_bits(cfg))
        self.cfg = cfg
        self.addr_bits, self.data_bits = _csr_widths(csr_signature)
        if csr_read_latency < 1:
            raise ValueError(f"HostBridge: csr_read_latency must be >= 1, got {csr_read_latency}")
        if cfg.hw.mem_addr_bits > 8 * MEM_ADDR_BYTES:
            raise ValueError(f"HostBridge: mem_addr_bits {cfg.hw.mem_addr_bits} exceeds the "
                             f"protocol's {MEM_ADDR_BYTES}-byte address field")
        if not 1 <= cfg.hw.mem_max_burst <= 255:
            raise ValueError(f"HostBridge: mem_max_burst {cfg.hw.mem_max_burst} does not fit the "
                             f"protocol's 1-byte beat count")
        self.csr_read_latency = csr_read_latency
        self.ident = ident_bytes(cfg, csr_signature)
        super().__init__({
            "rx": In(stream.Signature(8)),
            "tx": Out(stream.Signature(8)),
            "csr": Out(csr_signature),
            "host_mode": Out(1),
            "mem_rd": Out(MemReadSignature(cfg)),
            "mem_wr": Out(MemWriteSignature(cfg)),
        })

    def elaborate(self, platform):
        m = Module()
        cfg = self.cfg
        W = beat_bytes(cfg)
        B = cfg.hw.mem_max_burst
        RB = self.data_bits // 8
        n_args = max(REG_ADDR_BYTES + RB, MEM_ADDR_BYTES + 1, 1)
        n_tx = max(IDENT_LEN, RB, W)
        rx, tx = self.rx, self.tx
        rd, wr = self.mem_rd, self.mem_wr

        cmd = Signal(8)
        args = Signal(8 * n_args)
        idx = Signal(range(n_args + 1))
        need = Signal(range(n_args + 1))
        txbuf = Signal(8 * n_tx)
        txcnt = Signal(range(n_tx + 1))
        beats_left = Signal(range(B + 1))
        beat = Signal(8 * W)
        bcnt = Signal(range(W + 1))
        wait = Signal(range(self.csr_read_latency + 1))

        reg_addr = args[:8 * REG_ADDR_BYTES]
        reg_data = args[8 * REG_ADDR_BYTES: 8 * REG_ADDR_BYTES + 8 * RB]
        mem_addr = args[:8 * MEM_ADDR_BYTES]
        mem_beats = args[8 * MEM_ADDR_BYTES: 8 * MEM_ADDR_BYTES + 8]
        beats_ok = (mem_beats != 0) & (mem_beats <= B)

        # The register port is driven straight from the argument register: it is stable from
        # the cycle after the last argument byte until the next command starts.
        m.d.comb += [self.csr.addr.eq(reg_addr), self.csr.wdata.eq(reg_data),
                     tx.payload.eq(txbuf[:8]),
                     rd.rd_req.payload.addr.eq(mem_addr), rd.rd_req.payload.beats.eq(mem_beats),
                     wr.wr_req.payload.addr.eq(mem_addr), wr.wr_req.payload.beats.eq(mem_beats),
                     wr.wr_data.payload.data.eq(beat)]

        def respond(byte):
            m.d.sync += [txbuf.eq(byte), txcnt.eq(1)]
            m.next = "SEND"

        with m.FSM():
            with m.State("CMD"):
                m.d.comb += rx.ready.eq(1)
                with m.If(rx.valid):
                    m.d.sync += [cmd.eq(rx.payload), idx.eq(0)]
                    with m.Switch(rx.payload):
                        with m.Case(CMD["NOP"]):
                            pass
                        with m.Case(CMD["IDENT"]):
                            m.d.sync += [txbuf.eq(int.from_bytes(self.ident, "little")),
                                         txcnt.eq(IDENT_LEN)]
                            m.next = "SEND"
                        with m.Case(CMD["REG_WRITE"]):
                            m.d.sync += need.eq(REG_ADDR_BYTES + RB)
                            m.next = "ARGS"
                        with m.Case(CMD["REG_READ"]):
                            m.d.sync += need.eq(REG_ADDR_BYTES)
                            m.next = "ARGS"
                        with m.Case(CMD["MEM_WRITE"], CMD["MEM_READ"]):
                            m.d.sync += need.eq(MEM_ADDR_BYTES + 1)
                            m.next = "ARGS"
                        with m.Case(CMD["HOST_MODE"]):
                            m.d.sync += need.eq(1)
                            m.next = "ARGS"
                        with m.Default():
                            respond(UNKNOWN)

            with m.State("ARGS"):
                m.d.comb += rx.ready.eq(1)
                with m.If(rx.valid):
                    m.d.sync += [args.word_select(idx, 8).eq(rx.payload), idx.eq(idx + 1)]
                    with m.If(idx == need - 1):
                        m.next = "EXEC"

            with m.State("EXEC"):
                with m.Switch(cmd):
                    with m.Case(CMD["REG_WRITE"]):
                        m.d.comb += self.csr.we.eq(1)
                        respond(ACK)
                    with m.Case(CMD["REG_READ"]):
                        m.d.sync += wait.eq(self.csr_read_latency - 1)
                        m.next = "REG_READ"
                    with m.Case(CMD["HOST_MODE"]):
                        m.d.sync += self.host_mode.eq(args[0])
                        respond(ACK)
                    with m.Case(CMD["MEM_WRITE"]):
                        with m.If(beats_ok):
                            m.next = "MW_REQ"
                        with m.Else():
                            respond(NAK)
                    with m.Default():           # MEM_READ
                        with m.If(beats_ok):
                            m.next = "MR_REQ"
                        with m.Else():
                            respond(NAK)

            with m.State("REG_READ"):
                with m.If(wait != 0):
                    m.d.sync += wait.eq(wait - 1)
                with m.Else():
                    m.d.sync += [txbuf.eq(self.csr.rdata), txcnt.eq(RB)]
                    m.next = "SEND"

            with m.State("SEND"):
                m.d.comb += tx.valid.eq(1)
                with m.If(tx.ready):
                    m.d.sync += [txbuf.eq(txbuf >> 8), txcnt.eq(txcnt - 1)]
                    with m.If(txcnt == 1):
                        # a MEM_READ goes on with its next beat; everything else is done
                        with m.If(beats_left != 0):
                            m.next = "MR_DATA"
                        with m.Else():
                            m.next = "CMD"

            with m.State("MW_REQ"):
                m.d.comb += wr.wr_req.valid.eq(1)
                with m.If(wr.wr_req.ready):
                    m.d.sync += [beats_left.eq(mem_beats), bcnt.eq(0)]
                    m.next = "MW_COLLECT"

            with m.State("MW_COLLECT"):
                m.d.comb += rx.ready.eq(1)
                with m.If(rx.valid):
                    # bytes arrive in address order: byte b ends up in beat[8b : 8b + 8]
                    m.d.sync += [beat.eq((beat >> 8) | (rx.payload << (8 * (W - 1)))),
                                 bcnt.eq(bcnt + 1)]
                    with m.If(bcnt == W - 1):
                        m.next = "MW_PUSH"

            with m.State("MW_PUSH"):
                m.d.comb += wr.wr_data.valid.eq(1)
                with m.If(wr.wr_data.ready):
                    m.d.sync += [beats_left.eq(beats_left - 1), bcnt.eq(0)]
                    with m.If(beats_left == 1):
                        m.next = "MW_RESP"
                    with m.Else():
                        m.next = "MW_COLLECT"

            with m.State("MW_RESP"):
                m.d.comb += wr.wr_resp.ready.eq(1)
                with m.If(wr.wr_resp.valid):
                    with m.If(wr.wr_resp.payload):
                        respond(NAK)
                    with m.Else():
                        respond(ACK)

            with m.State("MR_REQ"):
                m.d.comb += rd.rd_req.valid.eq(1)
                with m.If(rd.rd_req.ready):
                    m.d.sync += beats_left.eq(mem_beats)
                    m.next = "MR_DATA"

            with m.State("MR_DATA"):
                m.d.comb += rd.rd_data.ready.eq(1)
                with m.If(rd.rd_data.valid):
                    m.d.sync += [txbuf.eq(rd.rd_data.payload.data), txcnt.eq(W),
                                 beats_left.eq(beats_left - 1)]
                    m.next = "SEND"
        return m

