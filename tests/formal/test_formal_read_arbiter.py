"""Formal check of ReadArbiter (hw/mem/read_arbiter.py) against a naive owner queue.

The memory side is free but obeys the bus contract (hw/mem/bus.py): it returns data only for
bursts it has accepted and not yet finished (in order; a burst ends with a ``last`` beat; the
arbiter does not look at ``beats``, so burst lengths are left free). The harness keeps a model
queue of the owners (master indices) of the outstanding bursts, pushed when the memory accepts
a request and popped on each burst's ``last`` beat, and asserts, in every cycle:

- requests: each request the memory accepts is taken from exactly one master, which was
  offering it, with its payload unchanged; ``mem.rd_req.valid`` is up exactly when some master
  requests and fewer than ``tag_depth`` bursts are outstanding (0-cycle request path, waits
  only while the tag FIFO is full); at most ``tag_depth`` bursts are outstanding;
- data: a beat is offered only to the owner of the oldest outstanding burst, unchanged, and in
  the cycle the memory offers it (0-cycle data path); the memory's beat is taken exactly when
  that owner takes it;
- fairness (round robin): while a master keeps requesting, at most ``n - 1`` requests of other
  masters are granted before its own;
- the stream rules on every port (assumed on master requests and memory data, asserted on the
  memory request and the masters' data) and that no output ``valid`` waits on its ``ready``.

The config is shrunk (4-bit addresses, byte beats, bursts of up to 2) with three masters and a
two-entry tag FIFO (BMC 12); one master, and two masters with a one-entry tag FIFO, are checked
too (BMC 10). Only bounded model checking is done (the tag FIFO's and round-robin state
are hidden; no induction invariants are written for them).
"""
from __future__ import annotations

import pytest
from amaranth.hdl import Cat, Module, Signal
from amaranth.lib import wiring

from hw.mem.bus import MemReadSignature
from hw.mem.read_arbiter import ReadArbiter
from sim.config import Config, with_changes
from tests.harness.formal import FormalFailure, Harness, check_valid_independent_of_ready

CFG = with_changes(Config.tiny(), hw=dict(mem_addr_bits=4, mem_bytes_per_cycle=1,
                                          mem_max_burst=2))
N = 3
TAG_DEPTH = 2


def make_arbiter(n: int = N, tag_depth: int = TAG_DEPTH):
    return ReadArbiter(CFG, n, tag_depth=tag_depth)


def arbiter_harness(make_dut, n: int = N, tag_depth: int = TAG_DEPTH) -> Harness:
    N, TAG_DEPTH = n, tag_depth     # noqa: N806  (the module's names, for this configuration)
    h = Harness()
    m = h.m
    m.submodules.dut = dut = make_dut()
    h.contract(dut)
    ms, req, rd = dut.masters, dut.mem.rd_req, dut.mem.rd_data

    # naive model: owners of the outstanding bursts, oldest first (one spare entry)
    owners = [Signal(range(N), name=f"model_owner{k}") for k in range(TAG_DEPTH + 1)]
    count = Signal(range(TAG_DEPTH + 2), name="model_count")
    go = [ms[i].rd_req.valid & ms[i].rd_req.ready for i in range(N)]
    mem_go = req.valid & req.ready
    granted = Signal(range(N), name="granted")
    for i in range(N):
        with m.If(go[i]):
            m.d.comb += granted.eq(i)
    push = mem_go
    pop = rd.valid & rd.ready & rd.payload.last
    with m.If(pop):
        m.d.sync += [owners[k].eq(owners[k + 1]) for k in range(TAG_DEPTH)]
    with m.If(push):
        with m.Switch(count - pop):
            for k in range(TAG_DEPTH + 1):
                with m.Case(k):
                    m.d.sync += owners[k].eq(granted)
    m.d.sync += count.eq(count + mem_go - pop)

    h.assume(~rd.valid | (count != 0), "memory returns data only for accepted bursts")

    # requests
    h.assert_(Cat(*go).as_unsigned().any() == mem_go, "a request goes out iff a master's is taken")
    for i in range(N):
        for j in range(i + 1, N):
            h.assert_(~(go[i] & go[j]), f"masters {i} and {j} not both granted")
        with m.If(go[i]):
            h.assert_(req.payload.as_value() == ms[i].rd_req.payload.as_value(),
                      f"master {i}'s request forwarded unchanged")
    any_request = Cat(*(ms[i].rd_req.valid for i in range(N))).any()
    h.assert_(req.valid == (any_request & (count < TAG_DEPTH)),
              "request offered iff some master requests and the tag FIFO has room")
    h.assert_(count <= TAG_DEPTH, "at most tag_depth bursts outstanding")

    # data
    head = owners[0]
    for j in range(N):
        with m.If(ms[j].rd_data.valid):
            h.assert_(rd.valid & (count != 0) & (head == j),
                      f"master {j} is offered only beats of its own bursts")
            h.assert_(ms[j].rd_data.payload.as_value() == rd.payload.as_value(),
                      f"master {j} gets the beat unchanged")
        with m.If(rd.valid & (head == j)):
            h.assert_(ms[j].rd_data.valid, f"master {j} is offered its beat at once")
            h.assert_(rd.ready == ms[j].rd_data.ready,
                      f"the memory's beat is taken iff master {j} takes it")

    # fairness: grants to others while master j waits
    for j in range(N):
        waited = Signal(range(N + 1), name=f"waited{j}")
        with m.If(~ms[j].rd_req.valid | go[j]):
            m.d.sync += waited.eq(0)
        with m.Elif(mem_go & (waited < N)):
            m.d.sync += waited.eq(waited + 1)
        h.assert_(waited <= N - 1, f"round robin: master {j} waits for at most {N - 1} grants")
        h.cover(waited == N - 1, f"master {j} waited the longest allowed")

    h.cover(count == TAG_DEPTH, "tag FIFO full")
    h.cover(pop & (head == N - 1) & h.past(pop), "two bursts end back to back")
    return h


