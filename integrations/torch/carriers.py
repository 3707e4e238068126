"""Carriers: the float tensors that hold emulated values between layers.

A carrier's values are exactly the format's values (or, for LNS, the float
nearest to them), and casting a carrier back gives exactly the codes it was
made from. The dtype is float32 when that holds for every code of the format,
float64 otherwise (:func:`carrier_dtype`).
"""

from __future__ import annotations

import dataclasses
from fractions import Fraction

import numpy as np
import torch

import lowbit.emulators as E
from lowbit.emulators import EmuArray
from lowbit.numerics import LNS, Binary, Block, Fixed, Float, Format, Rounding, Ternary


def carrier_dtype(fmt: Format) -> torch.dtype:
    """float32 if every code of ``fmt`` survives a round trip through float32.

    - Fixed: at most 53 bits (a wider code has no exact float carrier: ValueError);
      code * 2**-frac is exact in float32 when the code has at most 24 bits
      and every value lies within float32's range down to its subnormals
      (bits <= 24, frac <= 149 - ... ; checked exactly below);
    - Binary/Ternary: codes -1, 0, +1 (times a scale) always survive;
    - Float: at most 24 significant bits, so float32 when every value lies in float32's
      range (every preset); NaN (as the canonical code), -0 and every code the format
      produces survive (an FTZ format produces no subnormal); ±inf survives where the
      format's inf policy is "inf" (the default), else it meets that policy;
    - Block (MX, NVFP4): float64 (an element times a block scale times a float32 tensor
      scale needs up to 36 bits, and E8M0 scales reach beyond float32's range); a block
      carrier cast back gives the same values (the scales of a re-cast can differ);
    - LNS: neighbouring values differ by a factor 2**(2**-F) - 1 >= 2**-17 for
      F <= 16, far above float32's 2**-24, so the nearest float32 casts back to the
      same code as long as every magnitude is a normal float32 (int_bits <= 7).
    """
    if isinstance(fmt, (Binary, Ternary)):
        return torch.float32
    if isinstance(fmt, Block):
        return torch.float64
    if isinstance(fmt, LNS):
        return torch.float32 if fmt.int_bits <= 7 else torch.float64
    if isinstance(fmt, Float):  # at most 24 significant bits: the range decides
        fits = fmt.min_value >= Fraction(1, 2**149) and fmt.max_value < 2**128
        return torch.float32 if fits else torch.float64
    assert isinstance(fmt, Fixed)
    if fmt.bits > 53:
        raise ValueError(f"{fmt!r} has no exact float carrier: codes of more than 53 bits do "
                         "not survive float64 (use such formats as accumulators, which stay in "
                         "the emulator)")
    lsb = -fmt.frac                            # exponent of the code's unit
    msb = lsb + fmt.magnitude_bits             # values stay below 2**msb
    fits = fmt.bits <= 24 and lsb >= -149 and msb <= 127
    return torch.float32 if fits else torch.float64


def to_carrier(x: EmuArray, like: torch.Tensor | None = None) -> torch.Tensor:
    """The carrier tensor of an EmuArray (on ``like``'s device if given)."""
    dtype = carrier_dtype(x.fmt)
    if isinstance(x.fmt, Fixed) and x.scale is None and dtype == torch.float32:
        # straight to float32: codes of <= 24 bits and a power-of-two scale are exact
        vals = x.codes.astype(np.float32)
        if x.fmt.frac:
            vals *= np.float32(2.0 ** -x.fmt.frac)
        t = torch.from_numpy(vals)
    else:
        t = torch.from_numpy(np.ascontiguousarray(x.to_float()))
        if t.dtype != dtype:
            t = t.to(dtype)
    if like is not None and like.device.type != "cpu":
        t = t.to(like.device)
    return t


def from_carrier(t: torch.Tensor, fmt: Format, seed: int = 0) -> EmuArray:
    """Cast a tensor (a carrier, or any float tensor) into ``fmt``.

    Fixed, binary and ternary: ``lowbit.emulators.cast`` with the format's own modes.
    LNS: floats enter by nearest rounding of log2|x| (the hardware's converter),
    whatever rounding the format's arithmetic uses — so a carrier, the float
    nearest to an irrational LNS value, always decodes back to its code, and a
    stochastic LNS format can take float inputs (its stochastic rounding applies
    to the emulated arithmetic).
    """
    a = t.detach().cpu().numpy()
    if isinstance(fmt, LNS) and fmt.rounding is not Rounding.NEAREST_EVEN:
        near = E.cast(a, dataclasses.replace(fmt, rounding=Rounding.NEAREST_EVEN))
        return E.from_codes(near.codes, fmt)
    return E.cast(a, fmt, seed=seed)
