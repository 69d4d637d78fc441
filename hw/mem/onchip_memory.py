"""DRAM model: an on-chip memory behind the burst bus, with a fixed latency and one beat per cycle.

``OnChipMemory(cfg, image, base=0, size=None)`` serves the read and write channels of
:mod:`hw.mem.bus` from an ``amaranth.lib.memory.Memory`` initialised with ``image`` (a ``bytes``
object or a uint8 numpy array, e.g. the exported ``weights.bin`` or a slice of it) mapped at byte
address ``base``; ``size`` bytes (default: the image, rounded up to a beat) are addressable, so
extra room for writes can be requested. It works the same in pysim and (as Verilog with the image
in the memory's initial contents) in Verilator; it is meant for small configs and for tests, and
doubles as an on-chip-BRAM "external memory" on boards with a small model.

Timing model (``L = cfg.hw.mem_latency`` unless the ``latency`` argument overrides it -- a
wrapper that adds its own register stage passes ``L - 1`` --, ``W = cfg.hw.mem_bytes_per_cycle``;
with ``retire_port=True`` a burst counts as outstanding until the wrapper pulses ``rd_retire``,
e.g. when its last beat leaves the wrapper's stage, so the stage adds no buffering either):

- **Latency**: a read burst whose request transfers on clock edge ``n`` delivers its first beat
  on edge ``n + max(L, OnChipMemory.MIN_LATENCY)`` if the queue ahead of it is empty and the reader
  is ready (the request waits in a delay line of ``L - MIN_LATENCY`` cycles, then in the ready
  queue, then one cycle for the memory read). The delay line gives up to four of its cycles
  to register stages, same latency: with ``L > MIN_LATENCY`` the memory's read data is
  registered once more, so the block RAM's clock-to-data (~5.8 ns on a speed-6 ECP5 without
  its output register) ends at a register instead of running into the reader's logic (the
  ULX3S build's critical path: block RAM -> the prefetcher's LUT-RAM write data); with
  ``L > MIN_LATENCY + 1`` the request is registered before its address decode (the request's
  valid behind the host-mode mux, then the decode's subtract, add and compares: 13.3 ns
  routed on the ULX3S); with ``L > MIN_LATENCY + 2`` and more than ``bank_words`` words (an
  Amaranth array) the words are kept in banks of ``bank_words`` (a power of two, default
  ``BANK_WORDS``: one row of 1024 x 18 block RAMs on an ECP5), each bank's read data is
  registered, and the bank select is a mux between registers, in two steps of groups of
  ``BANK_GROUP`` banks around the read data register (before, block RAM
  clock-to-data, then Yosys' row mux over 11 rows of block RAM, then the read data register:
  64 endpoints at 12.7 ns routed on the ULX3S); with ``L > MIN_LATENCY + 3`` the ready
  queue is a buffered FIFO whose head is a register (its LUT-RAM read ran into the banks'
  address pins: 12.05 ns).
- **Bandwidth**: one beat of ``W`` bytes per cycle: bursts are served back to back in request
  order with no gap between them, so a master that keeps enough requests in flight sees ``W``
  bytes per cycle after the first latency.
- **Outstanding reads**: at most ``cfg.hw.mem_max_outstanding`` bursts are accepted and not yet
  completed; further requests wait (``rd_req.ready`` low). To sustain full bandwidth a master
  needs ``outstanding * burst >= L + burst`` beats in flight.
- **Writes**: a write burst is accepted when no other write burst is in progress; its beats are
  written one per cycle as they arrive, and ``wr_resp`` carries one beat after the last. Reads
  and writes are independent; the order of a read and a write to the same address in flight at
  the same time is undefined (the accelerator never does that).
- Back-pressure on ``rd_data`` stalls the read data engine (nothing is lost).

``array="verilog"`` keeps the words in hw/mem/sim_ram.v (``SIM_RAM_VERILOG``, an ``Instance``:
pass the file to the Verilog simulator) instead of an Amaranth ``Memory``: same ports and
timing, no initial contents in the elaborated Verilog (Amaranth writes every word of a Memory's
init into it, which makes a tens-of-MB DRAM model unbuildable); the array starts zeroed and can
be filled at time 0 from a hex file (:func:`write_hex`, plusarg ``+edge_moe_mem=<path>``).
Verilator only (``image`` must be empty).

Status outputs: ``bytes_read`` / ``bytes_written`` (``cfg.hw.moe_counter_bits`` wide, counting
transferred beats x W, wrapping), ``error`` (sticky: a misaligned address or a burst outside
``[base, base + size)`` was requested; such a read returns unspecified data, such a write is
dropped).
"""
from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
from amaranth.hdl import Array, Cat, ClockSignal, Instance, Module, Mux, Signal, unsigned
from amaranth.lib import data, fifo, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from sim.config import Config

