"""Binary frame program for the top-level sequencer, the external-memory image, and its reference.

:func:`sim.frame_program.frame_program` lists the *logical* layer descriptors of a frame (EMBED,
LAYERNORM, GEMM, ATTENTION per head, ROUTE, EXPERTS on named buffers). This module lowers them to
the *hardware* descriptors the sequencer (``hw/top/sequencer.py``) fetches from external memory,
resolves every tensor name to its byte offset in the weight image (model_io layout), and builds
the whole memory image of a frame (:func:`build_memory_image`).

Hardware descriptors (``DESC_BYTES`` = 64 bytes, 16 little-endian 32-bit words, see
:data:`FIELDS`):

========== ===================================================================================
op         meaning
========== ===================================================================================
LOAD       external memory -> buffer rows (``mode`` LINEAR: row-major rows of ``n`` values;
           PATCHIFY: a C x H x W image into patch rows, values in (c, kh, kw) order)
GEMM       ``dst[row0d + i] (+)= epi(src[row0s + i] @ W + b)``, W/b read from the weight image
LAYERNORM  ``dst[i] = LN(src[i])`` with gamma/beta from the weight image
ATTENTION  heads ``head0 .. head0 + nheads - 1`` of Q/K/V -> ``dst`` columns of those heads
ROUTE      gate GEMM (weights ``addr_a + TASK * stride_a``) -> router -> per-expert queues
EXPERTS    every expert with tokens: fc1 + GELU, fc2, score-scaled accumulate into ``dst``
STORE      buffer rows -> external memory (the output tokens)
END        the frame is done
========== ===================================================================================

Every address is a byte offset from one of four base registers of the CSR block (``base`` field
for LOAD; weights for GEMM / LAYERNORM / ROUTE / EXPERTS; out for STORE), so the host can place
the regions anywhere without re-encoding. Word 15 is a check word (XOR of words 0..14 with
``CHECK_SEED``); with the magic byte it lets the sequencer flag a corrupt or misplaced
descriptor (error flag) instead of running garbage.

Physical on-chip buffers: ``X``, ``XN``, ``QKV`` (three memories Q, K, V of tokens x dim: the
attention unit reads Q, K and V of a key in the same cycle) and ``H`` (also holds ``IMG``, the
patches of the input image, dead after the patch embedding, and ``ATT``, the attention output,
dead after the projection). :func:`check_aliasing` proves on the program that no aliased value
is read after its slot was overwritten.

Overlap (``hw.attn_overlap``): the QKV GEMM is lowered per head and part (``col0d``) and each
head's ATTENTION is ``background``: the sequencer hands it over and goes on; descriptors marked
``concurrent`` (the next head's Q/K/V GEMMs) run beside it, any other waits for the attention
unit. :func:`check_concurrency` proves the concurrent ones hazard-free.

The ``cls`` token is pre-added into row 0 of the position embedding when the image is built
(``embed_pos[0] = sat(cls + pos[0])``, the architecture brief's "class token may be pre-added
into row 0"), so EMBED is: LOAD embed_pos -> X, LOAD image -> IMG (patchify), GEMM IMG -> X rows
1.. with the residual epilogue (``X[1 + p] = sat(pos[1 + p] + emb[p])``), exactly the golden
``residual_add(concat(cls, emb), pos)``.

:func:`run_image` executes a memory image with the golden operators, reading every operand from
the bytes through the descriptors' addresses: it is the reference for the sequencer and proves
(tests/system/test_program_image.py) that the encoding computes :func:`sim.golden.forward`.
"""
from __future__ import annotations

import enum
import functools
from dataclasses import dataclass, field

import numpy as np

from sim.config import DESC_BYTES, Config, ConfigError
from sim.fixed import saturate
from sim.params import param_specs
from sim.frame_program import Epilogue, Instr, Op, frame_program
from sim.weight_image import build_image
from sim.golden import quantize_params
from sim.golden.gelu import gelu_pwl
from sim.golden.layernorm import layernorm
from sim.golden.linear import linear, residual_add, scaled_accumulate
from sim.golden.router import expert_queues, route
from sim.golden.softmax import attention_head

__all__ = ["HwOp", "Buf", "LoadMode", "Base", "EpiMode", "DESC_BYTES", "DESC_WORDS", "MAGIC",
           "CHECK_SEED", "FIELDS", "Desc", "encode_desc", "decode_desc", "lower_program",
           "FieldRange", "desc_ranges", "check_desc", "BUFFER_FIELDS", "wired_buffers", "program_buffers",
           "physical", "buffer_rows_of", "patch_tile_ok",
           "check_aliasing", "check_concurrency", "check_slots", "kv_col0", "overlapped_attention", "MemoryLayout", "build_memory_image", "run_image", "read_output",
           "image_bytes", "embed_pos_table", "REGION_ALIGN", "memory_size"]

DESC_WORDS = DESC_BYTES // 4
MAGIC = 0xE8
CHECK_SEED = 0x5EC0_DE00
REGION_ALIGN = 64


class HwOp(enum.IntEnum):
    END = 0
    LOAD = 1
    GEMM = 2
    LAYERNORM = 3
    ATTENTION = 4
    ROUTE = 5
    EXPERTS = 6
    STORE = 7


class Buf(enum.IntEnum):
    """Physical on-chip buffers (ids in descriptors)."""
    X = 0
    XN = 1
    QKV = 2
    H = 3


# Logical buffer names of sim.frame_program -> physical buffer.
# ATT lives in H (not XN): with overlapped attention (``HardwareConfig.attn_overlap``) the next
# head's Q/K/V GEMM still reads XN while a head's output is written.
PHYSICAL = {"X": Buf.X, "XN": Buf.XN, "ATT": Buf.H, "QKV": Buf.QKV, "H": Buf.H, "IMG": Buf.H,
            "OUT": Buf.XN}
# With a row-tiled H (``hw.hidden_rows`` < tokens) the attention output does not fit H; the
# program is then serial (``attn_overlap=False``: every QKV GEMM is done before the attention
# starts), so XN is dead while ATT lives and takes it.
PHYSICAL_TILED = {**PHYSICAL, "ATT": Buf.XN}
# With K / V of ``hw.kv_heads`` heads only, each head's output overwrites that head's Q columns
# (XN is read again by the next heads' K / V GEMMs); :func:`check_slots` proves it per column.
PHYSICAL_KV = {**PHYSICAL, "ATT": Buf.QKV}


def physical(cfg: Config | None) -> dict[str, Buf]:
    """Logical buffer -> physical buffer for ``cfg`` (:data:`PHYSICAL`; :data:`PHYSICAL_KV` with
    ``hw.kv_heads``; :data:`PHYSICAL_TILED` when H holds fewer rows than tokens)."""
    if cfg is not None and cfg.hw.kv_heads is not None:
        return PHYSICAL_KV
    return PHYSICAL_TILED if cfg is not None and cfg.h_tiled else PHYSICAL


