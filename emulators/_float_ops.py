"""The Float branch of the array API (see docs/floats.md): the kernels' view of a format
and the exact decoding of codes to float64.

Called by :mod:`lowbit.emulators.ops` and :class:`~lowbit.emulators.array.EmuArray`
whenever a :class:`~lowbit.numerics.formats.Float` takes part.
"""

from __future__ import annotations

import functools

import numpy as np

from lowbit.emulators.array import EmuArray, as_format, contiguous, kernel_codes
from lowbit.numerics.accumulators import AccumulatorModel, parse_accumulator
from lowbit.numerics.formats import FLOAT_PRESETS, Float, Rounding

_INF_POLICY = {"max": 0, "inf": 1, "nan": 2}
SPECIALS = {"ieee": 0, "fn": 1, "fnuz": 2, "p3109": 3, "none": 4}


def kernel_fields(fmt: Float) -> tuple[int, ...]:
    """A Float as both backends' kernels read it (the C struct ``lowbit_float``, field for
    field): (man_bits, min_exponent, zero, max_field, sign_bit, negative_zero, subnormals,
    overflow, nan_code, inf_code, inf_policy, rounding, sr_bits, signed, exp_bits, bias,
    specials, daz); -1 for a missing NaN or inf code, sr_bits 0 for exact stochastic
    rounding, specials 0..4 for ieee, fn, fnuz, p3109, none."""
    return (fmt.man_bits, fmt.min_exponent, int(fmt.zero), fmt.max_field, fmt.sign_bit,
            int(fmt.has_negative_zero), int(fmt.subnormals), int(fmt.overflow),
            -1 if fmt.nan_code is None else fmt.nan_code,
            -1 if fmt.inf_code is None else fmt.inf_code, _INF_POLICY[fmt.inf],
            int(fmt.rounding), fmt.sr_bits or 0, int(fmt.signed), fmt.exp_bits, fmt.bias,
            SPECIALS[fmt.specials], int(fmt.daz))


TABLE_BITS = 16
"""Formats of at most this many bits decode through a table of their values."""


@functools.lru_cache(maxsize=64)
def _value_table(fmt: Float) -> np.ndarray:
    table = _decode(np.arange(1 << fmt.width, dtype=np.int64), fmt)
    table.flags.writeable = False
    return table


def table_shift(fmt: Float) -> int:
    """The number s of low float32 bits a cast into ``fmt`` reads only as "all zero or
    not": the bits below a normal input's rounding bit, 22 - man_bits."""
    return 22 - fmt.man_bits


def table_cast_ok(fmt: Float) -> bool:
    """Whether a float32 cast into ``fmt`` depends only on the input's bits above the low
    ``table_shift`` ones and on whether those are zero: at most 7 mantissa bits (tables of
    at most 2^18 classes: fp8, fp6, fp4, bf16), a smallest quantum of at least 2^(s-148)
    (so also for subnormal inputs), a signed format and a deterministic rounding mode."""
    return (fmt.man_bits <= 7 and fmt.min_exponent - fmt.man_bits >= table_shift(fmt) - 148
            and fmt.signed and fmt.rounding is not Rounding.STOCHASTIC)


@functools.lru_cache(maxsize=64)
def cast_table(fmt: Float, general) -> np.ndarray | None:
    """The codes of the float32 input classes (index 2 * (bits >> s) + (low s bits != 0),
    s = table_shift(fmt)), by the general cast ``general(x, fmt, seed) -> (codes,
    status)`` on one representative of each; -1 / -2 where a NaN / inf has no code. None
    if a finite class fails."""
    sh = table_shift(fmt)
    top = np.arange(1 << (32 - sh), dtype=np.uint32)
    reps = ((top[:, None] << np.uint32(sh)) | np.array([0, 1], np.uint32)).reshape(-1)
    x = reps.view(np.float32)
    special = ((reps >> np.uint32(23)) & np.uint32(0xFF)) == 0xFF
    table = np.zeros(reps.size, np.int64)
    codes, status = general(np.ascontiguousarray(x[~special]), fmt, 0)
    if status:
        return None
    table[~special] = codes
    for i in np.flatnonzero(special):
        c, st = general(np.ascontiguousarray(x[i:i + 1]), fmt, 0)
        table[i] = c[0] if st == 0 else (-1 if st == 1 else -2)
    table.flags.writeable = False
    return table


