# amaranth: UnusedElaboratable=no
"""boards/dram_system.py: the accelerator running whole frames out of LiteDRAM's DRAM model.

- ``test_width_mismatch``: a memory beat that does not divide the core's AXI port (the port
  forced to 128 bits under a 32-byte beat) raises ConfigError naming both widths before the
  generator runs; ``tiny``'s 64-bit beat on the ECPIX-5's 128-bit port passes the check;
- ``test_dram_frames`` (slow): DramSystem(``tiny``, ULX3S, simulation core) on Verilator:
  LiteDRAM's init sequence over ``wb_ctrl``, then per task the frame image written through the
  host AXI port in host mode, the frame started and polled over AXI-Lite by host/driver.py's
  EdgeMoeDriver, the output tokens read back through the host port: bit-exact vs
  ``sim.golden.forward`` (tests/cocotb/test_dram_system_tb.py), tasks 0 and 1. It prints the
  frame's CYCLES next to the frame model's figure (``sim.cycles.frame.frame_cost``) with
  ``hw.mem_latency`` set to LiteDRAM's measured read latency; the difference is reported, not
  asserted (docs/boards.md, "A whole frame out of LiteDRAM");
- ``test_dram_frame_ecpix5_narrow_beat`` (slow, ~6 min with the Verilator build): ``tiny-ecp5``
  (8-byte beat) on the ECPIX-5 simulation core's 128-bit port through Axi4Master's up-sizer
  (accelerator and host link), task 0 bit-exact.
"""
from __future__ import annotations

import json
import time

import pytest

from boards import dram_system
from boards.dram_system import DramSystem, check_beat
from boards.litedram_core import core_ports, csr_map, init_sequence
from host.cocotb_run import run_cocotb
from sim.config import ConfigError, generic_config, get_config, with_changes
from sim.cycles.frame import frame_cost
from tests.harness.seeds import seed  # noqa: F401  (pytest fixture)
from tests.system.frames import tiny

BOARD = "ulx3s-85f"
BASE = 0x0001_0F48          # beat aligned, not burst aligned: bursts cross 4 KiB boundaries
# The ULX3S simulation core's read latency, Axi4Master rd_req accepted -> first rd_data beat,
# median of 16 lone reads (tests/boards/test_litedram_sim.py, docs/boards.md): the latency the
# frame model's hw.mem_latency stands for.
LITEDRAM_READ_LATENCY = 21


def test_width_mismatch(monkeypatch):
    assert check_beat("ecpix5-85f", tiny(), "DramSystem") == 128
    cfg = with_changes(tiny(), name="tiny-beat32", hw={"mem_bytes_per_cycle": 32})
    monkeypatch.setattr(dram_system, "core_beat_bits", lambda board, cfg: 128)
    monkeypatch.setattr(dram_system, "generate", None)       # must not be reached
    with pytest.raises(ConfigError, match=r"DramSystem: the LiteDRAM AXI port of ecpix5-85f is "
                                          r"128 bits but config 'tiny-beat32' has a 256-bit "
                                          r"memory beat"):
        DramSystem(cfg, "ecpix5-85f", sim=True)


@pytest.mark.slow
def test_dram_frames(tmp_path, seed):
    cfg = tiny()
    t0 = time.monotonic()
    system = DramSystem(cfg, BOARD, sim=True)
    core = system.core
    mem_size = 1 << core_ports(core)["user_port_axi_0_araddr"][1]
    result = tmp_path / "result.json"
    run_cocotb(system, "tests.cocotb.test_dram_system_tb", name="dram_system",
               test_dir=tmp_path, seed=seed, extra_sources=[core],
               params=dict(config=cfg.to_dict(), tasks=[0, 1], base=BASE, mem_size=mem_size,
                           csr=csr_map(core), init=init_sequence(core), result=str(result)))
    res = json.loads(result.read_text())
    model = frame_cost(with_changes(cfg, hw={"mem_latency": LITEDRAM_READ_LATENCY})).cycles
    for f in res["frames"]:
        got = f["counters"]["cycles"]
        print(f"{BOARD} DRAM model, task {f['task']}: CYCLES {got}, frame model "
              f"(mem_latency {LITEDRAM_READ_LATENCY}) {model}, {got / model:.2f}x; "
              f"image {f['image_bytes']} B loaded in {f['load_cycles']} cycles, outputs read "
              f"in {f['read_cycles']}")
    print(f"init {res['init_cycles']} cycles; wall time {time.monotonic() - t0:.0f} s; "
          f"{json.dumps(res)}")
    assert all(f["counters"]["cycles"] > 0 for f in res["frames"])


@pytest.mark.slow
def test_dram_frame_ecpix5_narrow_beat(tmp_path, seed):
    """``tiny-ecp5`` as it is (8-byte memory beat) on the ECPIX-5 simulation core's 128-bit
    port: the accelerator's and the host's AXI traffic through Axi4Master's up-sizer; task 0,
    bit-exact (the testbench compares with the golden model)."""
    cfg = generic_config(get_config("tiny-ecp5"))      # no ECP5 primitives in Verilator
    assert 8 * cfg.hw.mem_bytes_per_cycle < check_beat("ecpix5-85f", cfg, "test")
    t0 = time.monotonic()
    system = DramSystem(cfg, "ecpix5-85f", sim=True)
    core = system.core
    mem_size = 1 << core_ports(core)["user_port_axi_0_araddr"][1]
    result = tmp_path / "result.json"
    run_cocotb(system, "tests.cocotb.test_dram_system_tb", name="dram_system_ecpix5",
               test_dir=tmp_path, seed=seed, extra_sources=[core],
               params=dict(config=cfg.to_dict(), tasks=[0], base=BASE, mem_size=mem_size,
                           csr=csr_map(core), init=init_sequence(core), result=str(result)))
    res = json.loads(result.read_text())
    print(f"ecpix5-85f DRAM model, tiny-ecp5 (8-byte beat on 128 bits): wall time "
          f"{time.monotonic() - t0:.0f} s; {json.dumps(res)}")
    assert [f["task"] for f in res["frames"]] == [0]
    assert all(f["counters"]["cycles"] > 0 for f in res["frames"])
