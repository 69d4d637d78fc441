"""Cycle model of the MoE path: router, patch reorder, expert-weight prefetch and the MoE layer.

Models :class:`host.bench.moe_layer.MoELayer` (and its blocks) for one MoE layer of one frame, given the
number of tokens of each chosen expert (ascending expert order, as the reorder unit lists them).
No Amaranth import: the same numbers feed the frame model and the benchmark
(``python -m host.bench.moe``). tests/sim/test_cycles_moe.py checks it against the RTL.

Phases (cycles counted by the layer's ``cycles`` counter, all streams always valid / ready):

1. LOAD: ``tokens * max(dim / R, dim / C) + 1``.
2. ROUTE: the gate GEMM (``sim.cycles.gemm.gemm_cycles`` shape, its first tile delayed by the
   first gate weights' DRAM latency) whose output rows are paced by the router: stage A takes E
   cycles per token, stage B ``q_bits + k + 1`` (the reciprocal divider dominates for small E),
   so a token leaves every ``max(E, q_bits + k + 1)`` cycles once stage B is the bottleneck. A
   token-level simulation of the router's two stages (:func:`router_accept_times`) gives the cycle
   the gate GEMM's last row is accepted.
3. EXPERTS: an event model of the ping/pong prefetcher (:func:`prefetch_schedule`): load j (fc1 /
   fc2 of the chosen experts in order) goes to buffer j mod 2, starts when its buffer is released
   and the DMA has issued the previous load, streams ``beats_j`` beats at one per cycle after
   ``mem_latency`` (in-order service, back to back with the previous load's data), and is granted
   the cycle after its last beat; the consumer takes grant j when it is free, computes
   (fc1: ``gemm_cycles + M_e + FC1_OVERHEAD`` including the queue copy; fc2:
   ``gemm_cycles + FC2_OVERHEAD``; both + the top level's job stage, ``job_stage``), releases,
   and waits one cycle for the next grant. A *stall* is a cycle the consumer waits for a grant; the first one (routing drain + the first matrix's
   load) can never be hidden, every later one is bandwidth-bound prefetch.
   With streamed expert weights (``cfg.hw.expert_weights == "stream"``, top level only:
   :func:`stream_schedule`) there is no load: the first grant follows the address table and the
   routing drain, every later one is waiting when the consumer comes back, and each expert GEMM
   reads its weights from memory like a dense layer (:func:`streamed_gemm_cycles`).
4. OUTPUT: ``tokens * dim / C + 1``.

Bytes per frame and layer: the task's gate tensor plus, for each chosen expert, its two weight
matrices and two bias vectors (rounded to whole beats); unchosen experts cost nothing. With a
row-tiled H (``hw.hidden_rows``) an expert is loaded once per chunk of at most that many tokens
(:func:`expert_chunks`), each chunk a grant pair of the model above.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

from sim.config import Config
from sim.cycles.gemm import act_read_extra, gemm_cycles, gemm_tiles

__all__ = ["load_geometry", "router_q_bits", "router_cycles_per_token", "router_latency",
           "sliced_router_times",
           "router_accept_times", "prefetch_schedule", "moe_layer_cycles", "MoeCycles",
           "PrefetchSchedule", "tokens_per_expert", "expert_chunks", "hiding_bandwidth",
           "FC1_OVERHEAD", "FC2_OVERHEAD", "EXP2_LATENCY", "stream_schedule",
           "streamed_gemm_cycles"]

EXP2_LATENCY = 3        # hw.attention.exp2.Exp2.latency (checked by tests/sim/test_cycles_moe.py)
FC1_OVERHEAD = 4        # grant -> release beyond gemm + queue copy: q_req, cmd, o_done, release
FC2_OVERHEAD = 3        # grant -> release beyond gemm: cmd, o_done, release
# Streamed expert weights (top level, hw/moe/expert_stream.py); measured on the tiny frame.
STREAM_COMPUTE_EXTRA = 10   # GEMM job -> busy falls beyond gemm_cycles + mem_latency (the first
#                             weight rows' trip) while the weight rows keep ahead of the tiles
STREAM_BOUND_EXTRA = 19     # ... beyond mem_latency + M + the weight and bias beats when they
#                             do not (few tokens, narrow memory)
STREAM_TABLE = 4            # EXPERTS decode -> first grant taken beyond the 4E table writes
STREAM_LIST = 9             # the expert list ready -> its first grant taken


def load_geometry(cfg: Config, *, check: bool = True, beat: int | None = None) -> dict:
    """Sizes of one expert-matrix load and of the prefetch buffers (shared with the RTL).

    ``beat`` overrides ``cfg.hw.mem_bytes_per_cycle`` (analytic sweeps); ``check=False`` skips
    the RTL's divisibility requirements (any bandwidth in the analytic model).
    """
    m, n = cfg.model, cfg.num
    C = cfg.hw.array_cols
    W = cfg.hw.mem_bytes_per_cycle if beat is None else beat
    sw, sb = n.weight.storage_bytes, n.bias.storage_bytes
    mats = [(m.dim, m.expert_hidden), (m.expert_hidden, m.dim)]      # (K, N) of fc1, fc2
    uw, ub = C * sw, C * sb
    if check:
        for _, nn in mats:
            if nn % C:
                raise ValueError(f"ExpertPrefetcher: matrix width {nn} is not a multiple of "
                                 f"array_cols {C}")
        for u, what in ((uw, "weight"), (ub, "bias")):
            if max(u, W) % min(u, W):
                raise ValueError(f"ExpertPrefetcher: {what} group of {u} bytes and {W}-byte "
                                 f"beats do not divide each other")
    ww, wb = max(W, uw), max(W, ub)
    w_beats = [math.ceil(k * nn * sw / W) for k, nn in mats]
    b_beats = [math.ceil(nn * sb / W) for _, nn in mats]
    return dict(C=C, W=W, sw=sw, sb=sb, uw=uw, ub=ub, ww=ww, wb=wb, w_beats=w_beats,
                b_beats=b_beats,
                w_words=max(math.ceil(b * W / ww) for b in w_beats),
                b_words=max(math.ceil(b * W / wb) for b in b_beats),
                w_groups=max(k * nn for k, nn in mats) // C,
                b_groups=max(nn for _, nn in mats) // C,
                bytes=[(w + b) * W for w, b in zip(w_beats, b_beats)],
                gate_beats=math.ceil(m.dim * m.experts * sw / W))


# ------------------------------------------------------------------------------------------
# Router
# ------------------------------------------------------------------------------------------

def router_q_bits(cfg: Config) -> int:
    """Quotient bits of the router's reciprocal divider (one per cycle)."""
    return cfg.num.recip_frac + 2


