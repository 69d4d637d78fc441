"""The weight-image format definition shared by the exporter and the loader.

A weight image is a directory with ``weights.bin`` (every parameter as little-endian integers in its
Q-format's storage dtype, each tensor at a 64-byte-aligned offset, zero padding between tensors)
and ``manifest.json`` describing it (docs/weight_image.md has the full specification). This module
holds the constants, the error and warning classes and the checksum helpers; nothing else.
"""
from __future__ import annotations

import hashlib
import zlib

__all__ = ["FORMAT_NAME", "FORMAT_VERSION", "ALIGNMENT", "MANIFEST_NAME", "WEIGHTS_NAME",
           "WeightImageError", "SaturationWarning", "crc32", "sha256", "align_up"]

FORMAT_NAME = "edge-moe-weight-image"
FORMAT_VERSION = 1
ALIGNMENT = 64              # byte alignment of every tensor (one DRAM burst / cache line)
MANIFEST_NAME = "manifest.json"
WEIGHTS_NAME = "weights.bin"


class WeightImageError(ValueError):
    """A weight image or a parameter set that does not match its manifest or config.

    The message names the tensor (or config field / file) and gives the expected and found values.
    """


class SaturationWarning(UserWarning):
    """Some parameter values did not fit their fixed-point format and were clipped."""


def crc32(data: bytes) -> int:
    """CRC-32 (IEEE 802.3, as zlib / PNG / Ethernet), as an unsigned int."""
    return zlib.crc32(data) & 0xFFFFFFFF


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def align_up(offset: int, alignment: int = ALIGNMENT) -> int:
    return -(-offset // alignment) * alignment
