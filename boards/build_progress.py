"""Progress of a bitstream build: which tool stage runs, for how long, and what nextpnr says.

The build script runs Yosys (``-q -l edge_moe.rpt``) and nextpnr (``--quiet --log
edge_moe.tim``) quietly, so their progress is read from those log files while they grow
(:class:`LogTail`), one line at a time, through :func:`parse_line`: a pure function from a log
line to the stage it starts (or belongs to) and a short note of where that stage is:

- ``yosys synth``: the pass being run (``2.46.31.4. Executing ABC9_EXE pass (technology
  mapping using ABC9).`` -> ``ABC9_EXE pass``);
- ``nextpnr place``: packing, the placer and its iterations (static placer ``iter=N`` and its
  cell ``overlap``, HeAP
  ``at iteration #N ... legal = W``, simulated annealing ``at iteration #N: ... wirelen = W``),
  legalisation;
- ``nextpnr route``: router2's iterations with their overused wires
  (``iter=N wires=W overused=O overuse=U``), router1's arc counts;
- either nextpnr stage: the Fmax of a timing analysis (after placement, and after routing);
- ``ecppack``: after nextpnr's last line (``Program finished normally.``).

:class:`BuildProgress` keeps the current stage, its note, the elapsed times and the seconds each
stage took; :class:`ProgressPrinter` shows at most one status line every few seconds (a single
updating line on a terminal, plain lines otherwise), and every stage change at once.
"""
from __future__ import annotations

import re
import shutil
import time
from pathlib import Path

__all__ = ["STAGES", "parse_line", "LogTail", "BuildProgress", "ProgressPrinter",
           "format_seconds"]

STAGES = ("yosys synth", "nextpnr place", "nextpnr route", "ecppack")

_YOSYS_PASS = re.compile(r"^(\d+(?:\.\d+)*)\. Executing ([^(:]+?)\.?\s*(?:[(:].*)?$")
_NEXTPNR_START = re.compile(r"^Info: (?:constraining clock net|Logic utilisation before packing)")
_PACKING = re.compile(r"^Info: Packing (\S+?)\.*$")
_PLACER = re.compile(r"^Info: Running (.*placer.*?)\.*$", re.I)
_STATIC_ITER = re.compile(r"^Info: iter=(\d+) steplen=")
_HEAP_ITER = re.compile(r"^Info:\s+at iteration #(\d+), type (\S+): wirelen solved = \d+, "
                        r"spread = \d+, legal = (\d+)")
_HEAP_INITIAL = re.compile(r"^Info:\s+at initial placer iter (\d+), wirelen = (\d+)")
_SA_ITER = re.compile(r"^Info:\s+at iteration #(\d+): temp = [\d.]+, timing cost = \d+, "
                      r"wirelen = (\d+)")
_LEGALISE = re.compile(r"^Info: (?:Strict )?[Ll]egalising (\d+) cells")
_ROUTE_START = re.compile(r"^Info: (?:Routing globals|Routing\.\.|Running router2|"
                          r"Setting up routing)")
_ROUTER2_ITER = re.compile(r"^Info:\s+iter=(\d+) wires=\s*(\d+) overused=\s*(\d+) "
                           r"overuse=\s*(\d+)")
_ROUTER1_ITER = re.compile(r"^Info:\s+(\d+) \|\s+\d+\s+\d+ \|\s+-?\d+\s+-?\d+ \|\s+(\d+)\|")
_OVERLAP = re.compile(r"^Info: overlap: (.*)$")
_FMAX = re.compile(r"^Info: Max frequency for clock '[^']*': ([\d.]+) MHz "
                   r"\((\w+) at ([\d.]+) MHz\)")
_CRITICAL = re.compile(r"^Info: Critical path report for clock")
_NEXTPNR_DONE = re.compile(r"^Info: Program finished normally\.")


def parse_line(line: str) -> tuple[str | None, str | None]:
    """(stage, note) for one line of a Yosys or nextpnr log; ``(None, None)`` when the line
    says nothing about progress. ``stage`` is one of :data:`STAGES` (the stage the line
    belongs to, which for the first line of a stage is the one it starts), or None with a note
    for lines that belong to whichever stage runs (nextpnr's timing analysis, which it runs
    after placement and again after routing)."""
    line = line.rstrip("\r\n")
    if m := _YOSYS_PASS.match(line):
        return "yosys synth", m.group(2)
    if line.startswith("End of script."):
        return "yosys synth", "done"
    if _NEXTPNR_START.match(line):
        return "nextpnr place", "packing"
    if m := _PACKING.match(line):
        return "nextpnr place", f"packing {m.group(1).lower()}"
    if m := _PLACER.match(line):
        return "nextpnr place", m.group(1).replace("simulated annealing placer for refinement",
                                                   "annealing refinement")
    if m := _STATIC_ITER.match(line):
        return "nextpnr place", f"static placer iteration {m.group(1)}"
    if m := _OVERLAP.match(line):
        return "nextpnr place", f"overlap {m.group(1)}"
    if m := _HEAP_ITER.match(line):
        return "nextpnr place", (f"HeAP iteration {m.group(1)} ({m.group(2)}), legal wirelen "
                                 f"{int(m.group(3)):,}")
    if m := _HEAP_INITIAL.match(line):
        return "nextpnr place", f"HeAP initial iteration {m.group(1)}"
    if m := _SA_ITER.match(line):
        return "nextpnr place", (f"annealing iteration {m.group(1)}, wirelen "
                                 f"{int(m.group(2)):,}")
    if m := _LEGALISE.match(line):
        return "nextpnr place", f"legalising {int(m.group(1)):,} cells"
    if _ROUTE_START.match(line):
        return "nextpnr route", "starting"
    if m := _ROUTER2_ITER.match(line):
        return "nextpnr route", (f"router2 iteration {m.group(1)}: {int(m.group(3)):,} "
                                 f"overused wires (overuse {int(m.group(4)):,})")
    if m := _ROUTER1_ITER.match(line):
        return "nextpnr route", f"router1, {int(m.group(2)):,} arcs remaining"
    if m := _FMAX.match(line):       # after placement (an estimate) and after routing
        return None, f"Fmax {m.group(1)} MHz ({m.group(2)} at {m.group(3)} MHz)"
    if _CRITICAL.match(line):
        return None, "timing analysis"
    if _NEXTPNR_DONE.match(line):
        return "ecppack", "packing the bitstream"
    return None, None