def router_cycles_per_token(cfg: Config) -> int:
    return max(cfg.model.experts, router_q_bits(cfg) + cfg.model.top_k + 1)


def router_latency(cfg: Config) -> int:
    """Accept edge of a token to its output transfer edge, router otherwise idle."""
    return cfg.model.experts + 4 + EXP2_LATENCY + router_q_bits(cfg) + cfg.model.top_k


def router_accept_times(cfg: Config, offers: list[int],
                        slice_accepts: list | None = None) -> tuple[list[int], list[int]]:
    """(accept cycles, output cycles) of tokens offered to the router at ``offers`` (cycles).

    A token offered at cycle c stays offered until accepted (``offers`` must be non-decreasing
    and are adjusted to one after the previous accept). Stage A (E cycles per token, elements in
    a frozen-on-stall pipeline) hands a token to stage B ``E + 5`` A-cycles after accepting it;
    stage B takes a new token at most every ``q_bits + k + 1`` cycles; the output transfers
    ``q_bits + k + 2`` cycles after the hand-off (the reorder unit is never the bottleneck).

    With ``slice_accepts`` (a list, filled here) the tokens pass a register slice first
    (hw/mem/stream_slice.py: two entries, latency 1): token i enters it once offered, after
    token i - 1, and once token i - 2 has left it (the skid register frees the cycle after the
    router takes a beat); the router sees it from the next cycle.
    """
    E, k, q = cfg.model.experts, cfg.model.top_k, router_q_bits(cfg)
    hand_after = E + 2 + EXP2_LATENCY           # A-cycles from accept to the hand-off cycle
    T = len(offers)
    accepts, outs = [], []
    a_time = 0                                   # A-clock (advances only when en)
    alpha = []                                   # A-time of each accept
    handed = 0
    b_free_at = 0
    c = 0
    next_accept_a = 0                            # A-time at which the sequencer is free
    while handed < T:
        done_a = handed < len(alpha) and alpha[handed] + hand_after == a_time
        b_free = c >= b_free_at
        en = (not done_a) or b_free
        if en:
            if done_a:
                b_free_at = c + 1 + q + k
                outs.append(c + q + k + 2)
                handed += 1
            i = len(accepts)
            if i < T and a_time >= next_accept_a:
                offer = offers[i]
                if slice_accepts is not None:
                    if len(slice_accepts) == i:        # accepts[i - 2] is known by now
                        slice_accepts.append(max(
                            offer, slice_accepts[-1] + 1 if slice_accepts else 0,
                            accepts[i - 2] + 1 if i >= 2 else 0))
                    offer = slice_accepts[i] + 1
                offer = max(offer, accepts[-1] + 1 if accepts else 0)
                if c >= offer:
                    accepts.append(c)
                    alpha.append(a_time)
                    next_accept_a = a_time + E
            a_time += 1
        c += 1
    return accepts, outs


