"""Host driver pieces that need no simulator: the serial link's failure modes.

- a link that answers nothing (a serial port timing out) gives :class:`LinkError` naming the
  short read, not a hang or a silently wrong value;
- a device that is not an edge-moe bridge (wrong IDENT) is refused;
- a NAK is reported as such;
- :func:`open_serial` + :class:`BridgeTransport` over a real pyserial port (a pseudo-terminal);
- an error the accelerator flags is raised as :class:`FrameError` naming the error code.
The protocol itself is tested against the RTL bridge in tests/hw/test_host_bridge*.py.
"""
from __future__ import annotations

import pytest

from host.driver import BridgeTransport, EdgeMoeDriver, LinkError, Transport, open_serial
from host.run import FrameError
from hw.link.host_bridge import ACK, IDENT_MAGIC, NAK, PROTOCOL_VERSION
from hw.top.csr import CSR_ID, REGISTERS
from sim.config import get_config


class FakeSerial:
    """pyserial-like: read(n) returns what is queued (fewer bytes on 'timeout')."""

    def __init__(self, answers: bytes):
        self.answers = bytearray(answers)
        self.sent = bytearray()

    def write(self, data):
        self.sent += data
        return len(data)

    def read(self, n):
        got = bytes(self.answers[:n])
        del self.answers[:n]
        return got


IDENT = IDENT_MAGIC + bytes([PROTOCOL_VERSION, 4, 8, 16, 5])


def test_timeout_is_a_link_error():
    with pytest.raises(LinkError, match="0 of 8 bytes"):
        BridgeTransport(FakeSerial(b""))
    t = BridgeTransport(FakeSerial(IDENT + b"\x01\x02"))
    with pytest.raises(LinkError, match="2 of 4 bytes"):
        t.read_reg(3)


def test_wrong_device_refused():
    with pytest.raises(LinkError, match="no edge-moe bridge"):
        BridgeTransport(FakeSerial(b"Hello, w"))


def test_nak_and_encoding():
    link = FakeSerial(IDENT + bytes([ACK, NAK]))
    t = BridgeTransport(link)
    t.write_reg(5, 0x11223344)
    assert bytes(link.sent[1:]) == b"W\x05\x00\x44\x33\x22\x11"
    with pytest.raises(LinkError, match="NAK"):
        t.write_mem(0x40, bytes(8))
    assert bytes(link.sent[8:14]) == b"w\x40\x00\x00\x00\x01"


def test_bridge_transport_over_pyserial_pty():
    """The UART transport end to end on the host side: pyserial on a pseudo-terminal, the far
    end answering like a bridge (what it receives is checked byte for byte)."""
    import os
    import threading

    master, slave = os.openpty()
    received = bytearray()

    def far_end():
        answers = {b"I": IDENT, b"R": (0x0BADF00D).to_bytes(4, "little")}
        want = {b"I": 1, b"R": 3}
        while True:
            try:
                cmd = os.read(master, 1)
            except OSError:                     # the port side closed
                return
            if not cmd or cmd == b"Q":
                return
            received.extend(cmd)
            need = want[cmd] - 1
            while need:
                got = os.read(master, need)
                received.extend(got)
                need -= len(got)
            os.write(master, answers[cmd])

    th = threading.Thread(target=far_end, daemon=True)
    th.start()
    port = open_serial(os.ttyname(slave), baud=115_200, timeout=1.0)
    try:
        assert (port.baudrate, port.bytesize, port.parity, port.stopbits) == (115_200, 8, "N", 1)
        t = BridgeTransport(port)
        assert (t.reg_bytes, t.beat_bytes, t.max_burst) == (4, 8, 16)
        assert t.read_reg(0x13) == 0x0BADF00D
        assert bytes(received) == b"I" + b"R\x13\x00"
        port.write(b"Q")
        th.join(2)
        with pytest.raises(LinkError, match="0 of 4 bytes"):   # nobody answers: timeout
            t.read_reg(1)
    finally:
        port.close()
        os.close(master)
        os.close(slave)


def test_demo_on_a_port_without_a_board(tmp_path, capsys):
    """`edge-moe demo --port` with nothing answering on the line: one clear error, no hang."""
    import os

    from edge_moe.cli import main
    master, slave = os.openpty()
    try:
        rc = main(["demo", "--port", os.ttyname(slave), "--task", "0"])
    finally:
        os.close(master)
        os.close(slave)
    assert rc == 2
    err = capsys.readouterr().err
    assert "edge-moe: error: bridge answered 0 of 8 bytes" in err


def test_demo_on_a_missing_port(capsys):
    from edge_moe.cli import main
    assert main(["demo", "--port", "/dev/no-such-edge-moe-board"]) == 2
    assert "no-such-edge-moe-board" in capsys.readouterr().err


class RegisterFile(Transport):
    """A transport whose device is a fixed register file (no memory)."""

    beat_bytes = 8
    reg_bytes = 4

    def __init__(self, regs: dict):
        self.regs = regs

    def write_reg(self, addr, value):
        pass

    def read_reg(self, addr):
        return self.regs.get(addr, 0)

    def set_host_mode(self, on):
        pass

    def write_bursts(self, bursts):
        pass

    def read_burst(self, addr, beats):
        return bytes(beats * self.beat_bytes)


@pytest.mark.parametrize("code, name", [(4, "BAD_FIELD"), (1, "BAD_MAGIC"), (7, "BAD_TASK"),
                                        (6, "QUEUE_OVERFLOW")])
def test_wait_done_names_the_error_code(code, name):
    cfg = get_config("tiny")
    regs = {REGISTERS["ID"]: CSR_ID, REGISTERS["STATUS"]: 0b110,
            REGISTERS["ERROR"]: (3 << 16) | code}
    drv = EdgeMoeDriver(RegisterFile(regs), cfg)
    with pytest.raises(FrameError, match=rf"accelerator error {name} \(.*\) at descriptor 3$"):
        drv.wait_done()


def test_unknown_error_code_is_reported_as_such():
    regs = {REGISTERS["ID"]: CSR_ID, REGISTERS["STATUS"]: 0b110, REGISTERS["ERROR"]: 0x2A}
    drv = EdgeMoeDriver(RegisterFile(regs), get_config("tiny"))
    with pytest.raises(FrameError, match="unknown code 42 at descriptor 0"):
        drv.wait_done()