def to_float(codes: np.ndarray, fmt: Float) -> np.ndarray:
    """The float64 values of codes, exactly (every Float value is a float64): ±inf and NaN
    where the layout puts them, -0.0 for the code of -0. Formats of up to ``TABLE_BITS``
    bits read a table of their values; binary32 codes are reinterpreted."""
    if fmt.width <= TABLE_BITS:
        return _value_table(fmt)[np.asarray(codes)]  # any integer storage indexes the table
    c = np.asarray(codes, dtype=np.int64)
    if fmt == BINARY32:  # signalling NaN patterns widen to quiet NaNs: no flag to raise
        with np.errstate(invalid="ignore"):
            return c.astype(np.uint32).view(np.float32).astype(np.float64)
    return _decode(c, fmt)


def _decode(c: np.ndarray, fmt: Float) -> np.ndarray:
    """The values of int64 codes c, computed field by field."""
    M = fmt.man_bits
    sign = (c & fmt.sign_bit) != 0
    mag = c & ~np.int64(fmt.sign_bit)
    field = mag >> M
    mant = (mag & ((1 << M) - 1)).astype(np.float64)
    if fmt.zero:
        normal = np.ldexp(mant + float(1 << M), (field - fmt.bias - M).astype(np.int32))
        vals = np.where(field == 0, np.ldexp(mant, fmt.min_exponent - M), normal)
    else:
        vals = np.ldexp(mant + float(1 << M), (field - fmt.bias - M).astype(np.int32))
    ones = (1 << (fmt.exp_bits + M)) - 1
    if fmt.specials == "ieee":
        top = field == (1 << fmt.exp_bits) - 1
        vals = np.where(top, np.where(mant != 0, np.nan, np.inf), vals)
    elif fmt.specials == "fn":
        vals = np.where(mag == ones, np.nan, vals)
    elif fmt.specials in ("fnuz", "p3109"):
        if fmt.specials == "p3109":
            vals = np.where(mag == ones, np.inf, vals)
        vals = np.where(sign & (mag == 0), np.nan, vals)
    return np.where(sign, -vals, vals)


def _out_format(out, operands: list, op: str) -> Float:
    if out is not None:
        f = as_format(out, "out")
        if not isinstance(f, Float):
            raise ValueError(f"{op}: out must be a Float format for Float operands, got {f!r}")
        return f
    fmts = {x.fmt for x in operands}
    if len(fmts) == 1:
        return fmts.pop()
    raise ValueError(f"{op}: the operands have different formats "
                     f"({', '.join(str(x.fmt) for x in operands)}); give out=")


def _raise_nan(op: str, out: Float) -> None:
    raise ValueError(f"{op}: a NaN result (from NaN operands, inf - inf, 0 * inf, 0/0 or "
                     f"inf/inf) cannot be represented in {out}, which has no NaN")


def elementwise(op: str, operands: list, codes: list, shape, out, seed: int, be) -> EmuArray:
    """add, sub, mul, div or fma of Float EmuArrays (codes broadcast to ``shape``),
    the exact result rounded once into ``out`` (default: the operands' common format)."""
    for i, x in enumerate(operands):
        if not isinstance(x.fmt, Float):
            raise ValueError(f"{op}: operand {'abc'[i]} is {x.fmt!r}; cast it to a Float format "
                             "first (mixing families in one operation is not emulated)")
    fmt = _out_format(out, operands, op)
    if codes[0].size == 0:
        return EmuArray(np.zeros(shape, np.int64), fmt)
    c, fc = (codes[2], operands[2].fmt) if op == "fma" else (None, None)
    result, status = be.float_elementwise(op, codes[0], operands[0].fmt, codes[1],
                                          operands[1].fmt, c, fc, fmt, seed)
    if status:
        _raise_nan(op, fmt)
    return EmuArray(result.reshape(shape), fmt)


