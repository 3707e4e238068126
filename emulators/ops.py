"""The array API: cast, add, sub, mul, matmul, sum over :class:`EmuArray`.

Every function validates its arguments here, once, then calls the chosen
backend's kernel; the kernels assume valid input. Semantics are defined by
:mod:`lowbit.numerics.reference` and written out in ``docs/formats.md``:

- one rounding per operation (``out``'s rounding mode, then its overflow mode);
- ``acc=None`` sums exactly; a Fixed ``acc`` rounds after every addition, in
  ``order`` ``"sequential"`` (left to right) or ``"pairwise"`` (fixed tree), with
  optional Kahan compensation (``compensated=True``, sequential only);
- stochastic rounding draws from the counter RNG of ``docs/rng.md`` with
  ``seed``: pass a different seed to every call whose rounding must be independent.

>>> import numpy as np
>>> from lowbit.numerics import Fixed
>>> a = cast(np.array([0.5, 1.25, -2.0]), Fixed(8, 2))
>>> a.codes
array([ 2,  5, -8])
>>> mul(a, a).to_float()   # 1.5625 rounds to nearest-even in Fixed(8, 2)
array([0.25, 1.5 , 4.  ])
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from lowbit.emulators import _block_ops, _float_ops, _lns_ops
from lowbit.emulators.array import (
    EmuArray,
    as_format,
    check_scale,
    contiguous,
    is_integer_format,
    kernel_codes,
)
from lowbit.emulators.backends import get_backend
from lowbit.numerics import rng, scales
from lowbit.numerics.formats import LNS, Binary, Block, Fixed, Float, Format, Rounding

ORDERS = ("sequential", "pairwise")
EXACT_BLAS_LIMIT = 1 << 53
"""Exact matmuls use float64 BLAS when every partial sum is an integer below this."""
EXACT_SUM_LIMIT = 1 << 62
"""Exact int64 accumulation is allowed while sum(|products|) stays below this."""
ALIGN_LIMIT = 61
"""Aligned operands of an addition must have magnitudes below 2**61."""


# ---------------------------------------------------------------- helpers ---

def _magnitude_bits(fmt: Format) -> int:
    """m with |code| <= 2**m for every code of fmt."""
    return fmt.magnitude_bits if isinstance(fmt, Fixed) else 0


def _check_emu(x: object, name: str) -> EmuArray:
    if not isinstance(x, EmuArray):
        raise TypeError(f"{name} must be an EmuArray (see lowbit.emulators.cast), got {type(x).__name__}")
    return x


def _check_fixed(fmt: object, name: str) -> Fixed:
    fmt = as_format(fmt, name)
    if not isinstance(fmt, Fixed):
        raise ValueError(f"{name} must be a Fixed format, got {fmt!r}")
    return fmt


def _check_unscaled(x: EmuArray, name: str, op: str) -> None:
    if x.scale is not None:
        raise ValueError(f"{op}: {name} has scales ({x.fmt!r}); {op} works on unscaled codes "
                         f"(cast with scale=None, or use {name}.to_float())")


def _default_out(out: object, fmts: list[Format], op: str) -> Fixed:
    if out is not None:
        return _check_fixed(out, "out")
    fixed = [f for f in fmts if isinstance(f, Fixed)]
    if fixed and all(f == fixed[0] for f in fixed):
        return fixed[0]
    if not fixed:
        return Fixed(32, 0)
    raise ValueError(f"{op}: out is required when the operands' formats differ "
                     f"({', '.join(repr(f) for f in fmts)})")


def _check_order(order: object, compensated: object, acc: Optional[Fixed]) -> None:
    if order not in ORDERS:
        raise ValueError(f"order must be one of {ORDERS}, got {order!r}")
    if not isinstance(compensated, bool):
        raise TypeError(f"compensated must be a bool, got {compensated!r}")
    if compensated and acc is None:
        raise ValueError("compensated=True needs a narrow accumulator format acc "
                         "(acc=None already sums exactly)")
    if compensated and order != "sequential":
        raise ValueError("compensated=True (Kahan summation) needs order='sequential'")


def _check_acc_alignment(acc: Fixed, term_mag: int, tfrac: int, op: str) -> None:
    F = max(acc.frac, tfrac)
    if acc.magnitude_bits + F - acc.frac > ALIGN_LIMIT or term_mag + F - tfrac > ALIGN_LIMIT:
        raise ValueError(
            f"{op}: accumulating terms of {term_mag} magnitude bits at frac {tfrac} into {acc!r} "
            f"needs more than {ALIGN_LIMIT + 1} aligned bits; use a narrower acc or operands")


def _no_float(op: str, *xs) -> None:
    """NotImplementedError if a Float format takes part in ``op`` (its kernels come later)."""
    for x in xs:
        f = x.fmt if isinstance(x, EmuArray) else x
        if isinstance(f, str):
            f = as_format(f)
        if isinstance(f, Float):
            raise NotImplementedError(
                f"{op} of Float formats ({f}) is not in the emulator yet: cast and to_float are; "
                "the exact reference is lowbit.numerics.reference.floating")


def _first_index(mask: np.ndarray) -> list[int]:
    return [int(v) for v in np.unravel_index(int(np.argmax(mask)), mask.shape)]


def _float_input(x: object) -> np.ndarray:
    """A C-contiguous float32/float64 array of ``x`` (ints converted exactly)."""
    arr = np.asarray(x)
    if arr.dtype.kind == "f":
        if arr.dtype.itemsize > 8:
            raise TypeError(f"x of dtype {arr.dtype} is not supported (use float64)")
        if arr.dtype.itemsize < 4:
            arr = arr.astype(np.float32)  # float16 -> float32 is exact
    elif arr.dtype.kind in "iub":
        as_f = arr.astype(np.float64)
        if arr.size and np.any(as_f.astype(arr.dtype) != arr):
            raise ValueError("x holds integers that float64 cannot represent exactly")
        arr = as_f
    else:
        raise TypeError(f"x must be a real float or integer array, got dtype {arr.dtype}")
    return contiguous(arr)


def _raise_unrepresentable(x: np.ndarray, fmt: Float) -> None:
    """ValueError naming the first NaN or inf that ``fmt`` cannot hold."""
    nan = np.isnan(x)
    if nan.any() and fmt.nan_code is None:
        raise ValueError(f"x{_first_index(nan)} is NaN, which {fmt} cannot represent (no NaN)")
    inf = np.isinf(x)
    raise ValueError(f"x{_first_index(inf)} is {x[inf][0]}, which {fmt} cannot represent")


def _raise_bad_float(x: np.ndarray, status: int, fmt: Format) -> None:
    nan = np.isnan(x)
    if nan.any():
        raise ValueError(f"x{_first_index(nan)} is NaN")
    if status:
        raise ValueError(f"x{_first_index(np.isinf(x))} is {x[np.isinf(x)][0]} and cannot wrap "
                         f"in {fmt!r} (overflow=WRAP); saturate or clip first")


# ------------------------------------------------------------------- cast ---

def block_cast(x, fmt: Block | str, *, seed: int = 0,
               backend: str | None = None) -> "_block_ops.BlockCast":
    """The block cast of float32/float64 ``x`` into a block format (MX, NVFP4; rules in
    :mod:`lowbit.numerics.blocks`): the array (element codes; per-element block scales;
    the tensor scale), the scale codes in the block grid's shape, and how many elements
    clipped. ``cast(x, fmt)`` returns the array alone."""
    fmt = as_format(fmt)
    if not isinstance(fmt, Block):
        raise ValueError(f"block_cast takes a block format (mxfp8, nvfp4, ...), got {fmt}")
    if isinstance(x, EmuArray):
        x = x.to_float()
    return _block_ops.block_cast(_float_input(x), fmt, rng.check_seed(seed),
                                 get_backend(backend))


def cast(x, fmt: Format | str, *, seed: int = 0, backend: str | None = None) -> EmuArray:
    """Codes of ``x`` (floats, ints, or an EmuArray) in ``fmt``, rounded once.

    - Fixed: ``code = overflow(round(x * 2**frac))`` with ``fmt``'s modes; NaN
      raises ``ValueError`` naming its index; +-inf saturates under SATURATE and
      raises under WRAP. Stochastic counter = flat C-order index.
    - Binary / Ternary: codes and scale as in :mod:`lowbit.numerics.reference.binary`.
    - From an EmuArray: its exact values are re-rounded into ``fmt`` (a scaled
      Fixed array cannot be: convert it with ``to_float()`` first).
    """
    fmt = as_format(fmt)
    seed = rng.check_seed(seed)
    be = get_backend(backend)
    if isinstance(x, EmuArray):
        return _convert(x, fmt, seed, be)
    arr = _float_input(x)
    if isinstance(fmt, Block):
        return _block_ops.block_cast(arr, fmt, seed, be).array
    if isinstance(fmt, Float):
        if arr.size == 0:
            return EmuArray(np.zeros(arr.shape, np.int64), fmt)
        codes, status = be.float_cast(arr, fmt, seed, narrow=True)  # 8-bit codes in bytes
        if status:
            _raise_unrepresentable(arr, fmt)
        return EmuArray(codes, fmt)
    if isinstance(fmt, LNS):
        _lns_ops.check_castable(fmt)
        if arr.size == 0:
            return EmuArray(np.zeros(arr.shape, np.int64), fmt)
        codes, status = be.lns_cast(arr, fmt)
        if status:
            _raise_bad_float(arr, status, fmt)
        return EmuArray(codes, fmt)
    if isinstance(fmt, Fixed):
        if arr.size == 0:
            return EmuArray(np.zeros(arr.shape, np.int64), fmt)
        codes, status = be.fixed_cast(arr, fmt, seed)
        if status:
            _raise_bad_float(arr, status, fmt)
        return EmuArray(codes, fmt)
    if isinstance(fmt, Binary):
        codes, status = be.binary_cast(arr)
        if status:
            _raise_bad_float(arr, status, fmt)
        return EmuArray(codes, fmt, scales.binary_scale(arr, fmt))
    threshold = scales.ternary_threshold(arr, fmt)  # NaN if x holds a NaN: reported below
    codes, status = be.ternary_cast(arr, threshold)
    if status:
        _raise_bad_float(arr, status, fmt)
    return EmuArray(codes, fmt, scales.ternary_scale(arr, fmt, threshold))


def _convert(x: EmuArray, fmt: Format, seed: int, be) -> EmuArray:
    src = x.fmt
    if isinstance(src, Float) or isinstance(fmt, Float):
        if isinstance(src, LNS) or isinstance(fmt, LNS):
            raise NotImplementedError(f"converting between {src} and {fmt} is not emulated "
                                      "(LNS values are not float64 values)")
        if isinstance(src, Float) and isinstance(fmt, Float):
            return _float_ops.convert(x, fmt, seed, be)
        if isinstance(src, Float) and x.scale is None:
            return cast(x.to_float(), fmt, seed=seed, backend=be.name)  # exact values
    if isinstance(src, LNS) or isinstance(fmt, LNS):
        return _lns_ops.convert(x, fmt, seed, be,
                                lambda floats, f: cast(floats, f, seed=seed, backend=be.name))
    if isinstance(fmt, Fixed) and x.scale is None:
        codes = kernel_codes(x)
        if codes.size == 0:
            return EmuArray(codes.copy(), fmt)
        return EmuArray(be.fixed_convert(codes, src.frac, fmt, seed), fmt)
    exact_floats = is_integer_format(src) or (isinstance(src, Fixed) and x.scale is None
                                              and src.bits <= 53)
    if not exact_floats:
        raise ValueError(f"cannot cast an array of {src!r}{' with scales' if x.scale is not None else ''} "
                         f"to {fmt!r} exactly; cast x.to_float() instead")
    return cast(x.to_float(), fmt, seed=seed, backend=be.name)


# ------------------------------------------------------------ element-wise ---

def _elementwise_operands(a, b, op: str):
    a = _check_emu(a, "a")
    b = _check_emu(b, "b")
    _check_unscaled(a, "a", op)
    _check_unscaled(b, "b", op)
    try:
        shape = np.broadcast_shapes(a.shape, b.shape)
    except ValueError:
        raise ValueError(f"{op}: shapes {a.shape} and {b.shape} do not broadcast") from None
    ca, cb = (kernel_codes(x) if x.shape == shape else
              np.array(np.broadcast_to(kernel_codes(x), shape), order="C")
              for x in (a, b))
    return a, b, ca, cb, shape


def _lns_elementwise(a, b, out, seed, backend, op: str) -> EmuArray:
    a, b, ca, cb, shape = _elementwise_operands(a, b, op)
    if isinstance(out, str):
        out = as_format(out, "out")
    codes, out_f = _lns_ops.elementwise(a, b, ca, cb, out, op, rng.check_seed(seed),
                                        get_backend(backend))
    return EmuArray(codes, out_f)


def _is_lns(*xs) -> bool:
    return any(isinstance(x, EmuArray) and isinstance(x.fmt, LNS) for x in xs)


def _is_float(*xs) -> bool:
    return any(isinstance(x, EmuArray) and isinstance(x.fmt, Float) for x in xs)


def _float_elementwise(op: str, operands: list, out, seed, backend) -> EmuArray:
    names = "abc"
    ops = [_check_emu(x, names[i]) for i, x in enumerate(operands)]
    for i, x in enumerate(ops):
        _check_unscaled(x, names[i], op)
    try:
        shape = np.broadcast_shapes(*(x.shape for x in ops))
    except ValueError:
        raise ValueError(f"{op}: shapes {[x.shape for x in ops]} do not broadcast") from None
    codes = [kernel_codes(x) if x.shape == shape else
             np.array(np.broadcast_to(kernel_codes(x), shape), order="C") for x in ops]
    return _float_ops.elementwise(op, ops, codes, shape, out, rng.check_seed(seed),
                                  get_backend(backend))


def _add(a, b, out, seed, backend, negate_b: bool, op: str) -> EmuArray:
    if _is_float(a, b):
        return _float_elementwise(op, [a, b], out, seed, backend)
    if _is_lns(a, b):
        return _lns_elementwise(a, b, out, seed, backend, op)
    a, b, ca, cb, shape = _elementwise_operands(a, b, op)
    out = _default_out(out, [a.fmt, b.fmt], op)
    seed = rng.check_seed(seed)
    F = max(a.fmt.frac, b.fmt.frac)
    for name, f in (("a", a.fmt), ("b", b.fmt)):
        if _magnitude_bits(f) + F - f.frac > ALIGN_LIMIT:
            raise ValueError(f"{op}: {name} of {f!r} aligned to {F} fractional bits exceeds "
                             f"{ALIGN_LIMIT} magnitude bits; use narrower formats")
    if ca.size == 0:
        return EmuArray(np.zeros(shape, np.int64), out)
    codes = get_backend(backend).fixed_add(ca, a.fmt.frac, cb, b.fmt.frac, negate_b, out, seed)
    return EmuArray(codes, out)


def add(a: EmuArray, b: EmuArray, out: Fixed | str | None = None, *, seed: int = 0,
        backend: str | None = None) -> EmuArray:
    """Element-wise a + b (numpy broadcasting), rounded once into ``out``.

    ``out`` defaults to the operands' format when they share one. Operands are
    aligned exactly: each aligned magnitude must stay below 2**61.
    """
    return _add(a, b, out, seed, backend, False, "add")


def sub(a: EmuArray, b: EmuArray, out: Fixed | str | None = None, *, seed: int = 0,
        backend: str | None = None) -> EmuArray:
    """Element-wise a - b (numpy broadcasting), rounded once into ``out`` (as :func:`add`)."""
    return _add(a, b, out, seed, backend, True, "sub")


def mul(a: EmuArray, b: EmuArray, out: Fixed | str | None = None, *, seed: int = 0,
        backend: str | None = None) -> EmuArray:
    """Element-wise a * b (numpy broadcasting), the exact product rounded once into ``out``.

    The product must fit 62 magnitude bits: signed operands up to bits_a + bits_b <= 64
    (e.g. 32 x 32 bits), unsigned up to 31 x 31 bits.
    """
    if _is_float(a, b):
        return _float_elementwise("mul", [a, b], out, seed, backend)
    if _is_lns(a, b):
        return _lns_elementwise(a, b, out, seed, backend, "mul")
    a, b, ca, cb, shape = _elementwise_operands(a, b, "mul")
    out = _default_out(out, [a.fmt, b.fmt], "mul")
    seed = rng.check_seed(seed)
    if _magnitude_bits(a.fmt) + _magnitude_bits(b.fmt) > 62:
        raise ValueError(f"mul: the product of {a.fmt!r} and {b.fmt!r} needs more than 62 "
                         "magnitude bits (operands up to 32 bits signed are supported)")
    if ca.size == 0:
        return EmuArray(np.zeros(shape, np.int64), out)
    codes = get_backend(backend).fixed_mul(ca, cb, a.fmt.frac + b.fmt.frac, out, seed)
    return EmuArray(codes, out)


def div(a: EmuArray, b: EmuArray, out: LNS | str | None = None, *, seed: int = 0,
        backend: str | None = None) -> EmuArray:
    """Element-wise a / b of LNS values: exact exponent subtraction, then ``out``'s
    range policy. A zero divisor raises ``ValueError`` naming its index."""
    if _is_float(a, b):
        return _float_elementwise("div", [a, b], out, seed, backend)
    if not _is_lns(a, b):
        raise ValueError("div is defined for LNS and Float operands (fixed-point division is "
                         "not emulated)")
    return _lns_elementwise(a, b, out, seed, backend, "div")


def fma(a: EmuArray, b: EmuArray, c: EmuArray, out: Float | str | None = None, *,
        seed: int = 0, backend: str | None = None) -> EmuArray:
    """Element-wise a * b + c of Float operands (numpy broadcasting) with one rounding into
    ``out``: the product is exact, not rounded (IEEE 754 fusedMultiplyAdd)."""
    if not _is_float(a, b, c) or not all(isinstance(x, EmuArray) and isinstance(x.fmt, Float)
                                          for x in (a, b, c)):
        raise ValueError("fma takes Float operands")
    return _float_elementwise("fma", [a, b, c], out, seed, backend)


# ------------------------------------------------------------ accumulation ---

def _max_abs(codes: np.ndarray) -> int:
    """max |code| (two reductions, no temporary array)."""
    return max(int(codes.max()), -int(codes.min())) if codes.size else 0


def _scale_along(x: EmuArray, axis: int, name: str) -> np.ndarray | None:
    """x's scale, which must not vary along ``axis`` (the contraction axis)."""
    if x.scale is None:
        return None
    if x.scale.shape[axis] != 1:
        raise ValueError(f"matmul: the scale of {name} varies along the contraction axis "
                         f"(scale shape {x.scale.shape}); per-channel scales must be on "
                         f"{'rows' if name == 'a' else 'columns'}")
    return x.scale


