"""Locality-sensitive hash families on integer codes (SLIDE's sparse layers).

:class:`SimHash`: K bits x L tables of signed random projections, each bit the sign of a
sum of +-codes over a random third of the coordinates (SLIDE's ``srp.cpp``, "additions
only"). Hashing the **integer codes** of a format, not float carriers, makes every bit an
exact integer comparison: the reference, Numba and C give the same buckets, and a weight
row and a query in the same format hash on the same grid. Bias augmentation (rows
[w; b], queries [x; 1], MONGOOSE) is the caller's: ``dim`` counts every coordinate hashed.

The projections are data, drawn from lowbit's counter RNG (:mod:`lowbit.numerics.rng`):
coordinate c belongs to hash h when random_u64(seed, h * dim + c) is among the ``terms``
smallest of its hash (ties broken by c), with sign + when bit 0 of
random_u64(seed ^ SIGN_SALT, h * dim + c) is 0. Bit j of table l is 1 when the sum of hash
h = l * K + j is negative (SLIDE: ``sum >= 0 ? 0 : 1``); bucket = sum_j bit_j << (K - 1 - j)
(a true K-bit concatenation).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from lowbit.numerics import rng

SIGN_SALT = 0x5EED_51C0_DE5A_17ED
MAX_BITS = 24


def _check_ints(family: str, fields) -> None:
    """Each (name, value, lo, hi): an int (not a bool) in lo..hi, else ValueError."""
    for name, v, lo, hi in fields:
        if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
            raise ValueError(f"{family}.{name} must be an integer in {lo}..{hi}, got {v!r}")


@dataclass(frozen=True)
class SimHash:
    """K = ``bits`` per table, L = ``tables``, over vectors of ``dim`` coordinates, each
    hash summing ``terms`` = max(1, round(dim * density)) of them."""

    bits: int
    tables: int
    dim: int
    density: float = 1 / 3
    seed: int = 0

    def __post_init__(self) -> None:
        _check_ints("SimHash", (("bits", self.bits, 1, MAX_BITS), ("tables", self.tables, 1, 1 << 16),
                                ("dim", self.dim, 1, 1 << 24)))
        if not 0 < self.density <= 1:
            raise ValueError(f"SimHash.density must be in (0, 1], got {self.density!r}")
        rng.check_seed(self.seed)

    @property
    def hashes(self) -> int:
        return self.bits * self.tables

    @property
    def terms(self) -> int:
        return max(1, round(self.dim * self.density))

    @property
    def buckets(self) -> int:
        """Buckets per table, 2**K."""
        return 1 << self.bits

    def projections(self) -> tuple[np.ndarray, np.ndarray]:
        """(coordinates (hashes, terms) int64, ascending per hash; signs (hashes, terms)
        int64 in {-1, +1})."""
        return _projections(self)


def _u64(seed: int, counters: np.ndarray) -> np.ndarray:
    """rng.random_u64 of (seed, each counter), vectorised in uint64 (wrapping arithmetic)."""
    with np.errstate(over="ignore"):
        z = np.uint64(seed) + (counters.astype(np.uint64) + np.uint64(1)) * np.uint64(rng.GAMMA)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(rng.MIX1)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(rng.MIX2)
    return z ^ (z >> np.uint64(31))


@functools.lru_cache(maxsize=32)
def _projections(spec: SimHash) -> tuple[np.ndarray, np.ndarray]:
    H, D, m = spec.hashes, spec.dim, spec.terms
    counters = np.arange(H * D, dtype=np.uint64).reshape(H, D)
    keys = _u64(spec.seed, counters)
    idx = np.sort(np.argsort(keys, axis=1, kind="stable")[:, :m], axis=1).astype(np.int64)
    bits = _u64(spec.seed ^ SIGN_SALT, np.take_along_axis(counters, idx, axis=1))
    sign = np.where((bits & np.uint64(1)) == 0, 1, -1).astype(np.int64)
    idx.setflags(write=False)
    sign.setflags(write=False)
    return idx, sign


DENSIFY_SALT = 0xD3A5_1F1E_D0B1_0C5E
DENSIFY_PROBES = 100


@dataclass(frozen=True)
class DWTA:
    """Densified winner-take-all hashing (SLIDE's ``DensifiedWtaHash.cpp``) on integer codes.

    K = ``bits`` codes per table, L = ``tables``. ``permutations`` = ceil(K L / (dim // bin))
    random permutations of the coordinates (from the counter RNG: coordinate order by
    random_u64(seed, p * dim + c)) are cut into bins of ``bin`` coordinates (a remainder is
    unused); hash h = l * K + j is bin h of that sequence. Its code is the position (0 ..
    bin - 1) of the largest **non-zero** code in the bin (the first one on ties); a bin with
    no non-zero code is densified: probe c = 0 .. 99 looks at bin
    random_u64(seed ^ DENSIFY_SALT, h * 128 + c) mod (number of bins) and takes its code if
    it has one (else 0 after 100 probes). Bucket of table l: sum_j code_j << ((K - 1 - j) *
    ``shift``): ``shift`` = 3 concatenates 3-bit codes (bin 8), the released code's 2 (its
    floor(ln 8)) overlaps them (9,556 of 2^18 indices reachable at K = 6).
    """

    bits: int
    tables: int
    dim: int
    bin: int = 8
    shift: int = 3
    seed: int = 0

    def __post_init__(self) -> None:
        _check_ints("DWTA", (("bits", self.bits, 1, 16), ("tables", self.tables, 1, 1 << 16),
                             ("dim", self.dim, 1, 1 << 24), ("bin", self.bin, 2, 256),
                             ("shift", self.shift, 1, 8)))
        if self.dim < self.bin:
            raise ValueError(f"DWTA: dim {self.dim} is smaller than a bin ({self.bin})")
        if (self.bits - 1) * self.shift + (self.bin - 1).bit_length() > 62:
            raise ValueError("DWTA: bits x shift leaves no room in a 62-bit bucket index")
        rng.check_seed(self.seed)

    @property
    def hashes(self) -> int:
        return self.bits * self.tables

    @property
    def permutations(self) -> int:
        """ceil(K L / bins per permutation), dim // bin bins per permutation."""
        return -(-self.hashes // (self.dim // self.bin))

    @property
    def buckets(self) -> int:
        """Size of the bucket index range, 1 + the largest index."""
        top = self.bin - 1
        return sum(top << ((self.bits - 1 - j) * self.shift) for j in range(self.bits)) + 1

    def bins(self) -> np.ndarray:
        """(number of bins, bin) int64: the coordinates of every bin, hash h = bin h."""
        return _dwta_bins(self)

    def probes(self) -> np.ndarray:
        """(hashes, 100) int64: the bins an empty bin h looks at, in order."""
        return _dwta_probes(self)


@functools.lru_cache(maxsize=32)
def _dwta_bins(spec: DWTA) -> np.ndarray:
    P, D, b = spec.permutations, spec.dim, spec.bin
    keys = _u64(spec.seed, np.arange(P * D, dtype=np.uint64).reshape(P, D))
    perm = np.argsort(keys, axis=1, kind="stable").astype(np.int64)
    per = D // b
    out = perm[:, :per * b].reshape(P * per, b)
    out.setflags(write=False)
    return out


@functools.lru_cache(maxsize=32)
def _dwta_probes(spec: DWTA) -> np.ndarray:
    n_bins = _dwta_bins(spec).shape[0]
    c = (np.arange(spec.hashes, dtype=np.uint64)[:, None] * np.uint64(128)
         + np.arange(DENSIFY_PROBES, dtype=np.uint64)[None, :])
    out = (_u64(spec.seed ^ DENSIFY_SALT, c) % np.uint64(n_bins)).astype(np.int64)
    out.setflags(write=False)
    return out
