"""An independent vectorized oracle for casts into a Float format, for sweeps over all
2^32 float32 bit patterns where the exact Python reference would take days.

It works in value space, not on bits as the kernels do: the format's positive grid
(every magnitude code decoded by the reference, plus the unbounded grid's successor of
the largest value) is searched for the neighbours lo <= |x| < hi; the dropped fraction
phi = (|x| - lo) / (hi - lo) is exact in float64 (both differences are), and each mode
decides between lo and hi from phi as the Float docstring says. Limits: formats with at
least one mantissa bit and a zero (not E8M0). It is checked against the exact
reference in tests/emulators/test_float_oracle.py before a sweep trusts it.
"""

from __future__ import annotations

import numpy as np

from lowbit.numerics.formats import Float
from lowbit.numerics.modes import Overflow, Rounding
from lowbit.numerics.reference import floating as ref

GAMMA = np.uint64(0x9E3779B97F4A7C15)


def splitmix(seed: int, counters: np.ndarray) -> np.ndarray:
    """splitmix64 outputs for an array of counters (docs/rng.md), uint64 arithmetic."""
    with np.errstate(over="ignore"):
        z = np.uint64(seed) + (counters.astype(np.uint64) + np.uint64(1)) * GAMMA
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


class Oracle:
    """Cast float arrays into ``fmt`` by grid search (see the module docstring)."""

    def __init__(self, fmt: Float):
        if fmt.man_bits == 0 or not fmt.zero:
            raise ValueError(f"the oracle needs a mantissa bit and a zero, not {fmt}")
        self.fmt = fmt
        grid = np.array([float(ref.decode(c, fmt)) for c in range(fmt.max_field + 1)])
        # the unbounded grid's successor of the largest value: an overflow iff we round to it
        self.grid = np.append(grid, grid[-1] + 2.0 ** (fmt.max_exponent - fmt.man_bits))

    def cast(self, x: np.ndarray, seed: int = 0, first_counter: int = 0) -> np.ndarray:
        """Codes of float x (counters of stochastic rounding: first_counter + index)."""
        f = self.fmt
        with np.errstate(invalid="ignore"):  # signalling NaN patterns widen quietly
            x = np.asarray(x, dtype=np.float64)
        neg = np.signbit(x)
        a = np.abs(x)
        nan = np.isnan(x)
        inf = np.isinf(x)
        finite = ~(nan | inf)
        a = np.where(finite, a, 0.0)
        top = len(self.grid) - 1
        idx = np.clip(np.searchsorted(self.grid, a, side="right") - 1, 0, top - 1)
        lo, hi = self.grid[idx], self.grid[idx + 1]
        beyond = a >= self.grid[top]
        phi = np.where(beyond, 0.0, (a - lo) / (hi - lo))
        inexact = phi > 0
        r = f.rounding
        odd = (idx & 1) == 1
        if r is Rounding.NEAREST_EVEN:
            up = (phi > 0.5) | ((phi == 0.5) & odd)
        elif r is Rounding.NEAREST_AWAY:
            up = phi >= 0.5
        elif r is Rounding.TOWARD_ZERO:
            up = np.zeros_like(inexact)
        elif r is Rounding.FLOOR:
            up = inexact & neg
        elif r is Rounding.CEIL:
            up = inexact & ~neg
        elif r is Rounding.ODD:
            up = inexact & ~odd
        else:
            u = splitmix(seed, np.arange(first_counter, first_counter + x.size, dtype=np.uint64))
            if f.sr_bits is None:
                up = (u >> np.uint64(11)).astype(np.float64) < phi * 2.0**53
            else:
                k = f.sr_bits
                t = np.floor(phi * 2.0**k)
                up = t + (u >> np.uint64(64 - k)).astype(np.float64) >= 2.0**k
        mag = idx + (up & inexact)
        sign = np.where(neg, f.sign_bit, 0)
        over = beyond | (mag > f.max_field)
        toward_zero = (r in (Rounding.TOWARD_ZERO, Rounding.ODD)) | \
            ((r is Rounding.FLOOR) & ~neg) | ((r is Rounding.CEIL) & neg)
        if f.overflow is Overflow.SATURATE:
            over_code = f.max_field | sign
        else:
            inf_or_nan = (f.inf_code | sign) if f.inf_code is not None else \
                np.full(x.shape, f.nan_code)
            over_code = np.where(toward_zero, f.max_field | sign, inf_or_nan)
        if not f.subnormals:
            mag = np.where(mag < (1 << f.man_bits), 0, mag)
        zero_code = sign if f.has_negative_zero else 0
        code = np.where(mag == 0, zero_code, mag | sign)
        code = np.where(over, over_code, code)
        if not f.signed:  # negative into unsigned
            neg_code = 0 if f.overflow is Overflow.SATURATE else f.nan_code
            code = np.where(neg & finite & (a > 0), neg_code, np.where(neg & (a == 0), 0, code))
        code = np.where(inf, self._inf_codes(neg), code)
        if f.nan_code is not None:
            code = np.where(nan, f.nan_code, code)
        return code.astype(np.int64)

    def _inf_codes(self, neg: np.ndarray) -> np.ndarray:
        f = self.fmt
        return np.array([ref.quantize(-np.inf if n else np.inf, f) for n in (False, True)])[
            neg.astype(np.int64)]
