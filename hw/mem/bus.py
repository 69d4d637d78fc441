"""The external-memory bus: an AXI-like burst interface made of ``amaranth.lib.stream`` channels.

Why AXI-like streams and not Wishbone: Wishbone classic has one outstanding access and a
handshake per word, so a DRAM latency of L cycles costs L cycles per burst; its pipelined mode
still has no notion of a burst length the slave can plan with. The MoE path's whole point is to
hide DRAM latency behind computation, which needs several outstanding bursts and one beat per
cycle of payload. Independent request and data channels (AXI's AR/R and AW/W/B, reduced to what
we use) give exactly that, and each channel is an ordinary stream (valid never waits for ready,
payload stable while valid), so the existing stream drivers, FIFOs and monitors apply.

Channels (directions seen from the *master*, i.e. the DMA; the memory takes ``In(...)``):

Read (:func:`MemReadSignature`):

- ``rd_req``  Out, :func:`req_layout`: ``addr`` (byte address, must be a multiple of the beat
  size ``W = cfg.hw.mem_bytes_per_cycle``), ``beats`` (1 .. ``cfg.hw.mem_max_burst``).
- ``rd_data`` In, :func:`rdata_layout`: ``data`` (``W`` bytes, little-endian: byte ``b`` of the
  beat is ``data[8b : 8b + 8]`` and lives at address ``addr + b``), ``last`` (final beat of its
  burst). Bursts return complete and in request order; several requests may be outstanding.

Write (:func:`MemWriteSignature`):

- ``wr_req``  Out, :func:`req_layout` (as for reads).
- ``wr_data`` Out, :func:`wdata_layout`: ``data`` (whole beats; there are no byte strobes: the
  accelerator only writes whole beats of output tokens).
- ``wr_resp`` In, ``unsigned(1)``: one beat per completed burst, payload 1 on an addressing
  error.

Widths come from the config: ``mem_addr_bits`` (address), ``mem_bytes_per_cycle`` (beat, a power
of two), ``mem_max_burst`` (longest burst).
"""
from __future__ import annotations

from amaranth.hdl import unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from sim.config import Config

__all__ = ["beat_bytes", "req_layout", "rdata_layout", "wdata_layout", "MemReadSignature",
           "MemWriteSignature", "check_bus_config"]


def check_bus_config(cfg: Config) -> None:
    """Raise ValueError if the memory bus cannot be built from ``cfg``."""
    w = cfg.hw.mem_bytes_per_cycle
    if w & (w - 1):
        raise ValueError(f"mem_bytes_per_cycle {w} must be a power of two (beat-aligned "
                         f"addressing)")
    if cfg.hw.mem_max_burst < 1:
        raise ValueError(f"mem_max_burst must be >= 1, got {cfg.hw.mem_max_burst}")


def beat_bytes(cfg: Config) -> int:
    return cfg.hw.mem_bytes_per_cycle


def req_layout(cfg: Config) -> data.StructLayout:
    return data.StructLayout({"addr": unsigned(cfg.hw.mem_addr_bits),
                              "beats": unsigned(cfg.hw.mem_max_burst.bit_length())})


def rdata_layout(cfg: Config) -> data.StructLayout:
    return data.StructLayout({"data": unsigned(8 * beat_bytes(cfg)), "last": unsigned(1)})


def wdata_layout(cfg: Config) -> data.StructLayout:
    return data.StructLayout({"data": unsigned(8 * beat_bytes(cfg))})


def MemReadSignature(cfg: Config) -> wiring.Signature:
    """Read channels, master view (``Out`` = driven by the master)."""
    check_bus_config(cfg)
    return wiring.Signature({
        "rd_req": Out(stream.Signature(req_layout(cfg))),
        "rd_data": In(stream.Signature(rdata_layout(cfg))),
    })


def MemWriteSignature(cfg: Config) -> wiring.Signature:
    """Write channels, master view."""
    check_bus_config(cfg)
    return wiring.Signature({
        "wr_req": Out(stream.Signature(req_layout(cfg))),
        "wr_data": Out(stream.Signature(wdata_layout(cfg))),
        "wr_resp": In(stream.Signature(unsigned(1))),
    })
