"""R x C weight-stationary systolic PE array (R = cfg.hw.array_rows along K, C = array_cols along N).

Dataflow: PE(r, c) holds W[k0 + r, n0 + c] of the current tile (two banks, see :mod:`hw.array.pe`).
One activation beat carries R values of one token, x[m, k0 : k0 + R]. Lane r is delayed by r
cycles (the input skew), then broadcast along row r to its C PEs; each PE's registered
multiplier takes L = ``cfg.hw.pe_mult_latency`` cycles (the same in every PE, so the skew stays
aligned), and partial sums flow down the columns through one register per PE, so the C dot
products of token m leave the bottom row together, R + L cycles after the beat entered:

    psum[c] = sum_r x[m, k0 + r] * W[k0 + r, n0 + c]

Why weight-stationary (and not output-stationary): every GEMM of M3ViT has a large, fixed M
(129 tokens) and small tiles of K x N weights. Holding a weight tile while M tokens stream past
makes a tile last M cycles, so loading the next tile (R cycles, C weights per cycle) hides behind
it with a second weight bank; an output-stationary array would need to drain R x C accumulators
per output tile and reload activations and weights on every cycle (R + C operands per cycle
instead of R). Partial sums of one K tile leave the array and accumulate outside it (in the
GEMM engine's accumulator memory), so the array itself never needs more than the bits of an
R-long dot product.

Why activations are broadcast along a row (instead of also moving one PE per cycle to the right
as in a TPU): with a row broadcast all C results of a token leave the array in the same cycle, so
no output de-skew triangle (C(C-1)/2 wide registers) is needed and a bank switch reaches a whole
row at once. The cost is a fan-out of C per activation lane, which is small (16) at the target
clocks; the vertical partial-sum chain stays systolic (one register per PE).

Widths: a product of ``act`` x ``weight`` lies in [-2^(a+w-2), 2^(a+w-2)], so a sum of r products
needs ``a + w + ceil(log2 r)`` bits (:func:`psum_bits`); each PE output is exactly that wide,
and the bottom output of an R-row array is ``psum_bits(cfg, R)`` wide (36 bits for 16-bit
operands and R = 16).

Weights are written one row of C values per cycle (``w_row``, ``w_bank``, ``w_en``). A write takes
effect at the end of the cycle (``write_delay`` 0), or of the next cycle (``write_delay`` 1: the
write port is registered, one ``we`` register per row and bank, computed from ``w_en`` / ``w_row``
/ ``w_bank``, and a register on ``w_data``; the caller's enable logic then reaches only those
2R registers instead of the clock enables of all R x C x 2 weight registers, the ULX3S build's
routed 13.15 ns path from the weight FIFO's level). The caller only writes a (row, bank) that no
in-flight beat will still read, and (with ``write_delay`` 1) issues a tile's first beat no
earlier than the cycle after its last row was written: row r is read r cycles after the beat,
so with R >= 2 the delayed write of every row is in time.

Latency: :attr:`PEArray.latency` = R + L advances from a beat on ``x`` (with ``en``) to its sums
on ``psum`` (``sim.cycles.gemm.pe_array_latency``). Throughput: one beat (R x C MACs) per
advance. A beat's row-r weight is read when the beat enters row r's multipliers (advance
a + r for a beat issued at advance a), as without the multiplier registers.
"""
from __future__ import annotations

import math

from amaranth.hdl import Const, Module, Signal, signed
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from sim.config import Config

from hw.array.pe import PE

__all__ = ["PEArray", "psum_bits"]


def psum_bits(cfg: Config, rows: int) -> int:
    """Bits of a sum of ``rows`` exact act x weight products (no overflow possible)."""
    n = cfg.num
    return n.act.bits + n.weight.bits + math.ceil(math.log2(max(rows, 1)))


