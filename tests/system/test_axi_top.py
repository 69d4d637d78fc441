"""EdgeMoeAxiTop (hw/top/axi_top.py): the vendor-flow top with AXI4 memory and AXI4-Lite control.

- the elaborated Verilog's module header has every Vivado-style port (``m_axi_*``,
  ``s_axil_*``, ``irq``, ``clk``, ``rst``) with the right direction and width;
- a whole ``tiny`` frame on Verilator with cocotbext-axi's AxiRam as the DDR (random pauses on
  every channel) and AxiLiteMaster as the host, bit-exact vs the golden model, with the AXI
  protocol checked on every transfer (tests/cocotb/test_axi_top_tb.py); task 1 by the register
  sequence written in the testbench, task 0 by host/driver.py's EdgeMoeDriver;
- a frame with SLVERR answers on a range of the weights, run by host/driver.py's EdgeMoeDriver
  over host/axi_transport.py: the driver reports MEM_ERROR (code 5), the frame ends with STATUS.error,
  BUS_ERROR and ``irq`` set, and CTRL.clear drops them.

Both tiny frames share one Verilator build; tests/system/test_axi_top_icarus.py runs the clean
one on Icarus. A slow test (``-m slow``) runs the M3ViT frame cut to two blocks (the native top's
slow frame in tests/system/test_frame_model.py) over AXI on Verilator, bit-exact. The image sits
at an odd base (not burst aligned), so bursts meet 4 KiB boundaries and the bridge's split is
exercised.
"""
from __future__ import annotations

import json
import re

import pytest

from host.cocotb_run import elaborate, run_cocotb
from hw.top.axi_top import EdgeMoeAxiTop
from sim.config import get_config, with_changes
from sim.memory_image import build_memory_image
from tests.harness.seeds import seed  # noqa: F401  (pytest fixture)
from tests.system.frames import frame_case, tiny

TOP = "edge_moe_axi_top"
BASE = 0x0001_0F48          # beat aligned, not burst aligned: bursts cross 4 KiB boundaries


def _ports(verilog: str, module: str) -> dict[str, tuple[str, int]]:
    """{port: (direction, width)} from the ``input`` / ``output`` declarations of ``module``."""
    body = verilog[verilog.index(f"module {module}("):]
    body = body[:body.index("endmodule")]
    ports = {}
    for d, msb, name in re.findall(r"^\s*(input|output)\s+(?:wire\s+|reg\s+)?(?:\[(\d+):0\]\s*)?"
                                   r"(\w+)\s*;", body, re.M):
        ports[name] = (d, int(msb) + 1 if msb else 1)
    return ports