def convert(x: EmuArray, fmt: Float, seed: int, be) -> EmuArray:
    """Float codes re-rounded into another Float format: x * 1, exact, then one rounding
    (x's daz applies; NaN stays NaN, inf follows fmt's policy)."""
    codes = kernel_codes(x)
    if codes.size == 0:
        return EmuArray(codes.copy(), fmt)
    one_fmt = Float(2, 1, specials="none")  # 1.0 = code 2 in E2M1
    ones = np.full(codes.shape, 2, np.int64)
    result, status = be.float_elementwise("mul", codes, x.fmt, ones, one_fmt, None, None, fmt,
                                          seed)
    if status:
        raise ValueError(f"cast: a NaN of {x.fmt} cannot be represented in {fmt}, which has "
                         "no NaN")
    return EmuArray(result, fmt)


EXACT_BITS = 62


def _accumulator(acc, order: str, compensated: bool, op: str):
    """(mode, acc Float or register, model or None) of an ``acc`` argument."""
    if order not in ("sequential", "pairwise"):
        raise ValueError(f"{op}: order must be 'sequential' or 'pairwise', got {order!r}")
    if not isinstance(compensated, bool):
        raise TypeError(f"{op}: compensated must be a bool, got {compensated!r}")
    if acc is None:
        if order != "sequential" or compensated:
            raise ValueError(f"{op}: order and compensated need an acc (the exact sum has none)")
        return "exact", None, None
    acc = parse_accumulator(acc) if isinstance(acc, str) else acc
    if isinstance(acc, AccumulatorModel):
        if order != "sequential" or compensated:
            raise ValueError(f"{op}: an accumulator model fixes its own order; give neither "
                             "order nor compensated")
        return "fused", acc.register, acc
    if not isinstance(acc, Float):
        raise ValueError(f"{op}: acc for Float operands must be a Float format or an "
                         f"AccumulatorModel, got {acc!r}")
    if not acc.zero:
        raise ValueError(f"{op}: an accumulator needs a zero (the sum starts at +0); {acc} "
                         "has none")
    if compensated:
        if order != "sequential":
            raise ValueError(f"{op}: compensated=True needs order='sequential'")
        return "kahan", acc, None
    return order, acc, None


def _exact_grid(fa: Float, fb: Float, K: int, op: str) -> int:
    """The exponent of the products' last bit when their exact sum fits 62 bits, else a
    ValueError that says what to pass instead."""
    lsb = (fa.min_exponent - fa.man_bits) + (fb.min_exponent - fb.man_bits)
    top = (fa.max_exponent + 1) + (fb.max_exponent + 1)
    need = top - lsb + max(K - 1, 0).bit_length() + 1
    if need > EXACT_BITS:
        raise ValueError(f"{op}: an exact sum of {K} products of {fa} and {fb} needs {need} "
                         f"bits (at most {EXACT_BITS}: FP8, FP6 and FP4 operands fit); give "
                         "acc= (e.g. 'fp32' or an accumulator model such as 'hopper_fp8')")
    return lsb


BINARY32 = FLOAT_PRESETS["fp32"]


def binary32_products(fa: Float, fb: Float, acc: "Float | None", out: Float) -> bool:
    """Whether a sequential ``acc`` sum of ``fa`` x ``fb`` products may run as native
    binary32 arithmetic: acc is IEEE binary32 (round to nearest even, subnormals), both
    significands fit 24 bits together (fp16, bf16, tf32, FP8, FP6, FP4 operands), no
    operand is read with daz, and ``out`` does not round stochastically (its random draws
    belong to the general kernel's counters). The operands' values are checked per call."""
    return (acc == BINARY32 and not fa.daz and not fb.daz
            and fa.man_bits + fb.man_bits + 2 <= 24 and out.rounding is not Rounding.STOCHASTIC)


