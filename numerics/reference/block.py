"""Exact reference for block-scaled formats (:class:`~lowbit.numerics.blocks.Block`).

The rules are the :mod:`lowbit.numerics.blocks` docstring's, computed with Python integers
and fractions: the scale from the block's exact largest magnitude, each element the exact
quotient ``x / (S * T)`` rounded once (:func:`~lowbit.numerics.reference.floating.quantize`).

Blocks are enumerated in C order of the block grid: along ``axis`` the grid has
ceil(n / block) blocks (the other axes unchanged); a tile grid replaces the last two axes
by ceil(rows / r) x ceil(cols / c). ``scales`` has the grid's shape.

>>> import numpy as np
>>> from lowbit.numerics import parse_format
>>> r = quantize(np.array([7.0, 0.5, 1.0, 0.0]), parse_format("mxfp4:block=4"))
>>> r.clipped, decode(r, parse_format("mxfp4:block=4")).tolist()
(1, [6.0, 0.5, 1.0, 0.0])
>>> r = quantize(np.array([7.0, 0.5, 1.0, 0.0]), parse_format("mxfp4:block=4:rule=rceil"))
>>> r.clipped, decode(r, parse_format("mxfp4:block=4:rule=rceil")).tolist()
(0, [8.0, 0.0, 1.0, 0.0])
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from fractions import Fraction

import numpy as np

from lowbit.numerics import rng
from lowbit.numerics.blocks import Block
from lowbit.numerics.formats import FLOAT_PRESETS, Fixed, Float
from lowbit.numerics.modes import Overflow, Rounding
from lowbit.numerics.reference.floating import decode as float_decode
from lowbit.numerics.reference.floating import floor_log2, quantize as float_quantize

FP32 = FLOAT_PRESETS["fp32"]
FP32_SMALLEST = Fraction(1, 1 << 149)
FP32_SMALLEST_NORMAL = Fraction(1, 1 << 126)


@dataclass(frozen=True)
class BlockCodes:
    """A block cast: element ``codes`` (the input's shape), ``scales`` (scale codes, the
    block grid's shape), the tensor scale (a Fraction; 1 without one) and how many
    elements clipped."""

    codes: np.ndarray
    scales: np.ndarray
    tensor_scale: Fraction
    clipped: int


def grid_shape(shape: tuple[int, ...], fmt: Block) -> tuple[int, ...]:
    """The shape of the block grid (of ``scales``) for an input of ``shape``."""
    if fmt.tile is not None:
        if len(shape) < 2:
            raise ValueError(f"{fmt}: 2-D tiles need an input of at least 2 dimensions, "
                             f"got shape {shape}")
        r, c = fmt.tile
        return tuple(shape[:-2]) + (-(-shape[-2] // r), -(-shape[-1] // c))
    if not shape:
        raise ValueError(f"{fmt}: a block cast needs an array of at least 1 dimension")
    axis = _axis(shape, fmt)
    return tuple(-(-n // fmt.block) if i == axis else n for i, n in enumerate(shape))


def _axis(shape, fmt: Block) -> int:
    if not -len(shape) <= fmt.axis < len(shape):
        raise ValueError(f"Block.axis={fmt.axis} is out of range for an array of "
                         f"{len(shape)} dimensions")
    return fmt.axis % len(shape)


def blocks(shape: tuple[int, ...], fmt: Block) -> list[list[int]]:
    """For each block (C order of the grid), the flat C-order indices of its elements."""
    index = np.arange(int(np.prod(shape, dtype=np.int64)), dtype=np.int64).reshape(shape)
    grid = grid_shape(shape, fmt)
    out = []
    for g in np.ndindex(*grid):
        if fmt.tile is not None:
            r, c = fmt.tile
            sl = tuple(g[:-2]) + (slice(g[-2] * r, (g[-2] + 1) * r),
                                  slice(g[-1] * c, (g[-1] + 1) * c))
        else:
            axis = _axis(shape, fmt)
            sl = tuple(slice(v * fmt.block, (v + 1) * fmt.block) if i == axis else v
                       for i, v in enumerate(g))
        out.append(index[sl].ravel().tolist())
    return out


def _read(v: float, daz: bool) -> "Fraction | float":
    """An input value exactly (a float for NaN, inf and -0.0), flushed under daz."""
    if not math.isfinite(v):
        return v
    f = Fraction(v)
    if daz and f and abs(f) < FP32_SMALLEST_NORMAL:
        return -0.0 if f < 0 else Fraction(0)
    if f == 0 and math.copysign(1.0, v) < 0:
        return -0.0
    return f


def tensor_scale_of(amax: Fraction, special: bool, fmt: Block) -> Fraction:
    """T from the tensor's largest finite magnitude ``amax`` (daz applied): the float32
    nearest amax / (max(scale) * max(element)), at least 2**-149; 1 without a tensor
    scale, for all zeros, or when the tensor holds a NaN or inf (``special``)."""
    if not fmt.tensor_scale or special or amax == 0:
        return Fraction(1)
    t = float_decode(float_quantize(amax / (fmt.scale.max_value * fmt.element_max),
                                    replace(FP32, overflow=Overflow.SATURATE)), FP32)
    return max(Fraction(t), FP32_SMALLEST)


def tensor_scale(values: list, fmt: Block) -> Fraction:
    """T of a tensor's exact values (:func:`tensor_scale_of`)."""
    special = any(isinstance(v, float) and not math.isfinite(v) for v in values)
    finite = [abs(Fraction(v)) for v in values if not (isinstance(v, float) and not math.isfinite(v))]
    return tensor_scale_of(max(finite, default=Fraction(0)), special, fmt)


def ceil_log2(m: Fraction) -> int:
    e = floor_log2(m)
    return e if Fraction(2) ** e == m else e + 1


def scale_value(a: Fraction, fmt: Block) -> int:
    """The scale code of a block whose largest magnitude (over T) is ``a`` > 0."""
    s, m, emax = fmt.scale, fmt.element_max, fmt.element_emax
    if not fmt.pow2_scale:
        rounding = Rounding.CEIL if fmt.scale_rule == "rceil" else Rounding.NEAREST_EVEN
        code = float_quantize(a / m, replace(s, rounding=rounding, overflow=Overflow.SATURATE,
                                             inf="max", sr_bits=None))
        return code if code else 1  # the smallest positive scale
    rule = fmt.scale_rule
    if rule == "floor":
        e = floor_log2(a) - emax
    elif rule == "ceil":
        e = ceil_log2(a) - emax
    elif rule == "even":
        p = fmt.element_precision
        quantum = Fraction(2) ** (floor_log2(a) - p + 1)
        rounded = math.floor(a / quantum + Fraction(1, 2)) * quantum  # ties away
        e = floor_log2(rounded) - emax
    elif rule == "rceil":
        e = ceil_log2(a / m)
    else:  # nearest: round(log2(a / m)); log2 of a rational is never a half-integer
        r = a / m
        k = floor_log2(r)
        e = k + (1 if r * r >= Fraction(2) ** (2 * k + 1) else 0)
    e = min(max(e, s.min_exponent), s.max_exponent)
    return float_quantize(Fraction(2) ** e, s)


def smallest_scale_code(fmt: Block) -> int:
    """The code of the smallest positive scale (an all-zero block's)."""
    s = fmt.scale
    return 0 if not s.zero else 1


def element_code(x: "Fraction | float", S: Fraction, fmt: Block, u64: int) -> tuple[int, bool]:
    """(element code, clipped) of one finite input ``x`` under the block scale S (times T)."""
    negative = isinstance(x, float) or x < 0  # -0.0 is the only float here
    if isinstance(x, float):
        q = Fraction(0)
    else:
        q = x / S
    grid = fmt.grid
    if isinstance(fmt.element, Fixed):
        top = Fraction(2) if (negative and fmt.asymmetric) else Fraction(127, 64)
        clipped = abs(q) > top
        v = float_decode(float_quantize(-0.0 if q == 0 and negative else q, grid, u64), grid)
        v = Fraction(0) if isinstance(v, float) else v
        v = max(min(v, top), -top)
        return int(v * 64), clipped
    clipped = abs(q) > fmt.element_max
    return float_quantize(-0.0 if q == 0 and negative else q, grid, u64), clipped


def quantize(x: np.ndarray, fmt: Block, seed: int = 0) -> BlockCodes:
    """The block cast of float32/float64 values ``x`` (exact) into ``fmt``."""
    x = np.asarray(x)
    if x.dtype not in (np.float32, np.float64):
        raise TypeError(f"block cast takes float32 or float64 values, got {x.dtype}")
    flat = x.ravel().tolist()
    values = [_read(float(v), fmt.daz) for v in flat]
    T = tensor_scale(values, fmt)
    stochastic = fmt.grid.rounding is Rounding.STOCHASTIC
    codes = [0] * len(values)
    grid = grid_shape(x.shape, fmt)
    scales = []
    clipped = 0
    for members in blocks(x.shape, fmt):
        vals = [values[i] for i in members]
        if any(isinstance(v, float) and not math.isfinite(v) for v in vals):
            if fmt.scale.nan_code is None:
                raise ValueError(f"{fmt}: a block holds a NaN or inf and the scale "
                                 f"{fmt.scale} has no NaN")
            scales.append(fmt.scale.nan_code)
            continue  # elements stay the code of +0
        amax = max((abs(Fraction(v)) for v in vals), default=Fraction(0))
        if amax == 0:
            scales.append(smallest_scale_code(fmt))
            sc = Fraction(1)
        else:
            scales.append(scale_value(amax / T, fmt))
            sc = Fraction(float_decode(scales[-1], fmt.scale))
        for i in members:
            u64 = rng.random_u64(seed, i) if stochastic else 0
            codes[i], c = element_code(values[i], sc * T, fmt, u64)
            clipped += c
    return BlockCodes(np.array(codes, dtype=np.int64).reshape(x.shape),
                      np.array(scales, dtype=np.int64).reshape(grid), T, clipped)


def element_values(codes: np.ndarray, fmt: Block) -> list:
    """The element values (Fractions; floats for -0.0), flat C order."""
    if isinstance(fmt.element, Fixed):
        return [Fraction(int(c), 64) for c in np.asarray(codes).ravel().tolist()]
    return [float_decode(c, fmt.element) for c in np.asarray(codes).ravel().tolist()]


def decode(r: BlockCodes, fmt: Block) -> np.ndarray:
    """The float64 values of a block cast: element * scale * T (exact), NaN in a NaN-scale
    block."""
    shape = r.codes.shape
    elems = element_values(r.codes, fmt)
    out = [math.nan] * len(elems)
    for b, members in enumerate(blocks(shape, fmt)):
        sc = float_decode(int(r.scales.ravel()[b]), fmt.scale)
        for i in members:
            e = elems[i]
            if isinstance(sc, float):
                out[i] = math.nan
            elif isinstance(e, float):  # -0.0
                out[i] = -0.0
            else:
                out[i] = float(e * sc * r.tensor_scale)
    return np.array(out, dtype=np.float64).reshape(shape)
