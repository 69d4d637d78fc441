"""The preamble every cocotb testbench in tests/cocotb/ starts with (imported inside the
simulator process only).

:func:`tb_params` reads the parameters the pytest side passed (tests/harness/verilator.py) and
the :class:`~sim.config.Config` among them; :func:`setup_dut` drives every stream input's
``valid`` and every stream output's ``ready`` low (and other input pins to their idle levels),
starts the clock, runs the reset and returns a :class:`~host.cocotb_streams.StreamPort` per
stream; :func:`stream_through` sends beats into one stream while it collects the results from
another. The stream drivers themselves are in host/cocotb_streams.py.

Typical use::

    p, cfg = tb_params()
    ports = await setup_dut(dut, inputs={"i": model.in_layout}, outputs={"o": model.out_layout})
    got = await stream_through(dut, ports["i"], ports["o"], beats, rng_in=random.Random(seed + 1),
                               valid_prob=0.7, rng_out=random.Random(seed + 2), ready_prob=0.6)
"""
from __future__ import annotations

import random
from typing import Any, Mapping, Sequence

import cocotb

from host.cocotb_streams import StreamPort, load_params, start, stream_recv, stream_send
from sim.config import Config

__all__ = ["tb_params", "setup_dut", "stream_through"]


def tb_params() -> tuple[dict[str, Any], Config | None]:
    """``(params, cfg)``: the run's parameters and ``Config.from_dict(params["config"])`` (None
    when the run has no config, e.g. a config-free block such as the UART)."""
    p = load_params()
    cfg = Config.from_dict(p["config"]) if "config" in p else None
    return p, cfg


async def setup_dut(dut, *, inputs: Mapping[str, Any] | None = None,
                    outputs: Mapping[str, Any] | None = None,
                    pins: Mapping[str, int] | None = None) -> dict[str, StreamPort]:
    """Idle every port, then clock and reset ``dut``; the stream ports by name.

    ``inputs`` / ``outputs``: stream ports into / out of the DUT, name -> payload shape (a
    ``lib.data`` layout, ``signed(n)``..., or None for raw ints). Their ``valid`` / ``ready`` go
    low before the reset. ``pins``: other input pins and the value they hold from the start.
    Returns just after a rising edge with reset released (the stream helpers' calling point).
    """
    inputs, outputs = inputs or {}, outputs or {}
    for name in inputs:
        getattr(dut, f"{name}__valid").value = 0
    for name in outputs:
        getattr(dut, f"{name}__ready").value = 0
    for name, value in (pins or {}).items():
        getattr(dut, name).value = value
    await start(dut)
    return {name: StreamPort(dut, name, shape) for name, shape in {**inputs, **outputs}.items()}


async def stream_through(dut, i: StreamPort, o: StreamPort, beats: Sequence,
                         count: int | None = None, *, rng_in: random.Random | None = None,
                         valid_prob: float = 1.0, rng_out: random.Random | None = None,
                         ready_prob: float = 1.0, accepted: list | None = None,
                         transferred: list | None = None, timeout_cycles: int = 10_000) -> list:
    """Send ``beats`` into ``i`` while collecting ``count`` (default ``len(beats)``) beats from
    ``o``; returns them once both are done.

    ``rng_in`` / ``valid_prob`` make the valid gaps, ``rng_out`` / ``ready_prob`` the
    back-pressure (separate generators, so the two patterns do not depend on each other);
    ``accepted`` / ``transferred`` collect the cycle of each transfer in and out (latency and
    throughput checks).
    """
    send = cocotb.start_soon(stream_send(dut.clk, i, beats, rng=rng_in, valid_prob=valid_prob,
                                         accepted_cycles=accepted))
    got = await stream_recv(dut.clk, o, len(beats) if count is None else count, rng=rng_out,
                            ready_prob=ready_prob, transfer_cycles=transferred,
                            timeout_cycles=timeout_cycles)
    await send
    return got