def kv_col0(cfg: Config, head: int, head0: int) -> int:
    """First K / V column of ``head`` in an ATTENTION of heads ``head0 ..``: the head's own
    (``head * head_dim``), or with ``hw.kv_heads`` its slot in the job (the K / V memories hold
    only the job's heads)."""
    slot = head if cfg.hw.kv_heads is None else head - head0
    return slot * cfg.model.head_dim


def buffer_rows_of(cfg: Config, buf: int) -> int:
    """Rows of physical buffer ``buf``: H has ``cfg.h_rows``, the others ``cfg.buffer_rows``."""
    return cfg.h_rows if buf == Buf.H else cfg.buffer_rows


class LoadMode(enum.IntEnum):
    LINEAR = 0
    PATCHIFY = 1


class Base(enum.IntEnum):
    """Which CSR base register an address is relative to."""
    WEIGHTS = 0
    PROGRAM = 1
    IMAGE = 2
    OUT = 3


class EpiMode(enum.IntEnum):
    """Matches hw.array.epilogue.EpilogueMode."""
    PLAIN = 0
    RESIDUAL = 1
    SCALED = 2


# name: (word, lsb, width). Unused fields of an op are 0.
FIELDS: dict[str, tuple[int, int, int]] = {
    "magic": (0, 0, 8),
    "op": (0, 8, 4),
    "src": (0, 12, 4),
    "dst": (0, 16, 4),
    "epi": (0, 20, 2),
    "gelu": (0, 22, 1),
    "bias": (0, 23, 1),
    "mode": (0, 24, 4),
    "base": (0, 28, 4),
    "m": (1, 0, 16),
    "k": (1, 16, 16),
    "n": (2, 0, 16),
    "row0s": (2, 16, 16),      # first source row
    "row0d": (3, 0, 16),       # first destination row
    "head0": (3, 16, 8),
    "nheads": (3, 24, 8),
    "addr_a": (4, 0, 32),      # GEMM weights, LN gamma, LOAD/STORE address, gate (task 0), fc1.w(e0)
    "addr_b": (5, 0, 32),      # GEMM bias, LN beta, expert stride
    "addr_c": (6, 0, 32),      # EXPERTS: fc1.bias - fc1.weight
    "addr_d": (7, 0, 32),      # EXPERTS: fc2.weight - fc1.weight
    "addr_e": (8, 0, 32),      # EXPERTS: fc2.bias - fc1.weight
    "stride_a": (9, 0, 32),    # GEMM: bytes between weight rows (K-major: N * storage bytes);
                               # ROUTE: bytes between the tasks' gate matrices
    "stride_b": (10, 0, 32),   # GEMM: bytes between column tiles of C weights
    "col0d": (11, 0, 16),      # GEMM into QKV: first destination column (of the 3 dim)
    "patch0": (12, 0, 16),     # LOAD PATCHIFY: first patch of the tile (a whole row of patches)
    "background": (11, 16, 1),  # ATTENTION: run in the background, go on with the next descriptor
    "concurrent": (11, 17, 1),  # may start while a background ATTENTION runs (hazard-free)
    "check": (15, 0, 32),
}


@dataclass(frozen=True)
class Desc:
    """One hardware descriptor (field values as plain ints; see :data:`FIELDS`)."""
    op: HwOp
    src: int = 0
    dst: int = 0
    epi: int = 0
    gelu: int = 0
    bias: int = 0
    mode: int = 0
    base: int = 0
    m: int = 0
    k: int = 0
    n: int = 0
    row0s: int = 0
    row0d: int = 0
    head0: int = 0
    nheads: int = 0
    addr_a: int = 0
    addr_b: int = 0
    addr_c: int = 0
    addr_d: int = 0
    addr_e: int = 0
    stride_a: int = 0
    stride_b: int = 0
    col0d: int = 0
    patch0: int = 0
    background: int = 0
    concurrent: int = 0
    note: str = field(default="", compare=False)

    def __str__(self) -> str:
        parts = [f"{self.op.name:9s}"]
        for f in ("src", "dst", "m", "k", "n", "row0s", "row0d", "epi", "gelu", "bias", "mode",
                  "base", "head0", "nheads", "col0d", "patch0", "background",
                  "concurrent"):
            v = getattr(self, f)
            if v:
                parts.append(f"{f}={v}")
        for f in ("addr_a", "addr_b", "addr_c", "addr_d", "addr_e", "stride_a", "stride_b"):
            v = getattr(self, f)
            if v:
                parts.append(f"{f}={v:#x}")
        if self.note:
            parts.append(f"({self.note})")
        return " ".join(parts)


@dataclass(frozen=True)
class FieldRange:
    """A descriptor must have ``lo <= sum of fields <= hi``.

    One field (a size, a buffer id) or a first row plus the row count (``row0d + m``: the rows
    must lie inside the buffer), so a range is checked as one comparison in hardware too.
    """
    fields: tuple[str, ...]
    lo: int
    hi: int

    @property
    def name(self) -> str:
        return " + ".join(self.fields)

    def value(self, d: "Desc") -> int:
        return sum(int(getattr(d, f)) for f in self.fields)


def desc_ranges(cfg: Config) -> dict[HwOp, tuple[FieldRange, ...]]:
    """The range of every field the sequencer decodes, per op (END has none).

    The single definition of the descriptor limits: the sequencer rejects a descriptor outside
    them with ``ErrorCode.BAD_FIELD`` (hw/top/sequencer.py) and :func:`lower_program` refuses to
    emit one. Fields an op does not decode (LAYERNORM's ``n``, say) are not checked.
    """
    md = cfg.model
    rows = cfg.buffer_rows

    def one(f, lo, hi):
        return FieldRange((f,), lo, hi)

    buf = lambda f: one(f, 0, max(Buf))                                   # noqa: E731
    inside = lambda row0: FieldRange((row0, "m"), 1, rows)                # noqa: E731
    base = one("base", 0, max(Base))
    ranges = {
        HwOp.LOAD: (buf("dst"), one("mode", 0, max(LoadMode)), base, one("m", 1, rows),
                    one("n", 1, cfg.load_max_n), inside("row0d"), inside("patch0")),
        HwOp.STORE: (buf("src"), base, one("m", 1, rows), one("n", 1, cfg.store_max_n)),
        HwOp.GEMM: (buf("src"), buf("dst"), one("epi", 0, max(EpiMode)),
                    one("m", 1, cfg.gemm_max_m), one("k", 1, cfg.gemm_max_k),
                    one("n", 1, cfg.gemm_max_n), inside("row0s"), inside("row0d"),
                    FieldRange(("col0d", "n"), 1, cfg.gemm_max_n)),
        HwOp.LAYERNORM: (buf("src"), buf("dst"), one("m", 1, rows)),
        # with hw.kv_heads, K / V hold that many heads: an ATTENTION runs at most those
        HwOp.ATTENTION: (buf("dst"), one("nheads", 1, min(md.heads, cfg.hw.kv_heads or md.heads)),
                         FieldRange(("head0", "nheads"), 1, md.heads)),
        HwOp.ROUTE: (buf("src"), one("m", 1, rows), one("k", 1, cfg.gemm_max_k),
                     one("n", 1, md.experts)),
        # fc1 is a (k x n) GEMM, fc2 (n x k); the prefetcher holds dim x expert_hidden matrices
        HwOp.EXPERTS: (buf("src"), buf("dst"), one("k", 1, md.dim),
                       one("n", 1, md.expert_hidden)),
    }
    for op, rs in ranges.items():
        for r in rs:
            width = min(FIELDS[f][2] for f in r.fields)
            if r.hi >= 1 << width:
                raise ConfigError(f"config {cfg.name!r}: {op.name} limit {r.name} <= {r.hi} does "
                                  f"not fit the {width}-bit descriptor field")
    return ranges


