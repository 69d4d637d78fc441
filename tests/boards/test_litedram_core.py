"""boards/litedram_core.py without running LiteDRAM's generator (fast).

- every LiteDRAM config belongs to a board and agrees with it, checked against independent
  sources: the FPGA device of the board entry, the board's design clock (boards/build.py), the
  amaranth-boards pinout (address and DQ pins against the DRAM module's geometry from
  litedram.modules), the accelerator's memory beat (the AXI data width);
- errors: unknown board, board without a config (LiteDramConfigError, a ValueError), LiteDRAM
  not installed (LiteDramError naming the pip command), a failing generator (its exit status
  and the tail of its log);
- the cache: a pre-populated directory is returned without running anything, a run with a
  stand-in generator fills it once, and the key follows the config, the sim flag and the
  package versions;
- the parsers of the generated files (ports, CSR map, init sequence) on hand-written samples.
"""
from __future__ import annotations

import importlib.metadata
import math
import re
import sys
from pathlib import Path

import pytest

from boards import litedram_core as ld
from boards.boards import BOARDS, get_board
from boards.build import design_clock_hz
from sim.config import get_config, with_changes


def _cfg_yaml(board):
    import yaml
    return yaml.safe_load((ld.CONFIG_DIR / f"{board}.yml").read_text())


def _pin_count(platform, resource: str, sub: str) -> int:
    res = platform.lookup(resource, 0)
    for io in res.ios:
        if getattr(io, "name", None) == sub:
            pins = io.ios[0]
            return len(getattr(pins, "p", pins).names)
    raise KeyError(f"{resource}.{sub}")


def test_every_config_is_a_board():
    assert ld.dram_boards() == sorted(["ecpix5-85f", "ulx3s-85f"])
    assert set(ld.dram_boards()) <= set(BOARDS)


@pytest.mark.parametrize("board", ["ecpix5-85f", "ulx3s-85f"])
def test_config_agrees_with_board(board):
    from litedram import modules
    b = get_board(board)
    platform = b.platform_class()()
    y = _cfg_yaml(board)
    assert y["device"].startswith(b.device + "-"), y["device"]
    if "input_clk_freq" in y:           # the core's own PLL runs from the board oscillator
        assert y["input_clk_freq"] == platform.default_clk_frequency
        assert y["sys_clk_freq"] == design_clock_hz(b, platform)
    else:                               # the core runs on the oscillator itself (ULX3S; its
        assert y["sys_clk_freq"] == platform.default_clk_frequency   # on-chip build: PLL)
    module = getattr(modules, y["sdram_module"])
    resource = {"DDR3": "ddr3", "SDR": "sdram"}[y["memtype"]]
    assert _pin_count(platform, resource, "a") == int(math.log2(module.nrows))
    assert _pin_count(platform, resource, "ba") == int(math.log2(module.nbanks))
    assert _pin_count(platform, resource, "dq") == 8 * y["sdram_module_nb"]
    axi = ld.core_config(board)["user_ports"][ld.AXI_PORT]
    beat = 8 * get_config(b.config).hw.mem_bytes_per_cycle
    assert axi == {"type": "axi", "id_width": ld.AXI_ID_BITS,
                   "data_width": max(beat, ld.controller_bits(y))}


def test_axi_width_never_below_controller_word():
    # tiny-ecp5's 64-bit beat: ECPIX-5 (DDR3 x16: BL8 x 16 = 128-bit word) gets 128, the ULX3S
    # (SDR x16: 16-bit word) keeps 64; a wider beat is kept on both
    width = lambda board, cfg=None: ld.core_config(board, cfg)["user_ports"][ld.AXI_PORT][
        "data_width"]
    assert width("ecpix5-85f") == 128 and width("ulx3s-85f") == 64
    cfg = get_config("tiny-ecp5")
    wide = with_changes(cfg, hw={"mem_bytes_per_cycle": 32})
    assert width("ecpix5-85f", wide) == 256 and width("ulx3s-85f", wide) == 256


def test_real_generator_controller_word(monkeypatch, tmp_path):
    """Runs litedram_gen (~1-3 s per core): the controller word LiteDRAM built (DFI data bits x
    phases in its sdram_phy.h) is controller_bits(), and the AXI port has the configured width."""
    monkeypatch.setenv(ld.CACHE_ENV, str(tmp_path))
    for board in ld.dram_boards():
        for sim in (False, True):
            core = ld.generate(board, sim=sim, quiet=True)
            h = (core.parent.parent / "software/include/generated/sdram_phy.h").read_text()
            define = lambda name: int(re.search(rf"#define {name} (\d+)", h)[1])
            y = ld.core_config(board)
            assert define("SDRAM_PHY_DFI_DATABITS") * define("SDRAM_PHY_PHASES") == \
                ld.controller_bits(y), (board, sim)
            assert ld.core_ports(core)["user_port_axi_0_rdata"] == \
                ("output", y["user_ports"][ld.AXI_PORT]["data_width"])


