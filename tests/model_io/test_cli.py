"""``edge-moe export`` sub-command (driven through edge_moe.commands.export.main, as the main CLI will)."""
from __future__ import annotations

import argparse

import numpy as np
import torch

from edge_moe.commands.export import add_export_parser, main
from model_io.loader import load
from model_io.torch_model import M3ViT, state_dict_to_numpy
from sim.golden import quantize_params
from sim.params import random_params


def test_parser_wiring():
    parser = argparse.ArgumentParser()
    add_export_parser(parser.add_subparsers(dest="cmd"))
    args = parser.parse_args(["export", "--random-seed", "3", "--config", "tiny", "-o", "d"])
    assert args.random_seed == 3 and args.checkpoint is None and args.init == "unit"
    assert args.func.__name__ == "run_export"


def test_random_seed_export(tiny, tmp_path, capsys):
    assert main(["export", "--random-seed", "7", "--config", "tiny", "-o", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "blocks.1.mlp.gates.0.weight" in out and "Q2.14" in out and "0 saturated" in out
    _, q, manifest = load(tmp_path, tiny)
    want, _ = quantize_params(tiny, random_params(tiny, 7, "unit"))
    assert all(np.array_equal(q[k], want[k]) for k in want)
    assert "seed=7" in manifest["source"]


def test_checkpoint_export(tiny, tmp_path, capsys):
    sd = M3ViT(tiny, seed=1, init="unit").state_dict()
    torch.save({"state_dict": sd, "epoch": 3}, tmp_path / "model.pt")
    assert main(["export", "--checkpoint", str(tmp_path / "model.pt"), "--config", "tiny",
                 "-o", str(tmp_path / "img")]) == 0
    _, q, _ = load(tmp_path / "img")
    want, _ = quantize_params(tiny, state_dict_to_numpy(sd))
    assert all(np.array_equal(q[k], want[k]) for k in want)
    np.savez(tmp_path / "p.npz", **random_params(tiny, 2))
    assert main(["export", "--checkpoint", str(tmp_path / "p.npz"), "--config", "tiny",
                 "-o", str(tmp_path / "img2")]) == 0


def test_errors_are_reported(tiny, tmp_path, capsys):
    assert main(["export", "--random-seed", "0", "--config", "m3vit-huge",
                 "-o", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "unknown config 'm3vit-huge'" in err and "tiny" in err
    sd = M3ViT(tiny).state_dict()
    del sd["norm.bias"]
    torch.save(sd, tmp_path / "bad.pt")
    assert main(["export", "--checkpoint", str(tmp_path / "bad.pt"), "--config", "tiny",
                 "-o", str(tmp_path / "o")]) == 1
    assert "missing tensor 'norm.bias'" in capsys.readouterr().err
    assert main(["export", "--checkpoint", str(tmp_path / "nope.pt"), "--config", "tiny",
                 "-o", str(tmp_path / "o")]) == 1
    assert "nope.pt does not exist" in capsys.readouterr().err
    torch.save(argparse.Namespace(a=1), tmp_path / "obj.pt")   # not weights-only loadable
    assert main(["export", "--checkpoint", str(tmp_path / "obj.pt"), "--config", "tiny",
                 "-o", str(tmp_path / "o")]) == 1
    assert "weights-only PyTorch checkpoint" in capsys.readouterr().err


def test_saturation_warning_printed(tiny, tmp_path, capsys):
    p = random_params(tiny, 0)
    p["pos_embed"][0, 0, :2] = 1000.0
    np.savez(tmp_path / "p.npz", **p)
    assert main(["export", "--checkpoint", str(tmp_path / "p.npz"), "--config", "tiny",
                 "-o", str(tmp_path / "img")]) == 0
    cap = capsys.readouterr()
    assert "2 saturated" in cap.out
    assert "WARNING" in cap.err and "pos_embed (2 of 544 values" in cap.err