def check_desc(cfg: Config, d: "Desc", ranges: dict | None = None,
               where: str = "descriptor") -> None:
    """Raise ValueError if a field of ``d`` is out of its range (:func:`desc_ranges`);
    the message starts with ``where``."""
    for r in (ranges or desc_ranges(cfg)).get(d.op, ()):
        v = r.value(d)
        if not r.lo <= v <= r.hi:
            raise ValueError(f"{where} {d.op.name}{f' ({d.note})' if d.note else ''}: "
                             f"{r.name} must be in [{r.lo}, {r.hi}], got {v}")
    for row0, b in {HwOp.GEMM: (("row0s", d.src), ("row0d", d.dst)),
                    HwOp.LOAD: (("row0d", d.dst),)}.get(d.op, ()):
        # H may hold fewer rows than the other buffers (hw.hidden_rows)
        hi = buffer_rows_of(cfg, b)
        if getattr(d, row0) + d.m > hi:
            raise ValueError(f"{where} {d.op.name}{f' ({d.note})' if d.note else ''}: "
                             f"{row0} + m must be <= {hi} (rows of {Buf(b).name}), got "
                             f"{getattr(d, row0) + d.m}")
    for (op, name), bufs in wired_buffers(cfg).items():
        b = _buffer_field(d, op, name)
        if b is not None and b not in bufs:
            raise ValueError(f"{where} {d.op.name}{f' ({d.note})' if d.note else ''}: "
                             f"{'dst (read back by the epilogue)' if name == 'res' else name} "
                             f"must be one of {', '.join(x.name for x in sorted(bufs))} on "
                             f"{cfg.name}'s buffer wiring (hw.buffer_wiring), got {b.name}")
    if d.op is HwOp.LOAD and not patch_tile_ok(cfg, d):
        gw = cfg.model.grid[1]
        raise ValueError(f"{where} LOAD{f' ({d.note})' if d.note else ''}: a PATCHIFY tile is "
                         f"whole rows of {gw} patches inside the {cfg.model.patches} patches "
                         f"(LINEAR: patch0 = 0), got patch0 {d.patch0}, m {d.m}")
    if d.op is HwOp.GEMM and d.dst == Buf.QKV and d.col0d >= cfg.model.dim:
        # K / V hold cfg.kv_cols columns (hw.kv_heads); a GEMM stays inside one part (the
        # sequencer checks the same)
        c0 = d.col0d % cfg.model.dim
        if c0 + d.n > cfg.kv_cols:
            raise ValueError(f"{where} GEMM{f' ({d.note})' if d.note else ''}: a K / V "
                             f"destination column + n must be <= {cfg.kv_cols} (K / V columns), "
                             f"got {c0 + d.n}")
    if d.op is HwOp.GEMM:
        # col0d places a GEMM's columns in the QKV buffer only (the sequencer checks the same)
        hi = 3 * cfg.model.dim if d.dst == Buf.QKV else d.n
        if d.col0d + d.n > hi:
            raise ValueError(f"{where} GEMM{f' ({d.note})' if d.note else ''}: col0d + n must "
                             f"be <= {hi} (col0d is for the QKV destination only), got "
                             f"{d.col0d + d.n}")


def patch_tile_ok(cfg: Config, d: "Desc") -> bool:
    """A LOAD's ``patch0`` / ``m`` are a valid tile: PATCHIFY loads whole rows of patches of the
    image (patches ``patch0 .. patch0 + m - 1``), LINEAR has ``patch0`` = 0."""
    md = cfg.model
    gw = md.grid[1]
    if d.mode != LoadMode.PATCHIFY:
        return d.patch0 == 0
    return d.patch0 % gw == 0 and d.m % gw == 0 and d.patch0 + d.m <= md.patches


def _check_word(words) -> int:
    c = CHECK_SEED
    for w in words[:DESC_WORDS - 1]:
        c ^= w
    return c


def encode_desc(d: Desc) -> bytes:
    """64 bytes of one descriptor; raises ValueError if a field does not fit."""
    words = [0] * DESC_WORDS
    vals = {f: getattr(d, f) for f in FIELDS if f not in ("magic", "check")}
    vals["magic"] = MAGIC
    vals["op"] = int(d.op)
    for name, v in vals.items():
        w, lsb, width = FIELDS[name]
        v = int(v)
        if not 0 <= v < (1 << width):
            raise ValueError(f"descriptor {d.op.name}: field {name}={v} does not fit {width} bits")
        words[w] |= v << lsb
    words[FIELDS["check"][0]] = _check_word(words)
    return b"".join(w.to_bytes(4, "little") for w in words)


def decode_desc(raw: bytes) -> Desc:
    """Inverse of :func:`encode_desc`; raises ValueError on a bad magic, check word or opcode."""
    if len(raw) != DESC_BYTES:
        raise ValueError(f"descriptor must be {DESC_BYTES} bytes, got {len(raw)}")
    words = [int.from_bytes(raw[4 * i:4 * i + 4], "little") for i in range(DESC_WORDS)]

    def get(name):
        w, lsb, width = FIELDS[name]
        return (words[w] >> lsb) & ((1 << width) - 1)

    if get("magic") != MAGIC:
        raise ValueError(f"bad descriptor magic {get('magic'):#x}")
    if get("check") != _check_word(words):
        raise ValueError("bad descriptor check word")
    try:
        op = HwOp(get("op"))
    except ValueError:
        raise ValueError(f"unknown descriptor opcode {get('op')}") from None
    kw = {f: get(f) for f in FIELDS if f not in ("magic", "check", "op")}
    return Desc(op, **kw)


# ---------------------------------------------------------------------------------------------
# Lowering: logical program -> hardware descriptors
# ---------------------------------------------------------------------------------------------

