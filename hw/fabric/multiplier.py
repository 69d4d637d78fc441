"""Multiplier: ``p = a * b`` with optional input, pipeline and output registers and a clock enable.

Latency: ``input_reg + pipeline_reg + output_reg`` cycles (0 to 3), the same on every target;
throughput one product per enabled cycle. ``en`` is the clock enable of every register: when it
is low the whole pipeline holds (a stalled consumer stops the multiplier with it), so the product
of the operands presented on the k-th enabled cycle appears after the k + latency-th enabled edge.

Why: an inferred ``*`` on the ECP5 becomes a MULT18X18D with none of its registers used, a
~3.9 ns combinational A/B -> P path on a speed-6 part (its pipeline and output registers give
~0.7-1.3 ns clock-to-out), and Yosys' ``synth_ecp5`` does not move fabric registers around a
``$mul`` into the block. So:

- ``target="generic"``: plain Amaranth, ``a * b`` between the requested registers (any width;
  vendor tools that pack registers into DSPs get the usual structure);
- ``target="ecp5"``: one ``MULT18X18D`` :class:`~amaranth.hdl.Instance` with
  ``REG_INPUTA_CLK`` / ``REG_INPUTB_CLK`` (input), ``REG_PIPELINE_CLK`` (pipeline) and
  ``REG_OUTPUT_CLK`` (output) set to ``CLK0`` per flag, ``CE0 = en``, ``RST0`` = the domain's
  reset (``RESETMODE="SYNC"``: the domain's reset must be synchronous, Amaranth's default; 0
  in a reset-less domain).
  Operands up to 18 bits, signed or unsigned (extended to 18 bits as the block requires,
  ``SIGNEDA`` / ``SIGNEDB`` tell it which); ``p`` is the low bits of the 36-bit product.

Registers reset to 0 on both targets.

Parameters: ``a_shape``, ``b_shape`` (operand shapes), ``input_reg``, ``pipeline_reg``,
``output_reg`` (bools), ``target`` (``"generic"`` or ``"ecp5"``), ``domain`` (default
``"sync"``).
Ports: ``a``, ``b`` (in), ``en`` (in, default 1), ``p`` (out, the shape of ``a * b``).
"""
from __future__ import annotations

from amaranth.hdl import ClockSignal, Const, Instance, Module, ResetSignal, Shape, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from hw.fabric import TARGETS

__all__ = ["Multiplier", "MULT18_WIDTH"]

MULT18_WIDTH = 18           # the MULT18X18D's operand width


class Multiplier(wiring.Component):
    def __init__(self, a_shape, b_shape, *, input_reg: bool = False, pipeline_reg: bool = False,
                 output_reg: bool = False, target: str = "generic", domain: str = "sync"):
        a_shape, b_shape = Shape.cast(a_shape), Shape.cast(b_shape)
        if target not in TARGETS:
            self._MustUse__silence = True   # no "created but never used" warning as well
            raise ValueError(f"Multiplier: target must be one of {', '.join(TARGETS)}, "
                             f"got {target!r}")
        if target == "ecp5":
            for name, s in (("a", a_shape), ("b", b_shape)):
                if s.width > MULT18_WIDTH:
                    self._MustUse__silence = True
                    raise ValueError(f"Multiplier: a MULT18X18D takes operands up to "
                                     f"{MULT18_WIDTH} bits, got {name} of {s.width}")
        self.a_shape, self.b_shape = a_shape, b_shape
        self.input_reg, self.pipeline_reg = bool(input_reg), bool(pipeline_reg)
        self.output_reg = bool(output_reg)
        self.target, self.domain = target, domain
        self.latency = self.input_reg + self.pipeline_reg + self.output_reg
        p_shape = (Const(0, a_shape) * Const(0, b_shape)).shape()
        super().__init__({"a": In(a_shape), "b": In(b_shape), "en": In(1, init=1),
                          "p": Out(p_shape)})

    def elaborate(self, platform):
        if self.target == "ecp5":
            return self._elaborate_ecp5()
        m = Module()
        a = self._stage(m, self.a, self.input_reg, "a_reg")
        b = self._stage(m, self.b, self.input_reg, "b_reg")
        product = self._stage(m, a * b, self.pipeline_reg, "product_reg")
        m.d.comb += self.p.eq(self._stage(m, product, self.output_reg, "p_reg"))
        return m

    def _stage(self, m, value, registered, name):
        if not registered:
            return value
        reg = Signal(value.shape(), name=name)
        with m.If(self.en):
            m.d[self.domain] += reg.eq(value)
        return reg

    def _elaborate_ecp5(self):
        m = Module()
        # the block multiplies 18-bit operands: sign- or zero-extend (assignment extends by
        # the source's signedness), and tell it which with SIGNEDA / SIGNEDB
        a18 = Signal(Shape(MULT18_WIDTH, self.a_shape.signed))
        b18 = Signal(Shape(MULT18_WIDTH, self.b_shape.signed))
        p36 = Signal(2 * MULT18_WIDTH)
        m.d.comb += [a18.eq(self.a), b18.eq(self.b), self.p.eq(p36[:len(self.p)])]

        def clk(flag):
            return "CLK0" if flag else "NONE"
        params = {"p_REG_INPUTA_CLK": clk(self.input_reg),
                  "p_REG_INPUTB_CLK": clk(self.input_reg),
                  "p_REG_PIPELINE_CLK": clk(self.pipeline_reg),
                  "p_REG_OUTPUT_CLK": clk(self.output_reg),
                  "p_RESETMODE": "SYNC", "p_GSR": "DISABLED"}
        ports = {"i_SIGNEDA": int(self.a_shape.signed), "i_SIGNEDB": int(self.b_shape.signed),
                 "i_SOURCEA": 0, "i_SOURCEB": 0}
        for i in range(MULT18_WIDTH):
            ports[f"i_A{i}"], ports[f"i_B{i}"], ports[f"i_C{i}"] = a18[i], b18[i], 0
        for i in range(2 * MULT18_WIDTH):
            ports[f"o_P{i}"] = p36[i]
        if self.latency:
            # a reset-less domain (the board builds' default clock) ties RST0 low, as its
            # fabric registers have no reset either
            ports.update(i_CLK0=ClockSignal(self.domain), i_CE0=self.en,
                         i_RST0=ResetSignal(self.domain, allow_reset_less=True))
        m.submodules.mult18x18d = Instance("MULT18X18D", **params, **ports)
        return m
