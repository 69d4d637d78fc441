"""cocotb: Axi4Master (hw/link/axi4_master.py) alone on cocotbext-axi's AxiRam, any AXI width.

Run by tests/hw/test_axi4_master_axiram.py through ``host.cocotb_run.run_cocotb`` on
``Axi4Master(cfg, axi_data_width=8 * axi_bytes)``. Params: ``config``, ``seed``, ``axi_bytes``,
``size`` (RAM bytes), ``bursts`` (random bursts per phase), ``pause`` (probability of a pause
cycle on each of AR, R, AW, W, B of the RAM), ``result`` (JSON path).

The RAM starts with random bytes (the Python model a copy). Random bursts of the burst bus
(1 .. ``mem_max_burst`` memory beats, addresses any multiple of the memory beat, so starts
anywhere in the AXI beat; about a quarter across a 4 KiB boundary) go in with random valid gaps
and random ready on ``rd_data`` / ``wr_resp``: reads of one half run concurrently with writes
to the other half, then the halves swap. Every read beat (data and ``last``) is compared with
the model; every ``wr_resp`` must be 0; at the end the whole RAM must equal the model byte for
byte (a strobe on a byte the writes did not cover would show there). The RAM's pause generators
make gaps and back-pressure on every AXI channel.
"""
from __future__ import annotations

import json
import logging
import random
import warnings

import cocotb
from cocotb.triggers import gather

warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"cocotbext\.")
from cocotbext.axi import AxiBus, AxiRam  # noqa: E402

from host.cocotb_streams import start  # noqa: E402
from tests.cocotb.test_litedram_axi4_master_tb import (_ports, _random_bursts, _read,  # noqa: E402
                                                       _write)
from tests.harness.cocotb_tb import tb_params  # noqa: E402


def _pauses(rng: random.Random, prob: float):
    while True:
        yield rng.random() < prob


@cocotb.test()
async def axi4_master_on_axiram(dut):
    p, cfg = tb_params()
    seed, size = p["seed"], p["size"]
    W, B = cfg.hw.mem_bytes_per_cycle, cfg.hw.mem_max_burst
    rng = random.Random(seed)
    ports = _ports(dut, cfg)
    dut.clear_error.value = 0
    ram = AxiRam(AxiBus.from_prefix(dut, "m_axi"), dut.clk, dut.rst, size=size)
    for model in (ram.read_if, ram.write_if):
        model.log.setLevel(logging.WARNING)
    for ch in (ram.read_if.ar_channel, ram.read_if.r_channel, ram.write_if.aw_channel,
               ram.write_if.w_channel, ram.write_if.b_channel):
        ch.set_pause_generator(_pauses(random.Random(rng.random()), p["pause"]))
    model = bytearray(rng.getrandbits(8) for _ in range(size))
    ram.write(0, bytes(model))
    await start(dut)

    half = size // 2
    n_read = n_write = 0
    for rd_lo, wr_lo in ((0, half), (half, 0)):
        rd = _random_bursts(rng, rd_lo, rd_lo + half, p["bursts"], W, B)
        wr = _random_bursts(rng, wr_lo, wr_lo + half, p["bursts"], W, B)
        await gather(_read(dut, ports, model, rd, W, rng, seed),
                     _write(dut, ports, model, wr, W, rng))
        n_read += sum(n for _, n in rd)
        n_write += sum(n for _, n in wr)
    got = ram.read(0, size)
    bad = [a for a in range(size) if got[a] != model[a]]
    assert not bad, (f"{len(bad)} RAM bytes differ from the model, first at {bad[0]:#x} "
                     f"[seed={seed}]")
    assert int(dut.bus_error.value) == 0
    with open(p["result"], "w") as f:
        json.dump({"read_beats": n_read, "write_beats": n_write}, f)
