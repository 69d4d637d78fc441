"""cocotb: LiteDRAM's simulation core (SDRAMPHYModel) driven on its AXI user port by
cocotbext-axi's AxiMaster, checked against a Python byte model.

Run by tests/boards/test_litedram_sim.py through ``host.cocotb_run.run_cocotb`` on
tests/boards/litedram_sim.LiteDramSimTop. Params: ``seed``, ``csr`` (CSR name -> byte address),
``init`` (the init sequence), ``beat_bytes``, ``window`` (bytes of DRAM exercised), ``ops``
(random operations per phase), ``result`` (JSON path for the measurements).

1. init over ``wb_ctrl`` (tests/harness/litedram_tb.dram_init), AXI blocked before it;
2. the window is filled with random bytes by long bursts (write bandwidth measured);
3. random writes (unaligned address and length, so partial strobes) and reads, one at a time,
   each read compared with the model;
4. interleaved: one coroutine per region, several IDs, reads and writes in flight together on
   both channels; every read compared with that region's model;
5. read latency: single-beat reads on an idle port, AR handshake to first R beat;
6. read bandwidth: 256-beat bursts, several in flight, R beats per cycle from the first to the
   last beat (and the same for one burst at a time);
7. the whole window read back and compared.
"""
from __future__ import annotations

import json
import random
import statistics
import warnings

import cocotb
from cocotb.triggers import RisingEdge, gather

# cocotbext-axi 0.1.28 uses cocotb 1.x handle APIs that cocotb 2 deprecates (tests run with
# PYTHONWARNINGS=error): only its own warnings are silenced.
warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"cocotbext\.")
from cocotbext.axi import AxiBus, AxiMaster  # noqa: E402

from host.cocotb_streams import load_params, start  # noqa: E402
from tests.harness.litedram_tb import ChannelMonitor, dram_init, idle_wb  # noqa: E402

PREFIX = "user_port_axi_0"
MAX_BURST = 256


def _check(got: bytes, model: bytearray, addr: int, what: str, seed: int):
    want = bytes(model[addr:addr + len(got)])
    if got != want:
        bad = next(i for i in range(len(got)) if got[i] != want[i])
        raise AssertionError(f"{what}: read {len(got)} bytes at {addr:#x}: first mismatch at "
                             f"{addr + bad:#x}: got {got[bad]:#04x}, want {want[bad]:#04x} "
                             f"[seed={seed}]")


@cocotb.test()
async def litedram_axi(dut):
    p = load_params()
    seed, W, window, ops = p["seed"], p["beat_bytes"], p["window"], p["ops"]
    rng = random.Random(seed)
    idle_wb(dut)
    for ch in ("ar", "aw", "w"):
        getattr(dut, f"{PREFIX}_{ch}valid").value = 0
    await start(dut)
    await dram_init(dut, p["csr"], p["init"], axi_prefix=PREFIX)
    mon = ChannelMonitor(dut, PREFIX)
    axi = AxiMaster(AxiBus.from_prefix(dut, PREFIX), dut.clk, max_burst_len=MAX_BURST)
    res = {}

    # 2. fill
    model = bytearray(rng.getrandbits(8) for _ in range(window))
    c0 = mon.cycle
    w0 = len(mon.events["w"])
    chunk = MAX_BURST * W
    await gather(*[axi.write(a, bytes(model[a:a + chunk]), awid=(a // chunk) % 16)
                   for a in range(0, window, chunk)])
    w_beats = mon.events["w"][w0:]
    res["write_fill_bytes_per_cycle"] = len(w_beats) * W / (w_beats[-1] - w_beats[0] + 1)
    res["write_fill_cycles"] = mon.cycle - c0

    # 3. sequential random writes and reads
    for i in range(ops):
        addr = rng.randrange(window - 1)
        n = rng.randint(1, min(window - addr, 3 * chunk // 2))
        if rng.random() < 0.5:
            data = bytes(rng.getrandbits(8) for _ in range(n))
            await axi.write(addr, data, awid=rng.randrange(16))
            model[addr:addr + n] = data
        else:
            got = (await axi.read(addr, n, arid=rng.randrange(16))).data
            _check(bytes(got), model, addr, f"sequential op {i}", seed)

    # 4. interleaved: one coroutine per region, reads and writes of different regions in flight
    regions = 8
    size = window // regions

    async def worker(k: int):
        r = random.Random(seed * 1000 + k)
        base = k * size
        for i in range(ops // 2):
            addr = base + r.randrange(size - 1)
            n = r.randint(1, min(base + size - addr, chunk))
            if r.random() < 0.5:
                data = bytes(r.getrandbits(8) for _ in range(n))
                await axi.write(addr, data, awid=k)
                model[addr:addr + n] = data
            else:
                got = (await axi.read(addr, n, arid=k)).data
                _check(bytes(got), model, addr, f"region {k} op {i}", seed)

    ar0, aw0 = len(mon.events["ar"]), len(mon.events["aw"])
    await gather(*[worker(k) for k in range(regions)])
    res["interleaved_ar"] = len(mon.events["ar"]) - ar0
    res["interleaved_aw"] = len(mon.events["aw"]) - aw0

    # 5. latency: single-beat reads on an idle port
    lat = []
    for _ in range(32):
        addr = rng.randrange(window // W) * W
        for _ in range(4):
            await RisingEdge(dut.clk)
        ar_n, r_n = len(mon.events["ar"]), len(mon.r_first)
        got = (await axi.read(addr, W)).data
        _check(bytes(got), model, addr, "latency read", seed)
        lat.append(mon.r_first[r_n] - mon.events["ar"][ar_n])
    res["read_latency_cycles"] = {"min": min(lat), "median": statistics.median(lat),
                                  "max": max(lat)}

    # 6. bandwidth: long bursts, several in flight, then one at a time
    def rate(first_beat: int) -> float:
        beats = mon.events["r"][first_beat:]
        return len(beats) * W / (beats[-1] - beats[0] + 1)

    r0 = len(mon.events["r"])
    bases = [rng.randrange((window - chunk) // W) * W for _ in range(8)]
    reads = [cocotb.start_soon(axi.read(a, chunk)) for a in bases]
    for a, t in zip(bases, reads):
        _check(bytes((await t).data), model, a, "bandwidth read", seed)
    res["read_bytes_per_cycle_8_in_flight"] = rate(r0)
    per_burst = []
    for a in bases[:4]:
        r0 = len(mon.events["r"])
        ar_n = len(mon.events["ar"])
        _check(bytes((await axi.read(a, chunk)).data), model, a, "single burst read", seed)
        beats = mon.events["r"][r0:]
        per_burst.append(len(beats) * W / (beats[-1] - mon.events["ar"][ar_n] + 1))
    res["read_bytes_per_cycle_1_in_flight"] = statistics.mean(per_burst)

    # 7. everything back
    for a in range(0, window, chunk):
        _check(bytes((await axi.read(a, chunk)).data), model, a, "final read-back", seed)

    res["beat_bytes"] = W
    res["cycles"] = mon.cycle
    with open(p["result"], "w") as f:
        json.dump(res, f, indent=1)
    dut._log.info("litedram results: %s", res)
