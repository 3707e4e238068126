"""Exact reference for fixed-point arithmetic (and binary/ternary codes as integers).

Operands are numpy arrays of integer codes plus the number of fractional bits of
their format (``frac``; binary and ternary codes have ``frac = 0``). Results are
int64 code arrays of the output format ``out``. Each function computes the exact
rational result with Python ints and :class:`~fractions.Fraction` and rounds it
once (:func:`lowbit.numerics.reference.rounding.quantize`); accumulations into a narrow
``acc`` format round once per addition, in the stated order. Stochastic
rounding draws from :mod:`lowbit.numerics.rng` with the counters of ``docs/rng.md``.

>>> import numpy as np
>>> from lowbit.numerics import Fixed
>>> mul(np.array([3]), 1, np.array([3]), 1, Fixed(8, 1))  # 1.5 * 1.5 = 2.25 -> 2.0 (tie to even)
array([4])
"""

from __future__ import annotations

import builtins
import math
from fractions import Fraction
from typing import Sequence

import numpy as np

from lowbit.numerics import rng
from lowbit.numerics.formats import Fixed
from lowbit.numerics.modes import Overflow, Rounding
from lowbit.numerics.reference.rounding import apply_overflow, quantize, round_to_grid

ORDERS = ("sequential", "pairwise")


def _u53(fmt: Fixed, seed: int, counter: int) -> int:
    return rng.random_u53(seed, counter) if fmt.rounding is Rounding.STOCHASTIC else 0


def _codes_array(values: Sequence[int], shape: tuple[int, ...]) -> np.ndarray:
    return np.array(list(values), dtype=np.int64).reshape(shape)