def test_unknown_board():
    with pytest.raises(ld.LiteDramConfigError, match=r"unknown board 'nope'") as e:
        ld.generate("nope")
    assert isinstance(e.value, ValueError)


def test_board_without_dram(monkeypatch, tmp_path):
    monkeypatch.setattr(ld, "CONFIG_DIR", tmp_path)
    with pytest.raises(ld.LiteDramConfigError,
                       match=r"board 'ulx3s-85f' has no LiteDRAM config \(ulx3s-85f.yml"):
        ld.generate("ulx3s-85f")


def test_litedram_not_installed(monkeypatch, tmp_path):
    real = importlib.metadata.version

    def version(dist):
        if dist == "litedram":
            raise importlib.metadata.PackageNotFoundError(dist)
        return real(dist)

    monkeypatch.setenv(ld.CACHE_ENV, str(tmp_path))
    monkeypatch.setattr(ld.importlib.metadata, "version", version)
    with pytest.raises(ld.LiteDramError, match=r"litedram not installed .*pip install "
                                               r"litedram==") as e:
        ld.generate("ecpix5-85f")
    assert isinstance(e.value, RuntimeError) and "\n" not in str(e.value)


def _fake_generator(calls):
    """A stand-in for litedram_gen: writes a one-line core into --output-dir."""
    def command(yml, out, sim):
        calls.append((Path(yml).read_text(), sim))
        code = (f"import pathlib; p = pathlib.Path({str(out)!r}) / 'gateware'; p.mkdir(); "
                f"(p / 'litedram_core.v').write_text('// fake {sim}'); print('fake ok')")
        return [sys.executable, "-c", code]
    return command


