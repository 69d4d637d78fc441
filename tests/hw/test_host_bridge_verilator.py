"""HostBridge on its generated Verilog (cocotb + Verilator), always with the host driver.

- ``test_bridge_demo_uart_verilator``: the demo board design (UART pins -> bridge -> Requantize
  registers + scratch memory, boards/demo_device.py) driven bit-serially by
  :class:`host.cocotb_transport.CocotbUartLink`; results bit-exact vs
  ``sim.fixed.requantize``, memory read back vs what was written (tests/cocotb/test_bridge_tb.py).
- ``test_bridge_frame_verilator`` (slow: a Verilator build of the whole top of its own, ~3 min
  alone, ~5 min beside the other worker): a whole ``tiny`` frame through the driver, the
  bridge's byte protocol (random valid gaps and back-pressure on both byte streams) and the top
  level (hw/top), bit-exact vs ``sim.golden.forward`` (tests/cocotb/test_bridge_frame_tb.py).
  The default run keeps its parts: the bridged top's wiring (ID, memory through the bridge,
  programs started and ended, an error) in pysim (tests/hw/test_host_bridge.py,
  ``test_bridged_top_pysim``), the bridge on the Verilog (``test_bridge_demo_uart_verilator``),
  the driver's whole frame on the Verilog over AXI (tests/system/test_axi_top.py) and whole
  frames of the top (tests/system/test_top_frame_verilator.py).
"""
from __future__ import annotations

import pytest

from boards.demo_device import DemoDevice
from boards.system import BridgedSystem
from hw.top.top_with_memory import TopWithMemory
from sim.config import get_config
from sim.memory_image import build_memory_image, memory_size
from tests.harness.seeds import seed  # noqa: F401  (pytest fixture)
from tests.harness.verilator import run_block_verilator
from tests.system.frames import frame_case

DEMO_DIVISOR = 8          # cycles per UART bit: small, the bit level is what is tested


def test_bridge_demo_uart_verilator(seed, tmp_path):
    cfg = get_config("tiny")
    dut = BridgedSystem(DemoDevice(cfg), cfg, divisor=DEMO_DIVISOR)
    run_block_verilator(dut, "test_bridge_tb", tmp_path, seed, cfg, name="bridge_demo",
                        divisor=DEMO_DIVISOR, rounds=6, mem_bytes=300, gap_prob=0.3)


def _frame_system(cfg):
    case = frame_case(cfg, 0)
    _, layout = build_memory_image(cfg, case["qparams"], case["image_q"], 0)
    return BridgedSystem(TopWithMemory(cfg, size=memory_size(layout, cfg)), cfg)


@pytest.mark.slow
@pytest.mark.parametrize("task", [1])
def test_bridge_frame_verilator(task, seed, tmp_path):
    cfg = get_config("tiny")
    run_block_verilator(_frame_system(cfg), "test_bridge_frame_tb", tmp_path, seed, cfg,
                        name="bridge_frame", task=task, valid_prob=0.8, ready_prob=0.7,
                        max_cycles=4_000_000)
