"""The Float branch of the array API (see docs/floats.md): the kernels' view of a format
and the exact decoding of codes to float64.

Called by :mod:`lowbit.emulators.ops` and :class:`~lowbit.emulators.array.EmuArray`
whenever a :class:`~lowbit.numerics.formats.Float` takes part.
"""

from __future__ import annotations

import numpy as np

from lowbit.emulators.array import EmuArray, as_format, kernel_codes
from lowbit.numerics.formats import Float

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


def to_float(codes: np.ndarray, fmt: Float) -> np.ndarray:
    """The float64 values of codes, exactly (every Float value is a float64): ±inf and NaN
    where the layout puts them, -0.0 for the code of -0."""
    c = np.asarray(codes, dtype=np.int64)
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
