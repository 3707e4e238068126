"""Weight updates applied in an emulated format (shared by the optimizers and EP).

``MasterWeights`` holds a parameter as codes of its format and applies updates
w <- w + d with the format's rounding:

- ``compensation=None``: w <- round(w + d); updates below half an ulp are lost;
- ``"stochastic"``: w <- SR(w + d), a fresh seed per call;
- ``"kahan"``: y = d - c; t = round(w + y); c = (t - w) - y; w = t, with the
  compensation register c in ``update_format(fmt)``.

A float update is first rounded to nearest into ``update_format(fmt)``: for
Fixed(bits, frac), frac + 24 fractional bits (so that t - w and (t - w) - y are
exact there); for LNS, two more integer bits and the same frac_bits (every step
is then LNS arithmetic with the weights' adder). An update already emulated (an
EmuArray) is used as it is.
"""

from __future__ import annotations

import dataclasses

import numpy as np

import lowbit.emulators as E
from lowbit.emulators import EmuArray
from lowbit.numerics import LNS, Fixed, Float, Format, Rounding

COMPENSATIONS = (None, "kahan", "stochastic")
UPDATE_GUARD_BITS = 24


def update_format(fmt: Format) -> Format:
    """The format an update (and Kahan's register) takes before meeting ``fmt``: for a
    Float, fp32 (or fmt itself when it is wider), rounded to nearest."""
    if isinstance(fmt, Float):
        fp32 = Float(8, 23)
        return fp32 if fmt.man_bits < 23 or fmt.exp_bits < 8 else \
            dataclasses.replace(fmt, rounding=Rounding.NEAREST_EVEN, sr_bits=None, inf=None)
    if isinstance(fmt, Fixed):
        guard = min(UPDATE_GUARD_BITS, 61 - fmt.bits)
        return Fixed(min(fmt.bits + guard, 61), fmt.frac + guard)
    if isinstance(fmt, LNS):
        return LNS(min(fmt.int_bits + 2, 10), fmt.frac_bits, fmt.adder)
    raise ValueError(f"master weights cannot be {fmt!r}: binary/ternary weights take no small "
                     "updates; train them with latent float weights (BinaryLinear, TernaryLinear)")


class MasterWeights:
    """A parameter held as codes of ``fmt``, updated with the format's rounding."""

    def __init__(self, codes: EmuArray, compensation: str | None = None):
        if compensation not in COMPENSATIONS:
            raise ValueError(f"compensation must be one of {COMPENSATIONS}, got {compensation!r}")
        self.fmt = codes.fmt
        self.fine = update_format(self.fmt)
        self.codes = codes
        self.compensation = compensation
        self.comp = E.cast(np.zeros(codes.shape), self.fine) if compensation == "kahan" else None

    def apply(self, delta: np.ndarray | EmuArray, seed: int) -> EmuArray:
        """w <- w (+) delta; returns (and keeps) the new codes."""
        d = delta if isinstance(delta, EmuArray) else E.cast(np.asarray(delta), self.fine)
        w = self.codes
        if self.compensation is None:
            new = E.add(w, d, self.fmt, seed=seed)
        elif self.compensation == "stochastic":
            sr = dataclasses.replace(self.fmt, rounding=Rounding.STOCHASTIC,
                                     **({"inf": None} if isinstance(self.fmt, Float) else {}))
            new = E.from_codes(E.add(w, d, sr, seed=seed).codes, self.fmt)
        else:
            y = E.sub(d, self.comp, self.fine, seed=seed)
            t = E.add(w, y, self.fmt, seed=seed)
            self.comp = E.sub(E.sub(t, w, self.fine), y, self.fine)
            new = t
        self.codes = new
        return new

    def apply_rows(self, rows: np.ndarray, delta: np.ndarray, seed: int) -> EmuArray:
        """w[rows] <- w[rows] (+) delta for the rows ``rows`` (unique indices along the first
        axis, ``delta`` of shape (len(rows),) + the rest): the same rounding and
        compensation as :meth:`apply`, the other rows and their Kahan registers untouched
        (a lazy optimizer's step). Returns the new codes of those rows."""
        rows = np.asarray(rows, dtype=np.int64)
        part = MasterWeights.__new__(MasterWeights)
        part.fmt, part.fine, part.compensation = self.fmt, self.fine, self.compensation
        part.codes = EmuArray(self.codes.codes[rows], self.fmt)
        part.comp = None if self.comp is None else EmuArray(self.comp.codes[rows], self.fine)
        new = part.apply(delta, seed)
        # the kernels' codes are valid by construction: rewrap without re-validating
        full = np.array(self.codes.codes)
        full[rows] = new.codes
        self.codes = EmuArray(full, self.fmt)
        if self.comp is not None:
            comp = np.array(self.comp.codes)
            comp[rows] = part.comp.codes
            self.comp = EmuArray(comp, self.fine)
        return new

    def state(self) -> dict:
        return {"codes": self.codes.codes.copy(),
                "comp": None if self.comp is None else self.comp.codes.copy()}

    def load(self, state: dict) -> None:
        self.codes = E.from_codes(state["codes"], self.fmt)
        self.comp = None if state["comp"] is None else E.from_codes(state["comp"], self.fine)