def _product_span(av: np.ndarray, bv: np.ndarray) -> "tuple[float, float] | None":
    """(smallest, largest) magnitude a nonzero product of an element of av and one of bv
    can have, (0, 0) when every product is zero, None when a value is not finite."""
    if not (np.isfinite(av).all() and np.isfinite(bv).all()):
        return None
    amag, bmag = np.abs(av), np.abs(bv)
    amax, bmax = amag.max(), bmag.max()
    if amax == 0 or bmax == 0:
        return 0.0, 0.0
    return float(amag[amag > 0].min() * bmag[bmag > 0].min()), float(amax * bmax)


_BINARY32_SMALLEST_NORMAL = 2.0 ** -126
_BINARY32_PRODUCT_MAX = 2.0 ** 127


def _as_binary32(av: np.ndarray, bv: np.ndarray):
    """(a32, b32), the float64 operands as float32 arrays, when every value of both is a
    binary32 value; else None (NaN never equals itself: non-finite values give None too)."""
    a32, b32 = av.astype(np.float32), bv.astype(np.float32)
    return (a32, b32) if np.array_equal(a32, av) and np.array_equal(b32, bv) else None


def _binary32_matmul(a, fa: Float, b, fb: Float, fmt: Float, seed: int, be):
    """Codes of ``fmt`` of a @ b summed in binary32 natively, or None when these operands
    need the general kernel: a value that is not a finite binary32, a product that could
    fall below binary32's normal range (it would not be exact) or reach 2**127, or a result
    that is not finite (NaN payloads and inf/NaN codes are the general kernel's). Exact:
    each product is then a binary32, and a binary32 sum from +0 in k order with RNE
    additions is what the sequential fp32 accumulator computes."""
    return binary32_values_matmul(to_float(a, fa), to_float(b, fb), fmt, seed, be)


def binary32_values_matmul(av: np.ndarray, bv: np.ndarray, fmt: Float, seed: int, be):
    """:func:`_binary32_matmul` on the operands' exact float64 values (2-D)."""
    ops = _as_binary32(av, bv)
    if ops is None:
        return None
    span = _product_span(av, bv)
    if span is None or (span[1] and (span[1] >= _BINARY32_PRODUCT_MAX
                                     or span[0] < _BINARY32_SMALLEST_NORMAL)):
        return None
    res = be.float_matmul_binary32(contiguous(ops[0]), contiguous(ops[1]))
    if not np.isfinite(res).all():
        return None
    if fmt == BINARY32:
        return res.view(np.uint32).astype(np.int64)
    codes, status = be.float_cast(res, fmt, seed)
    if status:
        _raise_nan("matmul", fmt)
    return codes


def fused_in_float64(model: AccumulatorModel, out: Float) -> bool:
    """Whether a matrix-unit model may run on float64 values (the operands' values are
    checked per call): its register a binary32-range format (exponent 8 bits, IEEE bias,
    no stochastic rounding), a group sum that stays below 2**53, an outer accumulator (if
    any) that is binary32 with RNE, and an ``out`` that does not round stochastically."""
    reg = model.register
    return (reg.exp_bits <= 8 and reg.bias == 127 and reg.rounding is not Rounding.STOCHASTIC
            and (model.group + 1) << (model.frac_bits + 1) < 1 << 53
            and (model.promote_every is None or model.outer == BINARY32)
            and out.rounding is not Rounding.STOCHASTIC)


_FUSED_RANGE = 2.0 ** 400


def fused_in_float32(model: AccumulatorModel, fa: Float, fb: Float) -> bool:
    """Whether a matrix-unit model that :func:`fused_in_float64` admits may run in float32
    (the operands' values are checked per call): terms cut toward zero, a round-toward-zero
    register of at most 23 mantissa bits, a group sum below 2**24, and products whose
    significands fit 24 bits (FP8/FP6/FP4, bf16 operands under the FP8 presets)."""
    reg = model.register
    return (model.align == "truncate" and reg.rounding is Rounding.TOWARD_ZERO
            and reg.man_bits <= 23 and (model.group + 1) << (model.frac_bits + 1) <= 1 << 24
            and fa.man_bits + fb.man_bits + 2 <= 24)