def _index(i: int, shape: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(int(v) for v in np.unravel_index(i, shape)) if shape else ()


def quantize_all(values: Sequence[Fraction], fmt: Fixed, seed: int = 0) -> list[int]:
    """Quantize exact values; value ``i`` uses stochastic counter ``i``."""
    return [quantize(v, fmt, _u53(fmt, seed, i)) for i, v in enumerate(values)]


def cast(x: np.ndarray, fmt: Fixed, seed: int = 0) -> np.ndarray:
    """Codes of the floats ``x`` in ``fmt`` (counter = flat C-order index).

    NaN raises ``ValueError`` naming its index; +-inf saturates under SATURATE
    and raises under WRAP.
    """
    x = np.asarray(x)
    out = []
    for i, v in enumerate(x.ravel().tolist()):
        v = float(v)
        if math.isnan(v):
            raise ValueError(f"x{list(_index(i, x.shape))} is NaN")
        if math.isinf(v):
            if fmt.overflow is Overflow.WRAP:
                raise ValueError(f"x{list(_index(i, x.shape))} is {v} and cannot wrap")
            out.append(fmt.max_code if v > 0 else fmt.min_code)
            continue
        out.append(quantize(Fraction(v), fmt, _u53(fmt, seed, i)))
    return _codes_array(out, x.shape)


def values(codes: np.ndarray, frac: int, scale: np.ndarray | None = None) -> list[Fraction]:
    """Exact values code * 2**-frac (* scale, a float64 array broadcastable to codes)."""
    codes = np.asarray(codes)
    ulp = Fraction(2) ** -frac
    vals = [int(c) * ulp for c in codes.ravel().tolist()]
    if scale is not None:
        s = np.broadcast_to(np.asarray(scale, dtype=np.float64), codes.shape).ravel().tolist()
        vals = [v * Fraction(f) for v, f in zip(vals, s)]
    return vals


def convert(codes: np.ndarray, frac: int, fmt: Fixed, seed: int = 0,
            scale: np.ndarray | None = None) -> np.ndarray:
    """Re-round codes of a format with ``frac`` fractional bits (and ``scale``) into ``fmt``."""
    codes = np.asarray(codes)
    return _codes_array(quantize_all(values(codes, frac, scale), fmt, seed), codes.shape)


def _elementwise(op, a, fa, b, fb, out: Fixed, seed: int) -> np.ndarray:
    a, b = np.broadcast_arrays(np.asarray(a), np.asarray(b))
    exact = [op(x, y) for x, y in zip(values(a, fa), values(b, fb))]
    return _codes_array(quantize_all(exact, out, seed), a.shape)


def add(a, fa: int, b, fb: int, out: Fixed, seed: int = 0) -> np.ndarray:
    """Element-wise a + b (numpy broadcasting), rounded once into ``out``."""
    return _elementwise(lambda x, y: x + y, a, fa, b, fb, out, seed)


def sub(a, fa: int, b, fb: int, out: Fixed, seed: int = 0) -> np.ndarray:
    """Element-wise a - b (numpy broadcasting), rounded once into ``out``."""
    return _elementwise(lambda x, y: x - y, a, fa, b, fb, out, seed)


def mul(a, fa: int, b, fb: int, out: Fixed, seed: int = 0) -> np.ndarray:
    """Element-wise a * b (numpy broadcasting), rounded once into ``out``."""
    return _elementwise(lambda x, y: x * y, a, fa, b, fb, out, seed)


def accumulate(terms: Sequence[Fraction], acc: Fixed, order: str = "sequential",
               compensated: bool = False, seed: int = 0, element: int = 0) -> Fraction:
    """Sum exact ``terms`` in the narrow accumulator format ``acc``; returns the value.

    - ``"sequential"``: s = 0; for k: s = q(s + t_k) with one rounding per step
      (the rounding of step k uses counter ``step_counter(element, k)``).
    - ``"pairwise"``: every term is first rounded into ``acc`` (steps 0..K-1), then
      neighbours are added level by level, (0+1), (2+3), ..., an odd last element
      passing up unchanged; the additions are steps K, K+1, ... in that order.
    - ``compensated`` (sequential only): Kahan summation with an exact
      compensation register c holding the bits the rounding dropped:
      y = t_k - c; z = s + y; n = round(z) before overflow; c = n - z;
      s = overflow(n). The register never carries saturation or wrap-around.
    """
    ulp = acc.ulp
    K = len(terms)
    if order == "sequential":
        s = Fraction(0)
        c = Fraction(0)
        for k, t in enumerate(terms):
            u = _u53(acc, seed, rng.step_counter(element, k))
            if compensated:
                z = s + (t - c)
                n = round_to_grid(z, acc, u)
                c = n * ulp - z
                s = apply_overflow(n, acc) * ulp
            else:
                s = quantize(s + t, acc, u) * ulp
        return s
    if order != "pairwise":
        raise ValueError(f"order must be one of {ORDERS}, got {order!r}")
    if compensated:
        raise ValueError("compensated=True needs order='sequential'")
    level = [quantize(t, acc, _u53(acc, seed, rng.step_counter(element, k))) * ulp
             for k, t in enumerate(terms)]
    step = K
    while len(level) > 1:
        nxt = []
        for i in range(0, len(level) - 1, 2):
            u = _u53(acc, seed, rng.step_counter(element, step))
            nxt.append(quantize(level[i] + level[i + 1], acc, u) * ulp)
            step += 1
        if len(level) % 2:
            nxt.append(level[-1])
        level = nxt
    return level[0] if level else Fraction(0)


def reduce_rows(rows: Sequence[Sequence[Fraction]], out: Fixed, acc: Fixed | None = None,
                order: str = "sequential", compensated: bool = False,
                seed: int = 0) -> list[int]:
    """Sum each row of exact terms and round it into ``out`` (final step counter).

    With ``acc=None`` the sum is exact (order is irrelevant); otherwise
    :func:`accumulate` defines it.
    """
    if order not in ORDERS:
        raise ValueError(f"order must be one of {ORDERS}, got {order!r}")
    codes = []
    for o, row in enumerate(rows):
        if acc is None:
            s = builtins.sum(row, Fraction(0))
        else:
            s = accumulate(row, acc, order, compensated, seed, o)
        codes.append(quantize(s, out, _u53(out, seed, rng.step_counter(o, rng.FINAL_STEP))))
    return codes


def matmul(a, fa: int, b, fb: int, out: Fixed, acc: Fixed | None = None,
           order: str = "sequential", compensated: bool = False, seed: int = 0) -> np.ndarray:
    """2-D a @ b: products exact, summed over k by :func:`reduce_rows`, into ``out``."""
    a = np.asarray(a)
    b = np.asarray(b)
    M, K = a.shape
    K2, N = b.shape
    if K != K2:
        raise ValueError(f"matmul: inner dimensions differ, {a.shape} @ {b.shape}")
    va = np.array(values(a, fa), dtype=object).reshape(M, K)
    vb = np.array(values(b, fb), dtype=object).reshape(K, N)
    rows = [[va[i, k] * vb[k, j] for k in range(K)] for i in range(M) for j in range(N)]
    return _codes_array(reduce_rows(rows, out, acc, order, compensated, seed), (M, N))


def sum(a, fa: int, axis: int | None, out: Fixed, acc: Fixed | None = None,  # noqa: A001
        order: str = "sequential", compensated: bool = False, seed: int = 0) -> np.ndarray:
    """Sum along ``axis`` (None: all elements in C order), into ``out``."""
    a = np.asarray(a)
    if axis is None:
        a = a.reshape(1, -1)
        shape: tuple[int, ...] = ()
    else:
        a = np.moveaxis(a, axis, -1)
        shape = a.shape[:-1]
        a = a.reshape(math.prod(shape), a.shape[-1])
    K = a.shape[-1]
    vals = values(a, fa)
    rows = [vals[r * K:(r + 1) * K] for r in range(a.shape[0])]
    return _codes_array(reduce_rows(rows, out, acc, order, compensated, seed), shape)
