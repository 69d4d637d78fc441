"""Ecp5Bram: a memory with one write port and one registered read port, built from ECP5 DP16KD
block RAMs whose read output register is the block's own (``REGMODE="OUTREG"``).

The drop-in ECP5 twin of ``lib.memory.Memory`` + :class:`hw.fabric.bram.RegisteredReadPort`:
same read latency (``2 + address_reg`` cycles: the block's registered address, its output
register, plus the optional fabric address register), same clock enable (``r_en`` drives
``CEB`` and the output registers' enables: the whole read pipeline holds when it is low), writes
take effect at the clock edge (``w_en``, one bit per write lane). Why: Yosys' ``synth_ecp5``
only ever emits ``REGMODE="NOREG"``, so an output register written in RTL stays in the fabric;
the DP16KD's own one cuts the ~5.8 ns clock-to-data of a speed-6 block RAM to ~1 ns.

Geometry (:func:`dp16kd_plan`, the fewest blocks): each DP16KD is a simple dual-port RAM
(port A writes, port B reads) in one aspect ratio: 1024 x 18, 2048 x 9, 4096 x 4, 8192 x 2,
16384 x 1, or the pseudo-dual-port 512 x 36 (word = {DOB, DOA}, ADA[3:0] its four 9-bit byte
enables; the aspect Yosys' own ``$__ECP5_PDPW16KD_`` mapping uses). ``columns`` blocks sit side
by side and ``rows`` of them are cascaded by address (the read data of each row is selected
after the output registers, by the row bits of the address delayed alongside). A few words past
the last whole row (at most :data:`FABRIC_MAX_WORDS`) live in a LUT-RAM ``Memory`` with the same
latency instead of a whole row of blocks: the activation buffers of M3ViT hold 129 tokens, and
the cls token would otherwise cost a third or half again of a buffer's blocks.

``write_lanes`` > 1 splits the word into that many equal lanes with their own write enable: on
byte enables when a lane is a whole number of 9-bit bytes (several lanes share a block), else
each lane gets its own column of blocks. ``init`` (a sequence of at most ``depth`` words,
integers; the rest zero) sets the initial contents through the blocks' ``INITVAL_00`` ..
``INITVAL_3F`` parameters in the layout Yosys' own ECP5 block-RAM mapping writes (each 320-bit
parameter holds sixteen 18-bit units at 20-bit strides; a 1024 x 18 word is one unit, a 512 x 36
word two, its low half = DIA / DOA first; tests/hw/test_fabric_synth.py compares them with
Yosys'); an initialised memory is planned on those two aspects only. Without ``init`` the blocks
start at zero. A read
of the address being written in the same cycle returns undefined data (the block's port
collision), unlike ``Memory``'s read-before-write.

Parameters: ``shape`` (the word's shape), ``depth``, ``address_reg`` (bool), ``write_lanes``,
``domain`` (default ``"sync"``), ``init``.
Ports: ``w_addr``, ``w_data`` (in), ``w_en`` (in, ``write_lanes`` bits); ``r_addr``, ``r_en``
(in, default 1), ``r_data`` (out).
"""
from __future__ import annotations

from dataclasses import dataclass

from amaranth.hdl import Array, Cat, ClockSignal, Const, Instance, Module, Shape, Signal, Value
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

__all__ = ["Ecp5Bram", "Dp16kdPlan", "dp16kd_plan", "dp16kd_geometry", "DP16KD_ADDR_BITS",
           "FABRIC_MAX_WORDS", "INIT_ASPECTS"]

DP16KD_ADDR_BITS = 14
# (data width per block, words per block): the 16 Kbit array (18 Kbit with the 9th bits) seen
# through each aspect ratio. The true-dual-port ones first: on a tie in blocks they win, as
# they did before the 36-bit aspect was offered.
_ASPECTS = ((18, 1024), (9, 2048), (4, 4096), (2, 8192), (1, 16384), (36, 512))
# A remainder this small goes to LUT RAM (Yosys maps a <= 32-deep memory there; tests/boards/
# test_fit.py measured the threshold) rather than a row of blocks.
FABRIC_MAX_WORDS = 32