def matmul(a: EmuArray, b: EmuArray, out: Fixed | str | None = None,
           acc: Fixed | str | None = None, order: str = "sequential",
           compensated: bool = False, *, seed: int = 0,
           backend: str | None = None) -> EmuArray:
    """a @ b for 1-D or 2-D operands (numpy's rules), each product exact.

    - ``acc=None``: the products are summed exactly and rounded once into ``out``.
      Needs K * max|a| * max|b| < 2**62 for the codes at hand (int64 sums); when
      that bound is below 2**53 float64 BLAS computes the sums, exactly.
    - ``acc`` a Fixed format: each output is accumulated in ``acc`` (see
      :func:`lowbit.numerics.reference.fixed.accumulate` for ``order`` and
      ``compensated``), then rounded into ``out``.
    - binary x binary and ternary operands with ``acc=None``: XNOR-popcount on
      bit-packed uint64 words (ternary as two bit-planes), exact integers.
    - scales (binary/ternary) must not vary along the contraction axis; the result
      carries scale_a (rows) * scale_b (columns), applied after rounding.

    ``out`` defaults to ``acc``, else the operands' common Fixed format, else the
    Fixed operand's format, else ``Fixed(32, 0)`` for binary/ternary products.

    Float operands: ``acc`` None (the exact sum, for narrow formats whose products span at
    most 62 bits: FP8/FP6/FP4), a Float format (every addition rounded; ``order``,
    ``compensated`` = Kahan in the accumulator format) or an AccumulatorModel / its name
    (``"hopper_fp8"``, ``"hopper_fp8:promote128"``, ...: the matrix unit's fused groups);
    see :func:`lowbit.emulators._float_ops.matmul` and docs/floats.md.
    """
    a = _check_emu(a, "a")
    b = _check_emu(b, "b")
    if isinstance(a.fmt, Block) or isinstance(b.fmt, Block):
        return _block_ops.matmul(a, b, out, acc, order, compensated, rng.check_seed(seed),
                                 get_backend(backend))
    if _is_float(a, b):
        return _float_ops.matmul(a, b, out, acc, order, compensated, rng.check_seed(seed),
                                 get_backend(backend))
    if a.ndim not in (1, 2) or b.ndim not in (1, 2):
        raise ValueError(f"matmul takes 1-D or 2-D operands, got shapes {a.shape} and {b.shape}")
    if _is_lns(a, b):
        return _lns_matmul(a, b, out, acc, order, compensated, seed, backend)
    acc_f = None if acc is None else _check_fixed(acc, "acc")
    _check_order(order, compensated, acc_f)
    out_f = acc_f if (out is None and acc_f is not None) else \
        _default_out(out, [a.fmt, b.fmt], "matmul")
    seed = rng.check_seed(seed)
    a2 = a if a.ndim == 2 else a.reshape(1, -1)
    b2 = b if b.ndim == 2 else b.reshape(-1, 1)
    (M, K), (K2, N) = a2.shape, b2.shape
    if K != K2:
        raise ValueError(f"matmul: inner dimensions differ, {a.shape} @ {b.shape}")
    sa = _scale_along(a2, 1, "a")
    sb = _scale_along(b2, 0, "b")
    ma, mb = _magnitude_bits(a.fmt), _magnitude_bits(b.fmt)
    if ma + mb > 62:
        raise ValueError(f"matmul: products of {a.fmt!r} and {b.fmt!r} need more than 62 "
                         "magnitude bits (operands up to 32 bits signed are supported)")
    be = get_backend(backend)
    pfrac = a.fmt.frac + b.fmt.frac
    ca = kernel_codes(a2)
    cb = kernel_codes(b2)
    if M * N == 0:
        codes = np.zeros((M, N), np.int64)
    elif acc_f is not None:
        _check_acc_alignment(acc_f, ma + mb, pfrac, "matmul")
        codes = be.fixed_matmul(ca, cb, pfrac, acc_f, order, compensated, out_f, seed)
    else:
        amax, bmax = _max_abs(ca), _max_abs(cb)
        bound = K * amax * bmax
        if bound >= EXACT_SUM_LIMIT:
            raise ValueError(f"matmul: an exact sum of {K} products of up to {amax * bmax} "
                             f"needs more than 62 bits; pass a narrow acc or use narrower operands")
        if is_integer_format(a.fmt) and is_integer_format(b.fmt) and K:
            dots = _popcount_matmul(ca, cb, a.fmt, b.fmt, be)
            codes = be.fixed_convert(dots, pfrac, out_f, seed, rng.STEP_BITS, rng.FINAL_STEP)
        elif bound < EXACT_BLAS_LIMIT:
            # every partial sum is an integer below 2**53: float64 BLAS is exact
            dots = (ca.astype(np.float64) @ cb.astype(np.float64)).astype(np.int64)
            codes = be.fixed_convert(dots, pfrac, out_f, seed, rng.STEP_BITS, rng.FINAL_STEP)
        else:
            if max(amax, bmax) < 2**31:  # half the memory traffic, same exact int64 sums
                ca, cb = ca.astype(np.int32), cb.astype(np.int32)
            codes = be.fixed_matmul(ca, cb, pfrac, None, order, False, out_f, seed)
    scale = None
    if sa is not None or sb is not None:
        scale = (np.ones((M, 1)) if sa is None else sa) * (np.ones((1, N)) if sb is None else sb)
    result_shape = (M, N)
    if a.ndim == 1 and b.ndim == 1:
        result_shape = ()
    elif a.ndim == 1:
        result_shape = (N,)
    elif b.ndim == 1:
        result_shape = (M,)
    codes = codes.reshape(result_shape)
    if scale is not None:
        scale = np.broadcast_to(scale, (M, N)).reshape(result_shape) if result_shape != (M, N) \
            else scale
        scale = check_scale(scale, result_shape)
    return EmuArray(codes, out_f, scale)


