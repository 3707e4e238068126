"""Exact reference for casting floats to binary and ternary codes.

Binary: code = +1 if x >= 0 else -1 (so 0.0 and -0.0 give +1).
Ternary: code = sign(x) if |x| > threshold else 0.
NaN raises ``ValueError`` naming its index; infinities are ordinary signs.
Scales come from :mod:`lowbit.numerics.scales`. Products and sums of these codes are
integer arithmetic: :func:`lowbit.numerics.reference.fixed.matmul` with ``frac = 0``
is their reference.
"""

from __future__ import annotations

import math

import numpy as np

from lowbit.numerics import scales
from lowbit.numerics.formats import Binary, Ternary


def _check_nan(x: np.ndarray) -> None:
    for i, v in enumerate(x.ravel().tolist()):
        if math.isnan(v):
            raise ValueError(f"x{[int(j) for j in np.unravel_index(i, x.shape)]} is NaN")


def cast_binary(x: np.ndarray, fmt: Binary) -> tuple[np.ndarray, np.ndarray | None]:
    """(codes, scale) of ``x`` in ``fmt``."""
    x = np.asarray(x, dtype=np.float64)
    _check_nan(x)
    codes = [1 if v >= 0 else -1 for v in x.ravel().tolist()]
    return np.array(codes, dtype=np.int64).reshape(x.shape), scales.binary_scale(x, fmt)


def cast_ternary(x: np.ndarray, fmt: Ternary) -> tuple[np.ndarray, np.ndarray | None]:
    """(codes, scale) of ``x`` in ``fmt``."""
    x = np.asarray(x, dtype=np.float64)
    _check_nan(x)
    t = scales.ternary_threshold(x, fmt)
    codes = [(1 if v > 0 else -1) if abs(v) > t else 0 for v in x.ravel().tolist()]
    return (np.array(codes, dtype=np.int64).reshape(x.shape),
            scales.ternary_scale(x, fmt, t))