from hw.fabric.ecp5_bram import Ecp5Bram
from hw.fabric.replica import replicas
from hw.mem.bus import MemReadSignature, MemWriteSignature, beat_bytes

__all__ = ["OnChipMemory", "BANK_WORDS", "image_words", "write_hex", "SIM_RAM_VERILOG",
           "SIM_RAM_PLUSARG"]

SIM_RAM_VERILOG = Path(__file__).with_name("sim_ram.v")
SIM_RAM_PLUSARG = "edge_moe_mem"
ARRAYS = ("amaranth", "verilog")
BANK_WORDS = 1024    # words per bank: one row of DP16KD in 1024 x 18 mode
# banks per group of the two-step bank select (a 4:1 mux is one LUT level and its PFUMX)
BANK_GROUP = 4
assert BANK_GROUP & (BANK_GROUP - 1) == 0


def image_words(image, beat: int, size: int | None = None) -> list[int]:
    """Little-endian ``beat``-byte words of ``image`` (zero padded to ``size`` bytes)."""
    raw = np.frombuffer(bytes(image), dtype=np.uint8) if not isinstance(image, np.ndarray) \
        else np.asarray(image, dtype=np.uint8).ravel()
    total = max(len(raw), size or 0)
    total = -(-total // beat) * beat
    buf = np.zeros(total, dtype=np.uint8)
    buf[:len(raw)] = raw
    return [int.from_bytes(buf[i:i + beat].tobytes(), "little") for i in range(0, total, beat)]


def write_hex(path, image, beat: int) -> None:
    """``image`` as ``$readmemh`` text for sim_ram.v: one little-endian ``beat``-byte word per
    line, most significant hex digit first (the last beat zero padded)."""
    raw = np.frombuffer(bytes(image), dtype=np.uint8)
    words = np.zeros(-(-len(raw) // beat) * beat, dtype=np.uint8)
    words[:len(raw)] = raw
    text = words.reshape(-1, beat)[:, ::-1].tobytes().hex()
    n = 2 * beat
    Path(path).write_text("\n".join(text[i:i + n] for i in range(0, len(text), n)) + "\n")


class _Delay(wiring.Component):
    """A (valid, payload) pair delayed by exactly ``n`` cycles; no back-pressure.

    n = 0: wires; n = 1: a register; n = 2: two registers; n >= 3: a register, then a ring
    buffer memory of n - 1 entries (slot c mod (n - 1) is written in cycle c and read back in
    cycle c + n - 1), which keeps long DRAM latencies cheap in both simulators. The register in
    front keeps the ring's write port off the request's path (on the ULX3S build the read
    arbiter's pick ran straight into the ring's LUT-RAM write data: the critical path).
    """

    def __init__(self, shape, n: int):
        self.n = n
        self.shape = shape
        super().__init__({"i_valid": In(1), "i": In(shape), "o_valid": Out(1), "o": Out(shape)})

    def elaborate(self, platform):
        m = Module()
        if self.n == 0:
            m.d.comb += [self.o_valid.eq(self.i_valid), self.o.eq(self.i)]
            return m
        # the input register (the whole delay for n = 1)
        v_in, p_in = Signal(), Signal(self.shape)
        m.d.sync += [v_in.eq(self.i_valid), p_in.eq(self.i)]
        n = self.n - 1                      # cycles left after it
        if n == 0:
            m.d.comb += [self.o_valid.eq(v_in), self.o.eq(p_in)]
        elif n == 1:
            m.d.sync += [self.o_valid.eq(v_in), self.o.eq(p_in)]
        else:
            slot = data.StructLayout({"valid": 1, "p": self.shape})
            m.submodules.ring = ring = Memory(shape=slot, depth=n, init=[])
            wr, rd = ring.write_port(), ring.read_port()
            cnt = Signal(range(n))
            nxt = Mux(cnt == n - 1, 0, cnt + 1)
            m.d.sync += cnt.eq(nxt)
            m.d.comb += [wr.addr.eq(cnt), wr.en.eq(1), wr.data.valid.eq(v_in),
                         wr.data.p.eq(p_in),
                         # Read, in cycle c, the slot written in cycle c + 1 - n; the data
                         # register presents it in cycle c + 1, n cycles after its write.
                         rd.addr.eq(nxt), rd.en.eq(1),
                         self.o_valid.eq(rd.data.valid), self.o.eq(rd.data.p)]
        return m


class OnChipMemory(wiring.Component):
    """Latency / bandwidth DRAM model on the burst bus (see the module docstring).

    Ports: ``rd`` (``In(MemReadSignature)``), ``wr`` (``In(MemWriteSignature)``),
    ``bytes_read``, ``bytes_written`` (Out, counters), ``error`` (Out, sticky).
    """

    MIN_LATENCY = 2     # ready queue (1 cycle) + memory read (1 cycle)

    def __init__(self, cfg: Config, image=b"", base: int = 0, size: int | None = None,
                 array: str = "amaranth", latency: int | None = None,
                 retire_port: bool = False, bank_words: int = BANK_WORDS,
                 ready_copies: bool = False):
        self.cfg = cfg
        if bank_words < 1 or bank_words & (bank_words - 1):
            raise ValueError(f"OnChipMemory: bank_words must be a power of two, got {bank_words}")
        self.beat = beat_bytes(cfg)
        if base % self.beat:
            raise ValueError(f"OnChipMemory: base {base:#x} is not a multiple of the beat size "
                             f"{self.beat}")
        if array not in ARRAYS:
            raise ValueError(f"OnChipMemory: array must be one of {ARRAYS}, got {array!r}")
        if array == "verilog" and len(image):
            raise ValueError("OnChipMemory: array='verilog' has no initial image (load it "
                             "through the write port or a +edge_moe_mem hex file)")
        self.base = base
        self.array = array
        if array == "verilog":
            self.init_words = []
            self.depth = max(1, -(-(size or 0) // self.beat))
        else:
            self.init_words = image_words(image, self.beat, size)
            self.depth = max(1, len(self.init_words))
        self.size = self.depth * self.beat
        if base + self.size > (1 << cfg.hw.mem_addr_bits):
            raise ValueError("OnChipMemory: memory does not fit the address space")
        self.latency = max(cfg.hw.mem_latency if latency is None else latency, self.MIN_LATENCY)
        # Register stages taken out of the delay line while it has cycles to give (same total
        # latency):
        slack = self.latency - self.MIN_LATENCY
        self.out_reg = slack >= 1      # the read data registered again
        self.req_reg = slack >= 2      # the request registered before its address decode
        # each bank's read data registered before the bank select
        self.bank_reg = slack >= 3 and array == "amaranth" and self.depth > bank_words
        self.bank_words = bank_words if self.bank_reg else 1 << (self.depth - 1).bit_length()
        self.banks = -(-self.depth // self.bank_words)
        # The banks as Ecp5Bram (cfg.hw.bram_target "ecp5"): each bank's data register is the
        # DP16KD's own output register, so the ~5.8 ns clock-to-data of a block without it no
        # longer starts the route to the bank registers (up to 156 endpoints at 13.6 ns routed
        # on the ULX3S, the blocks spread over the die). Same latency: the block's address
        # register and its output register are the read port's data register and the bank
        # register.
        self.hard_banks = self.bank_reg and cfg.hw.bram_target == "ecp5"
        # the bank select in two steps around the read data register (groups of BANK_GROUP)
        self.grouped_select = self.out_reg and self.bank_reg and self.banks > BANK_GROUP
        # the ready queue's head a register (a buffered FIFO: one cycle more from write to read)
        self.queue_reg = slack >= 4
        self.delay = slack - self.out_reg - self.req_reg - self.bank_reg - self.queue_reg
        self.retire_port = retire_port
        # rd_ready_copies: one copy of rd_data.ready per bank of block RAMs (each bank's
        # enable its own LUT; one enable drove every block's OCE / CE pins over the die, ULX3S
        # routed 11-12.1 ns with one LUT of logic)
        self.ready_copies = bool(ready_copies) and self.bank_reg
        cbits = cfg.hw.moe_counter_bits
        super().__init__({
            "rd": In(MemReadSignature(cfg)),
            "wr": In(MemWriteSignature(cfg)),
            "bytes_read": Out(cbits),
            "bytes_written": Out(cbits),
            "error": Out(1),
            **({"rd_retire": In(1)} if retire_port else {}),
            **({"rd_ready_copies": In(self.banks)} if self.ready_copies else {}),
        })

    def _word(self, m, req, name):
        """The word index signal of a request's address."""
        word = Signal(range(self.depth), name=f"{name}_word")
        m.d.comb += word.eq((req.addr - self.base) >> int(math.log2(self.beat)))
        return word

    def _in_range(self, m, req, name):
        """The signal "the request is aligned, non-empty and inside the memory"."""
        lb = int(math.log2(self.beat))
        ok = Signal(name=f"{name}_ok")
        m.d.comb += ok.eq((req.addr >= self.base) & (req.addr[:lb] == 0 if lb else 1)
                          & (((req.addr - self.base) >> lb) + req.beats <= self.depth)
                          & (req.beats != 0))
        return ok

    def _array(self, m):
        """[(read port, write port)] per bank of the storage: Amaranth Memories (one per bank),
        Ecp5Bram blocks (see :attr:`hard_banks`), or sim_ram.v with the same port signals
        (addr, en, data)."""
        W = self.beat
        if self.hard_banks:
            ports = []
            for k in range(self.banks):
                lo = k * self.bank_words
                depth = min(self.bank_words, self.depth - lo)
                bram = Ecp5Bram(unsigned(8 * W), depth, init=self.init_words[lo:lo + depth])
                m.submodules[f"mem{k}"] = bram
                ports.append((SimpleNamespace(addr=bram.r_addr, en=bram.r_en, data=bram.r_data),
                              SimpleNamespace(addr=bram.w_addr, en=bram.w_en, data=bram.w_data)))
            return ports
        if self.array == "amaranth":
            ports = []
            for k in range(self.banks):
                lo = k * self.bank_words
                depth = min(self.bank_words, self.depth - lo)
                mem = Memory(shape=unsigned(8 * W), depth=depth,
                             init=self.init_words[lo:lo + depth])
                m.submodules["mem" if self.banks == 1 else f"mem{k}"] = mem
                ports.append((mem.read_port(), mem.write_port()))
            return ports
        abits = max(1, (self.depth - 1).bit_length())

        class _Port:
            def __init__(self, name):
                self.addr = Signal(abits, name=f"{name}_addr")
                self.en = Signal(name=f"{name}_en")
                self.data = Signal(8 * W, name=f"{name}_data")
        rport, wport = _Port("ram_r"), _Port("ram_w")
        m.submodules.mem = Instance(
            "edge_moe_sim_ram", p_WIDTH=8 * W, p_DEPTH=self.depth, p_ABITS=abits,
            i_clk=ClockSignal(), i_ren=rport.en, i_raddr=rport.addr, o_rdata=rport.data,
            i_wen=wport.en, i_waddr=wport.addr, i_wdata=wport.data)
        return [(rport, wport)]

    def elaborate(self, platform):
        m = Module()
        cfg = self.cfg
        D = cfg.hw.mem_max_outstanding
        W = self.beat
        burst = unsigned(cfg.hw.mem_max_burst.bit_length())

        ports = self._array(m)
        lbank = (self.bank_words - 1).bit_length()

        # ---------------- read: admission, latency, in-order service ----------------
        rd = self.rd
        pending = data.StructLayout({"word": range(self.depth), "beats": burst})
        outstanding = Signal(range(D + 1))
        accept = rd.rd_req.valid & rd.rd_req.ready
        # ready ("fewer than D outstanding") a register kept with the count: as the compare it
        # sat between the request's valid and the read arbiter's order masks / this model's
        # request register (ULX3S routed 11.2-11.5 ns)
        room = Signal(init=1)
        m.d.comb += rd.rd_req.ready.eq(room)
        req_valid, req = accept, rd.rd_req.payload
        if self.req_reg:
            # the decode (an offset subtract, an add and compares) after a register, not behind
            # the request's valid / the host-mode mux
            req_valid, req = Signal(name="req_valid"), Signal(req.shape(), name="req")
            m.d.sync += [req_valid.eq(accept), req.eq(rd.rd_req.payload)]
        word, ok = self._word(m, req, "rd"), self._in_range(m, req, "rd")
        with m.If(req_valid & ~ok):
            m.d.sync += self.error.eq(1)

        m.submodules.delay = delay = _Delay(pending, self.delay)
        m.d.comb += [delay.i_valid.eq(req_valid), delay.i.word.eq(word),
                     delay.i.beats.eq(req.beats)]
        if self.queue_reg:
            # the burst's word address out of a register into the block RAMs' address mux
            # (from the FIFO's LUT-RAM read: 12.05 ns routed to the banks' DP16KD address
            # pins). One entry more than D: the inner FIFO's room does not count a read in the
            # same cycle, so a burst arriving as the head register is refilled would be dropped.
            queue = fifo.SyncFIFOBuffered(width=pending.size, depth=D + 1)
        else:
            queue = fifo.SyncFIFO(width=pending.size, depth=D)
        m.submodules.queue = queue
        m.d.comb += [queue.w_en.eq(delay.o_valid), queue.w_data.eq(delay.o.as_value())]
        head = pending(queue.r_data)

        # Data engine: the current burst (address, beats left); the read port's data register
        # (and with out_reg the register after it: both advance together) is the rd_data
        # payload, held while the reader stalls.
        act = Signal()
        cur_word = Signal(range(self.depth))
        left = Signal(burst)
        out_valid, out_last = Signal(), Signal()
        adv = ~out_valid | rd.rd_data.ready
        start = adv & ~act & queue.r_rdy             # pop the next burst and read its first beat
        issue = adv & (act | queue.r_rdy)
        addr = Mux(act, cur_word, head.word)
        beats_now = Mux(act, left, head.beats)
        m.d.comb += [queue.r_en.eq(start),
                     rd.rd_data.valid.eq(out_valid), rd.rd_data.payload.last.eq(out_last)]
        # Each bank's address mux has its own copy of ``act`` and ``cur_word`` (loaded with them):
        # one ``act`` steered every bank's address pins (ULX3S routed 11.2-11.7 ns, act -> one
        # LUT -> the DP16KD pins, nearly all routing)
        if len(ports) > 1:
            acts = replicas(m, beats_now > 1, len(ports), cfg.hw.fanout_target, "rd_act",
                            enable=issue)
            words = replicas(m, (addr + 1)[:lbank], len(ports), cfg.hw.fanout_target, "rd_word",
                             enable=issue)
            bank_addr = [Mux(acts[k], words[k], head.word[:lbank]) for k in range(len(ports))]
        else:
            bank_addr = [addr[:lbank]]
        for (rport, _), a in zip(ports, bank_addr):
            m.d.comb += rport.addr.eq(a)
            if not self.hard_banks:
                m.d.comb += rport.en.eq(issue)
        # (valid, last) of the beat the read ports' data registers hold after this edge, and its
        # data (one stage behind)
        valid, last, beat = issue, beats_now == 1, ports[0][0].data
        if self.bank_reg:
            read_bank = Signal(range(self.banks))        # the bank the port registers hold
            bank_valid, bank_last = Signal(), Signal()
            held = []
            bank_adv = [adv] * len(ports)
            if self.ready_copies:
                # each bank's enable from its own copies of out_valid and of the ready
                ov = [Signal(name=f"out_valid_c{k}") for k in range(len(ports))]
                bank_adv = [~ov[k] | self.rd_ready_copies[k] for k in range(len(ports))]
            for k, (rport, _) in enumerate(ports):
                if self.hard_banks:
                    # the block's address / data register and its output register both advance
                    # with ``adv`` (reloading the first one on a cycle that issues nothing only
                    # refreshes a beat that is not valid)
                    m.d.comb += rport.en.eq(bank_adv[k])
                    held.append(rport.data)
                    continue
                held.append(Signal.like(rport.data, name=f"bank{k}_data"))
                with m.If(bank_adv[k]):
                    m.d.sync += held[-1].eq(rport.data)
            with m.If(issue):
                m.d.sync += read_bank.eq(addr >> lbank)
            with m.If(adv):
                m.d.sync += [bank_valid.eq(valid), bank_last.eq(last)]
            valid, last = bank_valid, bank_last
            if self.grouped_select:
                # The select in two steps around the read data register: each group of
                # BANK_GROUP banks' beat into a register of its own, the group picked after
                # it. One mux over all banks (11 on the ULX3S tiny-ecp5 build: 4 LUT levels)
                # between the banks' registers and the read data register was a recurring
                # routed group (11.2-12.1 ns, up to 33 endpoints).
                G = BANK_GROUP
                lg = G.bit_length() - 1
                groups = [held[g:g + G] for g in range(0, len(held), G)]
                # the select within a group: a kept copy per group and byte lane, placed with
                # that group's register (one copy per lane for all groups crossed the block
                # RAM rows: ULX3S routed 12.7 ns, 10.3 ns of it that net)
                in_group = [replicas(m, read_bank[:lg], W, cfg.hw.fanout_target,
                                     f"bank_sel_g{g}", enable=adv) for g in range(len(groups))]
                # each byte lane's group select, registered again with the group registers
                sels = replicas(m, read_bank >> lg, W, cfg.hw.fanout_target, "bank_sel",
                                enable=adv)
                gsels = [replicas(m, sels[b], 1, cfg.hw.fanout_target, f"group_sel{b}",
                                  enable=adv)[0] for b in range(W)]
                regs = [Signal(8 * W, name=f"group{g}_data") for g in range(len(groups))]
                read_valid, read_last = Signal(), Signal()
                with m.If(adv):
                    m.d.sync += [read_valid.eq(valid), read_last.eq(last)]
                    for g, (reg, grp) in enumerate(zip(regs, groups)):
                        m.d.sync += reg.eq(Cat(Array(h.word_select(b, 8) for h in grp)[
                            in_group[g][b]] for b in range(W)))
                beat = Cat(Array(r.word_select(b, 8) for r in regs)[gsels[b]] for b in range(W))
                valid, last = read_valid, read_last
            else:
                # the bank select in one kept copy per byte lane of the beat: one register
                # steered every bit's bank mux (ULX3S routed 12.3 ns, bank_sel -> the read
                # data register)
                sels = replicas(m, read_bank, W, cfg.hw.fanout_target, "bank_sel", enable=adv)
                beat = Cat(Array(h.word_select(b, 8) for h in held)[sels[b]] for b in range(W))
        if self.out_reg and not self.grouped_select:
            read_valid, read_last = Signal(), Signal()
            data_in, beat = beat, Signal(8 * W, name="read_data_reg")
            with m.If(adv):
                m.d.sync += [read_valid.eq(valid), read_last.eq(last), beat.eq(data_in)]
            valid, last = read_valid, read_last
        with m.If(adv):
            m.d.sync += [out_valid.eq(valid), out_last.eq(last)]
        if self.ready_copies:
            m.d.comb += [c.eq(r) for c, r in zip(ov, replicas(
                m, valid, len(ov), cfg.hw.fanout_target, "out_valid", enable=adv))]
        m.d.comb += rd.rd_data.payload.data.eq(beat)
        with m.If(issue):
            m.d.sync += [cur_word.eq(addr + 1), left.eq(beats_now - 1), act.eq(beats_now > 1)]
        done = (self.rd_retire if self.retire_port
                else rd.rd_data.valid & rd.rd_data.ready & rd.rd_data.payload.last)
        outstanding_next = outstanding + accept - done
        m.d.sync += [outstanding.eq(outstanding_next), room.eq(outstanding_next < D)]
        with m.If(rd.rd_data.valid & rd.rd_data.ready):
            m.d.sync += self.bytes_read.eq(self.bytes_read + W)

        # ---------------- write: one burst at a time ----------------
        wr = self.wr
        w_act = Signal()
        w_word = Signal(range(self.depth))
        w_left = Signal(burst)
        resp_valid = Signal()
        wword = self._word(m, wr.wr_req.payload, "wr")
        # The burst's range check runs on the request as registered at its accept: it is
        # needed from the first data beat on, a cycle later (as a register loaded from the
        # request, it was the writer's burst-length logic, the host-mode mux and the check's
        # subtract, add and compares in one stage: 13.1-13.5 ns routed on the ULX3S).
        # The check's result is registered in turn (``w_ok``, valid from the second cycle after
        # the accept to the next accept): the check, then the bank enables and the response in
        # the same cycle were 12.65 ns routed. It gates the block RAMs' write enables (a beat
        # is written from registers a cycle after its handshake, the earliest being the cycle
        # after the accept) and is the response's payload (the response is out a cycle after
        # the last beat at the earliest, and no accept happens while it is out).
        w_req = Signal(wr.wr_req.payload.shape(), name="w_req")
        w_new, w_new2 = Signal(), Signal()              # one and two cycles after an accept
        w_ok = Signal()
        m.d.sync += w_ok.eq(self._in_range(m, w_req, "wr_held"))
        m.d.comb += [wr.wr_req.ready.eq(~w_act & ~resp_valid),
                     wr.wr_data.ready.eq(w_act),
                     wr.wr_resp.valid.eq(resp_valid), wr.wr_resp.payload.eq(~w_ok)]
        m.d.sync += [w_new.eq(wr.wr_req.valid & wr.wr_req.ready), w_new2.eq(w_new)]
        with m.If(wr.wr_req.valid & wr.wr_req.ready):
            m.d.sync += [w_act.eq(1), w_word.eq(wword), w_left.eq(wr.wr_req.payload.beats),
                         w_req.eq(wr.wr_req.payload)]
        with m.If(w_new2 & ~w_ok):
            m.d.sync += self.error.eq(1)
        # Each beat is written into the block RAMs a cycle after its handshake, from registers
        # (address, data, one enable per bank): the host-mode mux and the writer's handshake
        # ran into every bank's write pins (ULX3S routed ~11 ns). The burst's response is not
        # later for it, and no read can overtake: a read accepted once the response is out
        # reaches the block RAMs two edges later at the earliest, after the write's edge.
        wb_addr = Signal(lbank, name="wbeat_addr")
        wb_data = Signal(8 * W, name="wbeat_data")
        wb_en = Signal(len(ports), name="wbeat_en")
        m.d.sync += [wb_addr.eq(w_word[:lbank]), wb_data.eq(wr.wr_data.payload.data),
                     wb_en.eq(0)]
        # With hard banks a second register stage, one copy per bank (address, data, enable),
        # so each bank's write pins are driven from flip-flops of its own: one address register
        # on every bank's DP16KD write address was 14.3 ns of routing across the die (ULX3S).
        # Still no read overtakes: with hard banks the request is registered (req_reg), so a
        # read accepted once the response is out samples the block RAM three edges after the
        # last beat's handshake, this write two.
        for k, (_, wport) in enumerate(ports):
            if self.hard_banks:
                # kept copies per bank (hw/fabric/replica): as plain registers with the same
                # input Yosys merged them into one, whose address bits ran to every bank's
                # DP16KD pins over the die (ULX3S routed 11.7 ns)
                tgt = cfg.hw.fanout_target
                m.d.comb += [
                    wport.addr.eq(replicas(m, wb_addr, 1, tgt, f"bank{k}_waddr")[0]),
                    wport.data.eq(replicas(m, wb_data, 1, tgt, f"bank{k}_wdata")[0])]
                m.d.sync += wport.en.eq(wb_en[k] & w_ok)
            else:
                m.d.comb += [wport.addr.eq(wb_addr), wport.data.eq(wb_data),
                             wport.en.eq(wb_en[k] & w_ok)]
        with m.If(wr.wr_data.valid & wr.wr_data.ready):
            m.d.sync += wb_en.eq(Cat(w_word >> lbank == k for k in range(len(ports))))
            m.d.sync += [w_word.eq(w_word + 1), w_left.eq(w_left - 1),
                         self.bytes_written.eq(self.bytes_written + W)]
            with m.If(w_left == 1):
                m.d.sync += [w_act.eq(0), resp_valid.eq(1)]
        with m.If(wr.wr_resp.valid & wr.wr_resp.ready):
            m.d.sync += resp_valid.eq(0)
        return m
