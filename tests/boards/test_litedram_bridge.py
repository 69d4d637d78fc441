"""The board's CSR path into LiteDRAM, on LiteDRAM's simulation core (Verilator, fast).

``test_init_through_host_link``: the ECPIX-5 DRAM bring-up design (boards/dram_bridge.py's
``BridgedDramSystem`` with ``accelerator=False``: the board's host link and DramSystem) on
LiteDRAM's simulation core, driven by host/driver.py's ``BridgeTransport`` over the byte
streams: the register window,
then host/litedram_init.py's whole init through the LiteDRAM CSR window (LiteDRAM's sequence,
the DFII test bursts per byte lane, hardware control, init_done, a memory test through the
bridge), then random bursts through the bridge into the DRAM model, bit-exact against a byte
model (tests/cocotb/test_litedram_bridge_tb.py). The simulation core has no read leveling
(SDRAMPHYModel); leveling is tested on a CSR model of the ECP5 PHY
(tests/boards/test_litedram_init.py).

Cost: the ~60k-cycle init dominates (~20 s of simulation); the Verilator build of the ECPIX-5
simulation core with the link takes a few minutes once and is cached in build/cocotb/.
"""
from __future__ import annotations

import json

from boards.dram_bridge import BridgedDramSystem
from boards.litedram_core import core_ports
from host.cocotb_run import run_cocotb
from sim.config import get_config
from tests.harness.seeds import seed  # noqa: F401  (pytest fixture)

BOARD = "ecpix5-85f"


def test_init_through_host_link(tmp_path, seed):
    dut = BridgedDramSystem(get_config("tiny-ecp5"), BOARD, sim=True, accelerator=False)
    cfg, core = dut.cfg, dut.core          # cfg: the link's, widened to the core's 16-byte beat
    result = tmp_path / "result.json"
    run_cocotb(dut, "tests.cocotb.test_litedram_bridge_tb",
               name="litedram_host_link", test_dir=tmp_path, seed=seed, extra_sources=[core],
               params=dict(config=cfg.to_dict(), core=str(core), bursts=24,
                           mem_bytes=min(1 << 20, 1 << core_ports(core)[
                               "user_port_axi_0_araddr"][1]),
                           result=str(result)))
    res = json.loads(result.read_text())
    print(f"{BOARD} simulation core through the host link: {json.dumps(res)}")
    assert res["lane_errors"] == [0, 0]
    assert res["checked_bytes"] > 0
