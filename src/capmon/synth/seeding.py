"""Reproducible random streams: one independent generator per purpose, derived from the seed.

Every random decision of the generator draws from a stream keyed by the world seed and a
purpose (``"landscape"``, ``("clouds", 2024, 17)``...). Adding a year or an output therefore
never changes the draws made for another purpose, and the same arguments give the same world.
Keys are hashed with CRC-32, never with Python's salted ``hash``.
"""

from __future__ import annotations

import zlib

import numpy as np


def _key_int(part: object) -> int:
    if isinstance(part, bool):
        return int(part)
    if isinstance(part, int):
        return part & 0xFFFFFFFF
    return zlib.crc32(str(part).encode("utf-8"))


def stream(seed: int, *purpose: object) -> np.random.Generator:
    """A generator for ``purpose`` (any mix of ints and strings) under the world ``seed``."""
    entropy = [seed & 0xFFFFFFFF, (seed >> 32) & 0xFFFFFFFF, *(_key_int(p) for p in purpose)]
    return np.random.default_rng(np.random.SeedSequence(entropy))
