"""The exact reference agrees with independent definitions of each rounding."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from lowbit.numerics import Fixed, Overflow, Rounding, rng
from lowbit.numerics import testing as lt
from lowbit.numerics.reference import binary as rb
from lowbit.numerics.reference import fixed as rf
from lowbit.numerics.reference.rounding import apply_overflow, quantize, round_to_integer

fractions = st.fractions(min_value=-1000, max_value=1000, max_denominator=2**20)


@given(fractions)
def test_deterministic_roundings_match_python(x):
    """Nearest-even is Python's round(); the directed modes are floor/ceil/trunc."""
    assert round_to_integer(x, Rounding.NEAREST_EVEN) == round(x)
    assert round_to_integer(x, Rounding.FLOOR) == math.floor(x)
    assert round_to_integer(x, Rounding.CEIL) == math.ceil(x)
    assert round_to_integer(x, Rounding.TOWARD_ZERO) == math.trunc(x)
    away = math.floor(abs(x) + Fraction(1, 2)) * (1 if x >= 0 else -1)
    assert round_to_integer(x, Rounding.NEAREST_AWAY) == away


@given(fractions, st.integers(0, 2**53 - 1))
def test_stochastic_is_floor_or_ceil(x, u):
    assert round_to_integer(x, Rounding.STOCHASTIC, u) in (math.floor(x), math.ceil(x))


def test_stochastic_rounding_is_unbiased():
    """Over many counters the mean of SR(x) approaches x (deterministic seeds)."""
    x = Fraction(3, 10)
    n = 20000
    ups = sum(round_to_integer(x, Rounding.STOCHASTIC, rng.random_u53(9, i)) for i in range(n))
    assert abs(ups / n - 0.3) < 4 * math.sqrt(0.3 * 0.7 / n)


def test_overflow_policies():
    f = Fixed(8, 0)
    assert apply_overflow(300, f) == 127 and apply_overflow(-300, f) == -128
    w = f.__class__(8, 0, overflow=Overflow.WRAP)
    assert apply_overflow(300, w) == 300 - 256 and apply_overflow(-129, w) == 127
    assert apply_overflow(256 + 5, Fixed(8, 0, signed=False, overflow=Overflow.WRAP)) == 5


def test_known_peer_bugs():
    """Values peers get wrong: QPyTorch's double rounding, APyTypes' missing wrap."""
    assert quantize(Fraction(1, 2**9) + Fraction(1, 2**32), Fixed(16, 8)) == 1
    wrap8 = Fixed(8, 0, overflow=Overflow.WRAP)
    assert rf.cast(np.array([2.0**52 + 3, -(2.0**52 + 3), 1.5 * 2.0**70]), wrap8).tolist() == [3, -3, 0]
    assert rf.convert(np.array([2**61 - 1]), 0, wrap8).tolist() == [-1]


def test_cast_edge_values():
    f = Fixed(8, -4, rounding=Rounding.FLOOR)
    assert rf.cast(np.array([-5e-324, 5e-324, -0.0]), f).tolist() == [-1, 0, 0]
    assert rf.cast(np.array([-np.inf, np.inf]), Fixed(8, 0)).tolist() == [-128, 127]
    with pytest.raises(ValueError, match=r"x\[1\] is NaN"):
        rf.cast(np.array([0.0, np.nan]), Fixed(8, 0))
    with pytest.raises(ValueError, match="cannot wrap"):
        rf.cast(np.array([np.inf]), Fixed(8, 0, overflow=Overflow.WRAP))


def test_narrow_accumulation_by_hand():
    """Sequential rounding swamps small terms; Kahan and pairwise recover them."""
    acc = Fixed(8, 0)
    terms = [Fraction(100)] + [Fraction(1, 4)] * 8
    assert rf.accumulate(terms, acc) == 100  # each 100.25 rounds back to 100
    assert rf.accumulate(terms, acc, compensated=True) == 102
    # pairwise: leaves round 0.25 -> 0, so the tree loses them too
    assert rf.accumulate(terms, acc, order="pairwise") == 100
    assert rf.accumulate([Fraction(1, 2)] * 4, Fixed(8, 1), order="pairwise") == 2


def test_pairwise_tree_shape():
    """Level-by-level pairing with the odd element carried: ((a+b)+(c+d))+e."""
    acc = Fixed(4, 0)  # saturates at 7, so the grouping is visible
    terms = [Fraction(v) for v in (7, 7, -7, -7, 3)]
    # levels: [7(sat), -8(sat), 3] -> [-1, 3] -> [2]
    assert rf.accumulate(terms, acc, order="pairwise") == 2
    # sequential: 7 -> 7 (14 saturates) -> 0 -> -7 -> -4
    assert rf.accumulate(terms, acc, order="sequential") == -4


@given(lt.fixed_formats(max_bits=12, min_frac=-2, max_frac=8), st.data())
def test_exact_matmul_is_independent_of_order(fmt, data):
    a = data.draw(lt.codes(fmt, (2, 3)))
    b = data.draw(lt.codes(fmt, (3, 2)))
    out = Fixed(40, fmt.frac)
    expected = rf.matmul(a, fmt.frac, b, fmt.frac, out)
    exact = a.astype(object) @ b.astype(object)
    assert expected.tolist() == [[quantize(Fraction(int(v), 2 ** (2 * fmt.frac)) if fmt.frac >= 0
                                           else Fraction(int(v) * 2 ** (-2 * fmt.frac)), out)
                                  for v in row] for row in exact]


def test_binary_and_ternary_reference():
    codes, scale = rb.cast_binary(np.array([[0.0, -0.0, -1.5], [2.0, -3.0, 1.0]]),
                                  __import__("numerics").Binary("per_channel"))
    assert codes.tolist() == [[1, 1, -1], [1, -1, 1]]
    assert scale.shape == (2, 1) and scale[0, 0] == 0.5 and scale[1, 0] == 2.0
    from lowbit.numerics import Ternary
    codes, scale = rb.cast_ternary(np.array([0.1, -1.0, 1.0, 0.5]), Ternary())
    # TWN: threshold 0.7 * mean|x| = 0.7 * 0.65 = 0.455
    assert codes.tolist() == [0, -1, 1, 1]
    assert scale.item() == pytest.approx((1.0 + 1.0 + 0.5) / 3)