def bmm(a: EmuArray, b: EmuArray, out: Format | str | None = None, acc=None,
        order: str = "sequential", compensated: bool = False, *, seed: int = 0,
        backend: str | None = None) -> EmuArray:
    """Batched a @ b for (B, M, K) and (B, K, N) operands: batch element i is exactly
    ``matmul(a[i], b[i], out, acc, order, compensated, seed=s_i)`` with s_0 = seed and
    s_i = rng.random_u64(seed, i) (same codes; one call instead of B).

    Two cases run vectorised over the batch (each the 2-D kernel's arithmetic): Float
    operands summed sequentially in IEEE binary32 when every product is an exact,
    normal binary32 (the native-binary32 rule of :func:`matmul`), and unscaled fixed-point
    operands summed exactly when every partial sum stays below 2**53; both need an
    ``out`` that does not round stochastically (its random draws follow the element's
    position in its own matrix). Everything else loops over :func:`matmul`.
    """
    a = _check_emu(a, "a")
    b = _check_emu(b, "b")
    if a.ndim != 3 or b.ndim != 3 or a.shape[0] != b.shape[0] or a.shape[2] != b.shape[1]:
        raise ValueError(f"bmm takes (B, M, K) and (B, K, N) operands, got {a.shape} and {b.shape}")
    seed = rng.check_seed(seed)
    fast = _bmm_fast(a, b, out, acc, order, compensated, seed, get_backend(backend))
    if fast is not None:
        return fast
    parts = [matmul(a[i], b[i], out, acc, order, compensated,
                    seed=seed if i == 0 else rng.random_u64(seed, i), backend=backend)
             for i in range(a.shape[0])]
    if not parts:
        return _empty_bmm(a, b, out, acc, order, compensated)
    scale = None if parts[0].scale is None else np.stack([np.broadcast_to(p.scale, p.shape) for p in parts])
    return EmuArray(np.stack([p.codes for p in parts]), parts[0].fmt, scale)