def _tensor_offsets(cfg: Config, entries: list[dict] | None) -> dict[str, int]:
    if entries is None:
        # Offsets depend only on the config's shapes and formats, not on the values.
        qp, _ = quantize_params(cfg, {k: np.zeros(s) for k, s in param_specs(cfg).items()})
        _, entries = build_image(cfg, qp)
    return {e["name"]: int(e["offset"]) for e in entries}


def _uniform_stride(cfg: Config, off: dict, names: list[str], what: str) -> int:
    """Common byte stride of a list of tensors (raises if they are not evenly spaced)."""
    if len(names) == 1:
        return 0
    stride = off[names[1]] - off[names[0]]
    for i, nm in enumerate(names):
        if off[nm] != off[names[0]] + i * stride:
            raise ValueError(f"{what}: tensors are not evenly spaced in the weight image "
                             f"({nm} at {off[nm]:#x}); the sequencer needs base + i * stride")
    return stride


def overlapped_attention(cfg: Config) -> bool:
    """Whether :func:`lower_program` splits the QKV GEMM per head and runs each head's attention
    in the background (``hw.attn_overlap``; needs more than one head and whole column tiles per
    head)."""
    m = cfg.model
    return cfg.hw.attn_overlap and m.heads > 1 and m.head_dim % cfg.hw.array_cols == 0


