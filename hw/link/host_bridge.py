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
(``csr_read_latency``; :class:`boards.system.BridgedSystem` passes the device's, 2 for the top
level's CSR block: ``rdata`` is the register at ``addr`` of two cycles before). A register port with a handshake (:func:`handshake_csr_signature`: ``re``
and ``ack`` members, e.g. hw/link/csr_window.py's window onto the accelerator's AXI-Lite
registers and LiteDRAM's Wishbone CSR bus) instead gets ``we`` / ``re`` held from the cycle
after the command's last byte until ``ack``, and ``rdata`` is taken with ``ack``.

Ports:

- ``rx``: In ``stream.Signature(8)`` (bytes from the host), ``tx``: Out ``stream.Signature(8)``;
- ``csr``: Out ``csr_signature`` (members ``addr``, ``wdata``, ``we`` Out and ``rdata`` In;
  default :func:`bridge_csr_signature`; pass the device's own, e.g. ``csr_signature(cfg)`` of
  hw/top/csr.py, so that ``wiring.connect`` applies directly);
- ``host_mode``: Out 1; ``mem_rd``: Out ``MemReadSignature(cfg)``; ``mem_wr``: Out
  ``MemWriteSignature(cfg)``.

Timing: every stream (``rx``, ``tx``, the memory's requests, data and write response) passes a
register slice (:class:`~hw.mem.stream_slice.StreamSlice`, 1 cycle each). Counted from the clock edge on which
the command's last byte leaves the ``rx`` slice (one cycle after it transfers on ``rx``), with
``tx`` always ready: REG_WRITE raises ``we`` for one cycle, the second after that edge (the
strobe comes from a state register of its own), and offers ``K`` from the next cycle + 1;
REG_READ offers its first byte ``csr_read_latency + 2`` cycles after the edge; IDENT and
unknown bytes answer 3 cycles after the edge (the command byte is decoded into a flag per
command, then acted on), and so does HOST_MODE (its last byte is its argument). MEM_WRITE: the
request is offered 2 cycles after the edge, each beat 2 cycles after its last byte; MEM_READ: each
beat's bytes go out one per cycle from 2 cycles after the beat arrives.
Throughput: one byte per cycle on each stream, so the UART line rate is always the limit (at
115200 baud ~11.5 kB/s, minus 6 command bytes per ``B x W``-byte burst).

Resources: an argument register (``max(2 + RB, 5)`` bytes), a transmit shift register
(``max(8, RB, W)`` bytes), a beat register (``W`` bytes) and a small FSM; no multipliers, no
memories.
"""
from __future__ import annotations

from types import SimpleNamespace

from amaranth.hdl import Cat, Module, Shape, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from sim.config import Config

from hw.mem.bus import MemReadSignature, MemWriteSignature, beat_bytes
from hw.mem.stream_slice import StreamSlice

__all__ = ["HostBridge", "bridge_csr_signature", "handshake_csr_signature", "is_handshake",
           "ident_bytes", "PROTOCOL_VERSION", "CMD",
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


def handshake_csr_signature(addr_bits: int, data_bits: int) -> wiring.Signature:
    """A register port with a handshake, master view: ``addr``, ``wdata``, ``we`` (write) and
    ``re`` (read) out, held until ``ack`` comes in; ``rdata`` is valid with ``ack``."""
    return wiring.Signature({"addr": Out(addr_bits), "wdata": Out(data_bits), "we": Out(1),
                             "re": Out(1), "rdata": In(data_bits), "ack": In(1)})


def is_handshake(sig: wiring.Signature) -> bool:
    """True if ``sig`` (master view) is a :func:`handshake_csr_signature` port."""
    mem = sig.members
    return ("re" in mem and mem["re"].is_port and mem["re"].flow == Out and
            "ack" in mem and mem["ack"].is_port and mem["ack"].flow == In)


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

    Ports
    -----
    rx : In(stream(8))
        Command bytes: the command, then its arguments little-endian, then (MEM_WRITE) the data
        beats, each W bytes in address order.
    tx : Out(stream(8))
        Responses, low byte first (MEM_READ: the beats in address order).
    csr : Out(csr_signature)
        ``addr``, ``wdata``, ``we`` out, ``rdata`` in.
    host_mode : Out(1)
        Set by HOST_MODE.
    mem_rd, mem_wr : Out(MemReadSignature), Out(MemWriteSignature)
        The burst memory bus (request, then beats).

    Latency and throughput: module docstring (``Timing``); one byte per cycle on each stream.
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
        self.handshake = is_handshake(csr_signature)
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
        W = beat_bytes(self.cfg)
        RB = self.data_bits // 8
        n_args = max(REG_ADDR_BYTES + RB, MEM_ADDR_BYTES + 1, 1)
        n_tx = max(IDENT_LEN, RB, W)
        # A register slice on every stream: the FSM's state decode reached the UART FIFOs'
        # levels and the memory's read and write engines (its read-data ready is the memory's
        # pipeline enable) through 5-6 LUT levels (ULX3S estimate 12.3-12.9 ns). One cycle
        # each way, nothing next to the UART's byte time.
        io = self._io = SimpleNamespace()
        for name, outer, inward in (("rx", self.rx, True), ("tx", self.tx, False),
                                    ("rd_req", self.mem_rd.rd_req, False),
                                    ("rd_data", self.mem_rd.rd_data, True),
                                    ("wr_req", self.mem_wr.wr_req, False),
                                    ("wr_data", self.mem_wr.wr_data, False),
                                    ("wr_resp", self.mem_wr.wr_resp, True)):
            sl = m.submodules[f"{name}_slice"] = StreamSlice(outer.payload.shape())
            if inward:
                wiring.connect(m, wiring.flipped(outer), sl.i)
                setattr(io, name, sl.o)
            else:
                wiring.connect(m, sl.o, wiring.flipped(outer))
                setattr(io, name, sl.i)
        rd = wr = io

        r = SimpleNamespace(
            # the command byte decoded as it is taken (one flag per known command), so the
            # states after CMD test one register bit instead of an 8-bit compare: the compares
            # behind the transmit register's enable were 6 LUT levels (ULX3S 10.8 ns)
            is_cmd={name: Signal(name=f"is_{name.lower()}") for name in [*CMD, "UNKNOWN"]},
            # the last argument byte read as a MEM_* beat count, checked as it arrives
            beats_ok=Signal(name="beats_ok"),
            args=Signal(8 * n_args, name="args"),
            arg_index=Signal(range(n_args + 1), name="arg_index"),
            arg_count=Signal(range(n_args + 1), name="arg_count"),
            tx_shift=Signal(8 * n_tx, name="tx_shift"),
            tx_count=Signal(range(n_tx + 1), name="tx_count"),
            beats_left=Signal(range(self.cfg.hw.mem_max_burst + 1), name="beats_left"),
            beat=Signal(8 * W, name="beat"),
            byte_count=Signal(range(W + 1), name="byte_count"),
            read_wait=Signal(range(self.csr_read_latency + 1), name="read_wait"),
            we=Signal(name="reg_we"))
        reg_addr = r.args[:8 * REG_ADDR_BYTES]
        reg_data = r.args[8 * REG_ADDR_BYTES: 8 * REG_ADDR_BYTES + 8 * RB]
        mem_addr = r.args[:8 * MEM_ADDR_BYTES]
        r.mem_beats = r.args[8 * MEM_ADDR_BYTES: 8 * MEM_ADDR_BYTES + 8]

        # The register port is driven straight from the argument register: it is stable from
        # the cycle after the last argument byte until the next command starts.
        m.d.comb += [self.csr.addr.eq(reg_addr), self.csr.wdata.eq(reg_data),
                     io.tx.payload.eq(r.tx_shift[:8]),
                     rd.rd_req.payload.addr.eq(mem_addr), rd.rd_req.payload.beats.eq(r.mem_beats),
                     wr.wr_req.payload.addr.eq(mem_addr), wr.wr_req.payload.beats.eq(r.mem_beats),
                     wr.wr_data.payload.data.eq(r.beat)]

        m.d.sync += r.we.eq(0)              # (set for one cycle by EXEC -> REG_WRITE)
        with m.FSM():
            self._decode(m, r, RB)
            self._execute(m, r, RB)
            self._send(m, r)
            self._mem_write(m, r, W)
            self._mem_read(m, r, W)
        return m

    @staticmethod
    def _respond(m, r, byte):
        """Answer one byte (from the next state on)."""
        m.d.sync += [r.tx_shift.eq(byte), r.tx_count.eq(1)]
        m.next = "SEND"

    def _decode(self, m, r, RB):
        """States CMD (take the command byte), DECODE (how many argument bytes follow) and ARGS."""
        rx = self._io.rx
        # The command byte is registered before it is decoded: decoded straight off the rx
        # slice, it reached the transmit shift register's enable (IDENT / unknown answers)
        # through 7 LUT levels (ULX3S 12.1-12.5 ns). One cycle per command.
        with m.State("CMD"):
            m.d.comb += rx.ready.eq(1)
            with m.If(rx.valid):
                m.d.sync += r.arg_index.eq(0)
                hits = {name: rx.payload == code for name, code in CMD.items()}
                hits["UNKNOWN"] = ~Cat(*hits.values()).any()
                m.d.sync += [r.is_cmd[name].eq(hit) for name, hit in hits.items()]
                n_args = {"REG_WRITE": REG_ADDR_BYTES + RB, "REG_READ": REG_ADDR_BYTES,
                          "MEM_WRITE": MEM_ADDR_BYTES + 1, "MEM_READ": MEM_ADDR_BYTES + 1,
                          "HOST_MODE": 1}
                with m.Switch(rx.payload):
                    for name, count in n_args.items():
                        with m.Case(CMD[name]):
                            m.d.sync += r.arg_count.eq(count)
                m.next = "DECODE"

        c = r.is_cmd
        with m.State("DECODE"):
            with m.If(c["IDENT"]):
                m.d.sync += [r.tx_shift.eq(int.from_bytes(self.ident, "little")),
                             r.tx_count.eq(IDENT_LEN)]
                m.next = "SEND"
            with m.Elif(c["UNKNOWN"]):
                self._respond(m, r, UNKNOWN)
            with m.Elif(c["NOP"]):
                m.next = "CMD"
            with m.Else():
                m.next = "ARGS"

        with m.State("ARGS"):
            m.d.comb += rx.ready.eq(1)
            with m.If(rx.valid):
                m.d.sync += [r.args.word_select(r.arg_index, 8).eq(rx.payload),
                             r.arg_index.eq(r.arg_index + 1),
                             r.beats_ok.eq((rx.payload != 0)
                                           & (rx.payload <= self.cfg.hw.mem_max_burst))]
                with m.If(r.arg_index == r.arg_count - 1):
                    m.next = "EXEC"

    def _execute(self, m, r, RB):
        """States EXEC (act on a complete command) and REG_READ (wait for ``rdata``)."""
        beats_ok = r.beats_ok            # a MEM_* command's last argument byte is its beats
        c = r.is_cmd
        with m.State("EXEC"):
            with m.If(c["REG_WRITE"] | c["REG_READ"]):
                if self.handshake:
                    m.next = "REG_ACCESS"
                else:
                    with m.If(c["REG_WRITE"]):
                        m.d.sync += r.we.eq(1)
                        m.next = "REG_WRITE"
                    with m.Else():
                        m.d.sync += r.read_wait.eq(self.csr_read_latency - 1)
                        m.next = "REG_READ"
            with m.Elif(c["HOST_MODE"]):
                m.d.sync += self.host_mode.eq(r.args[0])
                self._respond(m, r, ACK)
            with m.Elif(c["MEM_WRITE"]):
                with m.If(beats_ok):
                    m.next = "MW_REQ"
                with m.Else():
                    self._respond(m, r, NAK)
            with m.Else():                  # MEM_READ
                with m.If(beats_ok):
                    m.next = "MR_REQ"
                with m.Else():
                    self._respond(m, r, NAK)

        if self.handshake:
            with m.State("REG_ACCESS"):
                # the strobe stays up until the port acknowledges (hw/link/csr_window.py)
                writing = r.is_cmd["REG_WRITE"]
                m.d.comb += [self.csr.we.eq(writing), self.csr.re.eq(~writing)]
                with m.If(self.csr.ack):
                    with m.If(writing):
                        self._respond(m, r, ACK)
                    with m.Else():
                        m.d.sync += [r.tx_shift.eq(self.csr.rdata), r.tx_count.eq(RB)]
                        m.next = "SEND"

        if not self.handshake:
            # The write strobe is the state alone, one cycle after EXEC: decoded from the
            # command byte in EXEC, it led through the register port's address decode to the
            # sequencer's start and every performance counter's reset (a 10-level stage).
            # ``we`` is a register set on the way into the state (one cycle, the state's): as
            # the state decode it led the address decode into the clear strobe and the
            # sequencer's status registers (7 LUT levels, ULX3S routed 11.25 ns)
            m.d.comb += self.csr.we.eq(r.we)
            with m.State("REG_WRITE"):
                self._respond(m, r, ACK)

        with m.State("REG_READ"):
            with m.If(r.read_wait != 0):
                m.d.sync += r.read_wait.eq(r.read_wait - 1)
            with m.Else():
                m.d.sync += [r.tx_shift.eq(self.csr.rdata), r.tx_count.eq(RB)]
                m.next = "SEND"

    def _send(self, m, r):
        """State SEND: shift ``tx_count`` bytes out, low byte first."""
        with m.State("SEND"):
            m.d.comb += self._io.tx.valid.eq(1)
            with m.If(self._io.tx.ready):
                m.d.sync += [r.tx_shift.eq(r.tx_shift >> 8), r.tx_count.eq(r.tx_count - 1)]
                with m.If(r.tx_count == 1):
                    # a MEM_READ goes on with its next beat; everything else is done
                    with m.If(r.beats_left != 0):
                        m.next = "MR_DATA"
                    with m.Else():
                        m.next = "CMD"

    def _mem_write(self, m, r, W):
        """MEM_WRITE data phase: request, then per beat collect W bytes and push; response."""
        rx, wr = self._io.rx, self._io
        with m.State("MW_REQ"):
            m.d.comb += wr.wr_req.valid.eq(1)
            with m.If(wr.wr_req.ready):
                m.d.sync += [r.beats_left.eq(r.mem_beats), r.byte_count.eq(0)]
                m.next = "MW_COLLECT"

        with m.State("MW_COLLECT"):
            m.d.comb += rx.ready.eq(1)
            with m.If(rx.valid):
                # bytes arrive in address order: byte b ends up in beat[8b : 8b + 8]
                m.d.sync += [r.beat.eq((r.beat >> 8) | (rx.payload << (8 * (W - 1)))),
                             r.byte_count.eq(r.byte_count + 1)]
                with m.If(r.byte_count == W - 1):
                    m.next = "MW_PUSH"

        with m.State("MW_PUSH"):
            m.d.comb += wr.wr_data.valid.eq(1)
            with m.If(wr.wr_data.ready):
                m.d.sync += [r.beats_left.eq(r.beats_left - 1), r.byte_count.eq(0)]
                with m.If(r.beats_left == 1):
                    m.next = "MW_RESP"
                with m.Else():
                    m.next = "MW_COLLECT"

        with m.State("MW_RESP"):
            m.d.comb += wr.wr_resp.ready.eq(1)
            with m.If(wr.wr_resp.valid):
                with m.If(wr.wr_resp.payload):
                    self._respond(m, r, NAK)
                with m.Else():
                    self._respond(m, r, ACK)

    def _mem_read(self, m, r, W):
        """MEM_READ data phase: request, then each beat's W bytes go out through SEND."""
        rd = self._io
        with m.State("MR_REQ"):
            m.d.comb += rd.rd_req.valid.eq(1)
            with m.If(rd.rd_req.ready):
                m.d.sync += r.beats_left.eq(r.mem_beats)
                m.next = "MR_DATA"

        with m.State("MR_DATA"):
            m.d.comb += rd.rd_data.ready.eq(1)
            with m.If(rd.rd_data.valid):
                m.d.sync += [r.tx_shift.eq(rd.rd_data.payload.data), r.tx_count.eq(W),
                             r.beats_left.eq(r.beats_left - 1)]
                m.next = "SEND"