@dataclass(frozen=True)
class Dp16kdPlan:
    """How an :class:`Ecp5Bram` is cut into DP16KD blocks (module docstring)."""
    block_width: int     # data bits per block
    block_depth: int     # words per block
    columns: int         # blocks side by side in a row
    rows: int            # rows cascaded by address
    fabric_words: int    # words past ``rows * block_depth``, in LUT RAM
    lane_columns: bool   # each write lane has its own columns (no byte enables)

    @property
    def blocks(self) -> int:
        return self.columns * self.rows

    @property
    def address_bits(self) -> int:
        return self.block_depth.bit_length() - 1


# the aspects whose INITVAL layout Ecp5Bram writes (an initialised memory uses only these)
INIT_ASPECTS = ((18, 1024), (36, 512))
INITVAL_UNIT_BITS = 18      # one x18 word, half an x36 word
INITVAL_STRIDE = 20         # bits per unit in an INITVAL_xx parameter (two unused)
INITVAL_UNITS = 16          # units per INITVAL_xx parameter
INITVAL_PARAMS = 64         # INITVAL_00 .. INITVAL_3F


def dp16kd_plan(width: int, depth: int, write_lanes: int = 1,
                initialised: bool = False) -> Dp16kdPlan:
    """The plan with the fewest DP16KD blocks for a ``width`` x ``depth`` memory written in
    ``write_lanes`` equal lanes (ties: no LUT RAM, fewer rows, the earlier aspect); on the
    aspects of :data:`INIT_ASPECTS` only if ``initialised``."""
    if width < 1 or depth < 1 or write_lanes < 1 or width % write_lanes:
        raise ValueError(f"Ecp5Bram: need width >= 1, depth >= 1 and width divisible by "
                         f"write_lanes, got {width} x {depth} in {write_lanes} lanes")
    lane = width // write_lanes
    best, best_key = None, None
    for order, (bw, bd) in enumerate(_ASPECTS):
        if initialised and (bw, bd) not in INIT_ASPECTS:
            continue
        if write_lanes == 1 or (lane % 9 == 0 and bw >= 9):
            columns, lane_columns = -(-width // bw), False
        else:
            columns, lane_columns = write_lanes * -(-lane // bw), True
        options = [(-(-depth // bd), 0)]
        whole, rest = divmod(depth, bd)
        if whole and 0 < rest <= FABRIC_MAX_WORDS:
            options.append((whole, rest))
        for rows, fabric in options:
            plan = Dp16kdPlan(bw, bd, columns, rows, fabric, lane_columns)
            key = (plan.blocks, fabric > 0, rows, order)
            if best_key is None or key < best_key:
                best, best_key = plan, key
    return best


def dp16kd_geometry(width: int, depth: int) -> tuple[int, int]:
    """(data width of each DP16KD, number of blocks) for a ``width`` x ``depth`` memory."""
    plan = dp16kd_plan(width, depth)
    return plan.block_width, plan.blocks


class Ecp5Bram(wiring.Component):
    def __init__(self, shape, depth: int, *, address_reg: bool = False, write_lanes: int = 1,
                 domain: str = "sync", init=()):
        self.shape, self.depth = shape, depth
        self.width = Shape.cast(shape).width
        self.init = [int(w) for w in init]
        try:
            if len(self.init) > depth:
                raise ValueError(f"Ecp5Bram: {len(self.init)} initial words for a memory of "
                                 f"{depth}")
            if any(w < 0 or w >> self.width for w in self.init):
                raise ValueError(f"Ecp5Bram: an initial word does not fit {self.width} bits "
                                 f"unsigned")
            self.plan = dp16kd_plan(self.width, depth, write_lanes,
                                    initialised=any(self.init))
        except ValueError:
            self._MustUse__silence = True   # no "created but never used" warning as well
            raise
        self.block_width, self.blocks = self.plan.block_width, self.plan.blocks
        self.write_lanes = write_lanes
        self.address_reg, self.domain = bool(address_reg), domain
        self.latency = 2 + self.address_reg
        super().__init__({
            "w_addr": In(range(depth)), "w_data": In(shape), "w_en": In(write_lanes),
            "r_addr": In(range(depth)), "r_en": In(1, init=1), "r_data": Out(shape),
        })

    def elaborate(self, platform):
        m = Module()
        plan, dom = self.plan, self.domain
        r_addr = self.r_addr
        if self.address_reg:
            r_addr = Signal.like(self.r_addr, name="read_addr")
            with m.If(self.r_en):
                m.d[dom] += r_addr.eq(self.r_addr)
        abits = plan.address_bits
        w_row, r_row = self.w_addr[abits:], r_addr[abits:]
        words = []
        for r in range(plan.rows):
            row_hit = (w_row == r) if plan.rows + (plan.fabric_words > 0) > 1 else Const(1)
            words.append(self._row(m, r, row_hit, r_addr))
        if plan.fabric_words:
            words.append(self._fabric(m, w_row == plan.rows, r_addr))
        if len(words) == 1:
            m.d.comb += self.r_data.eq(words[0])
            return m
        # the row of each read, delayed like its data (block address register, output register)
        sel = r_row
        for s in range(2):
            nxt = Signal(range(len(words)), name=f"read_row{s + 1}")
            with m.If(self.r_en):
                m.d[dom] += nxt.eq(sel)
            sel = nxt
        m.d.comb += self.r_data.eq(Array(words)[sel])
        return m

    def _bit_map(self, j):
        """Word bit (or None: padding) of each data bit of block column ``j``, and the write
        lane of each of its write enables (bytes of x36/x18; the block for narrower ones)."""
        plan, bw = self.plan, self.plan.block_width
        lane_w = self.width // self.write_lanes
        if plan.lane_columns:
            per_lane = plan.columns // self.write_lanes
            lane, c = divmod(j, per_lane)
            bits = [lane * lane_w + c * bw + i if c * bw + i < lane_w else None
                    for i in range(bw)]
            return bits, [lane] * max(1, bw // 9)
        bits = [j * bw + i if j * bw + i < self.width else None for i in range(bw)]
        if bw < 9:
            return bits, [min(j * bw // lane_w, self.write_lanes - 1)]
        return bits, [min((j * bw + 9 * b) // lane_w, self.write_lanes - 1)
                      for b in range(bw // 9)]

    def _row(self, m, r, row_hit, r_addr):
        """Row ``r`` of blocks; returns the word its output registers hold."""
        plan, bw, dom = self.plan, self.plan.block_width, self.domain
        w_data, w_en = Value.cast(self.w_data), self.w_en
        word = Signal(self.width, name=f"row{r}_data")
        ad_a, ad_b = self._block_address(self.w_addr), self._block_address(r_addr)
        for j in range(plan.columns):
            bits, byte_lanes = self._bit_map(j)
            enables = [w_en[lane] & row_hit for lane in byte_lanes]
            di = [w_data[k] if k is not None else 0 for k in bits]
            do = Signal(bw, name=f"row{r}_col{j}_do")
            for i, k in enumerate(bits):
                if k is not None:
                    m.d.comb += word[k].eq(do[i])
            ports = {"i_CLKA": ClockSignal(dom), "i_CEA": 1, "i_RSTA": 0,
                     "i_CLKB": ClockSignal(dom), "i_CEB": self.r_en, "i_OCEB": self.r_en,
                     "i_WEB": 0, "i_RSTB": 0, "i_OCEA": self.r_en if bw == 36 else 1}
            a = list(ad_a)
            if bw >= 18:
                # x18 / x36: the low address pins of port A are its byte-write enables
                a[:len(enables)] = enables
                ports["i_WEA"] = row_hit & Cat(*(w_en[lane] for lane in byte_lanes)).any()
            else:
                ports["i_WEA"] = enables[0]
            for k in range(3):
                ports[f"i_CSA{k}"] = ports[f"i_CSB{k}"] = 0
            for k in range(DP16KD_ADDR_BITS):
                ports[f"i_ADA{k}"], ports[f"i_ADB{k}"] = a[k], ad_b[k]
            for k in range(18):
                if bw == 36:
                    ports[f"i_DIA{k}"], ports[f"i_DIB{k}"] = di[k], di[18 + k]
                    ports[f"o_DOA{k}"], ports[f"o_DOB{k}"] = do[k], do[18 + k]
                elif k < bw:
                    ports[f"i_DIA{k}"], ports[f"i_DIB{k}"] = di[k], 0
                    ports[f"o_DOB{k}"] = do[k]
            regmode_a = "OUTREG" if bw == 36 else "NOREG"
            m.submodules[f"dp16kd_r{r}_c{j}"] = Instance(
                "DP16KD", **self._initvals(r, bits), p_DATA_WIDTH_A=bw, p_DATA_WIDTH_B=bw,
                p_REGMODE_A=regmode_a, p_REGMODE_B="OUTREG",
                p_RESETMODE="SYNC", p_ASYNC_RESET_RELEASE="SYNC",
                p_CSDECODE_A="0b000", p_CSDECODE_B="0b000",
                p_WRITEMODE_A="NORMAL", p_WRITEMODE_B="NORMAL", p_GSR="DISABLED", **ports)
        return word

    def _initvals(self, r, bits):
        """``p_INITVAL_xx`` parameters of the block in row ``r`` whose data bits are the word
        bits ``bits`` (from :meth:`_bit_map`; None: padding), or none if ``init`` is all
        zero."""
        if not any(self.init):
            return {}
        bw, bd = self.plan.block_width, self.plan.block_depth
        units = [0] * (INITVAL_UNITS * INITVAL_PARAMS)
        for a, word in enumerate(self.init[r * bd:(r + 1) * bd]):
            d = sum((word >> k & 1) << i for i, k in enumerate(bits) if k is not None)
            per = bw // INITVAL_UNIT_BITS           # units per word: 1 (x18) or 2 (x36)
            for h in range(per):
                units[per * a + h] = d >> (h * INITVAL_UNIT_BITS) & ((1 << INITVAL_UNIT_BITS) - 1)
        params = {}
        for p in range(INITVAL_PARAMS):
            v = sum(u << (INITVAL_STRIDE * i) for i, u in
                    enumerate(units[p * INITVAL_UNITS:(p + 1) * INITVAL_UNITS]))
            params[f"p_INITVAL_{p:02X}"] = Const(v, INITVAL_STRIDE * INITVAL_UNITS)
        return params

    def _fabric(self, m, hit, r_addr):
        """The words past the last row, in a LUT-RAM ``Memory`` with the blocks' latency (its
        read register, then one more for the output register)."""
        plan, dom = self.plan, self.domain
        lane_w = self.width // self.write_lanes
        lo = plan.rows * plan.block_depth
        mem = Memory(shape=self.width, depth=plan.fabric_words, init=self.init[lo:])
        m.submodules.fabric = mem
        wp = mem.write_port(domain=dom, granularity=lane_w if self.write_lanes > 1 else None)
        rp = mem.read_port(domain=dom, transparent_for=())
        abits = (plan.fabric_words - 1).bit_length()
        m.d.comb += [wp.addr.eq(self.w_addr[:abits]), wp.data.eq(self.w_data),
                     wp.en.eq(self.w_en & hit.replicate(self.write_lanes)), rp.addr.eq(r_addr[:abits]),
                     rp.en.eq(self.r_en)]
        out = Signal(self.width, name="fabric_data")
        with m.If(self.r_en):
            m.d[dom] += out.eq(rp.data)
        return out

    def _block_address(self, addr):
        """The 14 address pins of a block: the word address in the top bits (as many as the
        aspect ratio has words), zeros below."""
        abits = self.plan.address_bits
        low = DP16KD_ADDR_BITS - abits
        return [0] * low + [addr[i] if i < len(addr) else 0 for i in range(abits)]