def lower_program(cfg: Config, entries: list[dict] | None = None,
                  embed_pos_addr: int = 0, *, check: bool = True) -> list[Desc]:
    """Hardware descriptors of a frame (task-independent: ROUTE selects the gate by TASK).

    ``entries``: the weight manifest's tensor entries (``model_io.export.build_image``);
    ``embed_pos_addr``: offset of the cls-pre-added position table from the program base;
    ``check``: check every descriptor (:func:`check_desc`) and the program's concurrency and
    QKV slots (off only for :func:`wired_buffers`, which the descriptor check itself uses).
    """
    m = cfg.model
    off = _tensor_offsets(cfg, entries)
    C = cfg.hw.array_cols
    sw = cfg.num.weight.storage_bytes
    bb = cfg.num.bias.storage_bytes
    out: list[Desc] = []
    logical = frame_program(cfg, 0)
    check_aliasing(logical, cfg)
    PHYSICAL = physical(cfg)                     # noqa: N806 (the module map, or the tiled one)
    T = cfg.h_rows
    meta: dict[int, tuple[int, int]] = {}    # pc -> (block, first logical QKV column written)
    act_gelu = cfg.hw.gelu_on_reads          # GELU on fc2's reads, not fc1's epilogue
    gelu_src = None                          # with it: the buffer whose reader applies GELU
    i = 0
    while i < len(logical):
        ins = logical[i]
        if ins.op is Op.EMBED:
            out.append(Desc(HwOp.LOAD, dst=Buf.X, mode=LoadMode.LINEAR, base=Base.PROGRAM,
                            m=m.tokens, n=m.dim, addr_a=embed_pos_addr,
                            note="pos embed (+cls in row 0) -> X"))
            # Tiles of whole rows of patches that fit H (one tile if H holds them all).
            step = cfg.embed_tile
            for p0 in range(0, m.patches, step):
                rows = min(step, m.patches - p0)
                tile = f" {p0}..{p0 + rows - 1}" if step < m.patches else ""
                out += [
                    Desc(HwOp.LOAD, dst=Buf.H, mode=LoadMode.PATCHIFY, base=Base.IMAGE, m=rows,
                         n=m.patch_dim, patch0=p0, note=f"image -> IMG patches{tile}"),
                    Desc(HwOp.GEMM, src=Buf.H, dst=Buf.X, epi=EpiMode.RESIDUAL, bias=1,
                         m=rows, k=ins.k, n=ins.n, row0d=1 + p0, addr_a=off[ins.weight],
                         addr_b=off[ins.bias], stride_a=ins.n * sw, stride_b=C * sw,
                         note=f"patch embed + pos{tile}"),
                ]
        elif (ins.op is Op.GEMM and ins.dst == "H" and T < ins.m and i + 1 < len(logical)
              and logical[i + 1].op is Op.GEMM and logical[i + 1].src == "H"):
            # Dense MLP on a row-tiled H: fc1 (GELU) of T rows into H rows 0 .. T-1, then fc2
            # of those rows back into X. Each row is the same dot products as untiled (bit
            # exact); the weights are read once per tile.
            fc1, fc2 = ins, logical[i + 1]
            for r0 in range(0, ins.m, T):
                rows = min(T, ins.m - r0)
                for g, row0s, row0d, epi, gelu in ((fc1, r0, 0, EpiMode.PLAIN, int(not act_gelu)),
                                                   (fc2, 0, r0, EpiMode.RESIDUAL, int(act_gelu))):
                    out.append(Desc(HwOp.GEMM, src=PHYSICAL[g.src], dst=PHYSICAL[g.dst],
                                    epi=epi, gelu=gelu, bias=int(bool(g.bias)), m=rows, k=g.k,
                                    n=g.n, row0s=row0s, row0d=row0d, addr_a=off[g.weight],
                                    addr_b=off[g.bias] if g.bias else 0, stride_a=g.n * sw,
                                    stride_b=C * sw,
                                    note=f"{g.weight.rsplit('.', 1)[0]} rows {r0}..{r0 + rows - 1}"))
            i += 2
            continue
        elif ins.op is Op.LAYERNORM:
            out.append(Desc(HwOp.LAYERNORM, src=PHYSICAL[ins.src], dst=PHYSICAL[ins.dst],
                            m=ins.m, n=ins.n, addr_a=off[ins.weight], addr_b=off[ins.bias],
                            note=ins.weight.rsplit(".", 1)[0]))
            if ins.dst == "OUT":
                out.append(Desc(HwOp.STORE, src=PHYSICAL["OUT"], base=Base.OUT, m=ins.m, n=ins.n,
                                note="output tokens"))
        elif ins.op is Op.GEMM and ins.dst == "QKV" and cfg.hw.kv_heads is not None:
            # K / V of kv_heads heads at a time: the Q GEMM once; per group of heads their K
            # and V GEMMs into K / V columns 0 .. (a slot per head), then their attention,
            # whose output overwrites their Q columns (docs/top_level.md, "K / V of one head").
            heads = [x for x in logical[i + 1:] if x.op is Op.ATTENTION and x.block == ins.block]
            if [x.head for x in heads] != list(range(m.heads)):
                raise ValueError(f"block {ins.block}: QKV GEMM not followed by its {m.heads} heads")
            name = ins.weight.rsplit(".", 1)[0]

            def qkv_gemm(col0, col0d, n, note):
                meta[len(out)] = (ins.block, col0)
                out.append(Desc(HwOp.GEMM, src=PHYSICAL[ins.src], dst=Buf.QKV,
                                epi=EpiMode.PLAIN, bias=int(bool(ins.bias)), m=ins.m, k=ins.k,
                                n=n, col0d=col0d, addr_a=off[ins.weight] + col0 * sw,
                                addr_b=off[ins.bias] + col0 * bb if ins.bias else 0,
                                stride_a=ins.n * sw, stride_b=C * sw, note=note))

            qkv_gemm(0, 0, m.dim, f"{name} q")
            kv = cfg.hw.kv_heads
            for g0 in range(0, m.heads, kv):
                group = heads[g0:g0 + kv]
                for h in group:
                    for part in (1, 2):
                        qkv_gemm(part * m.dim + h.head * m.head_dim,
                                 part * m.dim + kv_col0(cfg, h.head, g0), m.head_dim,
                                 f"{name} head {h.head} {'qkv'[part]}")
                meta[len(out)] = (ins.block, 0)
                out.append(Desc(HwOp.ATTENTION, src=Buf.QKV, dst=PHYSICAL[group[0].dst],
                                m=group[0].m, head0=g0, nheads=len(group),
                                note=f"block {ins.block} heads {g0}..{g0 + len(group) - 1}"))
            i += 1 + len(heads)
            continue
        elif ins.op is Op.GEMM and ins.dst == "QKV" and overlapped_attention(cfg):
            # Per head: its Q, K and V columns, then its attention in the background while the
            # array computes the next head's columns (docs/top_level.md, "Overlap").
            heads = [x for x in logical[i + 1:] if x.op is Op.ATTENTION and x.block == ins.block]
            if [x.head for x in heads] != list(range(m.heads)):
                raise ValueError(f"block {ins.block}: QKV GEMM not followed by its {m.heads} heads")
            name = ins.weight.rsplit(".", 1)[0]
            for h in heads:
                for part in range(3):
                    col0 = part * m.dim + h.head * m.head_dim
                    out.append(Desc(HwOp.GEMM, src=PHYSICAL[ins.src], dst=Buf.QKV,
                                    epi=EpiMode.PLAIN, bias=int(bool(ins.bias)), m=ins.m, k=ins.k,
                                    n=m.head_dim, col0d=col0, concurrent=int(h.head > 0),
                                    addr_a=off[ins.weight] + col0 * sw,
                                    addr_b=off[ins.bias] + col0 * bb if ins.bias else 0,
                                    stride_a=ins.n * sw, stride_b=C * sw,
                                    note=f"{name} head {h.head} {'qkv'[part]}"))
                out.append(Desc(HwOp.ATTENTION, src=Buf.QKV, dst=PHYSICAL[h.dst], m=h.m,
                                head0=h.head, nheads=1, background=1,
                                note=f"block {h.block} head {h.head}"))
            i += 1 + len(heads)
            continue
        elif ins.op is Op.GEMM:
            epi = EpiMode.RESIDUAL if ins.epilogue is Epilogue.RESIDUAL else EpiMode.PLAIN
            meta[len(out)] = (ins.block, 0)
            gelu = ins.epilogue is Epilogue.GELU
            # hw.gelu_site "act": GELU moves to the GEMM that reads this one's output (fc2)
            gelu_here = (ins.src == gelu_src) if act_gelu else gelu
            gelu_src = ins.dst if act_gelu and gelu else None
            out.append(Desc(HwOp.GEMM, src=PHYSICAL[ins.src], dst=PHYSICAL[ins.dst], epi=epi,
                            gelu=int(gelu_here), bias=int(bool(ins.bias)),
                            m=ins.m, k=ins.k, n=ins.n, addr_a=off[ins.weight],
                            addr_b=off[ins.bias] if ins.bias else 0, stride_a=ins.n * sw,
                            stride_b=C * sw, note=ins.weight.rsplit(".", 1)[0]))
        elif ins.op is Op.ATTENTION:
            # The heads of a block run back to back as one descriptor.
            heads = [ins]
            while (i + 1 < len(logical) and logical[i + 1].op is Op.ATTENTION
                   and logical[i + 1].block == ins.block
                   and logical[i + 1].head == heads[-1].head + 1):
                i += 1
                heads.append(logical[i])
            out.append(Desc(HwOp.ATTENTION, src=Buf.QKV, dst=PHYSICAL[ins.dst], m=ins.m,
                            head0=ins.head, nheads=len(heads), note=f"block {ins.block}"))
        elif ins.op is Op.ROUTE:
            p = f"blocks.{ins.block}.mlp.gates."
            gates = [p + f"{t}.weight" for t in range(m.tasks)]
            out.append(Desc(HwOp.ROUTE, src=PHYSICAL[ins.src], m=ins.m, k=ins.k, n=ins.n,
                            addr_a=off[gates[0]],
                            stride_a=_uniform_stride(cfg, off, gates, "gates"),
                            stride_b=C * sw, note=f"block {ins.block} gate"))
        elif ins.op is Op.EXPERTS:
            base = ins.weight
            fc1w = [f"{base}.{e}.fc1.weight" for e in range(m.experts)]
            stride = _uniform_stride(cfg, off, fc1w, "experts")
            rel = {}
            for t in ("fc1.bias", "fc2.weight", "fc2.bias"):
                names = [f"{base}.{e}.{t}" for e in range(m.experts)]
                if m.experts > 1 and _uniform_stride(cfg, off, names, "experts") != stride:
                    raise ValueError(f"{base}: expert tensors do not share one stride")
                rel[t] = off[names[0]] - off[fc1w[0]]
            out.append(Desc(HwOp.EXPERTS, src=PHYSICAL[ins.src], dst=PHYSICAL[ins.dst],
                            m=ins.m, k=ins.k, n=ins.n, addr_a=off[fc1w[0]], addr_b=stride,
                            addr_c=rel["fc1.bias"], addr_d=rel["fc2.weight"],
                            addr_e=rel["fc2.bias"], note=f"block {ins.block} experts"))
        else:
            raise ValueError(f"cannot lower {ins.op}")
        i += 1
    if not m.final_norm:
        out.append(Desc(HwOp.STORE, src=Buf.X, base=Base.OUT, m=m.tokens, n=m.dim,
                        note="output tokens"))
    out.append(Desc(HwOp.END))
    if not check:
        return out
    ranges = desc_ranges(cfg)
    for pc, d in enumerate(out):
        check_desc(cfg, d, ranges, where=f"lower_program ({cfg.name}): descriptor {pc}")
    check_concurrency(cfg, out)
    if cfg.hw.kv_heads is not None:
        check_slots(cfg, out, meta)
    return out


