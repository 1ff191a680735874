"""Python references for the deterministic hashes the SQL models use (``macros/hashing.sql``).

They define the warehouse's randomness: which sky pixels go to train/val/test and in which order
negatives are sampled.  The SQL must agree with these bit for bit on any engine, so the tests run
both on the same keys.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

import numpy as np

P31 = 2**31 - 1


def split_unit_interval(healpix: int, seed: int) -> float:
    """``int.from_bytes(sha256(f"{healpix}_{seed}").digest()[:4], "big") / 2**32``."""
    return int.from_bytes(hashlib.sha256(f"{healpix}_{seed}".encode()).digest()[:4], "big") / 2**32


def assign_split(healpix: int, seed: int, allocations: Mapping[str, float]) -> str:
    """The split of a HEALPix pixel: walk the allocations sorted by split name, cumulatively; the
    first split whose cumulative share exceeds the pixel's hash wins, else ``train``."""
    h = split_unit_interval(healpix, seed)
    cumulative = 0.0
    for name in sorted(allocations):
        cumulative += allocations[name]
        if h < cumulative:
            return name
    return "train"


def _pow5_mod_p(x: np.ndarray) -> np.ndarray:
    x2 = x * x % P31
    x4 = x2 * x2 % P31
    return x4 * x % P31


def sample_hash(key: np.ndarray | int, seed: int) -> np.ndarray:
    """The sampling-order hash of non-negative int64 keys (see ``macros/hashing.sql``):
    an affine map, the permutation x -> x^5 mod (2^31 - 1), and another affine map."""
    k = np.asarray(key, dtype=np.int64)
    if np.any(k < 0) or seed < 0:
        raise ValueError("sample_hash needs non-negative keys and seed")
    x0 = (k % P31 + (k // P31) * 40692 + seed * 69621) % P31
    x1 = (x0 * 48271 + 12345) % P31
    return (_pow5_mod_p(x1) * 69621 + 54321) % P31
