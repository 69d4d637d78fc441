"""Axi4Master: the accelerator's burst memory bus (hw/mem/bus.py) as a standard AXI4 master.

Dataflow. Each side of the bridge is one burst bus (``rd`` / ``wr``, slave view: the
accelerator's ``mem_rd`` / ``mem_wr`` connect to them) and one AXI4 master (plain ``m_axi_*``
signals, the names Vivado's interface inference expects). Every accelerator-side stream passes
a :class:`~hw.mem.stream_slice.StreamSlice`, so no handshake path runs combinationally from the
AXI ports into the accelerator, and every AXI output comes from a register or a one-level
compare of registers.

Requests. A burst of ``beats`` at ``addr`` becomes one AXI INCR burst (AxBURST = 1, AxSIZE =
log2 of the beat bytes ``W = cfg.hw.mem_bytes_per_cycle``, AxLEN = beats - 1), or two when it
would cross a 4 KiB boundary: the first ends at the boundary, the second starts on it. A burst is
at most ``mem_max_burst * W <= 4096`` bytes (checked at construction), so it crosses at most one
boundary, and ``mem_max_burst <= 256`` keeps AxLEN in its 8 bits. The AR / AW registers take a
new burst on the cycle the previous one is accepted (one burst per cycle).

Reads. Up to :data:`OUTSTANDING` AXI read bursts are in flight; all use one ID (AWID / ARID
are constant 0, BID / RID are ignored), so the AXI ordering rule returns them in request order
and the bridge needs no reorder buffer. A FIFO of per-AXI-burst "final piece" flags turns RLAST into
the bus's ``last`` (which marks the end of the *accelerator's* burst, not of a split piece).

Writes. Full strobes (the accelerator writes whole beats). The W beats of a burst are sent only
once its AW is valid (its length is pushed into a FIFO when the AW register is loaded), never
before; the bridge does not wait for AWREADY before driving W, as the AXI dependency rules
require. One ``wr_resp`` beat per accelerator burst, after the B of its last piece; its payload
is 1 if any piece had BRESP != OKAY. At most :data:`OUTSTANDING` write bursts await B.

Wide AXI (``axi_data_width`` = ``ratio`` x the memory beat, ``ratio`` a power of two; the
ECPIX-5's LiteDRAM port is 128 bits, the board configs' beats 4 or 8 bytes). The 4 KiB split is
done in memory beats as above; each piece then goes out widened to whole AXI beats (AxADDR
rounded down to the AXI beat, AxSIZE the AXI beat, AxLEN = (lane + beats - 1) / ratio with
``lane`` the memory beat the piece starts at inside its first AXI beat). A 4 KiB page is whole
AXI beats, so the widened burst stays in its page and is no longer than the piece. The
bookkeeping FIFOs hold (beats, lane) per piece. R: each AXI beat's lanes go out as memory beats
from ``lane`` on; RREADY is raised with the last lane used (lane ``ratio - 1`` or the piece's
last memory beat), so the lanes outside the request (before the start, after the end) are
dropped. W: memory beats fill a build register at their lane; the beat that fills lane
``ratio - 1`` or ends the piece moves it, with WSTRB set on exactly the lanes written, into the
W output register (WLAST on the piece's last AXI beat). The up-sizer lives here and not in a
separate AXI component because only this side knows each burst's memory-beat length and start
lane: a generic AXI up-sizer would have to recover them from AxADDR / AxLEN / WSTRB again.
Throughput is still one memory beat per cycle each way (the AXI side idles ``1 - 1/ratio`` of
the cycles); W latency one more cycle (the output register).

Errors. RRESP or BRESP != OKAY sets ``bus_error`` (sticky until ``clear_error``); read data is
passed on regardless, so an error never stalls the accelerator (its error path stops or flags
the frame). Reset: the ``sync`` domain's (synchronous, active high); it empties the FIFOs and
drops every valid.

Resources (ratio 1): five stream slices, two AxADDR/AxLEN registers with a split remainder
each, three :data:`OUTSTANDING`-deep FIFOs of a few bits. Latency: request to AR / AW two cycles; R to
``rd_data`` one cycle. Throughput: one beat per cycle each way. Wide: plus a build and an output
register of one AXI beat (data and strobes) and two memory-beat counters.
"""
from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.fifo import SyncFIFO
from amaranth.lib.wiring import In, Out