# The descriptor fields that name an on-chip buffer, each served by its own client of the buffer
# bank (hw/top/top.py); ("GEMM", "res") is a GEMM's dst read back by a RESIDUAL / SCALED epilogue.
BUFFER_FIELDS = ((HwOp.LOAD, "dst"), (HwOp.STORE, "src"), (HwOp.GEMM, "src"), (HwOp.GEMM, "dst"),
                 (HwOp.GEMM, "res"), (HwOp.LAYERNORM, "src"), (HwOp.LAYERNORM, "dst"),
                 (HwOp.ATTENTION, "dst"), (HwOp.ROUTE, "src"), (HwOp.EXPERTS, "src"),
                 (HwOp.EXPERTS, "dst"))


def _buffer_field(d: Desc, op: HwOp, name: str) -> Buf | None:
    """The buffer ``d`` names in field (op, name), or None if ``d`` does not use that field."""
    if d.op != op:
        return None
    if name == "res":
        return Buf(d.dst) if d.epi != EpiMode.PLAIN else None
    return Buf(getattr(d, name))


@functools.lru_cache(maxsize=None)
def wired_buffers(cfg: Config) -> dict[tuple[HwOp, str], frozenset[Buf]]:
    """The buffers each of :data:`BUFFER_FIELDS` may name on ``cfg``'s hardware.

    ``hw.buffer_wiring == "full"``: every buffer. ``"program"``: the buffers the config's own
    frame program names there (:func:`lower_program`; the program does not depend on the weights
    or the task), so the bank wires each client to those memories only, and the sequencer
    (like :func:`check_desc`) refuses any other with ``BAD_FIELD``.
    """
    every = frozenset(Buf)
    if cfg.hw.buffer_wiring == "full":
        return {f: every for f in BUFFER_FIELDS}
    return program_buffers(lower_program(cfg, check=False))


def program_buffers(program: list[Desc]) -> dict[tuple[HwOp, str], frozenset[Buf]]:
    """The buffers ``program`` names in each of :data:`BUFFER_FIELDS` (what
    :func:`wired_buffers` wires with ``hw.buffer_wiring == "program"``, for a program the caller
    has already lowered)."""
    return {(op, name): frozenset(b for d in program
                                  if (b := _buffer_field(d, op, name)) is not None)
            for op, name in BUFFER_FIELDS}


def check_slots(cfg: Config, program: list[Desc], meta: dict[int, tuple[int, int]]) -> None:
    """Raise ValueError unless every read of the QKV buffer (Q, K, V memories) by an ATTENTION,
    and of the attention output in it by a GEMM, finds the value it needs: the column-level
    proof for ``hw.kv_heads`` (ATT in Q's columns, K / V reused per head).

    ``meta[pc] = (block, col)``: the block of descriptor ``pc`` and, for a GEMM into QKV, the
    logical QKV column (of 3 dim) its first output is. Each physical column holds a tag
    ``(kind, block, logical column)``; the descriptors' own fields (``col0d``, ``head0``,
    ``nheads``, :func:`kv_col0`) say which columns they touch.
    """
    md = cfg.model
    d3, hd = md.dim, md.head_dim
    holder: dict[int, tuple] = {}

    def need(pc, d, col, tag):
        if holder.get(col) != tag:
            raise ValueError(f"descriptor {pc} ({d.note or d.op.name}) reads QKV column {col} "
                             f"for {tag} but it holds {holder.get(col)}")

    for pc, d in enumerate(program):
        if pc not in meta:
            continue
        block, lcol = meta[pc]
        if d.op is HwOp.GEMM and d.src == Buf.QKV:
            for c in range(d.k):
                need(pc, d, c, ("ATT", block, c))
        if d.op is HwOp.GEMM and d.dst == Buf.QKV:
            for c in range(d.n):
                holder[d.col0d + c] = ("QKV", block, lcol + c)
        elif d.op is HwOp.ATTENTION:
            for h in range(d.head0, d.head0 + d.nheads):
                for c in range(hd):
                    need(pc, d, h * hd + c, ("QKV", block, h * hd + c))
                    for part in (1, 2):
                        need(pc, d, part * d3 + kv_col0(cfg, h, d.head0) + c,
                             ("QKV", block, part * d3 + h * hd + c))
                if d.dst == Buf.QKV:
                    for c in range(hd):
                        holder[h * hd + c] = ("ATT", block, h * hd + c)


def _footprint(cfg: Config, d: Desc) -> tuple[set, set]:
    """(reads, writes) of an on-chip descriptor as sets of (buffer, column) pairs (QKV columns
    0 .. 3 dim - 1). Rows are not told apart: every descriptor covers all token rows."""
    md = cfg.model
    cols = lambda buf, lo, n: {(Buf(buf), c) for c in range(lo, lo + n)}   # noqa: E731
    if d.op is HwOp.GEMM:
        reads = cols(d.src, 0, d.k)
        if d.epi != EpiMode.PLAIN:
            reads |= cols(d.dst, 0, d.n)
        return reads, cols(d.dst, d.col0d if d.dst == Buf.QKV else 0, d.n)
    if d.op is HwOp.ATTENTION:
        hd = md.head_dim
        heads = range(d.head0, d.head0 + d.nheads)
        reads = {(Buf.QKV, p * md.dim + h * hd + c) for p in range(3) for h in heads
                 for c in range(hd)}
        return reads, {(Buf(d.dst), h * hd + c) for h in heads for c in range(hd)}
    if d.op is HwOp.LAYERNORM:
        return cols(d.src, 0, md.dim), cols(d.dst, 0, md.dim)
    if d.op is HwOp.LOAD:
        return set(), cols(d.dst, 0, d.n)
    if d.op is HwOp.STORE:
        return cols(d.src, 0, d.n), set()
    raise ValueError(f"{d.op.name} cannot run concurrently")


def check_concurrency(cfg: Config, program: list[Desc]) -> None:
    """Raise ValueError unless every descriptor that may run beside a background ATTENTION
    (``concurrent``) is hazard-free with it: it writes nothing the attention reads or writes and
    reads nothing it writes. The sequencer's rule (hw/top/sequencer.py): a background ATTENTION
    starts when the attention unit is idle and lets the sequencer go on; the descriptors after
    it start at once if they are marked ``concurrent``, otherwise when the attention is done."""
    running = None                 # (pc, reads, writes) of the background attention
    for pc, d in enumerate(program):
        if d.background and d.op is not HwOp.ATTENTION:
            raise ValueError(f"descriptor {pc} ({d.op.name}): only ATTENTION runs in the "
                             f"background")
        if running is not None and d.concurrent and d.op is not HwOp.ATTENTION:
            reads, writes = _footprint(cfg, d)
            apc, areads, awrites = running
            clash = (writes & (areads | awrites)) | (reads & awrites)
            if clash:
                buf, col = min(clash)
                raise ValueError(f"descriptor {pc} ({d.note or d.op.name}) runs beside the "
                                 f"attention of descriptor {apc} but both touch "
                                 f"{buf.name} column {col}")
            # each memory has one read and one write port, shared by the clients (an OR)
            ports = ({("read", b) for b, _ in reads} & {("read", b) for b, _ in areads}
                     | {("write", b) for b, _ in writes} & {("write", b) for b, _ in awrites})
            if ports:
                kind, buf = min(ports)
                raise ValueError(f"descriptor {pc} ({d.note or d.op.name}) runs beside the "
                                 f"attention of descriptor {apc} but both use the {kind} port "
                                 f"of {buf.name}")
            continue
        running = None             # not concurrent: waits until the attention is done
        if d.op is HwOp.ATTENTION and d.background:
            running = (pc, *_footprint(cfg, d))


