"""Bad input raises a clear error naming the argument and value, on every backend."""

from __future__ import annotations

import numpy as np
import pytest

import lowbit.emulators as E
from lowbit.numerics import Binary, Fixed, Overflow, Ternary


def test_nan_names_first_index(backend):
    x = np.array([[1.0, 2.0], [np.nan, np.nan]])
    for fmt in (Fixed(8, 2), Fixed(8, 2, rounding="sr"), Binary(), Ternary(), Ternary(threshold=1.0)):
        with pytest.raises(ValueError, match=r"x\[1, 0\] is NaN"):
            E.cast(x, fmt, backend=backend)


def test_inf_saturates_or_raises(backend):
    assert E.cast(np.array([np.inf, -np.inf]), Fixed(8, 0), backend=backend).codes.tolist() == [127, -128]
    with pytest.raises(ValueError, match=r"x\[1\] is -inf and cannot wrap"):
        E.cast(np.array([0.0, -np.inf]), Fixed(8, 0, overflow=Overflow.WRAP), backend=backend)


@pytest.mark.parametrize("x, exc, match", [
    (np.array([1 + 2j]), TypeError, "real float or integer"),
    (np.array(["a"]), TypeError, "real float or integer"),
    (np.array([2**60 + 1]), ValueError, "cannot represent exactly"),
])
def test_bad_float_input(x, exc, match):
    with pytest.raises(exc, match=match):
        E.cast(x, Fixed(8, 0))


def test_bad_format_and_seed_and_backend():
    with pytest.raises(TypeError, match="fmt must be a format"):
        E.cast(np.zeros(2), 8)
    with pytest.raises(ValueError, match="cannot parse format"):
        E.cast(np.zeros(2), "fixed8")
    with pytest.raises(ValueError, match="seed must be in"):
        E.cast(np.zeros(2), Fixed(8, 0), seed=-1)
    with pytest.raises(ValueError, match="backend must be one of"):
        E.cast(np.zeros(2), Fixed(8, 0), backend="cuda")


def test_bad_env_backend(monkeypatch):
    monkeypatch.setenv("LOWBIT_BACKEND", "fortran")
    with pytest.raises(ValueError, match="LOWBIT_BACKEND must be one of"):
        E.cast(np.zeros(2), Fixed(8, 0))


def test_from_codes_range_and_type():
    with pytest.raises(ValueError, match=r"codes\[0, 1\] = 128 is outside Fixed\(8, 0\)"):
        E.from_codes(np.array([[1, 128]]), Fixed(8, 0))
    with pytest.raises(ValueError, match=r"codes\[1\] = 0 is outside Binary"):
        E.from_codes(np.array([1, 0]), Binary())
    with pytest.raises(ValueError, match="outside"):
        E.from_codes(np.array([2**63], dtype=np.uint64), Fixed(62, 0))
    with pytest.raises(TypeError, match="codes must be an integer array"):
        E.from_codes(np.array([1.0]), Fixed(8, 0))
    with pytest.raises(ValueError, match="does not broadcast"):
        E.from_codes(np.array([1, 1]), Binary(), scale=np.ones(3))


def test_operand_errors(backend):
    a = E.from_codes(np.arange(6).reshape(2, 3), Fixed(8, 0))
    b = E.from_codes(np.arange(6).reshape(3, 2), Fixed(8, 1))
    with pytest.raises(TypeError, match="b must be an EmuArray"):
        E.add(a, np.ones(3), backend=backend)
    with pytest.raises(ValueError, match=r"shapes \(2, 3\) and \(3, 2\) do not broadcast"):
        E.add(a, b, Fixed(8, 0), backend=backend)
    with pytest.raises(ValueError, match="out is required when the operands' formats differ"):
        E.mul(a, a.T.T, backend=backend) and E.mul(a, b.T, backend=backend)
    with pytest.raises(ValueError, match="inner dimensions differ"):
        E.matmul(a, a, backend=backend)
    with pytest.raises(ValueError, match="1-D or 2-D"):
        E.matmul(a.reshape(1, 2, 3), b, backend=backend)
    with pytest.raises(ValueError, match="out must be a Fixed format"):
        E.add(a, a, Binary(), backend=backend)


def test_width_limits(backend):
    w = E.from_codes(np.array([2**39]), Fixed(41, 0))
    with pytest.raises(ValueError, match="needs more than 62 magnitude bits"):
        E.mul(w, w, backend=backend)
    big = E.from_codes(np.full((1, 8), 2**30), Fixed(32, 0))
    with pytest.raises(ValueError, match="exact sum of 8 products .* needs more than 62 bits"):
        E.matmul(big, big.T, backend=backend)
    far = E.from_codes(np.array([1]), Fixed(40, -30))
    with pytest.raises(ValueError, match="aligned to .* exceeds 61 magnitude bits"):
        E.add(far, E.from_codes(np.array([1]), Fixed(8, 20)), Fixed(8, 0), backend=backend)


def test_accumulation_options(backend):
    a = E.from_codes(np.arange(6).reshape(2, 3), Fixed(8, 0))
    with pytest.raises(ValueError, match="order must be one of"):
        E.matmul(a, a.T, order="tree", backend=backend)
    with pytest.raises(ValueError, match="compensated=True needs a narrow accumulator"):
        E.sum(a, compensated=True, backend=backend)
    with pytest.raises(ValueError, match="needs order='sequential'"):
        E.sum(a, acc=Fixed(16, 0), order="pairwise", compensated=True, backend=backend)
    with pytest.raises(TypeError, match="compensated must be a bool"):
        E.sum(a, acc=Fixed(16, 0), compensated=1, backend=backend)
    with pytest.raises(ValueError, match="acc must be a Fixed format"):
        E.sum(a, acc=Binary(), backend=backend)
    with pytest.raises(ValueError, match="axis 2 is out of range"):
        E.sum(a, axis=2, backend=backend)
    with pytest.raises(ValueError, match="needs more than 62 aligned bits"):
        E.sum(a, acc=Fixed(60, -20), backend=backend)


def test_scaled_operands(backend):
    w = E.cast(np.random.default_rng(0).normal(size=(4, 5)), Binary("per_channel"), backend=backend)
    with pytest.raises(ValueError, match="add: a has scales"):
        E.add(w, w, Fixed(8, 0), backend=backend)
    with pytest.raises(ValueError, match="varies along the contraction axis"):
        E.matmul(w.T, w, backend=backend)
    with pytest.raises(ValueError, match="per-channel scales"):
        E.sum(w, backend=backend)
    scaled = E.matmul(w, w.T, backend=backend)
    with pytest.raises(ValueError, match="cast x.to_float"):
        E.cast(scaled, Fixed(8, 0), backend=backend)
