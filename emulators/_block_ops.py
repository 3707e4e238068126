"""The Block branch of the array API (see :mod:`lowbit.numerics.blocks`): the layout of
blocks and tiles for the kernels, the block cast, and block operands of a matmul.

A block array is an :class:`EmuArray` whose codes are the element codes and whose
``scale`` is, per element, its block's scale times the tensor scale (float64, exact; NaN in
a NaN block): ``to_float`` is element value * scale. :func:`block_cast` also returns the
scale codes and the clip count.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from lowbit.emulators import _float_ops
from lowbit.emulators.array import EmuArray, contiguous
from lowbit.numerics.blocks import SCALE_RULES, Block
from lowbit.numerics.formats import Fixed, Float
from lowbit.numerics.modes import Overflow, Rounding
from lowbit.numerics.reference.block import grid_shape, tensor_scale_of

RULES = {name: i for i, name in enumerate(SCALE_RULES)}  # as the kernels' RULE_* constants


@dataclass(frozen=True)
class BlockCast:
    """The result of :func:`block_cast`: ``array`` (element codes, per-element scales),
    ``scales`` (scale codes, the block grid's shape), ``tensor_scale`` (float; 1.0 without
    one) and ``clipped`` (elements whose value exceeded the element's range)."""

    array: EmuArray
    scales: np.ndarray
    tensor_scale: float
    clipped: int


def layout(shape: tuple[int, ...], fmt: Block) -> tuple[np.ndarray, tuple[int, ...], object]:
    """(index, moved grid shape, unmove): ``index`` is nblocks x width flat C-order indices
    of each block's elements (-1 pads a partial block), blocks in an order whose scales
    ``unmove`` turns into the grid's C order."""
    grid = grid_shape(shape, fmt)
    flat = np.arange(int(np.prod(shape, dtype=np.int64)), dtype=np.int64).reshape(shape)
    if fmt.tile is not None:
        r, c = fmt.tile
        R, C = shape[-2], shape[-1]
        gr, gc = grid[-2], grid[-1]
        pad = [(0, 0)] * (len(shape) - 2) + [(0, gr * r - R), (0, gc * c - C)]
        p = np.pad(flat, pad, constant_values=-1)
        p = p.reshape(shape[:-2] + (gr, r, gc, c))
        nd = p.ndim
        p = p.transpose(tuple(range(nd - 4)) + (nd - 4, nd - 2, nd - 3, nd - 1))
        return contiguous(p).reshape(-1, r * c), grid, lambda s: s.reshape(grid)
    axis = fmt.axis % len(shape)
    moved = np.moveaxis(flat, axis, -1)
    n = moved.shape[-1]
    nb = grid[axis]
    p = np.pad(moved, [(0, 0)] * (moved.ndim - 1) + [(0, nb * fmt.block - n)],
               constant_values=-1)
    moved_grid = moved.shape[:-1] + (nb,)
    return (contiguous(p).reshape(-1, fmt.block), moved_grid,
            lambda s: np.moveaxis(s.reshape(moved_grid), -1, axis))


def mx_case(x2d: np.ndarray, grid: Float, is_int: bool, pow2: bool, T: float) -> bool:
    """Whether both backends take their float32 MX kernel (mx_quantize_f32): float32
    values, power-of-two scales, no tensor scale, float elements of at most 16 bits rounded
    to nearest even and saturating. Its codes may be stored in bytes (elements of at most
    8 bits)."""
    return (x2d.dtype == np.float32 and pow2 and T == 1.0 and not is_int
            and grid.width <= 16 and grid.rounding is Rounding.NEAREST_EVEN
            and grid.overflow is Overflow.SATURATE)


def _read_amax(x: np.ndarray, fmt: Block) -> tuple[Fraction, bool]:
    """The largest magnitude of x (daz applied) and whether x holds a NaN or an inf (then
    the magnitude is not used): two reductions, no temporary (max and min propagate NaN)."""
    if x.size == 0:
        return Fraction(0), False
    hi, lo = float(x.max()), float(x.min())
    if not (math.isfinite(hi) and math.isfinite(lo)):
        return Fraction(0), True
    top = max(hi, -lo)
    if fmt.daz and top < 2.0 ** -126:
        top = 0.0  # every value is flushed
    return Fraction(top), False


def block_cast(x: np.ndarray, fmt: Block, seed: int, be) -> BlockCast:
    """The block cast of float32/float64 ``x`` (module docstring of
    :mod:`lowbit.numerics.blocks`), on backend ``be``. Blocks that are consecutive runs of
    the flat array (along the last axis, which they divide) go to the kernel as they lie;
    other layouts are gathered into rows first. The per-element scales of the result are
    built on first use."""
    x = np.asarray(x)
    if x.ndim == 0:
        raise ValueError(f"{fmt}: a block cast needs an array of at least 1 dimension")
    values = contiguous(x if x.dtype in (np.float32, np.float64) else x.astype(np.float64))
    T = tensor_scale_of(*_read_amax(values, fmt), fmt) if fmt.tensor_scale else 1
    if x.size == 0:
        codes = np.zeros(x.shape, np.int64)
        return BlockCast(EmuArray(codes, fmt, np.ones(x.shape), float(T)),
                         np.zeros(grid_shape(x.shape, fmt), np.int64), float(T), 0)
    flat = values.reshape(-1)
    dense = fmt.tile is None and fmt.axis % x.ndim == x.ndim - 1 and x.shape[-1] % fmt.block == 0
    if dense:
        index, x2d = None, flat.reshape(-1, fmt.block)
        unmove = lambda s: s.reshape(grid_shape(x.shape, fmt))  # noqa: E731
    else:
        index, _, unmove = layout(x.shape, fmt)
        x2d = contiguous(np.where(index >= 0, flat[np.maximum(index, 0)], 0.0).astype(
            values.dtype, copy=False))
    is_int = isinstance(fmt.element, Fixed)
    codes, scale_codes, clipped, status = be.block_quantize(
        x2d, index, fmt.grid, is_int, fmt.asymmetric, fmt.scale, fmt.pow2_scale,
        RULES[fmt.scale_rule], fmt.element_emax, fmt.element_precision,
        float(fmt.element_max), float(T), fmt.daz, seed, x.size, narrow=True)
    if status:
        raise ValueError(f"{fmt}: a block holds a NaN or inf and the scale {fmt.scale} has "
                         "no NaN")

    def per_element() -> np.ndarray:
        svals = _float_ops.to_float(scale_codes, fmt.scale)
        if dense:
            return np.repeat(svals, fmt.block).reshape(x.shape)
        out = np.empty(x.size, np.float64)
        rows = np.repeat(np.arange(index.shape[0]), index.shape[1])
        keep = index.reshape(-1) >= 0
        out[index.reshape(-1)[keep]] = svals[rows[keep]]
        return out.reshape(x.shape)

    array = EmuArray(codes.reshape(x.shape), fmt, None, float(T), lazy_scale=per_element)
    return BlockCast(array, unmove(scale_codes), float(T), int(clipped.sum()))


def element_values(codes: np.ndarray, fmt: Block) -> np.ndarray:
    """The float64 values of element codes (exact)."""
    if isinstance(fmt.element, Fixed):
        return np.asarray(codes, dtype=np.float64) / 64.0
    return _float_ops.to_float(codes, fmt.element)


@functools.lru_cache(maxsize=256)
def carrier(fmt: Block) -> Float:
    """A Float that holds every element x block scale product of ``fmt`` exactly (the
    tensor scale apart): the element's significand and scale's together, an exponent
    range covering both."""
    s = fmt.scale
    if isinstance(fmt.element, Fixed):
        man, lo, hi = 6, -6, 0  # k/64, |k| <= 128
    else:
        e = fmt.element
        man, lo, hi = e.man_bits, e.min_exponent - e.man_bits, e.max_exponent + 1
    man += s.man_bits + 1 if s.man_bits else 0
    lo += s.min_exponent - s.man_bits
    hi += s.max_exponent + 1
    exp_bits = max(2, (hi - lo + man + 2).bit_length())
    bias = 1 - (lo + man)
    return Float(exp_bits, man, bias=bias)


def _values(x: EmuArray) -> "np.ndarray | None":
    """The exact float64 values of a block or Float operand without scales (None for a
    Float array that carries scales, or a NaN block)."""
    if isinstance(x.fmt, Block):
        v = element_values(x.codes, x.fmt) * x.scale  # exact: see to_carrier
        return v if np.isfinite(v).all() else None
    return None if x.scale is not None else _float_ops.to_float(x.codes, x.fmt)


def to_carrier(x: EmuArray, be) -> tuple[EmuArray, float]:
    """A block array as carrier Float codes of element * block scale, and its tensor
    scale (applied after the sum)."""
    fmt = x.fmt
    elements = element_values(x.codes, fmt)
    T = x.tensor_scale
    vals = elements * x.scale  # exact: both factors' significands fit a float64
    c = carrier(fmt)
    codes, status = be.float_cast(contiguous(vals), c, 0)
    if status:
        raise ValueError(f"matmul: {fmt} operand holds NaN blocks")
    return EmuArray(codes, c), T


def matmul(a: EmuArray, b: EmuArray, out, acc, order: str, compensated: bool, seed: int,
           be) -> EmuArray:
    """a @ b with block (and Float) operands: every product element * block scale exact
    (as the MX dot product and the matrix units' "products times block scales"), summed as
    ``acc`` says (see :func:`lowbit.emulators._float_ops.matmul`); the two tensor scales
    multiply the result after the sum, as one float32 alpha (rounded to nearest even),
    rounded once into ``out``."""
    from lowbit.emulators import ops

    if a.ndim == 2 and b.ndim == 2 and a.tensor_scale == 1.0 and b.tensor_scale == 1.0:
        # a fast path on the exact values (element x block scale) skips the carrier codes
        fa = carrier(a.fmt) if isinstance(a.fmt, Block) else a.fmt
        fb = carrier(b.fmt) if isinstance(b.fmt, Block) else b.fmt
        if isinstance(fa, Float) and isinstance(fb, Float):
            av, bv = _values(a), _values(b)
            if av is not None and bv is not None:
                r = _float_ops.matmul_values(av, fa, bv, fb, out, acc, order, compensated,
                                             seed, be)
                if r is not None:
                    return r
    ta = tb = 1.0
    if isinstance(a.fmt, Block):
        a, ta = to_carrier(a, be)
    if isinstance(b.fmt, Block):
        b, tb = to_carrier(b, be)
    alpha = np.float32(ta) * np.float32(tb)  # one float32 rounding, as the epilogue's alpha
    if alpha == 1.0:
        return _float_ops.matmul(a, b, out, acc, order, compensated, seed, be)
    r = _float_ops.matmul(a, b, None, acc, order, compensated, seed, be)
    one = EmuArray(np.full(r.shape, np.float32(alpha).view(np.uint32), np.int64),
                   _float_ops.BINARY32)
    return ops.mul(r, one, out if out is not None else r.fmt, seed=seed,
                   backend=be.name)