def check_aliasing(program: list[Instr], cfg: Config | None = None) -> None:
    """Raise if a logical buffer is read after an alias sharing its physical slot overwrote it
    (physical buffers of ``cfg``, :func:`physical`; ``None``: :data:`PHYSICAL`)."""
    PHYSICAL = physical(cfg)                     # noqa: N806
    holder: dict[Buf, str] = {}
    for ins in program:
        reads = [ins.src] if ins.src else []
        if ins.op is Op.GEMM and ins.epilogue is Epilogue.RESIDUAL or ins.op is Op.EXPERTS:
            reads.append(ins.dst)
        for r in reads:
            if r == "IMG":
                continue                 # loaded by EMBED itself
            if holder.get(PHYSICAL[r], r) != r and not (
                    cfg is not None and cfg.hw.kv_heads is not None
                    and r == "QKV" and holder[PHYSICAL[r]] == "ATT"):
                # (with hw.kv_heads ATT and QKV share the Q columns head by head: proven per
                # column on the lowered program by check_slots)
                raise ValueError(f"{ins}: reads {r} but its physical buffer "
                                 f"{PHYSICAL[r].name} now holds {holder[PHYSICAL[r]]}")
        if ins.dst:
            holder[PHYSICAL[ins.dst]] = ins.dst


# ---------------------------------------------------------------------------------------------
# Memory image
# ---------------------------------------------------------------------------------------------