def _empty_bmm(a, b, out, acc, order, compensated) -> EmuArray:
    """The (0, M, N) result of an empty batch, in the format a 2-D matmul would give."""
    z = matmul(EmuArray(np.zeros(a.shape[1:], np.int64), a.fmt), EmuArray(np.zeros(b.shape[1:], np.int64), b.fmt),
               out, acc, order, compensated)
    return EmuArray(np.zeros((0,) + z.shape, np.int64), z.fmt)


def _bmm_fast(a: EmuArray, b: EmuArray, out, acc, order, compensated, seed, be):
    """The vectorised cases of :func:`bmm`, or None."""
    B, M, K = a.shape
    N = b.shape[2]
    if not B * M * N * K or order != "sequential" or compensated:
        return None
    if _is_float(a, b) and isinstance(a.fmt, Float) and isinstance(b.fmt, Float):
        if a.scale is not None or b.scale is not None:
            return None
        _, acc_f, model = _float_ops._accumulator(acc, order, compensated, "bmm")
        if model is not None or acc_f is None:
            return None
        fmt = _float_ops._out_format(out, [a, b], "bmm") if out is not None else acc_f
        if not _float_ops.binary32_products(a.fmt, b.fmt, acc_f, fmt):
            return None
        av, bv = _float_ops.to_float(kernel_codes(a), a.fmt), _float_ops.to_float(kernel_codes(b), b.fmt)
        a32, b32 = av.astype(np.float32), bv.astype(np.float32)
        if not (np.array_equal(a32, av) and np.array_equal(b32, bv)):
            return None
        span = _float_ops._product_span(av, bv)
        if span is None or (span[1] and (span[1] >= 2.0 ** 127 or span[0] < 2.0 ** -126)):
            return None
        res = np.zeros((B, M, N), np.float32)
        for k in range(K):  # exact products, one RNE binary32 addition each, k ascending
            res += a32[:, :, k, None] * b32[:, None, k, :]
        if not np.isfinite(res).all():
            return None
        if fmt == _float_ops.BINARY32:
            return EmuArray(res.view(np.uint32).astype(np.int64), fmt)
        codes, status = be.float_cast(res.reshape(B * M, N), fmt, seed)
        if status:
            _float_ops._raise_nan("bmm", fmt)
        return EmuArray(codes.reshape(B, M, N), fmt)
    if isinstance(a.fmt, Fixed) and isinstance(b.fmt, Fixed) and acc is None and \
            a.scale is None and b.scale is None:
        out_f = _default_out(out, [a.fmt, b.fmt], "bmm")
        if out_f.rounding is Rounding.STOCHASTIC:
            return None
        ca, cb = kernel_codes(a), kernel_codes(b)
        if K * _max_abs(ca) * _max_abs(cb) >= EXACT_BLAS_LIMIT:
            return None
        dots = np.matmul(ca.astype(np.float64), cb.astype(np.float64)).astype(np.int64)
        codes = be.fixed_convert(dots.reshape(B * M, N), a.fmt.frac + b.fmt.frac, out_f, seed,
                                 rng.STEP_BITS, rng.FINAL_STEP)
        return EmuArray(codes.reshape(B, M, N), out_f)
    return None