def test_cache_miss_then_hit(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv(ld.CACHE_ENV, str(tmp_path))
    calls = []
    monkeypatch.setattr(ld, "_generator_command", _fake_generator(calls))
    p = ld.generate("ulx3s-85f", sim=True)
    assert p.read_text() == "// fake True" and p.is_relative_to(tmp_path)
    assert len(calls) == 1 and "memtype: SDR" in calls[0][0] and "type: axi" in calls[0][0]
    assert "generating the DRAM core for ulx3s-85f (simulation model)" in capsys.readouterr().err
    assert ld.generate("ulx3s-85f", sim=True) == p and len(calls) == 1      # hit: no run
    assert (p.parent.parent / "litedram.yml").is_file()
    assert ld.generate("ulx3s-85f", sim=False) != p and len(calls) == 2


def test_prepopulated_cache_is_used(monkeypatch, tmp_path):
    monkeypatch.setenv(ld.CACHE_ENV, str(tmp_path))

    def never(*a):
        raise AssertionError("the generator ran although the cache was complete")

    monkeypatch.setattr(ld, "_generator_command", never)
    d = ld.core_dir("ecpix5-85f")
    assert d.parent == tmp_path and d.name.startswith("ecpix5-85f-hw-")
    (d / "gateware").mkdir(parents=True)
    (d / "gateware" / "litedram_core.v").write_text("// cached")
    (d / ".complete").write_text("{}")
    assert ld.generate("ecpix5-85f").read_text() == "// cached"


def test_incomplete_cache_is_regenerated(monkeypatch, tmp_path):
    monkeypatch.setenv(ld.CACHE_ENV, str(tmp_path))
    d = ld.core_dir("ecpix5-85f")
    (d / "gateware").mkdir(parents=True)
    (d / "gateware" / "litedram_core.v").write_text("// half written")   # no .complete
    calls = []
    monkeypatch.setattr(ld, "_generator_command", _fake_generator(calls))
    assert ld.generate("ecpix5-85f").read_text() == "// fake False" and len(calls) == 1


def test_cache_key_follows_config_sim_and_versions(monkeypatch, tmp_path):
    monkeypatch.setenv(ld.CACHE_ENV, str(tmp_path))
    base = ld.core_dir("ecpix5-85f")
    assert ld.core_dir("ecpix5-85f", sim=True) != base
    cfg = get_config(get_board("ecpix5-85f").config)
    wide = with_changes(cfg, hw={"mem_bytes_per_cycle": 4 * cfg.hw.mem_bytes_per_cycle})
    assert ld.core_dir("ecpix5-85f", cfg=wide) != base
    assert ld.core_dir("ecpix5-85f", cfg=cfg) == base
    real = ld._versions
    monkeypatch.setattr(ld, "_versions", lambda sim: {**real(sim), "litedram": "0.0-other"})
    assert ld.core_dir("ecpix5-85f") != base
    monkeypatch.delenv(ld.CACHE_ENV)
    assert ld.core_dir("ecpix5-85f").parent == Path.home() / ".cache/edge-moe/litedram"


def test_generator_failure_shows_log_tail(monkeypatch, tmp_path):
    monkeypatch.setenv(ld.CACHE_ENV, str(tmp_path))
    code = "print('\\n'.join(f'line {i}' for i in range(100))); print('ImportError: boom'); " \
           "raise SystemExit(3)"
    monkeypatch.setattr(ld, "_generator_command", lambda yml, out, sim: [sys.executable, "-c",
                                                                         code])
    with pytest.raises(ld.LiteDramError) as e:
        ld.generate("ulx3s-85f", quiet=True)
    msg = str(e.value)
    first = msg.splitlines()[0]
    assert "generating the core for ulx3s-85f failed (exit status 3)" in first
    assert "ImportError: boom" in msg and "line 99" in msg and "line 10\n" not in msg
    assert isinstance(e.value, RuntimeError)
    assert not ld.core_dir("ulx3s-85f").exists()
    d = ld.core_dir("ulx3s-85f")
    assert (d.with_name(d.name + ".failed") / "litedram_gen.log").is_file()


SDRAM_PHY_H = """\
#define DFII_CONTROL_SEL 0x01
#define DFII_CONTROL_CKE 0x02
#define DFII_CONTROL_ODT 0x04
#define DFII_CONTROL_RESET_N 0x08
#define DFII_COMMAND_CS 0x01
#define DFII_COMMAND_WE 0x02
#define DFII_COMMAND_CAS 0x04
#define DFII_COMMAND_RAS 0x08

static inline void init_sequence(void)
{
\t/* Release reset */
\tsdram_dfii_pi0_address_write(0x0);
\tsdram_dfii_control_write(DFII_CONTROL_ODT|DFII_CONTROL_RESET_N);
\tcdelay(50000);

\t/* Load Mode Register 0, CL=6, BL=8 */
\tsdram_dfii_pi0_address_write(0x320);
\tsdram_dfii_pi0_baddress_write(0);
\tcommand_p0(DFII_COMMAND_RAS|DFII_COMMAND_CAS|DFII_COMMAND_WE|DFII_COMMAND_CS);
\tcdelay(200);

}

#endif
"""

CSR_CSV = """\
#--------------------------------------------------------------------------------
# Auto-generated by LiteX
#--------------------------------------------------------------------------------
csr_base,ddrctrl,0x00000000,,
csr_register,ddrctrl_init_done,0x00000000,1,rw
csr_register,sdram_dfii_control,0x00000800,1,rw
constant,config_clock_frequency,50000000,,
"""

HEADER = """\
module litedram_core (
    input  wire          clk,
    output wire   [14:0] ddram_a,
    input  wire   [15:0] ddram_dq,
    output wire          init_done
);
"""


def test_parsers(tmp_path):
    gen = tmp_path / "software/include/generated"
    gen.mkdir(parents=True)
    (gen / "sdram_phy.h").write_text(SDRAM_PHY_H)
    (tmp_path / "csr.csv").write_text(CSR_CSV)
    core = tmp_path / "gateware" / "litedram_core.v"
    core.parent.mkdir()
    core.write_text(HEADER + "endmodule\n")
    assert ld.init_sequence(core) == [
        ("sdram_dfii_pi0_address", 0), ("sdram_dfii_control", 0x04 | 0x08), ("delay", 50000),
        ("sdram_dfii_pi0_address", 0x320), ("sdram_dfii_pi0_baddress", 0),
        ("sdram_dfii_pi0_command", 0x0F), ("sdram_dfii_pi0_command_issue", 1),
        ("delay", 200)]
    assert ld.csr_map(core) == {"ddrctrl_init_done": 0, "sdram_dfii_control": 0x800}
    assert ld.core_ports(core) == {"clk": ("input", 1), "ddram_a": ("output", 15),
                                   "ddram_dq": ("input", 16), "init_done": ("output", 1)}