def format_seconds(s: float) -> str:
    """``75.2`` -> ``"1:15"``; an hour or more as ``"1:02:03"``."""
    s = int(round(s))
    h, rest = divmod(s, 3600)
    return f"{h}:{rest // 60:02d}:{rest % 60:02d}" if h else f"{rest // 60}:{rest % 60:02d}"


class LogTail:
    """The complete lines appended to a file since the last call (the file may not exist yet)."""

    def __init__(self, path):
        self.path, self.offset, self.partial = Path(path), 0, b""

    def new_lines(self) -> list[str]:
        try:
            with open(self.path, "rb") as f:
                f.seek(self.offset)
                data = f.read()
        except FileNotFoundError:
            return []
        self.offset += len(data)
        *lines, self.partial = (self.partial + data).split(b"\n")
        return [ln.decode(errors="replace") for ln in lines]


class BuildProgress:
    """Stage, note and timing of one tool run, fed log lines (``feed``) as they appear.

    ``clock``: a monotonic time source (tests pass a fake one). The run starts in ``yosys
    synth``; a stage ends when a line of a later stage arrives, the last one at ``finish``."""

    def __init__(self, clock=time.monotonic):
        self.clock = clock
        self.started = clock()
        self.stage, self.note = STAGES[0], "starting"
        self.stage_started = self.started
        self.seconds: dict[str, float] = {}
        self.finished = False

    def feed(self, line: str) -> bool:
        """Take one log line; True if it started a new stage."""
        stage, note = parse_line(line)
        if note is None:
            return False
        stage = stage or self.stage
        new = STAGES.index(stage) > STAGES.index(self.stage)
        if new:
            now = self.clock()
            self.seconds[self.stage] = round(now - self.stage_started, 1)
            self.stage, self.stage_started = stage, now
        if STAGES.index(stage) >= STAGES.index(self.stage):
            if note.startswith("overlap ") and self.note.startswith("static placer iteration"):
                # the static placer logs its iteration, then the cells' overlap: show both
                note = f"{self.note.split(', overlap ')[0]}, {note}"
            self.note = note
        return new

    def finish(self) -> dict[str, float]:
        """End the current stage; the seconds of every stage seen, in order."""
        if not self.finished:
            self.seconds[self.stage] = round(self.clock() - self.stage_started, 1)
            self.finished = True
        return dict(self.seconds)

    def status(self) -> str:
        now = self.clock()
        return (f"[{format_seconds(now - self.started)}] {self.stage} "
                f"{format_seconds(now - self.stage_started)}: {self.note}")


class ProgressPrinter:
    """Shows :meth:`BuildProgress.status` at most every ``interval`` seconds (default 2 s on a
    terminal, 5 s otherwise), and at once on a stage change: on a terminal
    (``stream.isatty()``) as one line rewritten in place and cut to the terminal's width,
    otherwise (or with ``stream=None``, through ``log``) as plain lines."""

    def __init__(self, stream=None, log=print, interval: float | None = None,
                 clock=time.monotonic):
        self.stream, self.log, self.clock = stream, log, clock
        self.tty = bool(stream is not None and getattr(stream, "isatty", lambda: False)())
        self.interval = interval if interval is not None else (2.0 if self.tty else 5.0)
        self.last_shown, self.last_text, self.width = None, None, 0

    def show(self, text: str, force: bool = False) -> None:
        now = self.clock()
        if text == self.last_text or (not force and self.last_shown is not None
                                      and now - self.last_shown < self.interval):
            return
        self.last_shown, self.last_text = now, text
        if self.tty:
            text = text[:shutil.get_terminal_size().columns - 1]    # a wrapped line stays
            pad = " " * max(0, self.width - len(text))
            self.stream.write("\r" + text + pad)
            self.stream.flush()
            self.width = len(text)
        elif self.stream is not None:
            self.stream.write(text + "\n")
            self.stream.flush()
        else:
            self.log(text)

    def close(self) -> None:
        """End the updating line (a terminal's next output starts on a line of its own)."""
        if self.tty and self.width:
            self.stream.write("\n")
            self.stream.flush()
            self.width = 0