def _vector_shapes(a: EmuArray, b: EmuArray):
    """2-D views of 1-D/2-D matmul operands and the result shape numpy would give."""
    a2 = a if a.ndim == 2 else a.reshape(1, -1)
    b2 = b if b.ndim == 2 else b.reshape(-1, 1)
    if a2.shape[1] != b2.shape[0]:
        raise ValueError(f"matmul: inner dimensions differ, {a.shape} @ {b.shape}")
    M, N = a2.shape[0], b2.shape[1]
    shape = {(1, 1): (), (1, 2): (N,), (2, 1): (M,), (2, 2): (M, N)}[(a.ndim, b.ndim)]
    return a2, b2, shape


def _lns_matmul(a, b, out, acc, order, compensated, seed, backend) -> EmuArray:
    fa = _lns_ops.check_lns(a.fmt, "a")
    fb = _lns_ops.check_lns(b.fmt, "b")
    out_f, acc_f = _lns_ops.accumulation_formats(
        fa, fb, None if out is None else as_format(out, "out"),
        None if acc is None else as_format(acc, "acc"), "matmul")
    _check_order(order, compensated, acc_f)
    seed = rng.check_seed(seed)
    a2, b2, shape = _vector_shapes(a, b)
    ca, cb = kernel_codes(a2), kernel_codes(b2)
    if ca.shape[0] * cb.shape[1] == 0:
        codes = np.zeros((ca.shape[0], cb.shape[1]), np.int64)
    else:
        codes = get_backend(backend).lns_matmul(ca, cb, fa, fb, acc_f, out_f, order, compensated,
                                                seed)
    return EmuArray(codes.reshape(shape), out_f)


