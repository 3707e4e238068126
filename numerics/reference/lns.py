"""Exact reference for the logarithmic number system (see docs/lns.md).

Codes: 0 is zero; a nonzero value (-1)**s * 2**(e / 2**F) has code
+-(e - e_min + 1), negative for s = 1. All formats taking part in one operation
share ``frac_bits`` F (their ``int_bits`` may differ), except the accumulator of
a matmul/sum, which may be finer (F_acc >= F).

- multiplication and division add and subtract exponents exactly;
- addition: with e_big >= e_small and z = e_small - e_big <= 0, the result is
  e_big + sb(z) (same signs) or e_big + db(z) (different signs; z = 0 gives an
  exact zero), where sb/db follow the output format's adder spec
  (:func:`lowbit.numerics.gaussian_log.reference_value`) and rounding mode;
- every result then meets the range policy: above e_max it saturates, below
  e_min it becomes 0 (``underflow="zero"``) or e_min (``"min"``).

Stochastic draws use :mod:`lowbit.numerics.rng` counters: the flat output index for
element-wise operations; ``step_counter(element, step)`` inside accumulations
(step k for the k-th addition, 4k..4k+3 for the four roundings of a Kahan step,
K + j for the j-th addition of the pairwise tree, FINAL_STEP for the rounding
into ``out``).
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Sequence

import mpmath
import numpy as np

from lowbit.numerics import gaussian_log as gl
from lowbit.numerics import rng
from lowbit.numerics.formats import LNS
from lowbit.numerics.modes import Rounding
from lowbit.numerics.reference.rounding import round_to_integer

ORDERS = ("sequential", "pairwise")


def decode(code: int, fmt: LNS) -> tuple[int, int] | None:
    """(sign, e) of a code, or None for zero."""
    if code == 0:
        return None
    return (1 if code < 0 else 0), abs(code) - 1 + fmt.e_min


def encode(sign: int, e: int, fmt: LNS) -> int:
    """The code of (-1)**sign * 2**(e / 2**F) after the range policy."""
    if e > fmt.e_max:
        e = fmt.e_max
    elif e < fmt.e_min:
        if fmt.underflow == "zero":
            return 0
        e = fmt.e_min
    mag = e - fmt.e_min + 1
    return -mag if sign else mag


def _u53(fmt: LNS, seed: int, counter: int) -> int:
    return rng.random_u53(seed, counter) if fmt.rounding is Rounding.STOCHASTIC else 0


def _check_same_frac(*fmts: LNS) -> None:
    if len({f.frac_bits for f in fmts}) != 1:
        raise ValueError(f"LNS operands and result must share frac_bits, got {list(fmts)}")


def to_float(code: int, fmt: LNS) -> float:
    """The value rounded to the nearest float64."""
    d = decode(code, fmt)
    if d is None:
        return 0.0
    s, e = d
    v = float(mpmath.power(2, mpmath.mpf(e) / 2**fmt.frac_bits))
    return -v if s else v


# ------------------------------------------------------------------- cast ---

def cast(x: np.ndarray, fmt: LNS, seed: int = 0) -> np.ndarray:
    """Codes of floats: e = round(log2|x| * 2**F) in the format's mode (log domain).

    0.0 and -0.0 give zero; +-inf saturates; NaN raises naming its index;
    STOCHASTIC is not supported for casts (ValueError).
    """
    if fmt.rounding is Rounding.STOCHASTIC:
        raise ValueError("casting into an LNS format with STOCHASTIC rounding is not supported; "
                         "cast with rne/floor/ceil (stochastic rounding applies to arithmetic)")
    x = np.asarray(x, dtype=np.float64)
    out = []
    for i, v in enumerate(x.ravel().tolist()):
        if math.isnan(v):
            raise ValueError(f"x{[int(j) for j in np.unravel_index(i, x.shape)]} is NaN")
        if v == 0:
            out.append(0)
            continue
        sign = 1 if v < 0 else 0
        if math.isinf(v):
            out.append(encode(sign, fmt.e_max, fmt))
            continue
        y = gl.MP.log(gl.MP.mpf(abs(v)), 2)
        m, _ = math.frexp(abs(v))
        if m == 0.5:  # a power of two: log2 is an exact integer
            e = (math.frexp(abs(v))[1] - 1) << fmt.frac_bits
        else:
            e = gl.round_mp(y, fmt.frac_bits, fmt.rounding)
        out.append(encode(sign, e, fmt))
    return np.array(out, dtype=np.int64).reshape(x.shape)


def convert(codes: np.ndarray, src: LNS, dst: LNS, seed: int = 0) -> np.ndarray:
    """Re-round exponents from src.frac_bits to dst.frac_bits (fixed-point rounding
    of e in dst's mode, ties to even; counter: flat index), then dst's range policy."""
    codes = np.asarray(codes)
    out = [convert_one(int(c), src, dst, _u53(dst, seed, i))
           for i, c in enumerate(codes.ravel().tolist())]
    return np.array(out, dtype=np.int64).reshape(codes.shape)


# ------------------------------------------------------------ arithmetic ---

def add_decoded(dx: tuple[int, int] | None, dy: tuple[int, int] | None, out: LNS,
                u53: int = 0) -> int:
    """x + y for decoded (sign, e) operands (None: zero) with out's frac_bits, rounded into out."""
    if dx is None:
        return 0 if dy is None else encode(dy[0], dy[1], out)
    if dy is None:
        return encode(dx[0], dx[1], out)
    (sx, ex), (sy, ey) = dx, dy
    if ex < ey:
        (sx, ex), (sy, ey) = (sy, ey), (sx, ex)
    zabs = ex - ey
    if sx == sy:
        v = gl.reference_value(gl.SB, zabs, out)
    else:
        if zabs == 0:
            return 0  # exact cancellation
        v = gl.reference_value(gl.DB, zabs, out)
    return encode(sx, ex + gl.round_guard(v, gl.geometry(out).guard, out.rounding, u53), out)


def add_codes(x: int, fx: LNS, y: int, fy: LNS, out: LNS, u53: int = 0) -> int:
    """x + y for codes of fx and fy (all three formats share frac_bits), into out."""
    return add_decoded(decode(x, fx), decode(y, fy), out, u53)


def widen(code: int, src: LNS, dst: LNS) -> int:
    """A code of src in dst, dst.frac_bits >= src.frac_bits (exact but for dst's range)."""
    d = decode(code, src)
    return 0 if d is None else encode(d[0], d[1] << (dst.frac_bits - src.frac_bits), dst)


def _elementwise(fn, a, b):
    a, b = np.broadcast_arrays(np.asarray(a), np.asarray(b))
    vals = [fn(i, int(x), int(y)) for i, (x, y) in enumerate(zip(a.ravel().tolist(),
                                                                  b.ravel().tolist()))]
    return np.array(vals, dtype=np.int64).reshape(a.shape)


def add(a, fa: LNS, b, fb: LNS, out: LNS, seed: int = 0) -> np.ndarray:
    """Element-wise a + b (numpy broadcasting) into ``out`` (counter: flat index)."""
    _check_same_frac(fa, fb, out)
    return _elementwise(lambda i, x, y: add_codes(x, fa, y, fb, out, _u53(out, seed, i)), a, b)


def sub(a, fa: LNS, b, fb: LNS, out: LNS, seed: int = 0) -> np.ndarray:
    """Element-wise a - b into ``out``."""
    _check_same_frac(fa, fb, out)
    return _elementwise(lambda i, x, y: add_codes(x, fa, -y, fb, out, _u53(out, seed, i)), a, b)


def mul_codes(x: int, fx: LNS, y: int, fy: LNS, out: LNS, divide: bool = False) -> int:
    """x * y (or x / y): exact exponent sum (difference) at out's frac_bits (>= the
    operands'), then out's range policy."""
    dx, dy = decode(x, fx), decode(y, fy)
    if divide and dy is None:
        raise ZeroDivisionError("division by zero")
    if dx is None or dy is None:
        return 0
    ex = dx[1] << (out.frac_bits - fx.frac_bits)
    ey = dy[1] << (out.frac_bits - fy.frac_bits)
    return encode(dx[0] ^ dy[0], ex - ey if divide else ex + ey, out)


def mul(a, fa: LNS, b, fb: LNS, out: LNS, seed: int = 0) -> np.ndarray:
    """Element-wise a * b: exact exponent addition, then out's range policy."""
    _check_same_frac(fa, fb, out)
    return _elementwise(lambda i, x, y: mul_codes(x, fa, y, fb, out), a, b)


def div(a, fa: LNS, b, fb: LNS, out: LNS, seed: int = 0) -> np.ndarray:
    """Element-wise a / b; a zero divisor raises ValueError naming its index."""
    _check_same_frac(fa, fb, out)
    a_, b_ = np.broadcast_arrays(np.asarray(a), np.asarray(b))
    zero = np.flatnonzero(b_.ravel() == 0)
    if zero.size:
        idx = [int(j) for j in np.unravel_index(zero[0], b_.shape)]
        raise ValueError(f"division by zero: b{idx} is 0")
    return _elementwise(lambda i, x, y: mul_codes(x, fa, y, fb, out, divide=True), a, b)


# ----------------------------------------------------------- accumulation ---

def accumulate(terms: Sequence[int], acc: LNS, order: str = "sequential",
               compensated: bool = False, seed: int = 0, element: int = 0) -> int:
    """Sum codes of ``acc`` in ``acc``'s arithmetic; the accumulator's code.

    Sequential: s = 0; s = s + t_k (step k). Kahan (sequential only), every
    operation an LNS operation: y = t - c (step 4k), t' = s + y (4k+1),
    u = t' - s (4k+2), c = u - y (4k+3), s = t'. Pairwise: level by level,
    (0+1), (2+3), ..., an odd last term carried, additions numbered K, K+1, ...
    """
    def u(step: int) -> int:
        return _u53(acc, seed, rng.step_counter(element, step))

    if order == "sequential":
        s = c = 0
        for k, t in enumerate(terms):
            if compensated:
                y = add_codes(t, acc, -c, acc, acc, u(4 * k))
                t2 = add_codes(s, acc, y, acc, acc, u(4 * k + 1))
                d = add_codes(t2, acc, -s, acc, acc, u(4 * k + 2))
                c = add_codes(d, acc, -y, acc, acc, u(4 * k + 3))
                s = t2
            else:
                s = add_codes(s, acc, t, acc, acc, u(k))
        return s
    if order != "pairwise":
        raise ValueError(f"order must be one of {ORDERS}, got {order!r}")
    if compensated:
        raise ValueError("compensated=True needs order='sequential'")
    level = list(terms)
    step = len(level)
    while len(level) > 1:
        nxt = []
        for i in range(0, len(level) - 1, 2):
            nxt.append(add_codes(level[i], acc, level[i + 1], acc, acc, u(step)))
            step += 1
        if len(level) % 2:
            nxt.append(level[-1])
        level = nxt
    return level[0] if level else 0


def convert_one(code: int, src: LNS, dst: LNS, u53: int = 0) -> int:
    """One code of src re-rounded into dst (as :func:`convert`)."""
    d = decode(code, src)
    if d is None:
        return 0
    shift = src.frac_bits - dst.frac_bits
    if shift <= 0:
        return encode(d[0], d[1] << -shift, dst)
    return encode(d[0], round_to_integer(Fraction(d[1], 1 << shift), dst.rounding, u53), dst)


def _finish(s: int, acc: LNS, out: LNS, seed: int, element: int) -> int:
    return convert_one(s, acc, out, _u53(out, seed, rng.step_counter(element, rng.FINAL_STEP)))


def matmul(a, fa: LNS, b, fb: LNS, out: LNS, acc: LNS | None = None, order: str = "sequential",
           compensated: bool = False, seed: int = 0) -> np.ndarray:
    """2-D a @ b: exact products formed in ``acc`` (default ``out``), summed by
    :func:`accumulate`, then converted into ``out`` (counter FINAL_STEP)."""
    acc = out if acc is None else acc
    _check_same_frac(fa, fb)
    if acc.frac_bits < fa.frac_bits:
        raise ValueError("the accumulator needs at least the operands' frac_bits")
    a, b = np.asarray(a), np.asarray(b)
    M, K = a.shape
    N = b.shape[1]
    res = np.zeros((M, N), dtype=np.int64)
    for i in range(M):
        for j in range(N):
            e = i * N + j
            terms = [mul_codes(int(a[i, k]), fa, int(b[k, j]), fb, acc) for k in range(K)]
            res[i, j] = _finish(accumulate(terms, acc, order, compensated, seed, e), acc, out,
                                seed, e)
    return res


def sum(a, fa: LNS, axis: int | None, out: LNS, acc: LNS | None = None,  # noqa: A001
        order: str = "sequential", compensated: bool = False, seed: int = 0) -> np.ndarray:
    """Sum along ``axis`` (None: all elements, C order) into ``out`` via ``acc``."""
    acc = out if acc is None else acc
    if acc.frac_bits < fa.frac_bits:
        raise ValueError("the accumulator needs at least the operands' frac_bits")
    a = np.asarray(a)
    if axis is None:
        rows, shape = a.reshape(1, -1), ()
    else:
        moved = np.moveaxis(a, axis, -1)
        shape = moved.shape[:-1]
        rows = moved.reshape(math.prod(shape), moved.shape[-1])
    res = []
    for m in range(rows.shape[0]):
        terms = [widen(int(c), fa, acc) for c in rows[m]]
        res.append(_finish(accumulate(terms, acc, order, compensated, seed, m), acc, out, seed, m))
    return np.array(res, dtype=np.int64).reshape(shape)


# ------------------------------------------------------- LNS <-> Fixed ---

def to_fixed(codes: np.ndarray, src: LNS, dst, seed: int = 0) -> np.ndarray:
    """Codes of LNS values in the Fixed format ``dst``: the exact value rounded once
    with dst's rounding and overflow (counter: flat index).

    Powers of two (e a multiple of 2**F) are exact rationals; every other value is
    irrational, evaluated once per distinct code with mpmath at 200 bits, and each
    decision is asserted to be far from the working precision.
    """
    from lowbit.numerics.reference.rounding import apply_overflow, quantize

    codes = np.asarray(codes)
    flat = codes.ravel().tolist()
    exact: dict[int, object] = {}
    for c in set(flat):
        d = decode(int(c), src)
        if d is None or d[1] % (1 << src.frac_bits) == 0:
            exact[c] = Fraction(0) if d is None else \
                (-1) ** d[0] * Fraction(2) ** (d[1] >> src.frac_bits)
            continue
        v = gl.MP.power(2, gl.MP.mpf(d[1]) / 2**src.frac_bits + dst.frac)
        exact[c] = -v if d[0] else v
    out = []
    for i, c in enumerate(flat):
        y = exact[c]
        u = rng.random_u53(seed, i) if dst.rounding is Rounding.STOCHASTIC else 0
        if isinstance(y, Fraction):
            out.append(quantize(y, dst, u))
            continue
        q = int(gl.MP.floor(y))
        phi = y - q  # irrational: never 0 or 1/2
        eps = gl.MP.mpf(2) ** -(gl.PREC - 20) * max(1, abs(y))
        if dst.rounding is Rounding.STOCHASTIC:
            assert abs(phi * 2**53 - u) > eps * 2**53, "undecidable stochastic rounding"
            n = q + (u < phi * 2**53)
        else:
            assert eps < phi < 1 - eps and abs(phi - 0.5) > eps, "undecidable rounding"
            n = {Rounding.NEAREST_EVEN: q + (phi > 0.5), Rounding.NEAREST_AWAY: q + (phi > 0.5),
                 Rounding.TOWARD_ZERO: q + (y < 0), Rounding.FLOOR: q,
                 Rounding.CEIL: q + 1}[dst.rounding]
        out.append(apply_overflow(int(n), dst))
    return np.array(out, dtype=np.int64).reshape(codes.shape)
