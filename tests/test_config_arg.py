"""--config NAME|FILE.json (edge_moe/commands/config_arg.py): a preset and its JSON file give
the same config in every command; every bad file is one error line and exit status 2."""
from __future__ import annotations

import argparse
import json

import pytest

from edge_moe.cli import build_parser, main
from edge_moe.commands.config_arg import CONFIG_METAVAR, load_config
from sim.config import PRESETS, get_config


@pytest.fixture
def preset_file(tmp_path):
    def make(name):
        path = tmp_path / f"{name}.json"
        path.write_text(get_config(name).to_json())
        return path
    return make


def _subparsers():
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices


def test_every_config_option_is_the_shared_one():
    with_config = {name for name, p in _subparsers().items()
                   if any("--config" in a.option_strings for a in p._actions)}
    assert with_config >= {"config", "report", "accuracy", "demo", "export", "elaborate", "build"}
    for name in with_config:
        act = next(a for a in _subparsers()[name]._actions if "--config" in a.option_strings)
        assert act.metavar == CONFIG_METAVAR, name


@pytest.mark.parametrize("name", list(PRESETS))
def test_file_equals_preset(name, preset_file):
    assert load_config(str(preset_file(name))) == get_config(name)


def test_config_command_same_output(preset_file, capsys):
    assert main(["config", "--config", "tiny-ecp5", "--json"]) == 0
    by_name = capsys.readouterr().out
    assert main(["config", "--config", str(preset_file("tiny-ecp5")), "--json"]) == 0
    assert capsys.readouterr().out == by_name
    assert json.loads(by_name)["hw"]["attn_dot_width"] == 4       # independent spot check


def test_report_same_output(preset_file, tmp_path, capsys):
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    assert main(["report", "--no-cpu-baseline", "--config", "tiny-ecp5", "--json", str(a)]) == 0
    assert main(["report", "--no-cpu-baseline", "--config", str(preset_file("tiny-ecp5")), "--json", str(b)]) == 0
    capsys.readouterr()
    assert json.loads(a.read_text()) == json.loads(b.read_text())


def test_build_check_only_same_output(preset_file, capsys):
    assert main(["build", "--board", "ulx3s-85f", "--check-only", "--config", "tiny-ecp5"]) == 0
    by_name = capsys.readouterr().out
    assert main(["build", "--board", "ulx3s-85f", "--check-only", "--config",
                 str(preset_file("tiny-ecp5"))]) == 0
    assert capsys.readouterr().out == by_name


def _edit(d, path, value):
    *head, last = path
    for k in head:
        d = d[k]
    if value is _DELETE:
        del d[last]
    else:
        d[last] = value


_DELETE = object()


@pytest.mark.parametrize("edit, msg", [
    (None, "does not exist"),
    ("{not json", "is not valid JSON"),
    ("[1, 2]", "top level must be an object"),
    ((("hw", "array_rowz"), 4), "unknown field hw.array_rowz"),
    ((("model", "dim"), _DELETE), "missing field model.dim"),
    ((("hw", "array_rows"), "4"), "field hw.array_rows must be int"),
    ((("num", "act", "frac_bits"), 1.5), "field num.act.frac_bits must be int"),
    ((("hw", "array_rows"), 3), "must be a power of two"),          # check_top_level
    ((("model", "heads"), 5), "dim 32 is not divisible by heads 5"),  # Config validation
])
@pytest.mark.parametrize("command", [["config"], ["report"], ["build", "--board", "ulx3s-85f",
                                                               "--check-only"]])
def test_bad_file_one_line(edit, msg, command, tmp_path, capsys):
    path = tmp_path / "cfg.json"
    if isinstance(edit, str):
        path.write_text(edit)
    elif edit is not None:
        d = get_config("tiny").to_dict()
        _edit(d, *edit)
        path.write_text(json.dumps(d))
    assert main(command + ["--config", str(path)]) == 2
    cap = capsys.readouterr()
    err = cap.err.strip().splitlines()
    assert len(err) == 1, cap.err
    assert err[0].startswith(f"edge-moe: error: config file {path}") and msg in err[0], err[0]


def test_unknown_name(capsys):
    assert main(["report", "--no-cpu-baseline", "--config", "nope"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unknown config 'nope'" in err[0] and "tiny-ecp5" in err[0]


def test_missing_default_field_takes_default(tmp_path):
    d = get_config("tiny").to_dict()
    del d["hw"]["moe_counter_bits"]
    path = tmp_path / "old.json"
    path.write_text(json.dumps(d))
    assert load_config(str(path)) == get_config("tiny")