def _fused_matmul(a, fa: Float, b, fb: Float, model: AccumulatorModel, fmt: Float, seed: int,
                  be):
    """Codes of ``fmt`` of a @ b under ``model`` computed on float64 values, or None when
    these operands need the general kernel: a value that is not finite, products outside
    2**-400..2**400 (every cut term then stays a normal double), or a result that is not
    finite. Exact: every product is a double (significands of at most 24 bits), scaling
    by powers of two is exact, a cut term is an integer below 2**(frac_bits + 1) and a
    group's sum stays below 2**53; the register rounding is round_to_code's. Where
    :func:`fused_in_float32` holds and every value and product is a normal binary32, the
    float32 kernel runs first (twice the lanes; it hands back to the float64 kernel when a
    group leaves its range). Operands read with daz (their subnormals are zeros) take the
    general kernel."""
    if fa.daz or fb.daz:
        return None
    return fused_values_matmul(to_float(a, fa), fa, to_float(b, fb), fb, model, fmt, seed, be)


def fused_values_matmul(av: np.ndarray, fa: Float, bv: np.ndarray, fb: Float,
                        model: AccumulatorModel, fmt: Float, seed: int, be):
    """:func:`_fused_matmul` on the operands' exact float64 values (2-D) of formats ``fa``
    and ``fb`` (read without daz)."""
    span = _product_span(av, bv)
    if span is None or (span[1] and (span[1] > _FUSED_RANGE or span[0] < 1 / _FUSED_RANGE)):
        return None
    res = None
    if fused_in_float32(model, fa, fb) and span[0] >= _BINARY32_SMALLEST_NORMAL \
            and span[1] < _BINARY32_PRODUCT_MAX:
        ops = _as_binary32(av, bv)
        if ops is not None:
            res, status = be.fused_matmul_f32(contiguous(ops[0]), contiguous(ops[1]),
                                              model.group, model.frac_bits,
                                              model.promote_every or 0, model.register)
            res = None if status else res
    if res is None:
        res = be.fused_matmul_f64(contiguous(av), contiguous(bv), model.group,
                                  model.frac_bits, model.align == "floor",
                                  model.promote_every or 0, model.register)
    if not np.isfinite(res).all():
        return None
    codes, status = be.float_cast(res, fmt, seed)
    if status:
        _raise_nan("matmul", fmt)
    return codes


def matmul(a: EmuArray, b: EmuArray, out, acc, order: str, compensated: bool, seed: int,
           be) -> EmuArray:
    """a @ b of Float arrays (1-D or 2-D, numpy's rules), every product exact, summed as
    ``acc`` says (None: exactly; a Float: every addition rounded, in ``order``, Kahan with
    ``compensated``; an AccumulatorModel: the matrix unit's fused groups), then rounded
    once into ``out`` (default: acc, the model's result format, or the operands' format)."""
    for name, x in (("a", a), ("b", b)):
        if not isinstance(x.fmt, Float):
            raise ValueError(f"matmul: {name} is {x.fmt!r}; cast both operands to Float formats "
                             "(mixing families in one operation is not emulated)")
        if x.scale is not None:
            raise ValueError(f"matmul: {name} carries scales; Float arrays take none")
    mode, acc_f, model = _accumulator(acc, order, compensated, "matmul")
    if out is None:
        if model is not None:
            fmt = model.result_format
        elif acc_f is not None:
            fmt = acc_f
        else:
            fmt = _out_format(None, [a, b], "matmul")
    else:
        fmt = _out_format(out, [a, b], "matmul")
    a2 = a if a.ndim == 2 else a.reshape(1, -1)
    b2 = b if b.ndim == 2 else b.reshape(-1, 1)
    (M, K), (K2, N) = a2.shape, b2.shape
    if K != K2:
        raise ValueError(f"matmul: inner dimensions differ, {a.shape} @ {b.shape}")
    lsb = _exact_grid(a.fmt, b.fmt, K, "matmul") if mode == "exact" else 0
    native = None
    if M * N * K and mode == "sequential" and binary32_products(a.fmt, b.fmt, acc_f, fmt):
        native = _binary32_matmul(kernel_codes(a2), a.fmt, kernel_codes(b2), b.fmt, fmt, seed, be)
    if M * N * K and model is not None and fused_in_float64(model, fmt):
        native = _fused_matmul(kernel_codes(a2), a.fmt, kernel_codes(b2), b.fmt, model, fmt,
                               seed, be)
    if native is not None:
        codes = native
    elif M * N == 0:
        codes = np.zeros((M, N), np.int64)
    else:
        fused = None if model is None else (model.group, model.frac_bits,
                                            int(model.align == "floor"),
                                            model.promote_every or 0)
        outer = None if model is None else model.outer
        codes, status = be.float_matmul(kernel_codes(a2), a.fmt, kernel_codes(b2), b.fmt, mode,
                                        lsb, acc_f, fused, outer, fmt, seed)
        if status:
            _raise_nan("matmul", fmt)
    shape = (M, N)
    if a.ndim == 1 and b.ndim == 1:
        shape = ()
    elif a.ndim == 1:
        shape = (N,)
    elif b.ndim == 1:
        shape = (M,)
    return EmuArray(codes.reshape(shape), fmt)


