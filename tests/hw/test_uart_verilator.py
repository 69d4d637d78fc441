"""UartRx / UartTx on their generated Verilog (cocotb + Verilator; tests/cocotb/test_uart_tb.py).

The DUT is both halves side by side with their pins as ports, so the cocotb side plays the
host's serial port: it decodes ``tx`` bit by bit and drives ``rx`` bit by bit (random idle time,
a baud-rate mismatch, a framing error), with random valid gaps on ``i`` and random
back-pressure on ``o``.
"""
from __future__ import annotations

import pytest
from amaranth.hdl import Module
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from hw.link.uart import BYTE_BITS, UartRx, UartTx
from tests.harness.seeds import seed  # noqa: F401  (pytest fixture)
from tests.harness.verilator import run_block_verilator


class UartPair(wiring.Component):
    def __init__(self, divisor):
        self.divisor = divisor
        super().__init__({"i": In(stream.Signature(BYTE_BITS)), "tx": Out(1, init=1),
                          "rx": In(1, init=1), "o": Out(stream.Signature(BYTE_BITS)),
                          "framing_error": Out(1), "overrun": Out(1), "clear": In(1)})

    def elaborate(self, platform):
        m = Module()
        m.submodules.utx = utx = UartTx(self.divisor)
        m.submodules.urx = urx = UartRx(self.divisor)
        wiring.connect(m, wiring.flipped(self.i), utx.i)
        wiring.connect(m, urx.o, wiring.flipped(self.o))
        m.d.comb += [self.tx.eq(utx.tx), urx.rx.eq(self.rx), urx.clear.eq(self.clear),
                     self.framing_error.eq(urx.framing_error), self.overrun.eq(urx.overrun)]
        return m


@pytest.mark.parametrize("divisor", [5, 16])
def test_uart_verilator(divisor, seed, tmp_path):
    run_block_verilator(UartPair(divisor), "test_uart_tb", tmp_path, seed,
                        name=f"uart_pair_{divisor}", divisor=divisor, count=40, valid_prob=0.4,
                        ready_prob=0.5)