def _popcount_matmul(ca: np.ndarray, cb: np.ndarray, fa: Format, fb: Format, be) -> np.ndarray:
    """Exact integer a @ b of binary/ternary codes on bit-packed words (b packed by columns)."""
    K = ca.shape[1]
    if isinstance(fa, Binary) and isinstance(fb, Binary):
        return be.binary_matmul(be.pack_bits(ca, 1), be.pack_cols(cb, 1), K)
    return be.ternary_matmul(be.pack_bits(ca, 1), be.pack_bits(ca, -1),
                             be.pack_cols(cb, 1), be.pack_cols(cb, -1))


def sum(a: EmuArray, axis: int | None = None, out: Fixed | str | None = None,  # noqa: A001
        acc: Fixed | str | None = None, order: str = "sequential",
        compensated: bool = False, *, seed: int = 0,
        backend: str | None = None) -> EmuArray:
    """Sum of a's values along ``axis`` (None: all elements, C order), into ``out``.

    Accumulation as in :func:`matmul`: exact with ``acc=None`` (needs
    K * max|a| < 2**62), else in ``acc`` with ``order`` and ``compensated``.
    ``out`` defaults to ``acc``, else a's format (``Fixed(32, 0)`` for
    binary/ternary). A single uniform scale is carried over; per-channel scales
    are not supported.
    """
    a = _check_emu(a, "a")
    if isinstance(a.fmt, Float):
        return _float_ops.sum(a, axis, out, acc, order, compensated, rng.check_seed(seed),
                              get_backend(backend))
    lns = isinstance(a.fmt, LNS)
    if lns:
        out_f, acc_f = _lns_ops.accumulation_formats(
            a.fmt, None, None if out is None else as_format(out, "out"),
            None if acc is None else as_format(acc, "acc"), "sum")
    else:
        acc_f = None if acc is None else _check_fixed(acc, "acc")
        out_f = acc_f if (out is None and acc_f is not None) else \
            _default_out(out, [a.fmt], "sum")
    _check_order(order, compensated, acc_f)
    seed = rng.check_seed(seed)
    if a.scale is not None and a.scale.size != 1:
        raise ValueError(f"sum: a has per-channel scales (shape {a.scale.shape}); "
                         "sum a.to_float() or cast without per-channel scales")
    if axis is None:
        rows = kernel_codes(a).reshape(1, -1)
        shape: tuple[int, ...] = ()
    else:
        if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)):
            raise TypeError(f"axis must be an int or None, got {axis!r}")
        if not -a.ndim <= axis < a.ndim:
            raise ValueError(f"axis {axis} is out of range for an array of ndim {a.ndim}")
        moved = np.moveaxis(kernel_codes(a), int(axis), -1)
        shape = moved.shape[:-1]
        rows = contiguous(moved).reshape(int(np.prod(shape, dtype=np.int64)),
                                                   moved.shape[-1])
    M, K = rows.shape
    be = get_backend(backend)
    if M == 0:
        codes = np.zeros(M, np.int64)
    elif lns:
        codes = be.lns_sum(rows, a.fmt, acc_f, out_f, order, compensated, seed)
    elif acc_f is not None:
        _check_acc_alignment(acc_f, _magnitude_bits(a.fmt), a.fmt.frac, "sum")
        codes = be.fixed_sum(rows, a.fmt.frac, acc_f, order, compensated, out_f, seed)
    else:
        if K * _max_abs(rows) >= EXACT_SUM_LIMIT:
            raise ValueError(f"sum: an exact sum of {K} codes of up to {_max_abs(rows)} needs "
                             "more than 62 bits; pass a narrow acc")
        codes = be.fixed_sum(rows, a.fmt.frac, None, order, False, out_f, seed)
    scale = None if a.scale is None else np.full((1,) * len(shape), float(a.scale.flat[0]))
    return EmuArray(codes.reshape(shape), out_f, scale)


__all__ = ["ORDERS", "add", "bmm", "cast", "div", "fma", "matmul", "mul", "sub", "sum"]
