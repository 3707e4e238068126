"""The Float branch of the array API (see docs/floats.md): the kernels' view of a format
and the exact decoding of codes to float64.

Called by :mod:`lowbit.emulators.ops` and :class:`~lowbit.emulators.array.EmuArray`
whenever a :class:`~lowbit.numerics.formats.Float` takes part.
"""

from __future__ import annotations

import numpy as np

from lowbit.numerics.formats import Float

_INF_POLICY = {"max": 0, "inf": 1, "nan": 2}


def kernel_fields(fmt: Float) -> tuple[int, ...]:
    """A Float as both backends' kernels read it (the C struct ``lowbit_float``, field for
    field): (man_bits, min_exponent, zero, max_field, sign_bit, negative_zero, subnormals,
    overflow, nan_code, inf_code, inf_policy, rounding, sr_bits, signed); -1 for a missing
    NaN or inf code, sr_bits 0 for exact stochastic rounding."""
    return (fmt.man_bits, fmt.min_exponent, int(fmt.zero), fmt.max_field, fmt.sign_bit,
            int(fmt.has_negative_zero), int(fmt.subnormals), int(fmt.overflow),
            -1 if fmt.nan_code is None else fmt.nan_code,
            -1 if fmt.inf_code is None else fmt.inf_code, _INF_POLICY[fmt.inf],
            int(fmt.rounding), fmt.sr_bits or 0, int(fmt.signed))


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
