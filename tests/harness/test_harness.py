# amaranth: UnusedElaboratable=no
"""Self-tests of the harness: payload packing, the pysim stream driver/monitor, seeds."""
from __future__ import annotations

import os
import random

import numpy as np
import pytest
from amaranth.hdl import Module, Shape, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from host.pysim import DeadlineExceeded, StreamDriver, StreamMonitor, \
    StreamProtocolError, run_pysim
from tests.harness.seeds import SEED_ENV, resolve_seed, rng, seed  # noqa: F401
from host.streams import assert_beats_equal, from_bits, shape_width, to_bits

LAYOUTS = [
    signed(7),
    unsigned(5),
    data.ArrayLayout(signed(6), 3),
    data.StructLayout({"a": signed(4), "b": data.ArrayLayout(unsigned(3), 2), "c": 1}),
    data.ArrayLayout(data.StructLayout({"x": signed(5), "y": unsigned(2)}), 2),
]


def _random_value(shape, rng):
    if isinstance(shape, data.ArrayLayout):
        return [_random_value(shape.elem_shape, rng) for _ in range(shape.length)]
    if isinstance(shape, data.StructLayout):
        return {name: _random_value(f.shape, rng) for name, f in shape}
    s = Shape.cast(shape)
    return rng.randrange(-(1 << (s.width - 1)), 1 << (s.width - 1)) if s.signed \
        else rng.randrange(1 << s.width)


@pytest.mark.parametrize("shape", LAYOUTS, ids=repr)
def test_bits_round_trip_and_match_amaranth(shape, rng):
    for _ in range(50):
        v = _random_value(shape, rng)
        bits = to_bits(shape, v)
        assert 0 <= bits < (1 << shape_width(shape))
        assert from_bits(shape, bits) == v
        if isinstance(shape, data.Layout):
            assert shape.const(v).as_bits() == bits


def test_bits_accept_numpy_and_reject_overflow():
    lay = data.ArrayLayout(signed(8), 2)
    assert to_bits(lay, np.array([-1, 2])) == to_bits(lay, [-1, 2])
    with pytest.raises(ValueError):
        to_bits(lay, [128, 0])
    with pytest.raises(ValueError):
        to_bits(lay, [1, 2, 3])


class Wire(wiring.Component):
    """Combinational stream pass-through: lets the monitor check the driver."""

    def __init__(self, shape):
        super().__init__({"i": In(stream.Signature(shape)), "o": Out(stream.Signature(shape))})

    def elaborate(self, platform):
        m = Module()
        wiring.connect(m, wiring.flipped(self.i), wiring.flipped(self.o))
        return m


@pytest.mark.parametrize("valid_prob,ready_prob", [(1.0, 1.0), (0.5, 0.5), (0.2, 1.0), (1.0, 0.2)])
def test_driver_and_monitor_through_a_wire(valid_prob, ready_prob, seed, rng):
    shape = data.ArrayLayout(signed(6), 3)
    dut = Wire(shape)
    beats = [_random_value(shape, rng) for _ in range(200)]
    drv = StreamDriver(dut.i, beats, rng=random.Random(seed), valid_prob=valid_prob)
    mon = StreamMonitor(dut.o, len(beats), rng=random.Random(seed + 1), ready_prob=ready_prob)
    run_pysim(dut, [drv, mon], deadline_cycles=10_000)
    assert_beats_equal(mon.received, beats, seed=seed)
    assert drv.accepted_cycles == mon.transfer_cycles     # a wire: same edge on both sides


class BadSource(wiring.Component):
    """Offers a counter that moves on regardless of ready (breaks the stream rules)."""

    def __init__(self, drop_valid: bool):
        self.drop_valid = drop_valid
        super().__init__({"o": Out(stream.Signature(8))})

    def elaborate(self, platform):
        m = Module()
        count = Signal(8)
        m.d.sync += count.eq(count + 1)
        m.d.comb += self.o.payload.eq(count)
        m.d.comb += self.o.valid.eq(count[0] if self.drop_valid else 1)
        return m


@pytest.mark.parametrize("drop_valid", [False, True])
def test_monitor_catches_protocol_violations(drop_valid):
    dut = BadSource(drop_valid)
    mon = StreamMonitor(dut.o, 20, rng=random.Random(0), ready_prob=0.3)
    with pytest.raises(StreamProtocolError):
        run_pysim(dut, [mon], deadline_cycles=1000)


def test_deadline():
    dut = Wire(8)
    with pytest.raises(DeadlineExceeded):
        run_pysim(dut, [StreamMonitor(dut.o, 1)], deadline_cycles=50)


def test_seed_resolution(monkeypatch):
    monkeypatch.delenv(SEED_ENV, raising=False)
    assert resolve_seed("a::b") == resolve_seed("a::b") != resolve_seed("a::c")
    assert resolve_seed("a::b", 7) == 7
    monkeypatch.setenv(SEED_ENV, "123")
    assert resolve_seed("a::b", 7) == 123
    monkeypatch.setenv(SEED_ENV, "0x10")
    assert resolve_seed("a::b") == 16
    monkeypatch.setenv(SEED_ENV, "random")
    assert 0 <= resolve_seed("a::b") < (1 << 32)


@pytest.mark.parametrize("seed", [11, 12], indirect=True)
def test_seed_parameter(seed):
    if not os.environ.get(SEED_ENV):
        assert seed in (11, 12)
