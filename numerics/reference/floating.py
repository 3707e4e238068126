"""Exact reference for floating-point formats (:class:`~lowbit.numerics.formats.Float`).

Codes are bit patterns (Python ints, int64 arrays). A value is a
:class:`~fractions.Fraction` (finite, nonzero or +0) or a Python float for what a
fraction cannot say: ±inf, NaN and -0.0. Every operation computes its exact result
(products, quotients and sums of fractions: never through a wider float) and rounds it
once with :func:`quantize`, whose rules are the ``Float`` docstring's:

1. NaN gives the format's NaN (ValueError without one); ±inf follows ``fmt.inf``;
2. a negative value into an unsigned format is the smallest value (SATURATE) or NaN;
3. the magnitude is rounded onto the grid of its binade (the subnormal grid below the
   smallest normal; unbounded above), with ``fmt.rounding`` — STOCHASTIC from the 64-bit
   draw ``u64`` (53 bits: away from zero iff u64 >> 11 < φ·2**53; ``sr_bits`` = k: iff
   floor(φ·2**k) + (u64 >> (64 - k)) >= 2**k);
4. beyond the largest finite value: ``fmt.overflow`` (INFINITY: ±inf, or NaN, except
   where the directed mode points toward zero, as IEEE 754 §7.4 says);
5. a subnormal result with ``subnormals=False`` flushes to the zero of its sign; a
   format without zero gives its smallest value for anything below it;
6. a zero is -0 when the exact value was negative (or -0.0) and the format has -0.

Arithmetic follows IEEE 754 for specials and signed zeros: NaN in, NaN out; inf - inf,
0 * inf, 0/0 and inf/inf are NaN; x/0 is ±inf; an exact zero sum of opposite signs is +0 (-0
under FLOOR), of equal signs that sign; operands with ``daz=True`` read subnormals as zero.

>>> from lowbit.numerics import parse_format as fmt
>>> [quantize(v, fmt("e4m3")) for v in (448, 464, 465)], quantize(465, fmt("e4m3:inf"))
([126, 126, 126], 127)
>>> decode(0x7E, fmt("e4m3")), decode(0x7C, fmt("e5m2")), decode(0x80, fmt("e4m3fnuz"))
(Fraction(448, 1), inf, nan)
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Callable

import numpy as np

from lowbit.numerics import rng
from lowbit.numerics.formats import Float
from lowbit.numerics.modes import Overflow, Rounding

INF = math.inf
NAN = math.nan
HALF = Fraction(1, 2)
TWO53 = 1 << 53

Value = Fraction | float


def floor_log2(m: Fraction) -> int:
    """floor(log2(m)) of a positive rational, exactly."""
    e = m.numerator.bit_length() - m.denominator.bit_length()
    return e if Fraction(2) ** e <= m else e - 1


def _is_negative(x: Value) -> bool:
    return math.copysign(1.0, x) < 0 if isinstance(x, float) else x < 0


def _round_up(q: int, phi: Fraction, fmt: Float, negative: bool, u64: int) -> bool:
    """Whether the magnitude q + phi (0 < phi < 1) rounds away from zero."""
    r = fmt.rounding
    if r is Rounding.NEAREST_EVEN:
        return phi > HALF or (phi == HALF and q % 2 == 1)
    if r is Rounding.NEAREST_AWAY:
        return phi >= HALF
    if r is Rounding.TOWARD_ZERO:
        return False
    if r is Rounding.FLOOR:
        return negative
    if r is Rounding.CEIL:
        return not negative
    if r is Rounding.ODD:
        return q % 2 == 0
    if fmt.sr_bits is None:
        return (u64 >> 11) < phi * TWO53
    k = fmt.sr_bits
    return math.floor(phi * (1 << k)) + (u64 >> (64 - k)) >= (1 << k)


def _toward_zero_on_overflow(fmt: Float, negative: bool) -> bool:
    """Whether an overflow gives ±max rather than ±inf under Overflow.INFINITY."""
    r = fmt.rounding
    return (r in (Rounding.TOWARD_ZERO, Rounding.ODD) or (r is Rounding.FLOOR and not negative)
            or (r is Rounding.CEIL and negative))


def _nan(fmt: Float, what: str) -> int:
    if fmt.nan_code is None:
        raise ValueError(f"{what} cannot be represented in {fmt} (it has no NaN)")
    return fmt.nan_code


def _inf(fmt: Float, negative: bool) -> int:
    """The code of an infinite value under ``fmt.inf``."""
    if fmt.inf == "max":
        return 0 if negative and not fmt.signed else encode(fmt.max_value, negative, fmt)
    if fmt.inf == "nan" or (negative and not fmt.signed):
        return _nan(fmt, "-inf" if negative else "inf")
    return fmt.inf_code | (fmt.sign_bit if negative else 0)


def encode(v: Fraction, negative: bool, fmt: Float) -> int:
    """The code of the representable magnitude ``v`` (>= 0, on the format's grid)."""
    sign = fmt.sign_bit if negative else 0
    if v == 0:
        return sign if fmt.has_negative_zero else 0
    e = floor_log2(v)
    if fmt.zero and e < fmt.min_exponent:  # subnormal
        return sign | int(v / Fraction(2) ** (fmt.min_exponent - fmt.man_bits))
    field = e + fmt.bias
    mant = int(v / Fraction(2) ** (e - fmt.man_bits)) - (1 << fmt.man_bits)
    return sign | (field << fmt.man_bits) | mant


def quantize(x: Value, fmt: Float, u64: int = 0) -> int:
    """The code of the exact value ``x`` (a Fraction or int, or a float: ±inf, NaN, ±0.0
    and finite floats, taken exactly) in ``fmt``: one rounding, then overflow, FTZ and
    the special-value rules of the module docstring."""
    if isinstance(x, float):
        if math.isnan(x):
            return _nan(fmt, "NaN")
        if math.isinf(x):
            return _inf(fmt, x < 0)
        negative = math.copysign(1.0, x) < 0
        m = abs(Fraction(x))
    else:
        x = Fraction(x)
        negative = x < 0
        m = abs(x)
    if negative and not fmt.signed:
        if m == 0:
            return 0
        if fmt.overflow is Overflow.SATURATE:
            return 0
        return _nan(fmt, f"the negative value {x}")
    if m == 0:
        return encode(Fraction(0), negative, fmt) if fmt.zero else 0
    e = floor_log2(m)
    qe = max(e, fmt.min_exponent) - fmt.man_bits
    scaled = m / Fraction(2) ** qe
    q = math.floor(scaled)
    phi = scaled - q
    n = q + 1 if phi and _round_up(q, phi, fmt, negative, u64) else q
    if not fmt.zero:
        n = max(n, 1 << fmt.man_bits)  # nothing below the smallest value
    v = n * Fraction(2) ** qe
    if v > fmt.max_value:
        if fmt.overflow is Overflow.SATURATE or _toward_zero_on_overflow(fmt, negative):
            return encode(fmt.max_value, negative, fmt)
        if fmt.has_inf:
            return fmt.inf_code | (fmt.sign_bit if negative else 0)
        return _nan(fmt, f"the overflow of {x}")
    if v and v < fmt.min_normal and not fmt.subnormals:
        v = Fraction(0)
    return encode(v, negative, fmt)


def decode(code: int, fmt: Float) -> Value:
    """The value of a code: a Fraction, or a float for ±inf, NaN and -0.0."""
    code = int(code)
    if not 0 <= code <= fmt.max_code:
        raise ValueError(f"code {code} is outside {fmt}'s codes 0..{fmt.max_code}")
    negative = bool(code & fmt.sign_bit)
    mag = code & ~fmt.sign_bit
    ones = (1 << (fmt.exp_bits + fmt.man_bits)) - 1
    field, mant = mag >> fmt.man_bits, mag & ((1 << fmt.man_bits) - 1)
    if fmt.specials == "ieee" and field == (1 << fmt.exp_bits) - 1:
        return NAN if mant else (-INF if negative else INF)
    if fmt.specials == "fn" and mag == ones:
        return NAN
    if fmt.specials in ("fnuz", "p3109") and negative and mag == 0:
        return NAN
    if fmt.specials == "p3109" and mag == ones:
        return -INF if negative else INF
    if field == 0 and fmt.zero:
        v = Fraction(mant) * Fraction(2) ** (fmt.min_exponent - fmt.man_bits)
    else:
        v = Fraction((1 << fmt.man_bits) | mant) * Fraction(2) ** (field - fmt.bias - fmt.man_bits)
    if v == 0:
        return -0.0 if negative else Fraction(0)
    return -v if negative else v


def operand(code: int, fmt: Float) -> Value:
    """The value an operation reads: :func:`decode`, with subnormals as zero under daz."""
    v = decode(code, fmt)
    if fmt.daz and isinstance(v, Fraction) and v != 0 and abs(v) < fmt.min_normal:
        return -0.0 if v < 0 else Fraction(0)
    return v


def is_nan(v: Value) -> bool:
    return isinstance(v, float) and math.isnan(v)


def _u64(fmt: Float, seed: int, counter: int) -> int:
    return rng.random_u64(seed, counter) if fmt.rounding is Rounding.STOCHASTIC else 0


def cast(x: np.ndarray, fmt: Float, seed: int = 0) -> np.ndarray:
    """Codes of the floats ``x`` (exact values; float32 or float64) in ``fmt``
    (stochastic counter: the flat C-order index). A NaN or inf that ``fmt`` cannot hold
    raises ValueError naming its index."""
    x = np.asarray(x)
    out = []
    for i, v in enumerate(x.ravel().tolist()):
        try:
            out.append(quantize(float(v), fmt, _u64(fmt, seed, i)))
        except ValueError as exc:
            index = tuple(int(j) for j in np.unravel_index(i, x.shape)) if x.shape else ()
            raise ValueError(f"x{list(index)}: {exc}") from None
    return np.array(out, dtype=np.int64).reshape(x.shape)


def values(codes: np.ndarray, fmt: Float) -> list[Value]:
    """The values of an array of codes, flat C order."""
    return [decode(c, fmt) for c in np.asarray(codes).ravel().tolist()]


def to_float(codes: np.ndarray, fmt: Float) -> np.ndarray:
    """The values as float64 (exact: every Float value is a float64)."""
    codes = np.asarray(codes)
    return np.array([float(v) for v in values(codes, fmt)], dtype=np.float64).reshape(codes.shape)


def convert(codes: np.ndarray, src: Float, dst: Float, seed: int = 0) -> np.ndarray:
    """Codes of ``src`` rounded once into ``dst`` (src's daz applies)."""
    codes = np.asarray(codes)
    out = [quantize(operand(c, src), dst, _u64(dst, seed, i))
           for i, c in enumerate(codes.ravel().tolist())]
    return np.array(out, dtype=np.int64).reshape(codes.shape)


# ---------------------------------------------------------------- arithmetic ---

def exact_add(a: Value, b: Value, rounding: Rounding = Rounding.NEAREST_EVEN) -> Value:
    """a + b exactly, with IEEE 754's specials and signed zeros: an exact zero sum of two
    operands of opposite signs is +0, or -0 under FLOOR; of the same sign, that sign."""
    if is_nan(a) or is_nan(b):
        return NAN
    a_inf = isinstance(a, float) and math.isinf(a)
    b_inf = isinstance(b, float) and math.isinf(b)
    if a_inf and b_inf:
        return a if a == b else NAN
    if a_inf or b_inf:
        return a if a_inf else b
    s = Fraction(a) + Fraction(b)
    if s == 0:
        if _is_negative(a) == _is_negative(b):  # -0 + -0 = -0, +0 + +0 = +0
            return -0.0 if _is_negative(a) else Fraction(0)
        return -0.0 if rounding is Rounding.FLOOR else Fraction(0)  # x + (-x)
    return s


def exact_mul(a: Value, b: Value) -> Value:
    """a * b exactly (IEEE specials: 0 * inf is NaN; the sign is the xor of the signs)."""
    if is_nan(a) or is_nan(b):
        return NAN
    negative = _is_negative(a) != _is_negative(b)
    if (isinstance(a, float) and math.isinf(a)) or (isinstance(b, float) and math.isinf(b)):
        if a == 0 or b == 0:
            return NAN
        return -INF if negative else INF
    p = Fraction(a) * Fraction(b)
    if p == 0:
        return -0.0 if negative else Fraction(0)
    return p


def exact_div(a: Value, b: Value) -> Value:
    """a / b exactly (IEEE specials: x/0 is ±inf, 0/0 and inf/inf NaN, x/inf ±0)."""
    if is_nan(a) or is_nan(b):
        return NAN
    negative = _is_negative(a) != _is_negative(b)
    a_inf = isinstance(a, float) and math.isinf(a)
    b_inf = isinstance(b, float) and math.isinf(b)
    if a_inf and b_inf:
        return NAN
    if a_inf:
        return -INF if negative else INF
    if b_inf:
        return -0.0 if negative else Fraction(0)
    if b == 0:
        if a == 0:
            return NAN
        return -INF if negative else INF
    q = Fraction(a) / Fraction(b)
    if q == 0:
        return -0.0 if negative else Fraction(0)
    return q


def _elementwise(op: Callable, operands: list, out: Float, seed: int) -> np.ndarray:
    arrays = [np.asarray(c) for c, _ in operands]
    shape = np.broadcast_shapes(*(a.shape for a in arrays))
    flat = [np.broadcast_to(a, shape).ravel().tolist() for a in arrays]
    fmts = [f for _, f in operands]
    res = []
    for i, codes in enumerate(zip(*flat)):
        vals = [operand(c, f) for c, f in zip(codes, fmts)]
        res.append(quantize(op(*vals), out, _u64(out, seed, i)))
    return np.array(res, dtype=np.int64).reshape(shape)


def add(a, fa: Float, b, fb: Float, out: Float, seed: int = 0) -> np.ndarray:
    """Element-wise a + b (broadcasting), rounded once into ``out``."""
    return _elementwise(lambda x, y: exact_add(x, y, out.rounding), [(a, fa), (b, fb)], out,
                        seed)


def negate(v: Value) -> Value:
    """-v (NaN stays NaN; +0 becomes -0.0)."""
    if isinstance(v, float):
        return -v
    return -0.0 if v == 0 else -v


def sub(a, fa: Float, b, fb: Float, out: Float, seed: int = 0) -> np.ndarray:
    """Element-wise a - b = a + (-b), rounded once into ``out``."""
    return _elementwise(lambda x, y: exact_add(x, negate(y), out.rounding), [(a, fa), (b, fb)],
                        out, seed)


def mul(a, fa: Float, b, fb: Float, out: Float, seed: int = 0) -> np.ndarray:
    """Element-wise a * b, the exact product rounded once into ``out``."""
    return _elementwise(exact_mul, [(a, fa), (b, fb)], out, seed)


def div(a, fa: Float, b, fb: Float, out: Float, seed: int = 0) -> np.ndarray:
    """Element-wise a / b, the exact quotient rounded once into ``out``."""
    return _elementwise(exact_div, [(a, fa), (b, fb)], out, seed)


def fma(a, fa: Float, b, fb: Float, c, fc: Float, out: Float, seed: int = 0) -> np.ndarray:
    """Element-wise a * b + c with one rounding (the product is not rounded)."""
    return _elementwise(lambda x, y, z: exact_add(exact_mul(x, y), z, out.rounding),
                        [(a, fa), (b, fb), (c, fc)], out, seed)


# ---------------------------------------------------------------- accumulation ---

def _round_value(v: Value, fmt: Float, u64: int = 0) -> Value:
    return decode(quantize(v, fmt, u64), fmt)


def accumulate(terms: list[Value], acc: Float, order: str = "sequential",
               compensated: bool = False, seed: int = 0, element: int = 0) -> Value:
    """Sum exact ``terms`` in the Float ``acc``, every addition rounded once, in order:

    - ``"sequential"``: s = +0; s = round(s + t_k) for k = 0, 1, ... (counter: step k);
    - ``"pairwise"``: every term rounded into acc (steps 0..K-1), then neighbours added
      level by level, (0+1), (2+3), ..., an odd last one passing up (steps K, K+1, ...);
    - the running value is a register of the operation: acc's ``daz`` does not apply to
      it (its ``subnormals=False`` does, as for every result);
    - ``compensated`` (sequential): Kahan's algorithm with every operation in acc —
      y = round(t - c); n = round(s + y); c = round(round(n - s) - y); s = n — its
      roundings counted as steps 4k .. 4k+3 of term k.

    An accumulator needs a zero (the sum starts at +0): one without raises ValueError.
    """
    if not acc.zero:
        raise ValueError(f"an accumulator needs a zero (the sum starts at +0); {acc} has none")
    def u(step: int) -> int:
        return _u64(acc, seed, rng.step_counter(element, step))

    if order == "pairwise":
        if compensated:
            raise ValueError("compensated=True needs order='sequential'")
        level = [_round_value(t, acc, u(k)) for k, t in enumerate(terms)]
        step = len(terms)
        while len(level) > 1:
            nxt = []
            for i in range(0, len(level) - 1, 2):
                nxt.append(_round_value(exact_add(level[i], level[i + 1], acc.rounding), acc,
                                        u(step)))
                step += 1
            if len(level) % 2:
                nxt.append(level[-1])
            level = nxt
        return level[0] if level else Fraction(0)
    if order != "sequential":
        raise ValueError(f"order must be 'sequential' or 'pairwise', got {order!r}")
    s: Value = Fraction(0)
    if not compensated:
        for k, t in enumerate(terms):
            s = _round_value(exact_add(s, t, acc.rounding), acc, u(k))
        return s
    c: Value = Fraction(0)
    for k, t in enumerate(terms):
        y = _round_value(exact_add(t, negate(c), acc.rounding), acc, u(4 * k))
        n = _round_value(exact_add(s, y, acc.rounding), acc, u(4 * k + 1))
        d = _round_value(exact_add(n, negate(s), acc.rounding), acc, u(4 * k + 2))
        c = _round_value(exact_add(d, negate(y), acc.rounding), acc, u(4 * k + 3))
        s = n
    return s


def _cut(t: Fraction, quantum: Fraction, align: str) -> int:
    """t / quantum cut to an integer: toward zero (truncate) or toward -inf (floor)."""
    r = t / quantum
    if align == "floor":
        return math.floor(r)
    return math.floor(r) if r >= 0 else -math.floor(-r)


def fused_accumulate(terms: list[Value], model) -> Value:
    """Sum exact ``terms`` as the matrix unit ``model`` (an AccumulatorModel) does: groups
    of ``model.group`` terms, each fused with the running register value c at the group's
    largest exponent (c included) cut to ``frac_bits`` below it, rounded once into the
    register; promoted into ``model.outer`` every ``promote_every`` terms. NaN terms give
    NaN, infinite terms inf (NaN for inf - inf)."""
    finite = [t for t in terms if not isinstance(t, float) or math.isfinite(t)]
    if len(finite) != len(terms):
        if any(is_nan(t) for t in terms):
            return NAN
        infs = {t for t in terms if isinstance(t, float) and math.isinf(t)}
        return NAN if len(infs) > 1 else infs.pop()
    c: Value = Fraction(0)
    outer: Value = Fraction(0)
    k, n = model.group, model.frac_bits
    for g in range(0, len(terms), k):
        group = [Fraction(t) for t in terms[g:g + k]]
        if isinstance(c, float) and not math.isfinite(c):
            pass  # an overflowed register stays inf/NaN (IEEE): nothing to fuse
        else:
            vals = group + [Fraction(c)]
            nonzero = [v for v in vals if v != 0]
            if nonzero:
                emax = max(floor_log2(abs(v)) for v in nonzero)
                q = Fraction(2) ** (emax - n)
                total = builtins_sum(_cut(v, q, model.align) for v in vals)
                c = _round_value(total * q, model.register)
            else:
                c = Fraction(0)
        if model.promote_every is not None and (g + k) % model.promote_every == 0:
            outer = _round_value(exact_add(outer, c), model.outer)
            c = Fraction(0)
    if model.promote_every is None:
        return c
    if len(terms) % model.promote_every:
        outer = _round_value(exact_add(outer, c), model.outer)
    return outer


builtins_sum = sum


def _products(a, fa: Float, b, fb: Float) -> list[list[list[Value]]]:
    """products[i][j][k] = a[i, k] * b[k, j], exact (operands read with their daz)."""
    A = [[operand(c, fa) for c in row] for row in np.asarray(a).tolist()]
    B = [[operand(c, fb) for c in row] for row in np.asarray(b).tolist()]
    M, K, N = np.asarray(a).shape[0], np.asarray(b).shape[0], np.asarray(b).shape[1]
    return [[[exact_mul(A[i][k], B[k][j]) for k in range(K)] for j in range(N)] for i in range(M)]


def reduce_terms(terms: list[Value], out: Float, acc=None, order: str = "sequential",
                 compensated: bool = False, seed: int = 0, element: int = 0) -> int:
    """The code in ``out`` of the sum of exact ``terms``: with ``acc=None`` the exact sum
    rounded once; with a Float ``acc`` :func:`accumulate`; with an AccumulatorModel
    :func:`fused_accumulate`; then one rounding into ``out`` (final counter)."""
    if acc is None:
        total: Value = Fraction(0)
        for t in terms:
            total = exact_add(total, t)
    elif isinstance(acc, Float):
        total = accumulate(terms, acc, order, compensated, seed, element)
    else:
        total = fused_accumulate(terms, acc)
    return quantize(total, out, _u64(out, seed, rng.step_counter(element, 0xFFFFFFFF)))


def matmul(a, fa: Float, b, fb: Float, out: Float, acc=None, order: str = "sequential",
           compensated: bool = False, seed: int = 0) -> np.ndarray:
    """a (M x K) @ b (K x N) of Float codes: exact products, summed by :func:`reduce_terms`
    over k = 0, 1, ... (output element e = i * N + j)."""
    if isinstance(acc, Float) and not acc.zero:
        raise ValueError(f"an accumulator needs a zero (the sum starts at +0); {acc} has none")
    P = _products(a, fa, b, fb)
    M, N = np.asarray(a).shape[0], np.asarray(b).shape[1]
    codes = [[reduce_terms(P[i][j], out, acc, order, compensated, seed, i * N + j)
              for j in range(N)] for i in range(M)]
    return np.array(codes, dtype=np.int64).reshape(M, N)