from sim.config import Config, ConfigError

from hw.mem.bus import (MemReadSignature, MemWriteSignature, beat_bytes, rdata_layout,
                        req_layout, wdata_layout)
from hw.mem.stream_slice import StreamSlice

__all__ = ["Axi4Master", "BurstSplitter", "OUTSTANDING", "BOUNDARY", "ID_BITS", "axi_master_ports",
           "axi_ratio"]

OUTSTANDING = 8       # AXI bursts in flight per direction (read data / write responses)
BOUNDARY = 4096       # an AXI burst never crosses a multiple of this
ID_BITS = 1           # AWID / ARID are always 0; BID / RID are not looked at


def axi_master_ports(cfg: Config, prefix: str = "m_axi", data_bits: int | None = None) -> dict:
    """The AXI4 master's signals (name -> member), master view; no LOCK, CACHE, PROT, QOS.
    ``data_bits``: the AXI data width (default: the memory beat, ``8 * mem_bytes_per_cycle``)."""
    a, d = cfg.hw.mem_addr_bits, data_bits or 8 * beat_bytes(cfg)
    sig = {}
    for ch in ("aw", "ar"):
        sig.update({f"{ch}id": Out(ID_BITS), f"{ch}addr": Out(a), f"{ch}len": Out(8),
                    f"{ch}size": Out(3), f"{ch}burst": Out(2), f"{ch}valid": Out(1),
                    f"{ch}ready": In(1)})
    sig.update({"wdata": Out(d), "wstrb": Out(d // 8), "wlast": Out(1), "wvalid": Out(1),
                "wready": In(1), "bid": In(ID_BITS), "bresp": In(2), "bvalid": In(1),
                "bready": Out(1), "rid": In(ID_BITS), "rdata": In(d), "rresp": In(2),
                "rlast": In(1), "rvalid": In(1), "rready": Out(1)})
    return {f"{prefix}_{k}": v for k, v in sig.items()}


def axi_ratio(cfg: Config, axi_data_width: int | None) -> int:
    """AXI beat / memory beat (1, 2, 4, ...); ConfigError unless the memory beat divides the AXI
    data width by a power of two."""
    beat = 8 * beat_bytes(cfg)
    wide = axi_data_width or beat
    ratio = wide // beat
    if wide % beat or ratio & (ratio - 1):
        raise ConfigError(f"Axi4Master: the AXI data width ({wide} bits) must be a power-of-two "
                          f"multiple of the memory beat ({beat} bits, mem_bytes_per_cycle "
                          f"{beat_bytes(cfg)} of config {cfg.name!r})")
    return ratio


def check_axi_config(cfg: Config, axi_data_width: int | None = None) -> None:
    W, B = beat_bytes(cfg) * axi_ratio(cfg, axi_data_width), cfg.hw.mem_max_burst
    if B > 256:
        raise ConfigError(f"Axi4Master: mem_max_burst must be <= 256 (AxLEN is 8 bits), got {B}")
    if B * beat_bytes(cfg) > BOUNDARY:
        raise ConfigError(f"Axi4Master: a burst (mem_max_burst * mem_bytes_per_cycle) must be "
                          f"<= {BOUNDARY} bytes, got {B * beat_bytes(cfg)}")
    if W > 128:
        raise ConfigError(f"Axi4Master: AXI data is at most 1024 bits, got {8 * W}")


class BurstSplitter(wiring.Component):
    """One address channel (AR or AW): burst requests in, AXI INCR bursts out, 4 KiB split.

    Parameters
    ----------
    cfg : Config
    ratio : int
        AXI beat / memory beat (a power of two; 1: the AXI beat is the memory beat).

    Ports
    -----
    req : In stream of :func:`~hw.mem.bus.req_layout`
        Bursts of the burst bus.
    addr, len, size, burst, valid : Out; ready : In
        The AXI address channel (AxADDR, AxLEN, AxSIZE, AxBURST, AxVALID, AxREADY).
    room : In(1)
        The bookkeeping FIFOs of the data side can take an entry; no burst is loaded without.
    load : Out(1)
        The Ax register takes a burst this cycle (push the bookkeeping then).
    beats, lane, final : Out
        That burst's length in *memory* beats, the memory beat of the first AXI beat it starts
        in (0 when ``ratio`` is 1), and whether it ends a requested burst (not a first split
        piece).

    The split is computed in memory beats (a piece never crosses 4 KiB); with ``ratio`` > 1 the
    AXI burst is the piece widened to whole AXI beats: AxADDR rounded down to the AXI beat,
    AxLEN = (lane + beats - 1) / ratio. A page is a whole number of AXI beats, so the widened
    burst stays in the piece's page, and it has no more beats than the piece (AxLEN <= 255).

    A request is taken when the Ax register is free (empty or accepted this cycle) and no split
    remainder waits; the remainder goes out the cycle its first piece is accepted. Latency: one
    cycle from ``req`` to AxVALID; throughput one burst per cycle.
    """

    def __init__(self, cfg: Config, ratio: int = 1):
        self.cfg, self.ratio = cfg, ratio
        n_beats = cfg.hw.mem_max_burst.bit_length()
        super().__init__({
            "req": In(stream.Signature(req_layout(cfg))),
            "addr": Out(cfg.hw.mem_addr_bits), "len": Out(8), "size": Out(3), "burst": Out(2),
            "valid": Out(1), "ready": In(1),
            "room": In(1), "load": Out(1), "beats": Out(n_beats),
            "lane": Out(max(1, ratio.bit_length() - 1)), "final": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        cfg, req, ratio = self.cfg, self.req, self.ratio
        shift = beat_bytes(cfg).bit_length() - 1
        lane_bits = ratio.bit_length() - 1                 # log2(ratio)
        wide_shift = shift + lane_bits
        n_beats = len(self.beats)
        rem_valid = Signal()
        rem_addr = Signal(cfg.hw.mem_addr_bits)
        rem_beats = Signal(n_beats)
        # beats left before the next 4 KiB boundary (1 .. 4096 / W)
        to_boundary = Signal(range(BOUNDARY // beat_bytes(cfg) + 1))
        crosses = Signal()
        first = Signal(n_beats)
        m.d.comb += [to_boundary.eq((BOUNDARY - req.payload.addr[:12]) >> shift),
                     crosses.eq(req.payload.beats > to_boundary),
                     first.eq(Mux(crosses, to_boundary, req.payload.beats))]
        lane = req.payload.addr[shift:wide_shift] if lane_bits else 0
        free = ~self.valid | self.ready
        m.d.comb += [req.ready.eq(free & ~rem_valid & self.room),
                     self.size.eq(wide_shift), self.burst.eq(1)]

        def wide(addr, start, beats):
            """AxADDR and AxLEN of ``beats`` memory beats starting at memory beat ``start``
            of the AXI beat at (rounded-down) ``addr``."""
            if not lane_bits:
                return addr, beats - 1
            return ((addr >> wide_shift) << wide_shift), ((start + beats - 1) >> lane_bits)

        with m.If(free):
            m.d.sync += self.valid.eq(0)
            with m.If(rem_valid & self.room):
                a, n = wide(rem_addr, 0, rem_beats)        # starts on the boundary: lane 0
                m.d.comb += [self.load.eq(1), self.final.eq(1), self.beats.eq(rem_beats)]
                m.d.sync += [self.valid.eq(1), self.addr.eq(a), self.len.eq(n),
                             rem_valid.eq(0)]
            with m.Elif(req.valid & self.room):
                a, n = wide(req.payload.addr, lane, first)
                m.d.comb += [self.load.eq(1), self.final.eq(~crosses), self.beats.eq(first),
                             self.lane.eq(lane)]
                m.d.sync += [self.valid.eq(1), self.addr.eq(a), self.len.eq(n),
                             rem_valid.eq(crosses),
                             rem_addr.eq(req.payload.addr + (first << shift)),
                             rem_beats.eq(req.payload.beats - first)]
        return m


class Axi4Master(wiring.Component):
    """The burst bus as an AXI4 master (INCR bursts, 4 KiB split, in-order reads, one ID).

    Parameters
    ----------
    cfg : Config
        ``mem_bytes_per_cycle`` sets the memory beat, ``mem_addr_bits`` the address
        width, ``mem_max_burst`` the longest burst (<= 256 beats and <= 4 KiB).
    axi_data_width : int, optional
        The AXI data width in bits: the memory beat (default) or a power-of-two multiple of it
        (then the R beats are split and the W beats packed, see the module docstring).

    Ports
    -----
    rd : In :func:`~hw.mem.bus.MemReadSignature`
        Read bursts from the accelerator.
    wr : In :func:`~hw.mem.bus.MemWriteSignature`
        Write bursts from the accelerator.
    m_axi_* : the AXI4 master channels (:func:`axi_master_ports`).
    bus_error : Out(1)
        Sticky: some RRESP or BRESP was not OKAY.
    clear_error : In(1)
        Clears ``bus_error``.
    """

    def __init__(self, cfg: Config, axi_data_width: int | None = None):
        check_axi_config(cfg, axi_data_width)
        self.cfg = cfg
        self.ratio = axi_ratio(cfg, axi_data_width)
        self.axi_data_width = 8 * beat_bytes(cfg) * self.ratio
        super().__init__({"rd": In(MemReadSignature(cfg)), "wr": In(MemWriteSignature(cfg)),
                          **axi_master_ports(cfg, data_bits=self.axi_data_width),
                          "bus_error": Out(1), "clear_error": In(1)})

    def _splitter(self, m, ch, req):
        """A BurstSplitter for channel ``ch`` ("ar" / "aw") fed by ``req``, on the m_axi port."""
        m.submodules[f"{ch}_split"] = sp = BurstSplitter(self.cfg, self.ratio)
        wiring.connect(m, req, sp.req)
        for k in ("addr", "len", "size", "burst", "valid"):
            m.d.comb += getattr(self, f"m_axi_{ch}{k}").eq(getattr(sp, k))
        m.d.comb += [getattr(self, f"m_axi_{ch}id").eq(0),
                     sp.ready.eq(getattr(self, f"m_axi_{ch}ready"))]
        return sp

    def elaborate(self, platform):
        m = Module()
        cfg = self.cfg
        sl = {}
        for name, shape in (("rd_req", req_layout(cfg)), ("rd_data", rdata_layout(cfg)),
                            ("wr_req", req_layout(cfg)), ("wr_data", wdata_layout(cfg)),
                            ("wr_resp", 1)):
            m.submodules[f"{name}_slice"] = sl[name] = StreamSlice(shape)
        wiring.connect(m, wiring.flipped(self.rd.rd_req), sl["rd_req"].i)
        wiring.connect(m, sl["rd_data"].o, wiring.flipped(self.rd.rd_data))
        wiring.connect(m, wiring.flipped(self.wr.wr_req), sl["wr_req"].i)
        wiring.connect(m, wiring.flipped(self.wr.wr_data), sl["wr_data"].i)
        wiring.connect(m, sl["wr_resp"].o, wiring.flipped(self.wr.wr_resp))

        if self.ratio == 1:
            r_err = self._read(m, sl["rd_req"].o, sl["rd_data"].i)
            b_err = self._write(m, sl["wr_req"].o, sl["wr_data"].o, sl["wr_resp"].i)
        else:
            r_err = self._read_wide(m, sl["rd_req"].o, sl["rd_data"].i)
            b_err = self._write_wide(m, sl["wr_req"].o, sl["wr_data"].o, sl["wr_resp"].i)
        with m.If(self.clear_error):
            m.d.sync += self.bus_error.eq(0)
        with m.Elif(r_err | b_err):
            m.d.sync += self.bus_error.eq(1)
        return m

    def _read(self, m, req, out):
        """AR from the request slice; R into the data slice. Returns the error event."""
        m.submodules.r_final = r_final = SyncFIFO(width=1, depth=OUTSTANDING)
        ar = self._splitter(m, "ar", req)
        m.d.comb += [ar.room.eq(r_final.w_rdy),
                     r_final.w_en.eq(ar.load), r_final.w_data.eq(ar.final)]
        # r_final is never empty while R beats can arrive (pushed when the AR is loaded)
        m.d.comb += [out.valid.eq(self.m_axi_rvalid & r_final.r_rdy),
                     out.payload.data.eq(self.m_axi_rdata),
                     out.payload.last.eq(self.m_axi_rlast & r_final.r_data),
                     self.m_axi_rready.eq(out.ready & r_final.r_rdy)]
        take = self.m_axi_rvalid & self.m_axi_rready
        m.d.comb += r_final.r_en.eq(take & self.m_axi_rlast)
        return take & (self.m_axi_rresp != 0)

    def _write(self, m, req, data, resp):
        """AW from the request slice, W from the data slice, B into the response slice."""
        n_bits = self.cfg.hw.mem_max_burst.bit_length()
        m.submodules.w_len = w_len = SyncFIFO(width=n_bits, depth=OUTSTANDING)
        m.submodules.b_final = b_final = SyncFIFO(width=1, depth=OUTSTANDING)
        aw = self._splitter(m, "aw", req)
        m.d.comb += [aw.room.eq(w_len.w_rdy & b_final.w_rdy),
                     w_len.w_en.eq(aw.load), w_len.w_data.eq(aw.beats),
                     b_final.w_en.eq(aw.load), b_final.w_data.eq(aw.final)]
        # W: the beats of the burst at the head of w_len (its AW is valid or accepted)
        w_beat = Signal(n_bits, name="w_beat")
        m.d.comb += [self.m_axi_wvalid.eq(data.valid & w_len.r_rdy),
                     self.m_axi_wdata.eq(data.payload.data),
                     self.m_axi_wstrb.eq(-1),
                     self.m_axi_wlast.eq(w_beat == w_len.r_data - 1),
                     data.ready.eq(self.m_axi_wready & w_len.r_rdy)]
        with m.If(self.m_axi_wvalid & self.m_axi_wready):
            m.d.sync += w_beat.eq(w_beat + 1)
            with m.If(self.m_axi_wlast):
                m.d.sync += w_beat.eq(0)
                m.d.comb += w_len.r_en.eq(1)
        return self._b(m, b_final, resp)

    def _b(self, m, b_final, resp):
        """B: one wr_resp per accelerator burst, carrying the OR of its pieces' errors."""
        b_err = Signal(name="b_err_pending")
        bad = self.m_axi_bresp != 0
        m.d.comb += [self.m_axi_bready.eq(b_final.r_rdy & (resp.ready | ~b_final.r_data)),
                     resp.valid.eq(self.m_axi_bvalid & b_final.r_rdy & b_final.r_data),
                     resp.payload.eq(b_err | bad)]
        take = self.m_axi_bvalid & self.m_axi_bready
        with m.If(take):
            m.d.comb += b_final.r_en.eq(1)
            m.d.sync += b_err.eq(~b_final.r_data & (b_err | bad))
        return take & bad

    def _read_wide(self, m, req, out):
        """Wide AXI: each R beat is ``ratio`` memory beats, sent on in address order from the
        piece's start lane; the lanes before the start (first beat) and after the piece's last
        memory beat (last beat) are dropped. RREADY is taken when the last used lane of the R
        beat goes out (a register compare, no R input in it)."""
        cfg, ratio = self.cfg, self.ratio
        n_bits = cfg.hw.mem_max_burst.bit_length()
        lane_bits = ratio.bit_length() - 1
        W = 8 * beat_bytes(cfg)
        ar = self._splitter(m, "ar", req)
        info = data.StructLayout({"final": 1, "beats": n_bits, "lane": lane_bits})
        m.submodules.r_info = r_info = SyncFIFO(width=info.size, depth=OUTSTANDING)
        m.d.comb += [ar.room.eq(r_info.w_rdy), r_info.w_en.eq(ar.load),
                     r_info.w_data.eq(Cat(ar.final, ar.beats, ar.lane))]
        head = info(r_info.r_data)
        count = Signal(n_bits, name="r_count")         # memory beats of the piece sent so far
        lane_reg = Signal(lane_bits, name="r_lane")
        lane = Signal(lane_bits, name="r_lane_now")
        at_end = Signal(name="r_piece_end")
        m.d.comb += [lane.eq(Mux(count == 0, head.lane, lane_reg)),
                     at_end.eq(count == head.beats - 1)]
        m.d.comb += [out.valid.eq(self.m_axi_rvalid & r_info.r_rdy),
                     out.payload.data.eq(self.m_axi_rdata.word_select(lane, W)),
                     out.payload.last.eq(at_end & head.final),
                     self.m_axi_rready.eq(out.ready & r_info.r_rdy &
                                          ((lane == ratio - 1) | at_end))]
        with m.If(out.valid & out.ready):
            m.d.sync += [count.eq(count + 1), lane_reg.eq(lane + 1)]
            with m.If(at_end):
                m.d.sync += count.eq(0)
                m.d.comb += r_info.r_en.eq(1)
        take = self.m_axi_rvalid & self.m_axi_rready
        return take & (self.m_axi_rresp != 0)

    def _write_wide(self, m, req, data_in, resp):
        """Wide AXI: memory beats are packed into a build register at their lane (strobes on
        those bytes only); the beat that fills the last lane or ends the piece moves the build
        (plus itself) to the W output register, with WLAST on the piece's end. A beat that
        would complete a W beat waits while the output register holds one not yet accepted:
        DATA's ready is one AND of WREADY with registers."""
        cfg, ratio = self.cfg, self.ratio
        n_bits = cfg.hw.mem_max_burst.bit_length()
        lane_bits = ratio.bit_length() - 1
        W = 8 * beat_bytes(cfg)
        aw = self._splitter(m, "aw", req)
        info = data.StructLayout({"beats": n_bits, "lane": lane_bits})
        m.submodules.w_info = w_info = SyncFIFO(width=info.size, depth=OUTSTANDING)
        m.submodules.b_final = b_final = SyncFIFO(width=1, depth=OUTSTANDING)
        m.d.comb += [aw.room.eq(w_info.w_rdy & b_final.w_rdy),
                     w_info.w_en.eq(aw.load), w_info.w_data.eq(Cat(aw.beats, aw.lane)),
                     b_final.w_en.eq(aw.load), b_final.w_data.eq(aw.final)]
        head = info(w_info.r_data)
        count = Signal(n_bits, name="w_count")
        lane_reg = Signal(lane_bits, name="w_lane")
        lane = Signal(lane_bits, name="w_lane_now")
        at_end = Signal(name="w_piece_end")
        completes = Signal(name="w_completes")
        m.d.comb += [lane.eq(Mux(count == 0, head.lane, lane_reg)),
                     at_end.eq(count == head.beats - 1),
                     completes.eq((lane == ratio - 1) | at_end)]
        build = Signal(W * ratio, name="w_build")
        build_strb = Signal(W // 8 * ratio, name="w_build_strb")
        wvalid = Signal(name="w_out_valid")
        out_free = ~wvalid | self.m_axi_wready
        m.d.comb += [self.m_axi_wvalid.eq(wvalid),
                     data_in.ready.eq(w_info.r_rdy & (~completes | out_free))]
        with m.If(self.m_axi_wready):
            m.d.sync += wvalid.eq(0)
        merged = Cat(Mux(lane == i, data_in.payload.data, build.word_select(i, W))
                     for i in range(ratio))
        merged_strb = build_strb | (Const((1 << (W // 8)) - 1, W // 8 * ratio)
                                    << (lane * (W // 8)))
        with m.If(data_in.valid & data_in.ready):
            m.d.sync += [count.eq(count + 1), lane_reg.eq(lane + 1)]
            with m.If(completes):
                m.d.sync += [wvalid.eq(1), self.m_axi_wdata.eq(merged),
                             self.m_axi_wstrb.eq(merged_strb), self.m_axi_wlast.eq(at_end),
                             build_strb.eq(0)]
            with m.Else():
                m.d.sync += [build.eq(merged), build_strb.eq(merged_strb)]
            with m.If(at_end):
                m.d.sync += count.eq(0)
                m.d.comb += w_info.r_en.eq(1)
        return self._b(m, b_final, resp)