def test_read_arbiter_bmc():
    arbiter_harness(make_arbiter).run(mode="bmc", depth=12, name="read_arbiter")


@pytest.mark.parametrize("n, tag_depth", [(1, 2), (2, 1)])
def test_read_arbiter_bmc_edge_sizes(n, tag_depth):
    arbiter_harness(lambda: make_arbiter(n, tag_depth), n, tag_depth).run(
        mode="bmc", depth=10, name=f"read_arbiter_{n}_{tag_depth}")


def test_read_arbiter_cover():
    arbiter_harness(make_arbiter).run(mode="cover", depth=10, name="read_arbiter_cover")


def test_read_arbiter_valid_does_not_wait_on_ready():
    check_valid_independent_of_ready(make_arbiter, depth=6, name="read_arbiter_comb")


# -- the checks catch broken arbiters -------------------------------------------------------

class _Broken(wiring.Component):
    """Test-only wrapper around the real arbiter with one planted bug.

    ``"swap_data"``: the data of masters 0 and 1 are swapped. ``"fixed_priority"``: master 0
    hides the other masters' new requests, so they starve while it keeps requesting.
    """

    def __init__(self, bug: str):
        self.bug = bug
        super().__init__({"masters": wiring.In(MemReadSignature(CFG)).array(N),
                          "mem": wiring.Out(MemReadSignature(CFG))})

    def elaborate(self, platform):
        m = Module()
        m.submodules.inner = inner = make_arbiter()
        wiring.connect(m, inner.mem, wiring.flipped(self.mem))
        for i in range(N):
            outer, inn = self.masters[i], inner.masters[i]
            valid = outer.rd_req.valid
            if self.bug == "fixed_priority" and i > 0:
                # hidden while master 0 requests, unless already shown and not yet taken (the
                # arbiter's inputs keep the stream rules: it may rely on them)
                shown = Signal(name=f"shown{i}")
                m.d.sync += shown.eq(inn.rd_req.valid & ~inn.rd_req.ready)
                valid = valid & (~self.masters[0].rd_req.valid | shown)
            src = inner.masters[{0: 1, 1: 0}.get(i, i) if self.bug == "swap_data" else i]
            m.d.comb += [inn.rd_req.valid.eq(valid), inn.rd_req.payload.eq(outer.rd_req.payload),
                         outer.rd_req.ready.eq(inn.rd_req.ready),
                         outer.rd_data.valid.eq(src.rd_data.valid),
                         outer.rd_data.payload.eq(src.rd_data.payload),
                         src.rd_data.ready.eq(outer.rd_data.ready)]
        return m


@pytest.mark.parametrize("bug, message", [("swap_data", "its own bursts|takes it|at once"),
                                          ("fixed_priority", "round robin")])
def test_catches_broken_arbiter(bug, message, tmp_path):
    with pytest.raises(FormalFailure, match=message):
        arbiter_harness(lambda: _Broken(bug)).run(mode="bmc", depth=10,
                                                   name=f"read_arbiter_bug_{bug}",
                                                   workdir=tmp_path)
