"""The Gaussian logarithms sb and db, and the adder specifications built on them.

For z <= 0 (in units of 2**-F, F = frac_bits, so the real argument is z * 2**-F):

    sb(z) = log2(1 + 2**z)        (the "G adder": addition of same-sign values)
    db(z) = log2(1 - 2**z)        (subtraction; db(0) is -inf: exact cancellation)

An LNS addition returns e_big + f(z) with z = e_small - e_big and f = sb or db.
Each adder spec (``Exact``, ``Table``, ``Interp``) defines, for every |z|, an
integer ``v`` in units of 2**-(F + P) (P guard bits) and the final value is ``v``
rounded to F bits in the format's rounding mode (only when P > 0).

Two implementations live here, and tests compare them for every z:

- :func:`reference_value`: evaluates the spec at one z with mpmath at 200 bits
  (slow, obviously right; used by :mod:`lowbit.numerics.reference.lns`);
- :func:`adder_tables`: the integer tables the kernels index, built with numpy
  in float64 and redone with mpmath wherever float64 could be too close to a
  rounding boundary to decide.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import mpmath
import numpy as np

from lowbit.numerics.formats import LNS, STOCHASTIC_GUARD_BITS, Exact, Interp, Table
from lowbit.numerics.modes import Rounding

SB, DB = 0, 1
FUNCTIONS = ("sb", "db")
PREC = 200  # bits of mpmath precision: far beyond any decision made here
MARGIN = 2.0**-12  # float64 results closer than this to a rounding boundary are redone in mpmath


# --------------------------------------------------------------- mpmath ----

def _mp():
    ctx = mpmath.mp.clone()
    ctx.prec = PREC
    return ctx


MP = _mp()


def exact_value(which: int, zabs: int, frac_bits: int):
    """f(-zabs * 2**-F) as an mpmath number at PREC bits (db(0) is -inf)."""
    x = -MP.mpf(zabs) / (MP.mpf(2) ** frac_bits)
    t = MP.power(2, x)
    if which == SB:
        return MP.log1p(t) / MP.ln2
    if zabs == 0:
        return MP.ninf
    if t <= 0.5:
        return MP.log1p(-t) / MP.ln2              # no cancellation when 2**x is small
    return MP.log(-MP.expm1(x * MP.ln2)) / MP.ln2  # nor when it is close to 1


def round_mp(value, scale_bits: int, rounding: Rounding) -> int:
    """``value * 2**scale_bits`` rounded to an integer (nearest, floor or ceil).

    Raises AssertionError if the value is within a relative 2**-(PREC - 20) of a
    boundary, which would make the decision depend on the working precision.
    """
    y = value * MP.mpf(2) ** scale_bits
    q = int(MP.floor(y))
    phi = y - q
    eps = MP.mpf(2) ** -(PREC - 20) * abs(y)  # the values carry PREC bits of relative precision
    if rounding is Rounding.FLOOR:
        assert phi > eps or phi == 0, "undecidable floor"
        return q
    if rounding is Rounding.CEIL:
        assert phi > eps or phi == 0, "undecidable ceil"
        return q + (phi > 0)
    assert abs(phi - MP.mpf(0.5)) > eps, "undecidable nearest"
    return q + (phi > 0.5)


# ------------------------------------------------------------- geometry ----

@functools.lru_cache(maxsize=None)
def essential_zero(frac_bits: int) -> int:
    """The largest |z| at which sb still rounds (to nearest, at F bits) to a nonzero value."""
    # sb(-|z|/2^F) * 2^F >= 1/2  <=>  |z| <= -2^F * log2(2^(2^-(F+1)) - 1)
    bound = -(MP.mpf(2) ** frac_bits) * MP.log(MP.power(2, MP.mpf(2) ** -(frac_bits + 1)) - 1, 2)
    return int(MP.floor(bound))


@dataclass(frozen=True)
class Geometry:
    """How an adder spec indexes |z| = q * 2**k + r.

    ``guard`` (P) are the bits kept beyond F before the final rounding;
    ``entries`` is the number of interval entries q = 1..entries-1 for Table and
    Interp (None for Exact, which covers every z); the first interval, q = 0,
    |z| < 2**k, is an exact sub-table.
    """

    k: int
    guard: int
    interp: bool
    entries: int | None

    @property
    def coverage(self) -> int | None:
        """|z| >= coverage consults no table (None: Exact)."""
        return None if self.entries is None else self.entries << self.k


def geometry(fmt: LNS) -> Geometry:
    """The :class:`Geometry` of ``fmt.adder`` for ``fmt.frac_bits`` and ``fmt.rounding``."""
    adder = fmt.adder
    stochastic = fmt.rounding is Rounding.STOCHASTIC
    if isinstance(adder, Exact):
        return Geometry(0, STOCHASTIC_GUARD_BITS if stochastic else 0, False, None)
    span = (essential_zero(fmt.frac_bits) + 1).bit_length()  # 2**span > essential zero
    k = max(0, span - adder.index_bits)
    if isinstance(adder, Table):
        return Geometry(k, STOCHASTIC_GUARD_BITS if stochastic else 0, False, 1 << adder.index_bits)
    assert isinstance(adder, Interp)
    return Geometry(k, adder.guard_bits, True, 1 << adder.index_bits)


def _point_rounding(fmt: LNS, geo: Geometry) -> Rounding:
    """How stored points are rounded: in the format's mode when they are final
    (P = 0), else to nearest at F + P bits."""
    return fmt.rounding if geo.guard == 0 else Rounding.NEAREST_EVEN


def beyond_value(which: int, fmt: LNS) -> int:
    """The final value (F units) of f past the last table entry, by rounding mode:
    sb -> 0 (1 for CEIL), db -> 0 (-1 for FLOOR); Interp's points there are 0,
    so it gives 0 whatever the mode."""
    if isinstance(fmt.adder, Interp) or fmt.rounding is Rounding.STOCHASTIC:
        return 0
    if which == SB:
        return 1 if fmt.rounding is Rounding.CEIL else 0
    return -1 if fmt.rounding is Rounding.FLOOR else 0


@functools.lru_cache(maxsize=None)
def _reference_point(which: int, zabs: int, frac_bits: int, scale_bits: int,
                     rounding: Rounding) -> int:
    return round_mp(exact_value(which, zabs, frac_bits), scale_bits, rounding)


def reference_value(which: int, zabs: int, fmt: LNS) -> int:
    """The spec's pre-rounding value v of f at -|z| in units of 2**-(F + P).

    P = ``geometry(fmt).guard``; with P = 0, v is the final value. ``zabs`` > 0
    for db (db(0) is cancellation, handled by the adder, not the table).
    """
    geo = geometry(fmt)
    F, P = fmt.frac_bits, geo.guard
    rnd = _point_rounding(fmt, geo)
    if geo.entries is None or zabs < (1 << geo.k):  # Exact, or Table/Interp's first interval
        return _reference_point(which, zabs, F, F + P, rnd)
    q, r = zabs >> geo.k, zabs & ((1 << geo.k) - 1)
    if geo.entries is not None and q >= geo.entries:
        return beyond_value(which, fmt) << P
    if not geo.interp:
        mid = (q << geo.k) + ((1 << (geo.k - 1)) if geo.k else 0)
        return _reference_point(which, mid, F, F + P, rnd)
    lo = _reference_point(which, q << geo.k, F, F + P, rnd)
    hi = 0 if q + 1 >= geo.entries else _reference_point(which, (q + 1) << geo.k, F, F + P, rnd)
    return lo + (((hi - lo) * r) >> geo.k)


def round_guard(v: int, guard: int, rounding: Rounding, u53: int = 0) -> int:
    """v * 2**-guard rounded to an integer in ``rounding`` (u53: the stochastic draw)."""
    if guard == 0:
        return v
    q, r = v >> guard, v & ((1 << guard) - 1)
    if rounding is Rounding.FLOOR:
        return q
    if rounding is Rounding.CEIL:
        return q + (r != 0)
    if rounding is Rounding.STOCHASTIC:
        return q + (u53 < (r << (53 - guard)))
    half = 1 << (guard - 1)
    return q + (r > half or (r == half and q & 1))


# ---------------------------------------------------------------- tables ---

def _float_values(which: int, zabs: np.ndarray, frac_bits: int) -> np.ndarray:
    """f(-zabs / 2**F) in float64, accurate to a few ulps (no cancellation)."""
    x = -zabs.astype(np.float64) / 2.0**frac_bits
    if which == SB:
        return np.log1p(np.exp2(x)) / math.log(2)
    with np.errstate(divide="ignore"):
        small = np.log1p(-np.exp2(x))                 # accurate when 2**x is small
        near = np.log(-np.expm1(x * math.log(2)))     # accurate when 2**x is near 1
    return np.where(x < -1, small, near) / math.log(2)


def _round_points(which: int, zabs: np.ndarray, frac_bits: int, scale_bits: int,
                  rounding: Rounding) -> np.ndarray:
    """f at -zabs rounded at ``scale_bits`` (exactly: float64, mpmath near boundaries)."""
    with np.errstate(all="ignore"):  # db(0) = -inf is marked risky below and redone
        return _round_float_points(which, zabs, frac_bits, scale_bits, rounding)


def _round_float_points(which: int, zabs: np.ndarray, frac_bits: int, scale_bits: int,
                        rounding: Rounding) -> np.ndarray:
    y = _float_values(which, zabs, frac_bits) * 2.0**scale_bits
    if rounding is Rounding.FLOOR:
        out, phi = np.floor(y), y - np.floor(y)
        risky = (phi < MARGIN) | (phi > 1 - MARGIN)
    elif rounding is Rounding.CEIL:
        out, phi = np.ceil(y), y - np.floor(y)
        risky = (phi < MARGIN) | (phi > 1 - MARGIN)
    else:
        out, phi = np.rint(y), y - np.floor(y)
        risky = np.abs(phi - 0.5) < MARGIN
    risky |= ~np.isfinite(y)
    out = np.where(np.isfinite(out), out, 0).astype(np.int64)
    for i in np.flatnonzero(risky):
        z = int(zabs[i])
        out[i] = 0 if (which == DB and z == 0) else _reference_point(which, z, frac_bits,
                                                                      scale_bits, rounding)
    return out


@dataclass(frozen=True)
class AdderTables:
    """What the kernels index (twin of :func:`reference_value`), per f in (sb, db):

    - ``sub[f, zabs]`` for zabs < 2**k: v at the exact first interval;
    - ``tab[f, q]`` for 1 <= q <= last: Table's midpoint values, Interp's points,
      Exact's values; whenever k = 0 column 0 holds f(0) too; columns last + 1 and
      last + 2 hold ``beyond[f] << guard`` so that kernels may clamp q to last + 1
      instead of branching;
    - ``beyond[f]``: the final value for q > last (no table consulted);
    - ``k``, ``guard`` (P) and ``interp`` as in :class:`Geometry`.
    """

    sub: np.ndarray
    tab: np.ndarray
    last: int
    beyond: np.ndarray
    k: int
    guard: int
    interp: bool


@functools.lru_cache(maxsize=64)
def adder_tables(fmt: LNS) -> AdderTables:
    """The integer tables of ``fmt``'s adder (cached per format)."""
    geo = geometry(fmt)
    F, P, k = fmt.frac_bits, geo.guard, geo.k
    rnd = _point_rounding(fmt, geo)
    sub = np.stack([_round_points(w, np.arange(1 << k), F, F + P, rnd) for w in (SB, DB)])
    sub[DB, 0] = 0  # db(0): cancellation, never looked up
    beyond = np.array([beyond_value(SB, fmt), beyond_value(DB, fmt)], np.int64)
    if geo.entries is not None:
        last = geo.entries - 1
        q = np.arange(last + 2)
        if geo.interp:
            tab = np.stack([_round_points(w, q << k, F, F + P, rnd) for w in (SB, DB)])
        else:
            mid = (q << k) + ((1 << (k - 1)) if k else 0)
            tab = np.stack([_round_points(w, mid, F, F + P, rnd) for w in (SB, DB)])
        # q = 0 is the sub-table; with k = 0 that is f(0) alone, and column 0 keeps it too,
        # so that the kernels' k = 0 fast path (tab[f, min(|z|, last + 1)]) needs no sub-table
        tab[:, 0] = sub[:, 0] if k == 0 else 0
        return AdderTables(sub, _pad(tab[:, :last + 1], beyond, P), last, beyond, k, P, geo.interp)
    # Exact: every z up to where both functions have reached their final constant
    limit = (F + P + 3) << F
    q = np.arange(limit + 1)
    tab = np.stack([_round_points(w, q, F, F + P, rnd) for w in (SB, DB)])
    tab[DB, 0] = 0
    const = beyond << P
    moving = np.flatnonzero((tab[SB] != const[SB]) | (tab[DB] != const[DB]))
    last = int(moving.max()) if moving.size else 0
    assert last < limit, "table range too short"
    # Exact (k = 0): column 0 keeps f(0), so tab[f, min(|z|, last + 1)] alone is the adder
    return AdderTables(tab[:, :1].copy(), _pad(tab[:, :last + 1], beyond, P), last, beyond, 0, P,
                       False)