# ------------------------------------------------------------------------------------------
# Prefetch + expert compute
# ------------------------------------------------------------------------------------------

@dataclass
class PrefetchSchedule:
    """Per-load timeline of the EXPERTS phase (cycles relative to the list being available)."""

    start: list[int] = field(default_factory=list)      # load starts (table read)
    data_first: list[int] = field(default_factory=list)
    grant: list[int] = field(default_factory=list)      # grant valid
    take: list[int] = field(default_factory=list)       # consumer takes the grant
    release: list[int] = field(default_factory=list)
    stall: list[int] = field(default_factory=list)      # consumer wait before each take

    @property
    def end(self) -> int:
        return self.release[-1] if self.release else 0


def expert_chunks(cfg: Config, counts: list[int]) -> tuple[list[int], list[int]]:
    """(tokens of each grant pair, queue length copied for it): with a row-tiled H
    (``hw.hidden_rows`` = T < tokens) each expert's queue is worked through in chunks of at most
    T tokens, fc1 and fc2 loaded again for each; the whole queue streams past every chunk's
    copy."""
    if not cfg.h_tiled:
        return list(counts), list(counts)
    T = cfg.h_rows
    chunks, queues = [], []
    for c in counts:
        for c0 in range(0, c, T):
            chunks.append(min(T, c - c0))
            queues.append(c)
    return chunks, queues


def matrix_compute_cycles(cfg: Config, m_e: int, matrix: int, queue: int | None = None,
                          job_stage: int = 0) -> int:
    """Grant-to-release cycles of one expert matrix on the GEMM engine (MoE layer sequencer);
    ``queue``: the queue entries fc1 copies (default ``m_e``, the whole queue); ``job_stage``:
    the top level's job register (:func:`sim.cycles.jobs.job_stage_cycles`; the stand-alone
    layer has none)."""
    md = cfg.model
    if matrix == 0:
        return (gemm_cycles(cfg, m_e, md.dim, md.expert_hidden) + act_read_extra(cfg)
                + (m_e if queue is None else queue) + FC1_OVERHEAD + job_stage)
    return (gemm_cycles(cfg, m_e, md.expert_hidden, md.dim) + act_read_extra(cfg) + FC2_OVERHEAD
            + job_stage)


