"""Scale factors of binary and ternary formats (float64 metadata, not codes).

A scale is computed once per cast, in Python, by these functions; the reference
and both backends call the same code, so they agree bit for bit. Means are
``numpy.mean`` in float64 over a C-contiguous copy (numpy's pairwise summation):
scales are real-valued side information, not emulated arithmetic.

Every scale is returned as a float64 array with as many dimensions as ``x`` (size-1
axes where it does not vary), so that ``codes * scale`` broadcasts.
"""

from __future__ import annotations

import numpy as np

from lowbit.numerics.formats import TWN_THRESHOLD_FACTOR, Binary, Ternary


def _finite(scale: np.ndarray, what: str) -> np.ndarray:
    if not np.isfinite(scale).all():
        raise ValueError(f"the {what} scale of x is not finite (x holds an infinity, a NaN, "
                         "or values whose mean overflows float64)")
    return scale


def _mean_abs(x: np.ndarray) -> float:
    a = np.abs(np.ascontiguousarray(x, dtype=np.float64))
    with np.errstate(over="ignore", invalid="ignore"):
        return float(np.mean(a)) if a.size else 0.0


def binary_scale(x: np.ndarray, fmt: Binary) -> np.ndarray | None:
    """XNOR-Net scale: None, mean |x| (``"mean_abs"``) or mean |x| per index of axis 0."""
    x = np.asarray(x)
    if fmt.scale is None:
        return None
    if fmt.scale == "mean_abs":
        return _finite(np.full((1,) * x.ndim, _mean_abs(x)), "mean_abs")
    if x.ndim < 2:
        raise ValueError(f"Binary(scale='per_channel') needs x with ndim >= 2, got shape {x.shape}")
    a = np.abs(np.ascontiguousarray(x, dtype=np.float64)).reshape(x.shape[0], -1)
    with np.errstate(over="ignore", invalid="ignore"):
        per = a.mean(axis=1) if a.shape[1] else np.zeros(x.shape[0])
    return _finite(per.reshape((x.shape[0],) + (1,) * (x.ndim - 1)), "per_channel")


def ternary_threshold(x: np.ndarray, fmt: Ternary) -> float:
    """The threshold: absolute, or 0.7 * mean |x| (TWN)."""
    if fmt.threshold == "twn":
        t = TWN_THRESHOLD_FACTOR * _mean_abs(np.asarray(x))
        if np.isinf(t):
            raise ValueError("the TWN threshold of x is not finite (x holds an infinity "
                             "or values whose mean overflows float64)")
        return t
    return float(fmt.threshold)


def ternary_scale(x: np.ndarray, fmt: Ternary, threshold: float) -> np.ndarray | None:
    """TWN scale: mean |x| over |x| > threshold (0.0 if none), or None."""
    x = np.asarray(x)
    if fmt.scale is None:
        return None
    a = np.abs(np.ascontiguousarray(x, dtype=np.float64)).ravel()
    kept = a[a > threshold]
    with np.errstate(over="ignore", invalid="ignore"):
        mean = float(np.mean(kept)) if kept.size else 0.0
    return _finite(np.full((1,) * x.ndim, mean), "twn")
