"""JobStage: a register between the sequencer and a unit path's ``job`` stream.

The sequencer builds a job's payload combinationally from its FSM state and descriptor (muxes
over every state that issues to the path), and the path's ``start`` loads a dozen counters and
addresses from it: one combinational path, 6-8 LUT levels from the sequencer's state register
(the ULX3S logic-depth estimate's worst stages). This stage registers the job in between.

It holds one job at a time: ``i.ready`` is "empty" (a register, so no ready path crosses it),
``o`` offers the held job from the next cycle. The sequencer issues one job per path and then
waits for the path to be idle, so a path counts as busy while its stage holds a job
(:attr:`JobStage.held`); that is the whole cost: one cycle per job, from the sequencer's
handshake to the path's.

Latency 1 cycle; throughput one job per 2 cycles (the path's jobs last longer).
"""
from __future__ import annotations

from amaranth.hdl import Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["JobStage"]


class JobStage(wiring.Component):
    """One registered job. ``held``: ``o.valid`` (a job is in the stage); ``held_next``: its
    value after the edge."""

    def __init__(self, shape):
        self.shape = shape
        super().__init__({
            "i": In(stream.Signature(shape)),
            "o": Out(stream.Signature(shape)),
        })

    @property
    def held(self):
        return self.o.valid

    @property
    def held_next(self):
        """:attr:`held` after the edge (combinational from both handshakes)."""
        return ((self.o.valid & ~self.o.ready) | (self.i.valid & self.i.ready))

    def elaborate(self, platform):
        m = Module()
        m.d.comb += self.i.ready.eq(~self.o.valid)
        with m.If(self.o.valid & self.o.ready):
            m.d.sync += self.o.valid.eq(0)
        with m.If(self.i.valid & self.i.ready):
            m.d.sync += self.o.valid.eq(1)
        # The payload follows the input while the stage is empty (nobody reads it then), so the
        # job's ~130 bits load on "empty" alone, not on the sequencer's valid (its FSM state,
        # "job issued" and the dependency rule: 5 LUT levels, ULX3S estimate 12 ns).
        with m.If(~self.o.valid):
            m.d.sync += self.o.payload.eq(self.i.payload)
        return m