def _align(x: int, a: int = REGION_ALIGN) -> int:
    return -(-x // a) * a


@dataclass(frozen=True)
class MemoryLayout:
    """Byte addresses of the regions of a frame's external-memory image."""
    weights: int
    program: int
    image: int
    out: int
    size: int
    n_desc: int
    embed_pos: int           # offset of the cls-pre-added position table from ``program``
    out_bytes: int
    weight_bytes: int

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def memory_size(layout: MemoryLayout, cfg: Config) -> int:
    """Bytes of memory a frame needs: the layout rounded up to whole bus beats."""
    w = cfg.hw.mem_bytes_per_cycle
    return -(-layout.size // w) * w


def embed_pos_table(cfg: Config, qparams: dict) -> np.ndarray:
    """pos_embed (tokens, dim) with the cls token pre-added into row 0 (saturating, act)."""
    m = cfg.model
    pos = np.asarray(qparams["pos_embed"], dtype=np.int64).reshape(m.tokens, m.dim).copy()
    cls = np.asarray(qparams["cls_token"], dtype=np.int64).reshape(m.dim)
    pos[0] = saturate(pos[0] + cls, cfg.num.act)
    return pos


def image_bytes(cfg: Config, image_q) -> bytes:
    """Quantized (C, H, W) image in the activation storage dtype, little-endian, CHW order."""
    m = cfg.model
    img = np.asarray(image_q, dtype=np.int64)
    want = (m.image_channels, m.image_height, m.image_width)
    if img.shape != want:
        raise ValueError(f"image shape {img.shape} does not match the config's {want}")
    return img.astype(cfg.num.act.numpy_dtype).tobytes()


def build_memory_image(cfg: Config, qparams: dict, image_q, task: int = 0, *,
                       base: int = 0) -> tuple[bytes, MemoryLayout]:
    """External memory of one frame: weight image, program (+ constants), input image, output.

    ``task`` is not stored (the program is task-independent; TASK is a CSR) but is validated.
    ``base``: byte address of the image in the memory map (regions are 64-byte aligned).
    """
    if not 0 <= task < cfg.model.tasks:
        raise ValueError(f"task {task} out of range: the config has {cfg.model.tasks} tasks")
    wbytes, entries = build_image(cfg, qparams)
    act = cfg.num.act
    m = cfg.model
    weights = base
    program = _align(weights + len(wbytes))
    n_desc = len(lower_program(cfg, entries))
    embed_off = _align(n_desc * DESC_BYTES)
    descs = lower_program(cfg, entries, embed_pos_addr=embed_off)
    epos = embed_pos_table(cfg, qparams).astype(act.numpy_dtype).tobytes()
    image = _align(program + embed_off + len(epos))
    img = image_bytes(cfg, image_q)
    out = _align(image + len(img))
    out_bytes = m.tokens * m.dim * act.storage_bytes
    size = _align(out + out_bytes)
    mem = bytearray(size - base)
    mem[weights - base:weights - base + len(wbytes)] = wbytes
    prog = b"".join(encode_desc(d) for d in descs)
    mem[program - base:program - base + len(prog)] = prog
    mem[program - base + embed_off:program - base + embed_off + len(epos)] = epos
    mem[image - base:image - base + len(img)] = img
    layout = MemoryLayout(weights=weights, program=program, image=image, out=out, size=size,
                          n_desc=n_desc, embed_pos=embed_off, out_bytes=out_bytes,
                          weight_bytes=len(wbytes))
    return bytes(mem), layout


def read_output(cfg: Config, mem: bytes, layout: MemoryLayout, base: int = 0) -> np.ndarray:
    """Output tokens (tokens, dim) int64 from a memory image."""
    m = cfg.model
    dt = cfg.num.act.numpy_dtype
    raw = bytes(mem[layout.out - base:layout.out - base + layout.out_bytes])
    return np.frombuffer(raw, dtype=dt).astype(np.int64).reshape(m.tokens, m.dim)


# ---------------------------------------------------------------------------------------------
# Reference interpreter of a memory image (the sequencer's specification)
# ---------------------------------------------------------------------------------------------

def _read_vals(mem, addr: int, count: int, fmt) -> np.ndarray:
    dt = fmt.numpy_dtype
    raw = bytes(mem[addr:addr + count * dt.itemsize])
    if len(raw) != count * dt.itemsize:
        raise ValueError(f"read of {count} values at {addr:#x} runs past the memory")
    return np.frombuffer(raw, dtype=dt).astype(np.int64)


def _patch_tile(cfg: Config, mem, addr: int, patch0: int, count: int) -> np.ndarray:
    """Patch rows ``patch0 .. patch0 + count - 1`` (whole rows of patches) of the C x H x W image
    at ``addr``, read as the LOAD path does: per channel, the contiguous image rows of those
    patches (``patch0 * P * P`` values in, channels ``H * W`` values apart)."""
    md = cfg.model
    P, gw, ch = md.patch, md.grid[1], md.image_channels
    prows = count // gw
    sa = cfg.num.act.storage_bytes
    plane = md.image_height * md.image_width
    img = np.stack([_read_vals(mem, addr + (c * plane + patch0 * P * P) * sa, count * P * P,
                               cfg.num.act).reshape(prows * P, md.image_width)
                    for c in range(ch)])
    return (img.reshape(ch, prows, P, gw, P).transpose(1, 3, 0, 2, 4)
            .reshape(count, ch * P * P))


def run_image(cfg: Config, mem: bytes, layout: MemoryLayout, task: int,
              max_desc: int = 100_000) -> tuple[np.ndarray, list[Desc]]:
    """Execute the program of a memory image with the golden operators.

    Returns (output tokens read back from the out region, executed descriptors). Every operand
    is read from ``mem`` through the descriptor addresses, exactly as the hardware does.
    """

    md, num = cfg.model, cfg.num
    mem = bytearray(mem)
    d, hd = md.dim, md.head_dim
    bases = {Base.WEIGHTS: layout.weights, Base.PROGRAM: layout.program, Base.IMAGE: layout.image,
             Base.OUT: layout.out}
    z = lambda cols: np.zeros((md.tokens, cols), dtype=np.int64)  # noqa: E731
    hrows = cfg.h_rows
    bufs = {Buf.X: z(d), Buf.XN: z(d), Buf.QKV: z(3 * d),
            Buf.H: np.zeros((hrows, max(md.mlp_hidden, md.expert_hidden, md.patch_dim)),
                            dtype=np.int64)}
    routing = None
    done = []
    wb = layout.weights
    act_gelu = cfg.hw.gelu_on_reads          # a descriptor's gelu bit: on its activations

    def matrix(addr, k, n, row_stride):
        rows = [_read_vals(mem, wb + addr + r * row_stride, n, num.weight) for r in range(k)]
        return np.stack(rows).T          # (N, K) PyTorch layout

    for pc in range(max_desc):
        a = layout.program + pc * DESC_BYTES
        ds = decode_desc(bytes(mem[a:a + DESC_BYTES]))
        done.append(ds)
        if ds.op is HwOp.END:
            break
        if ds.op is HwOp.LOAD:
            if ds.mode == LoadMode.PATCHIFY:
                rows = _patch_tile(cfg, mem, bases[Base(ds.base)] + ds.addr_a, ds.patch0, ds.m)
            else:
                rows = _read_vals(mem, bases[Base(ds.base)] + ds.addr_a, ds.m * ds.n,
                                  num.act).reshape(ds.m, ds.n)
            bufs[Buf(ds.dst)][ds.row0d:ds.row0d + ds.m, :ds.n] = rows
        elif ds.op is HwOp.GEMM:
            x = bufs[Buf(ds.src)][ds.row0s:ds.row0s + ds.m, :ds.k]
            w = matrix(ds.addr_a, ds.k, ds.n, ds.stride_a)
            b = _read_vals(mem, wb + ds.addr_b, ds.n, num.bias) if ds.bias else None
            if ds.gelu and act_gelu:           # hw.gelu_site "act": on the activation reads
                x = gelu_pwl(cfg, x)
            y = linear(cfg, x, w, b, gelu=bool(ds.gelu) and not act_gelu)
            dst = bufs[Buf(ds.dst)]
            rows = slice(ds.row0d, ds.row0d + ds.m)
            c0 = ds.col0d if ds.dst == Buf.QKV else 0
            if ds.epi == EpiMode.RESIDUAL:
                y = residual_add(cfg, dst[rows, c0:c0 + ds.n], y)
            dst[rows, c0:c0 + ds.n] = y
        elif ds.op is HwOp.LAYERNORM:
            g = _read_vals(mem, wb + ds.addr_a, ds.n, num.ln_gamma)
            be = _read_vals(mem, wb + ds.addr_b, ds.n, num.act)
            bufs[Buf(ds.dst)][:ds.m, :ds.n] = layernorm(cfg, bufs[Buf(ds.src)][:ds.m, :ds.n], g,
                                                        be)
        elif ds.op is HwOp.ATTENTION:
            qkv = bufs[Buf.QKV]
            for h in range(ds.head0, ds.head0 + ds.nheads):
                kv = kv_col0(cfg, h, ds.head0)
                cols = [slice(h * hd, (h + 1) * hd)] + [slice(j * d + kv, j * d + kv + hd)
                                                       for j in (1, 2)]
                bufs[Buf(ds.dst)][:ds.m, cols[0]] = attention_head(
                    cfg, *(qkv[:ds.m, c] for c in cols))
        elif ds.op is HwOp.ROUTE:
            gate = matrix(ds.addr_a + task * ds.stride_a, ds.k, ds.n, ds.n * num.weight.storage_bytes)
            routing = route(cfg, bufs[Buf(ds.src)][:ds.m, :ds.k], gate)
        elif ds.op is HwOp.EXPERTS:
            xn, x = bufs[Buf(ds.src)], bufs[Buf(ds.dst)]
            sw = num.weight.storage_bytes
            for q in expert_queues(cfg, routing):
                e0 = ds.addr_a + q.expert * ds.addr_b
                w1 = matrix(e0, ds.k, ds.n, ds.n * sw)
                b1 = _read_vals(mem, wb + e0 + ds.addr_c, ds.n, num.bias)
                w2 = matrix(e0 + ds.addr_d, ds.n, ds.k, ds.k * sw)
                b2 = _read_vals(mem, wb + e0 + ds.addr_e, ds.k, num.bias)
                # the queue in chunks of at most H's rows (the prefetcher loads both matrices
                # again for each chunk)
                T = cfg.h_rows
                for c0 in range(0, len(q.tokens), T):
                    tok, sc = q.tokens[c0:c0 + T], q.weights[c0:c0 + T]
                    hb = bufs[Buf.H]
                    # H holds fc1's output before GELU with hw.gelu_site "act"
                    hb[:len(tok), :ds.n] = linear(cfg, xn[tok, :ds.k], w1, b1,
                                                  gelu=not act_gelu)
                    h = hb[:len(tok), :ds.n]
                    y = linear(cfg, gelu_pwl(cfg, h) if act_gelu else h, w2, b2)
                    x[tok, :ds.k] = scaled_accumulate(cfg, x[tok, :ds.k], y, sc)
        elif ds.op is HwOp.STORE:
            vals = bufs[Buf(ds.src)][:ds.m, :ds.n].astype(num.act.numpy_dtype).tobytes()
            o = bases[Base(ds.base)] + ds.addr_a
            mem[o:o + len(vals)] = vals
        else:
            raise ValueError(f"unknown op {ds.op}")
    else:
        raise ValueError(f"no END within {max_desc} descriptors")
    return read_output(cfg, mem, layout), done
