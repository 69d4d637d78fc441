"""RTL idioms shared by every block: nested wrap-and-carry counters, adder trees, job handshakes.

Each helper emits exactly the statements the blocks used to write by hand (same statement order,
same last-assignment-wins priority), so adopting one changes no cycle and no bit.

- :class:`Loop` and :func:`count_nested`: a nest of counters that steps the innermost level and
  carries outwards when a level is at its last value (``for h: for r: for c:`` in hardware).
- :func:`tree_sum`: a balanced adder tree (log2 n adder levels instead of a chain of n adders).
- :func:`accept_job`: the "one job at a time" handshake of a path: ``job.ready`` while idle,
  returns the accepting condition.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Sequence

from amaranth.hdl import Const, Value, ValueCastable

__all__ = ["Loop", "count_nested", "tree_sum", "mul_const", "accept_job"]


@dataclass(frozen=True)
class Loop:
    """One level of a counter nest.

    Parameters
    ----------
    counter : Signal
        The level's register.
    last : value, optional
        The level is at its last value when ``counter == last``.
    is_last : value, optional
        Instead of ``last``: an explicit condition (for example ``k + R >= K`` for a level that
        steps by ``R``).
    step : value or int
        Added on every step of this level (default 1).
    first : value, int or None
        Reloaded when the level wraps (default 0); ``None`` leaves the counter as it is (the
        outermost level of a nest that is reloaded when the next job starts).
    """
    counter: Any
    last: Any = None
    is_last: Any = None
    step: Any = 1
    first: Any = 0

    def __post_init__(self):
        if (self.last is None) == (self.is_last is None):
            raise TypeError("Loop: give exactly one of last= and is_last=")

    @property
    def at_last(self):
        return self.is_last if self.is_last is not None else self.counter == self.last


def count_nested(m, loops: Sequence[Loop], *, done: Iterable = (), domain: str = "sync") -> None:
    """Step a counter nest once; call it under the condition that advances the nest.

    ``loops`` is innermost first. The innermost level adds its ``step``; a level at its last value
    reloads ``first`` and steps the next level out; when the outermost level wraps, the
    ``done`` statements run (for example ``busy.eq(0)``).
    """
    if not loops:
        raise ValueError("count_nested: needs at least one Loop")
    done = list(done)

    def level(i: int) -> None:
        lp = loops[i]
        m.d[domain] += lp.counter.eq(lp.counter + lp.step)
        with m.If(lp.at_last):
            if lp.first is not None:
                m.d[domain] += lp.counter.eq(lp.first)
            if i + 1 < len(loops):
                level(i + 1)
            elif done:
                m.d[domain] += done

    level(0)


def tree_sum(values: Iterable[Value | ValueCastable | int]):
    """Balanced adder tree: pairs are added level by level (widths grow one bit per level).

    Combinational; a pipelined tree registers between the levels of the same pairing.
    """
    values = list(values)
    if not values:
        raise ValueError("tree_sum: needs at least one value")
    while len(values) > 1:
        values = [values[i] + values[i + 1] if i + 1 < len(values) else values[i]
                  for i in range(0, len(values), 2)]
    return values[0]


def mul_const(value, c: int):
    """``value * c`` for a constant ``c >= 0`` as shifted adds.

    Yosys maps every ``*`` with operands wider than a couple of bits onto a DSP (on ECP5 a
    MULT18X18D), constant operands included: the buffer bank's row-address products by config
    strides took 9 MULT18X18D of the ECPIX-5 M3ViT build. With few set bits in ``c`` (strides,
    row sizes) the adds are a few LUTs and carry chains each.
    """
    if c < 0:
        raise ValueError(f"mul_const: constant must be >= 0, got {c}")
    value = Value.cast(value)
    terms = [value << i for i in range(c.bit_length()) if (c >> i) & 1]
    if not terms:
        return Const(0, len(value) or 1)
    return tree_sum(terms)


def accept_job(m, job, busy):
    """A path that takes one job at a time: ``job.ready`` while not ``busy``.

    Returns the condition under which a job transfers this cycle (the caller latches the payload
    and raises ``busy``).
    """
    m.d.comb += job.ready.eq(~busy)
    return job.valid & job.ready