def test_vivado_port_names():
    cfg = tiny()
    ports = _ports(elaborate(EdgeMoeAxiTop(cfg), TOP), TOP)
    d, a = 8 * cfg.hw.mem_bytes_per_cycle, cfg.hw.mem_addr_bits
    want = {"clk": ("input", 1), "rst": ("input", 1), "irq": ("output", 1)}
    for ch in ("aw", "ar"):
        want.update({f"m_axi_{ch}id": ("output", 1), f"m_axi_{ch}addr": ("output", a),
                     f"m_axi_{ch}len": ("output", 8),
                     f"m_axi_{ch}size": ("output", 3), f"m_axi_{ch}burst": ("output", 2),
                     f"m_axi_{ch}valid": ("output", 1), f"m_axi_{ch}ready": ("input", 1)})
    want.update({"m_axi_wdata": ("output", d), "m_axi_wstrb": ("output", d // 8),
                 "m_axi_wlast": ("output", 1), "m_axi_wvalid": ("output", 1),
                 "m_axi_wready": ("input", 1), "m_axi_bid": ("input", 1),
                 "m_axi_bresp": ("input", 2),
                 "m_axi_bvalid": ("input", 1), "m_axi_bready": ("output", 1),
                 "m_axi_rid": ("input", 1), "m_axi_rdata": ("input", d),
                 "m_axi_rresp": ("input", 2),
                 "m_axi_rlast": ("input", 1), "m_axi_rvalid": ("input", 1),
                 "m_axi_rready": ("output", 1)})
    for ch in ("aw", "ar"):
        want.update({f"s_axil_{ch}addr": ("input", 12), f"s_axil_{ch}valid": ("input", 1),
                     f"s_axil_{ch}ready": ("output", 1)})
    want.update({"s_axil_wdata": ("input", 32), "s_axil_wstrb": ("input", 4),
                 "s_axil_wvalid": ("input", 1), "s_axil_wready": ("output", 1),
                 "s_axil_bresp": ("output", 2), "s_axil_bvalid": ("output", 1),
                 "s_axil_bready": ("input", 1), "s_axil_rdata": ("output", 32),
                 "s_axil_rresp": ("output", 2), "s_axil_rvalid": ("output", 1),
                 "s_axil_rready": ("input", 1)})
    assert ports == want, (f"missing or wrong: {sorted(set(want.items()) - set(ports.items()))}, "
                           f"extra: {sorted(set(ports.items()) - set(want.items()))}")


def _run(tmp_path, seed, task, *, cfg=None, base=BASE, error_range=None, driver=False,
         pause=0.2, max_cycles=2_000_000, simulator="verilator"):
    cfg = cfg or tiny()
    res = tmp_path / "result.json"
    run_cocotb(EdgeMoeAxiTop(cfg), "tests.cocotb.test_axi_top_tb", name=TOP,
               test_dir=tmp_path, seed=seed, simulator=simulator,
               params={"config": cfg.to_dict(), "task": task, "base": base, "pause": pause,
                       "error_range": error_range, "driver": driver, "max_cycles": max_cycles,
                       "result": str(res)})
    return json.loads(res.read_text())


def test_axi_frame_verilator(seed, tmp_path):
    out = _run(tmp_path, seed, task=1)
    assert out["axi"]["on_boundary"] > 0, f"no burst met a 4 KiB boundary: {out['axi']}"
    print(f"tiny frame over AXI: {out['regs']['CYCLES']} cycles, AXI {out['axi']}")


def test_axi_frame_driver_verilator(seed, tmp_path):
    """The other task's clean frame run by host/driver.py's EdgeMoeDriver over AxiTransport
    (loads the image at ``BASE``, programs the registers, polls STATUS, reads the tokens back):
    bit-exact vs golden, the driver's own register sequence on the vendor top."""
    out = _run(tmp_path, seed, task=0, driver=True)
    assert out["driver_error"] is None and out["status"] & 0b111 == 0b010, out


@pytest.mark.slow
def test_axi_frame_m3vit_reduced_verilator(seed, tmp_path):
    """The M3ViT frame cut to two blocks (the second one MoE) over AXI, bit-exact vs golden:
    the real widths and expert count on the vendor top (~0.6 M cycles, ~7 MB read)."""
    cfg = with_changes(get_config("m3vit-tiny-cityscapes"), name="m3vit-2blocks",
                       model=dict(depth=2, moe_blocks=(1,)))
    base = BASE - BASE % cfg.hw.mem_bytes_per_cycle     # aligned to this config's wider beat
    out = _run(tmp_path, seed, task=0, cfg=cfg, base=base, max_cycles=10_000_000)
    assert out["axi"]["on_boundary"] > 0, f"no burst met a 4 KiB boundary: {out['axi']}"
    print(f"{cfg.name} frame over AXI: {out['regs']['CYCLES']} cycles, AXI {out['axi']}")


def test_axi_read_error_driver_verilator(seed, tmp_path):
    """SLVERR on 64 bytes of the weights, the frame run by EdgeMoeDriver over AxiTransport
    (image at ``BASE``, the transport's ``mem_base``, so the driver's base registers are
    device addresses): the driver reports MEM_ERROR (code 5), the frame ends (irq), CTRL.clear
    clears."""
    cfg = tiny()
    case = frame_case(cfg, seed, 0)
    _, lay = build_memory_image(cfg, case["qparams"], case["image_q"], 0)
    lo = BASE + lay.weights + 256
    out = _run(tmp_path, seed, task=0, error_range=[lo, lo + 64], driver=True)
    assert out["bus_error"] == 1 and out["error"] & 0xFF == 5
    assert "MEM_ERROR" in out["driver_error"]