def prefetch_schedule(cfg: Config, counts: list[int], *, list_ready: int = 0,
                      consumer_ready: int = 0, beat: int | None = None,
                      latency: int | None = None, compute=None,
                      queues: list[int] | None = None, job_stage: int = 0) -> PrefetchSchedule:
    """Event model of the ping/pong prefetcher feeding the expert GEMMs.

    ``counts``: tokens of each chosen expert, in processing order. ``list_ready``: cycle the
    prefetcher can start the first load; ``consumer_ready``: cycle the consumer starts waiting
    for the first grant. ``beat`` / ``latency`` override the memory's bytes per cycle and
    latency (analytic sweeps); ``compute(m_e, matrix)`` overrides the per-matrix compute time.
    """
    h = cfg.hw
    g = load_geometry(cfg, check=beat is None, beat=beat)
    L = max(h.mem_latency if latency is None else latency, 2)    # OnChipMemory.MIN_LATENCY
    B, D = h.mem_max_burst, h.mem_max_outstanding
    # Sustained beats per cycle: D bursts of B beats in flight must cover the latency.
    rate = min(1.0, D * B / (L + B))
    queues = queues or counts
    if compute is None:
        def compute_at(j, mt):
            return matrix_compute_cycles(cfg, counts[j], mt, queues[j], job_stage)
    else:
        def compute_at(j, mt):
            return compute(counts[j], mt)
    s = PrefetchSchedule()
    issue_free = list_ready
    data_end_prev = -1
    cons_free = consumer_ready
    for j in range(2 * len(counts)):
        mt = j % 2
        beats = g["w_beats"][mt] + g["b_beats"][mt]
        start = issue_free
        if j >= 2:
            start = max(start, s.release[j - 2] + 1)
        first = max(start + 2 + L, data_end_prev + 1)
        dur = math.ceil(beats / rate)
        data_end = first + dur - 1
        nb = math.ceil(g["w_beats"][mt] / B)
        # The DMA accepts the bias command once its last weight burst was accepted, which the
        # memory allows once burst nb - 1 - D completed.
        issue_free = max(start + 4 + nb, first + (nb - D) * B) + 1
        data_end_prev = data_end
        grant = data_end + 1
        take = max(grant, cons_free)
        s.start.append(start)
        s.data_first.append(first)
        s.grant.append(grant)
        s.take.append(take)
        s.stall.append(take - cons_free)
        rel = take + compute_at(j // 2, mt)
        s.release.append(rel)
        cons_free = rel + 1
    return s


def streamed_gemm_cycles(cfg: Config, m: int, k: int, n: int) -> int:
    """Job handshake to the cycle the GEMM path's ``busy`` falls, for an M x K x N GEMM whose
    weights and biases the path reads from memory (streamed expert weights).

    The larger of two bounds: the engine's own time (:func:`sim.cycles.gemm.gemm_cycles`) behind
    the first weight rows' memory trip, and the weight stream's: ``nt x K`` rows of
    ``C x storage`` bytes, one burst each, at the rate the memory's outstanding bursts sustain
    (``min(1, outstanding x beats / (latency + beats))`` beats per cycle), plus the bias beats,
    then the last tile's M beats. The transition between the two (M a little above the rows'
    pace) costs a few cycles more than either bound; see docs/moe.md.
    """
    h, num = cfg.hw, cfg.num
    W, C = h.mem_bytes_per_cycle, h.array_cols
    L = max(h.mem_latency, 2)                                   # OnChipMemory.MIN_LATENCY
    kt, nt = gemm_tiles(cfg, k, n)
    row_beats = math.ceil(C * num.weight.storage_bytes / W)
    rate = min(1.0, h.mem_max_outstanding * row_beats / (L + row_beats))
    bias_beats = nt * math.ceil(C * num.bias.storage_bytes / W)
    compute = gemm_cycles(cfg, m, k, n) + L + STREAM_COMPUTE_EXTRA
    stream = L + m + math.ceil(nt * k * row_beats / rate) + bias_beats + STREAM_BOUND_EXTRA
    return max(compute, stream)


def stream_schedule(cfg: Config, counts: list[int], *, list_ready: int,
                    decode: int, queues: list[int] | None = None,
                    job_stage: int = 0) -> PrefetchSchedule:
    """Grants and expert GEMMs of the EXPERTS descriptor with streamed weights (top level).

    ``decode``: the cycle EXPERTS is decoded; the sequencer writes the 4E-entry address table,
    then takes the first grant once the expert list is ready (``list_ready``). Per matrix: the
    grant is taken, the queue copied (fc1: 2 + M_e cycles; fc2: 1), the GEMM runs
    (:func:`streamed_gemm_cycles`), the grant is released the cycle after ``busy`` fell, and
    the next grant (always ready by then) is taken the cycle after. ``queues``: the queue
    length each fc1 copies (default ``counts``; a row-tiled H copies the whole queue for each
    chunk, :func:`expert_chunks`).
    """
    md = cfg.model
    queues = queues or counts
    s = PrefetchSchedule()
    take = max(decode + 4 * md.experts + STREAM_TABLE, list_ready + STREAM_LIST)
    cons_free = take
    for j in range(2 * len(counts)):
        me, mt = counts[j // 2], j % 2
        if j:
            take = cons_free
        shape = (md.dim, md.expert_hidden) if mt == 0 else (md.expert_hidden, md.dim)
        job = take + (queues[j // 2] + 2 if mt == 0 else 1)
        rel = job + job_stage + streamed_gemm_cycles(cfg, me, *shape) + 1
        s.start.append(job)
        s.data_first.append(job)
        s.grant.append(take)
        s.take.append(take)
        s.stall.append(take - (decode if j == 0 else cons_free))
        s.release.append(rel)
        cons_free = rel + 1
    return s


# ------------------------------------------------------------------------------------------
# The whole MoE layer
# ------------------------------------------------------------------------------------------

@dataclass
class MoeCycles:
    load: int
    route: int
    experts: int
    output: int
    stall: int              # every consumer wait for a grant (the layer's stall_cycles)
    first_wait: int         # the part of ``stall`` before the first grant (never hideable)
    bytes: int              # bytes read from memory (gate + chosen experts)
    gemm: int               # pure GEMM cycles of the expert matrices
    schedule: PrefetchSchedule | None = None

    @property
    def total(self) -> int:
        return self.load + self.route + self.experts + self.output

    @property
    def prefetch_stall(self) -> int:
        """Stalls after the first grant: the weight loading the double buffer failed to hide."""
        return self.stall - self.first_wait


def sliced_router_times(cfg: Config, offers: list[int]) -> tuple[list[int], list[int], list[int]]:
    """(slice accepts, router accepts, router outputs) of tokens offered at ``offers`` to the
    register slice in front of the router, as the top level has it (see
    :func:`router_accept_times`)."""
    s_acc = []
    racc, outs = router_accept_times(cfg, offers, slice_accepts=s_acc)
    return s_acc, racc, outs


def _gate_route(cfg: Config, beat: int, latency: int,
                router_slices: bool = False) -> tuple[int, int]:
    """(ROUTE cycles, cycle of the last router output) relative to the start of ROUTE.
    ``router_slices``: the top level's register slices before and after the router."""
    md, hw = cfg.model, cfg.hw
    R = hw.array_rows
    T = md.tokens
    kt, nt = gemm_tiles(cfg, md.dim, md.experts)
    # beats per weight row of the first column tile (at most C of the E gate columns)
    rows_per = max(1, math.ceil(min(md.experts, hw.array_cols) * cfg.num.weight.storage_bytes
                                / beat))
    cmd = 2                                   # GATE_CMD, GEMM_CMD: engine cmd handshake edge
    # The first tile waits for R weight rows from memory (latency, then rows_per beats each).
    delay = max(0, latency + (R - 1) * rows_per + 1 - R)
    first_out = cmd + gemm_cycles(cfg, T, md.dim, md.experts) - (T - 1) + delay
    offers = [first_out + i for i in range(T)]
    if router_slices:
        accepts, _, outs = sliced_router_times(cfg, offers)
        return accepts[-1] + 2, outs[-1] + 1      # + the output slice's cycle
    accepts, outs = router_accept_times(cfg, offers)
    route = accepts[-1] + 2                   # o_done registered, RUN -> EXP_WAIT
    return route, outs[-1]


def moe_layer_cycles(cfg: Config, counts: list[int], *, beat: int | None = None,
                     latency: int | None = None, router_slices: bool = False,
                     expert_weights: str = "prefetch", route_gap: int = 0,
                     job_stage: int = 0) -> MoeCycles:
    """Cycles and bytes of one MoE layer whose chosen experts have ``counts`` tokens each.
    ``router_slices``: as in the top level (hw/top/top.py), a register slice on the router's
    input and output (the stand-alone MoE layer, host/bench/moe_layer.py, has none).
    ``expert_weights``: ``"prefetch"`` (the ping/pong prefetcher: the stand-alone layer, and the
    top level by default) or ``"stream"`` (the top level with ``hw.expert_weights = "stream"``;
    no ``beat`` / ``latency`` sweep): then ``experts`` is the EXPERTS descriptor's whole time,
    decoded ``route_gap`` cycles after ``route`` (the ROUTE descriptor's own overhead); with the
    prefetcher it is the layer's EXPERTS phase. ``job_stage``: cycles of the top level's job
    register per expert GEMM (:func:`sim.cycles.jobs.job_stage_cycles`; 0 stand-alone)."""
    if expert_weights == "stream" and (beat is not None or latency is not None):
        raise ValueError("moe_layer_cycles: the beat / latency sweep models the prefetcher only")
    md, hw = cfg.model, cfg.hw
    R, C = hw.array_rows, hw.array_cols
    T, D = md.tokens, md.dim
    W = hw.mem_bytes_per_cycle if beat is None else beat
    L = max(hw.mem_latency if latency is None else latency, 2)
    g = load_geometry(cfg, check=beat is None, beat=W)
    load = T * max(D // R, D // C) + 1
    route, last_out = _gate_route(cfg, W, L, router_slices)
    # After the last routing beat: k reorder writes, the list beat, the prefetcher's IDLE.
    list_ready = last_out + md.top_k + 2
    counts, queues = expert_chunks(cfg, counts)     # one grant pair per chunk
    if expert_weights == "stream":
        decode = route + route_gap
        s = stream_schedule(cfg, counts, list_ready=list_ready, decode=decode, queues=queues,
                            job_stage=job_stage)
        experts = s.end + 2 - decode          # RELEASE, then the next decode
        nbytes = g["gate_beats"] * W + sum(_stream_bytes(cfg, W)) * len(counts)
    else:
        s = prefetch_schedule(cfg, counts, list_ready=list_ready, consumer_ready=route, beat=W,
                              latency=L, queues=queues, job_stage=job_stage)
        experts = s.end - route + 1
        nbytes = g["gate_beats"] * W + sum(g["bytes"]) * len(counts)
    output = T * (D // C) + 1
    gemm = sum(gemm_cycles(cfg, c, md.dim, md.expert_hidden)
               + gemm_cycles(cfg, c, md.expert_hidden, md.dim) for c in counts)
    return MoeCycles(load=load, route=route, experts=experts, output=output,
                     stall=sum(s.stall), first_wait=s.stall[0] if s.stall else 0, bytes=nbytes,
                     gemm=gemm, schedule=s)


def _stream_bytes(cfg: Config, W: int) -> list[int]:
    """Bytes a streamed fc1 / fc2 reads: every weight row (C values per column tile) and bias
    tile rounded up to whole beats, as the GEMM path's readers fetch them."""
    md, num, C = cfg.model, cfg.num, cfg.hw.array_cols
    out = []
    for k, n in ((md.dim, md.expert_hidden), (md.expert_hidden, md.dim)):
        nt = math.ceil(n / C)
        out.append(W * nt * (k * math.ceil(C * num.weight.storage_bytes / W)
                             + math.ceil(C * num.bias.storage_bytes / W)))
    return out


def tokens_per_expert(cfg: Config, mode: str = "even") -> list[int]:
    """Tokens of each chosen expert for the analysis: ``even`` spreads tokens x k assignments
    over all experts; ``half`` over half of them (a task using only half its experts)."""
    md = cfg.model
    n = md.experts if mode == "even" else max(md.top_k, md.experts // 2)
    total = md.tokens * md.top_k
    per, extra = divmod(total, n)
    return [per + (e < extra) for e in range(n)]


def hiding_bandwidth(cfg: Config, counts: list[int], candidates) -> int | None:
    """Smallest bytes/cycle in ``candidates`` at which every prefetch after the first is hidden."""
    for w in sorted(candidates):
        if moe_layer_cycles(cfg, counts, beat=w).prefetch_stall == 0:
            return w
    return None
