# amaranth: UnusedElaboratable=no
"""``edge-moe demo --dram`` (edge_moe/commands/demo.py, host/dram_demo.py).

Fast (no simulator, nothing sent):
- ``test_dram_bytes``: the ECPIX-5's DRAM size from LiteDRAM's module table equals the
  MT41K256M16 data sheet's 4 Gbit (8 banks x 32,768 rows x 1,024 columns x 16 bits);
- the demo's input checks, each one ``edge-moe: error:`` line and exit 2 before anything is
  sent to the port: a frame larger than the board's DRAM, a config whose memory beat the board top's
  LiteDRAM port cannot carry, ``--dram`` without ``--port`` / with a board without DRAM, a
  serial port that does not exist.

Slow (``test_demo_sequence_on_simulated_dram``, a Verilator build of the accelerator + host link +
LiteDRAM simulation core of its own, several minutes once, then cached in build/cocotb/): the
demo's host sequence over the byte link into ``BridgedDramSystem`` (the board top's system with
LiteDRAM's simulation core), tiny-ecp5 on generic fabric, tasks 0 and 1: DRAM init + memory
test through the bridge, frame image into DRAM once, two frames, tokens bit-exact against the
golden model (tests/cocotb/test_dram_demo_tb.py); 80 s with the build cached. Not in the default run: no existing default test builds
the accelerator with LiteDRAM (test_litedram_bridge.py's cached build has no accelerator).
"""
from __future__ import annotations

import json
import time

import pytest

from boards import dram_system
from boards.dram_bridge import BridgedDramSystem
from boards.litedram_core import dram_bytes
from edge_moe.cli import main
from host import dram_demo
from host.cocotb_run import run_cocotb
from sim.config import generic_config, get_config
from tests.harness.seeds import seed  # noqa: F401  (pytest fixture)

BOARD = "ecpix5-85f"
DEMO = ["demo", "--board", BOARD, "--dram"]


def test_dram_bytes():
    assert dram_bytes(BOARD) == 8 * 32_768 * 1_024 * 16 // 8 == 4 * 2**30 // 8


class SilentPort:
    """A serial port the demo may open but must not send to (its checks come first)."""
    baudrate = 115_200

    def write(self, data):
        raise AssertionError(f"the demo sent {bytes(data)!r} despite a bad input")

    read = write

    def close(self):
        pass


def _no_port(monkeypatch):
    monkeypatch.setattr("host.driver.open_serial", lambda *a, **k: SilentPort())


def test_frame_larger_than_dram(monkeypatch, capsys):
    _no_port(monkeypatch)
    monkeypatch.setattr(dram_demo, "dram_bytes", lambda board: 4096)
    assert main([*DEMO, "--port", "/dev/null", "--config", "tiny-ecp5"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert ("edge-moe: error: the frame of config tiny-ecp5 needs" in err
            and "the DRAM of ecpix5-85f holds 4,096 bytes" in err), err


def test_config_the_top_cannot_carry(monkeypatch, capsys):
    _no_port(monkeypatch)
    # the core's port forced narrower than tiny-ecp5's beat, as test_dram_system's width test
    monkeypatch.setattr(dram_system, "core_beat_bits", lambda board, cfg: 32)
    assert main([*DEMO, "--port", "/dev/null", "--config", "tiny-ecp5"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert ("edge-moe: error: DRAM build for ecpix5-85f: the LiteDRAM AXI port of ecpix5-85f is 32 "
            "bits but config 'tiny-ecp5' has a 64-bit memory beat") in err, err


def test_dram_needs_port_and_dram_board(monkeypatch, capsys):
    _no_port(monkeypatch)
    assert main([*DEMO, "--config", "tiny-ecp5"]) == 2
    assert "--dram runs on a board: give --port" in capsys.readouterr().err
    assert main(["demo", "--board", "ulx3s-85f", "--dram", "--port", "/dev/null",
                 "--config", "tiny-ecp5"]) == 2
    assert "board ulx3s-85f has no DRAM pin map" in capsys.readouterr().err
    assert main(["demo", "--dram", "--port", "/dev/null", "--config", "tiny-ecp5"]) == 2
    assert "--dram needs --board" in capsys.readouterr().err


def test_port_not_found(capsys):
    assert main([*DEMO, "--port", "/dev/edge-moe-no-such-port", "--config", "tiny-ecp5"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert "edge-moe: error:" in err and "/dev/edge-moe-no-such-port" in err, err


@pytest.mark.slow
def test_demo_sequence_on_simulated_dram(tmp_path, seed):
    cfg = generic_config(get_config("tiny-ecp5"))      # no ECP5 primitives in Verilator
    t0 = time.monotonic()
    dut = BridgedDramSystem(cfg, BOARD, sim=True)
    result = tmp_path / "result.json"
    run_cocotb(dut, "tests.cocotb.test_dram_demo_tb", name="dram_demo", test_dir=tmp_path,
               seed=seed, extra_sources=[dut.core],
               params=dict(config=cfg.to_dict(), tasks=[0, 1], core=str(dut.core),
                           result=str(result)))
    res = json.loads(result.read_text())
    print(f"{BOARD} simulated DRAM board, demo sequence: wall time "
          f"{time.monotonic() - t0:.0f} s; {json.dumps(res)}")
    assert [f["task"] for f in res["frames"]] == [0, 1]
    assert res["mem_size"] == dram_bytes(BOARD)
    # the memory image went over the link once: task 1 only starts, polls and reads back
    first, second = (f["link_cycles"] for f in res["frames"])
    assert second < first - res["frame_bytes"], (first, second)
