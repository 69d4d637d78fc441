"""The edge-moe command line: help, config printing and clear errors."""
import json
import subprocess
import sys

import pytest

from edge_moe.cli import main


def test_config_m3vit_prints_the_brief_sizes(capsys):
    assert main(["config", "--name", "m3vit-tiny-cityscapes"]) == 0
    out = capsys.readouterr().out
    assert "tokens           129" in out
    assert "dim              192, 12 blocks, 3 heads" in out
    assert "16 experts, top-2" in out


def test_config_json_is_complete(capsys):
    assert main(["config", "--name", "tiny", "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["model"]["dim"] == 32 and d["num"]["act"] == {"int_bits": 8, "frac_bits": 10, "signed": True}


def test_unknown_config_is_a_clear_error(capsys):
    assert main(["config", "--name", "nope"]) == 2
    assert "unknown config 'nope'; known configs: tiny" in capsys.readouterr().err


def test_console_script_help_runs():
    out = subprocess.run([sys.executable, "-m", "edge_moe.cli", "--help"], capture_output=True,
                         text=True, check=True).stdout
    assert "config" in out and "bit-exact" in out


@pytest.mark.parametrize("argv", [["config", "--help"], ["--help"]])
def test_help_exits_cleanly(argv):
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 0
