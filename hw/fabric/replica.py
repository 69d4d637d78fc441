"""Replicated registers: one pipeline register kept as several copies, each driving a share of
the loads, so no single net fans out to hundreds of sinks across the die.

Latency 1 (each copy is ``value`` registered, with an optional enable), like the one register it
replaces. Why: a net's routed delay grows with its fanout (the sinks spread over an area); the
ULX3S build's worst path began with LayerNorm's row shift amount, one 5-bit register driving 446
LUT inputs of four lanes' barrel shifters: 6.6 ns of its 18.2 ns was that one net
(docs/boards.md). Synthesis merges identical registers back into one (Yosys' ``opt_merge``), so:

- ``target="ecp5"``: each bit of each copy is a ``TRELLIS_FF`` :class:`~amaranth.hdl.Instance`
  with the ``keep`` attribute (``opt_merge`` leaves two ``keep`` cells apart), clock enable on
  ``CE``, the domain's synchronous reset (if it has one) on ``LSR`` over ``CE``, reset and
  configuration value 0: what Amaranth's own register of the domain does.
- ``target="generic"``: plain registers (simulators; a vendor tool replicates by itself).

:func:`replicas` adds them to a module.
"""
from __future__ import annotations

from amaranth.hdl import ClockSignal, Const, Instance, Module, ResetSignal, Signal, Value

from hw.fabric import TARGETS

__all__ = ["SELECT_SHARE", "replicas"]

# Bits of a wide mux that one copy of its select drives (a quasi-static select, such as a mode
# bit, is registered once per share; :func:`replicas`).
SELECT_SHARE = 32


def replicas(m: Module, value, copies: int, target: str, name: str, *, enable=None,
             domain: str = "sync") -> list[Signal]:
    """``copies`` registers of ``value`` (each loaded when ``enable``, default always), as
    :class:`Signal` s of ``value``'s shape named ``{name}_r{k}``. On ``target="ecp5"`` the copies
    survive synthesis as separate flip-flops (module docstring)."""
    if target not in TARGETS:
        raise ValueError(f"replicas: target must be one of {', '.join(TARGETS)}, got {target!r}")
    if copies < 1:
        raise ValueError(f"replicas: copies must be >= 1, got {copies}")
    value = Value.cast(value)
    outs = [Signal(value.shape(), name=f"{name}_r{k}") for k in range(copies)]
    if target != "ecp5":
        for q in outs:
            if enable is None:
                m.d[domain] += q.eq(value)
            else:
                with m.If(enable):
                    m.d[domain] += q.eq(value)
        return outs
    ce = Const(1) if enable is None else enable
    for k, q in enumerate(outs):
        for b in range(len(value)):
            m.submodules[f"{name}_r{k}_b{b}"] = Instance(
                "TRELLIS_FF", a_keep=1,
                p_GSR="ENABLED", p_CEMUX="CE", p_CLKMUX="CLK", p_LSRMUX="LSR",
                p_SRMODE="LSR_OVER_CE", p_REGSET="RESET",
                i_CLK=ClockSignal(domain), i_LSR=ResetSignal(domain, allow_reset_less=True),
                i_CE=ce, i_DI=value[b], o_Q=q[b])
    return outs