def _pad(tab: np.ndarray, beyond: np.ndarray, guard: int) -> np.ndarray:
    """tab with two more columns holding beyond << guard (the value past the end)."""
    pad = np.repeat((beyond << guard)[:, None], 2, axis=1)
    return np.ascontiguousarray(np.concatenate([tab, pad], axis=1))


# ------------------------------------------------------- float <-> LNS ----

@functools.lru_cache(maxsize=None)
def mantissa_table(frac_bits: int) -> np.ndarray:
    """2**(j / 2**F) for j in 0..2**F-1, each correctly rounded to float64."""
    out = np.empty(1 << frac_bits)
    for j in range(1 << frac_bits):
        out[j] = float(MP.power(2, MP.mpf(j) / 2**frac_bits))  # mpf -> float rounds to nearest
    return out


@functools.lru_cache(maxsize=None)
def cast_thresholds(frac_bits: int, rounding: Rounding) -> np.ndarray:
    """Mantissa thresholds for casting a float m * 2**E (1 <= m < 2) into LNS.

    The fractional index of the exponent, round(log2(m) * 2**F), is the number of
    thresholds t with m > t: NEAREST_EVEN uses t_j = 2**((j + 1/2) / 2**F) for
    j in 0..2**F-1; FLOOR the grid points 2**(j / 2**F) for j in 1..2**F-1; CEIL
    the grid points for j in 0..2**F-1. Every t but 1.0 (CEIL, j = 0) is
    irrational and is stored as the largest float64 below it, so for a float m,
    ``m > stored`` decides ``m > t`` exactly. (log2(m) * 2**F is never a tie:
    it is irrational unless m = 1.)
    """
    n = 1 << frac_bits
    if rounding is Rounding.NEAREST_EVEN:
        points = [MP.mpf(2 * j + 1) / 2 ** (frac_bits + 1) for j in range(n)]
    elif rounding is Rounding.FLOOR:
        points = [MP.mpf(j) / n for j in range(1, n)]
    elif rounding is Rounding.CEIL:
        points = [MP.mpf(j) / n for j in range(n)]
    else:
        raise ValueError(f"casting into LNS supports NEAREST_EVEN, FLOOR and CEIL, not {rounding!r}")
    out = np.empty(len(points))
    for i, p in enumerate(points):
        if p == 0:
            out[i] = 1.0
            continue
        t = MP.power(2, p)
        f = float(t)
        while MP.mpf(f) >= t:  # the largest float below the irrational t
            f = math.nextafter(f, -math.inf)
        out[i] = f
    return out
