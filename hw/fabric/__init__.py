"""Hard-block wrappers: multipliers and block-RAM reads with their registers where the FPGA's
hard block has them, so a block chooses its latency once and keeps it on every target.

- :mod:`.multiplier`: :class:`Multiplier`, ``a * b`` with optional input / pipeline / output
  registers; ``target="ecp5"`` puts them inside a MULT18X18D.
- :mod:`.bram`: :class:`RegisteredReadPort`, a ``lib.memory.Memory`` read port with an output
  register (and optionally a registered address).
- :mod:`.ecp5_bram`: :class:`Ecp5Bram`, a one-write / one-read memory of DP16KD blocks whose
  output register is the block RAM's own (``REGMODE_B="OUTREG"``).
- :mod:`.global_buffer`: :class:`GlobalBuffer`, a net (a domain's reset) on the global
  network; ``target="ecp5"`` is a ``DCCA``.
- :mod:`.replica`: :func:`replicas`, kept copies of a register, each driving a share of its
  loads.
- :mod:`.sum_compare`: :func:`sum_at_most` / :func:`sum_at_least`, ``a + b`` against a
  constant on one carry chain.

Yosys' ``synth_ecp5`` (0.70) packs no register into either hard block (docs/boards.md, "DSP
and BRAM registers"), which is why the ECP5 variants instantiate the primitives.
"""

from sim.config import DSP_TARGETS as TARGETS   # one list of targets: Config validates it
