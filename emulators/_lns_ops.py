"""The LNS branch of the array API: validation and dispatch (see docs/lns.md).

Called by :mod:`lowbit.emulators.ops` whenever an LNS format takes part. All LNS
operands of one operation share ``frac_bits`` (``int_bits`` may differ); an
accumulator may be finer (``acc.frac_bits >= frac_bits``).
"""

from __future__ import annotations

import numpy as np

from lowbit.emulators.array import EmuArray, is_integer_format, kernel_codes
from lowbit.numerics.formats import LNS, Fixed, Format
from lowbit.numerics.modes import Rounding
from lowbit.numerics.reference import lns as reference

ORDERS = ("sequential", "pairwise")


def check_lns(fmt: object, name: str) -> LNS:
    """``fmt`` when it is an LNS format, else ValueError naming the operand ``name``."""
    if not isinstance(fmt, LNS):
        raise ValueError(f"{name} must be an LNS format here, got {fmt!r}")
    return fmt


def _same_frac(op: str, **fmts: LNS) -> None:
    fracs = {f.frac_bits for f in fmts.values()}
    if len(fracs) != 1:
        names = ", ".join(f"{k}={v!r}" for k, v in fmts.items())
        raise ValueError(f"{op}: LNS operands and result must share frac_bits ({names}); "
                         "convert with cast() first")


def check_castable(fmt: LNS) -> None:
    """Floats cast into LNS with rne, floor or ceil on log2|x| (see cast_thresholds)."""
    if fmt.rounding is Rounding.STOCHASTIC:
        raise ValueError(f"casting floats into {fmt!r} is not supported: stochastic rounding of "
                         "log2|x| cannot be decided exactly; cast with rne/floor/ceil and use "
                         "stochastic rounding in the arithmetic")


def convert(x: EmuArray, fmt: Format, seed: int, be, cast_floats_fn) -> EmuArray:
    """EmuArray -> another format when an LNS format is on either side."""
    src = x.fmt
    codes = kernel_codes(x)
    if isinstance(src, LNS) and isinstance(fmt, LNS):
        out = be.lns_convert(codes, src, fmt, seed) if codes.size else codes.copy()
        return EmuArray(out, fmt)
    if isinstance(src, LNS) and isinstance(fmt, Fixed):
        return EmuArray(reference.to_fixed(codes, src, fmt, seed), fmt)
    if isinstance(src, LNS):
        raise ValueError(f"cannot cast LNS codes to {fmt!r} exactly; cast x.to_float() instead")
    exact = x.scale is None and (is_integer_format(src) or (isinstance(src, Fixed) and src.bits <= 53))
    if not exact:
        raise ValueError(f"cannot cast {src!r} codes{' with scales' if x.scale is not None else ''} "
                         f"to {fmt!r} exactly; cast x.to_float() instead")
    return cast_floats_fn(x.to_float(), fmt)


def elementwise(a: EmuArray, b: EmuArray, ca: np.ndarray, cb: np.ndarray, out: object,
                op: str, seed: int, be) -> np.ndarray:
    """add/sub/mul/div of LNS codes (already broadcast and contiguous)."""
    fa, fb = check_lns(a.fmt, "a"), check_lns(b.fmt, "b")
    if out is None:
        if fa != fb:
            raise ValueError(f"{op}: out is required when the operands' formats differ "
                             f"({fa!r}, {fb!r})")
        out = fa
    out = check_lns(out, "out")
    _same_frac(op, a=fa, b=fb, out=out)
    if ca.size == 0:
        return np.zeros(ca.shape, np.int64), out
    if op in ("add", "sub"):
        return be.lns_add(ca, fa, cb, fb, op == "sub", out, seed), out
    codes, status = be.lns_mul(ca, fa, cb, fb, out, op == "div")
    if status:
        bad = np.argwhere(cb == 0)[0]
        raise ValueError(f"div: division by zero at b{[int(i) for i in bad]}")
    return codes, out


def accumulation_formats(fa: LNS, fb: LNS | None, out: object, acc: object, op: str):
    """(out, acc) for an LNS matmul/sum: out defaults to the operands' format,
    acc to out; acc must be LNS with acc.frac_bits >= the operands'."""
    if out is None:
        if fb is not None and fa != fb:
            raise ValueError(f"{op}: out is required when the operands' formats differ")
        out = fa
    out = check_lns(out, "out")
    acc_f = out if acc is None else check_lns(acc, "acc")
    if fb is not None:
        _same_frac(op, a=fa, b=fb)
    if acc_f.frac_bits < fa.frac_bits:
        raise ValueError(f"{op}: acc {acc_f!r} needs at least the operands' frac_bits "
                         f"({fa.frac_bits})")
    if out.frac_bits > acc_f.frac_bits:
        raise ValueError(f"{op}: out {out!r} cannot be finer than acc {acc_f!r}")
    return out, acc_f