class PEArray(wiring.Component):
    """The R x C MAC array with input skew and double-buffered weights.

    Parameters
    ----------
    cfg : Config
        Size (``hw.array_rows`` R, ``hw.array_cols`` C) and operand formats.
    write_delay : int
        0: a weight write takes effect at the end of its cycle; 1: at the end of the next
        cycle (registered write port, module docstring; needs R >= 2).

    Ports:
      - ``en`` (1): advance the whole array by one beat.
      - ``x`` (``ArrayLayout(signed(act.bits), R)``): the beat entering this advance (unskewed).
      - ``bank`` (1): which weight bank this beat multiplies with.
      - ``w_data`` (``ArrayLayout(signed(weight.bits), C)``), ``w_row`` (``range(R)``), ``w_bank``
        (1), ``w_en`` (1): write one weight row of one bank.
      - ``psum`` (``ArrayLayout(signed(psum_bits(cfg, R)), C)``, registered): the C dot products of
        the beat presented :attr:`latency` advances earlier.

    Latency :attr:`latency` = R + ``cfg.hw.pe_mult_latency`` advances; throughput one beat
    (R x C MACs) per advance.
    """

    def __init__(self, cfg: Config, write_delay: int = 0):
        self._cfg = cfg
        self.rows, self.cols = cfg.hw.array_rows, cfg.hw.array_cols
        if write_delay not in (0, 1) or (write_delay and self.rows < 2):
            self._MustUse__silence = True       # never elaborated: no "unused" warning
            raise ValueError(f"write_delay must be 0, or 1 with array_rows >= 2; got "
                             f"{write_delay} with {self.rows} rows")
        self.write_delay = write_delay
        n = cfg.num
        super().__init__({
            "en": In(1),
            "x": In(data.ArrayLayout(signed(n.act.bits), self.rows)),
            "bank": In(1),
            "w_data": In(data.ArrayLayout(signed(n.weight.bits), self.cols)),
            "w_row": In(range(self.rows)),
            "w_bank": In(1),
            "w_en": In(1),
            "psum": Out(data.ArrayLayout(signed(psum_bits(cfg, self.rows)), self.cols)),
        })

    @property
    def latency(self) -> int:
        return self.rows + self._cfg.hw.pe_mult_latency

    def elaborate(self, platform):
        m = Module()
        R, C = self.rows, self.cols
        act_bits = self._cfg.num.act.bits

        # Input skew: row r sees lane r (and the bank bit) r advances after the beat entered, so
        # its product is ready (L advances later) the moment the partial sum of the same token
        # arrives from row r - 1.
        bank_d = [self.bank]
        for r in range(1, R):
            b = Signal(name=f"bank_d{r}")
            with m.If(self.en):
                m.d.sync += b.eq(bank_d[-1])
            bank_d.append(b)
        x_d = []
        for r in range(R):
            v = self.x[r]
            for s in range(r):
                reg = Signal(signed(act_bits), name=f"x{r}_d{s + 1}")
                with m.If(self.en):
                    m.d.sync += reg.eq(v)
                v = reg
            x_d.append(v)

        # The weight write port: as given, or registered (write_delay 1) with the row / bank
        # decode done in front of the registers, so each row's enable is a flip-flop.
        if self.write_delay:
            w_data = Signal.like(self.w_data, name="w_data_r")
            m.d.sync += w_data.eq(self.w_data)
            w_we = []
            for r in range(R):
                we = Signal(2, name=f"w_we{r}")
                m.d.sync += we.eq((self.w_en & (self.w_row == r)) << self.w_bank)
                w_we.append(we)
        else:
            w_data = self.w_data
            w_we = [(self.w_en & (self.w_row == r)) << self.w_bank for r in range(R)]

        pes = [[None] * C for _ in range(R)]
        for r in range(R):
            in_shape = signed(psum_bits(self._cfg, max(r, 1)))
            out_shape = signed(psum_bits(self._cfg, r + 1))
            for c in range(C):
                pe = pes[r][c] = PE(self._cfg, in_shape, out_shape)
                m.submodules[f"pe_{r}_{c}"] = pe
                m.d.comb += [
                    pe.en.eq(self.en),
                    pe.x.eq(x_d[r]),
                    pe.bank.eq(bank_d[r]),
                    pe.psum_in.eq(pes[r - 1][c].psum_out if r else Const(0, in_shape)),
                    pe.w_data.eq(w_data[c]),
                    pe.w_we.eq(w_we[r]),
                ]
        for c in range(C):
            m.d.comb += self.psum[c].eq(pes[R - 1][c].psum_out)
        return m