def matmul_values(av: np.ndarray, fa: Float, bv: np.ndarray, fb: Float, out, acc,
                  order: str, compensated: bool, seed: int, be) -> "EmuArray | None":
    """:func:`matmul` of 2-D operands given as exact float64 values of the Float formats
    ``fa`` and ``fb`` (no daz), when one of its fast paths takes them (a sequential fp32
    accumulator of binary32-exact products, or a matrix-unit model on float values); None
    otherwise (the caller then encodes the operands and calls :func:`matmul`). The same
    codes as :func:`matmul` on the encoded operands: both run the same paths."""
    mode, acc_f, model = _accumulator(acc, order, compensated, "matmul")
    if av.ndim != 2 or bv.ndim != 2 or av.shape[1] != bv.shape[0] or not av.size \
            or not bv.size or fa.daz or fb.daz:
        return None
    if out is None:
        fmt = model.result_format if model is not None else acc_f
        if fmt is None:
            return None
    else:
        fmt = _out_format(out, [], "matmul")
    codes = None
    if mode == "sequential" and binary32_products(fa, fb, acc_f, fmt):
        codes = binary32_values_matmul(av, bv, fmt, seed, be)
    elif model is not None and fused_in_float64(model, fmt):
        codes = fused_values_matmul(av, fa, bv, fb, model, fmt, seed, be)
    return None if codes is None else EmuArray(codes.reshape(av.shape[0], bv.shape[1]), fmt)


_ONE = Float(2, 1, specials="none")  # 1.0 is code 2 of E2M1: a product by it is exact


def sum(a: EmuArray, axis, out, acc, order: str, compensated: bool, seed: int,  # noqa: A001
        be) -> EmuArray:
    """Sum of a Float array along ``axis`` (None: all, C order): :func:`matmul` of its rows
    with a column of ones, the same accumulation and counters."""
    codes = kernel_codes(a)
    if axis is None:
        rows, shape = codes.reshape(1, -1), ()
    else:
        if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)):
            raise TypeError(f"axis must be an int or None, got {axis!r}")
        if not -a.ndim <= axis < a.ndim:
            raise ValueError(f"axis {axis} is out of range for an array of ndim {a.ndim}")
        moved = np.moveaxis(codes, int(axis), -1)
        shape = moved.shape[:-1]
        rows = contiguous(moved).reshape(int(np.prod(shape, dtype=np.int64)), moved.shape[-1])
    ones = EmuArray(np.full((rows.shape[1], 1), 2, np.int64), _ONE)
    if out is None:
        mode, acc_f, model = _accumulator(acc, order, compensated, "sum")
        out = model.result_format if model is not None else (acc_f or a.fmt)
    result = matmul(EmuArray(rows, a.fmt), ones, out, acc, order, compensated, seed, be)
    return EmuArray(kernel_codes(result).reshape(shape), result.fmt)
