"""Multi-threaded kernels (large inputs) give exactly the codes of their serial
twins, of the other backend, and (spot-checked) of the reference."""

from __future__ import annotations

import numpy as np
import pytest

import lowbit.emulators as E
from lowbit.emulators._numba import backend as nb
from lowbit.emulators._numba import jit
from lowbit.numerics import LNS, Binary, Fixed, Interp, Table, Ternary
from lowbit.numerics.reference import fixed as rf
from tests.emulators.helpers import assert_codes, assert_every_backend_gives

N = 70_000  # above the parallel threshold (65536) of both backends
FORMATS = [Fixed(16, 8), Fixed(12, 4, rounding="sr"), Fixed(10, 6, rounding="floor", overflow="wrap"),
           Fixed(20, 10, rounding="rna")]


def serial_numba(fn):
    """Run ``fn`` with every Numba kernel forced onto its serial twin."""
    saved = jit.PARALLEL_MIN
    jit.PARALLEL_MIN = 1 << 62
    try:
        return fn()
    finally:
        jit.PARALLEL_MIN = saved


def assert_same_everywhere(fn, context):
    """fn(backend) is identical on the serial Numba twin, parallel Numba and C."""
    expected = serial_numba(lambda: fn("numba")).codes
    assert_every_backend_gives(fn, expected, context)
    return expected


@pytest.fixture(scope="module")
def data():
    return np.random.default_rng(42).standard_normal(N) * 30


def test_threshold_is_shared_with_c():
    assert jit.PARALLEL_MIN == 65536  # csrc/lowbit.h LOWBIT_PARALLEL_MIN
    assert nb.sized.__module__ == "lowbit.emulators._numba.jit"


@pytest.mark.parametrize("fmt", FORMATS, ids=str)
def test_elementwise(data, fmt):
    codes = assert_same_everywhere(lambda be: E.cast(data, fmt, seed=3, backend=be), "cast")
    if fmt == FORMATS[0]:
        assert_codes(codes, rf.cast(data, fmt), "cast vs reference")
    assert_same_everywhere(lambda be: E.cast(data.astype(np.float32), fmt, seed=3, backend=be), "cast f32")
    a = E.cast(data, Fixed(16, 6))
    b = E.cast(data[::-1], Fixed(16, 6))
    assert_same_everywhere(lambda be: E.mul(a, b, fmt, seed=5, backend=be), "mul")
    assert_same_everywhere(lambda be: E.add(a, b, fmt, seed=5, backend=be), "add")
    assert_same_everywhere(lambda be: E.cast(a, fmt, seed=7, backend=be), "convert")


@pytest.mark.parametrize("acc, order, compensated", [
    (None, "sequential", False), (Fixed(24, 4), "sequential", False),
    (Fixed(24, 4, rounding="sr"), "sequential", True), (Fixed(24, 4), "pairwise", False)])
def test_matmul_and_sum(acc, order, compensated):
    rs = np.random.default_rng(1)
    fmt = Fixed(12, 6)
    a = E.from_codes(rs.integers(fmt.min_code, fmt.max_code + 1, (40, 48)), fmt)
    b = E.from_codes(rs.integers(fmt.min_code, fmt.max_code + 1, (48, 50)), fmt)  # 96000 MACs
    out = Fixed(30, 8)
    codes = assert_same_everywhere(lambda be: E.matmul(a, b, out, acc, order, compensated, seed=9,
                                                backend=be), "matmul")
    # the first rows keep their element numbers (i * N + j), so their counters match
    assert_codes(codes[:2], rf.matmul(a.codes[:2], 6, b.codes, 6, out, acc, order, compensated, 9),
                 "matmul rows vs reference")
    s = E.from_codes(rs.integers(fmt.min_code, fmt.max_code + 1, (300, 250)), fmt)
    assert_same_everywhere(lambda be: E.sum(s, 1, out, acc, order, compensated, seed=9, backend=be), "sum")


def test_binary_ternary_large():
    x = np.random.default_rng(2).standard_normal((300, 260))
    for fmt in (Binary(), Ternary(threshold=0.5, scale=None)):
        codes = assert_same_everywhere(lambda be: E.cast(x, fmt, backend=be), repr(fmt))
        a = E.from_codes(np.ascontiguousarray(codes.T[:130]), fmt)
        w = E.from_codes(codes[:, :200], fmt)
        got = assert_same_everywhere(lambda be: E.matmul(a, w, backend=be), "popcount")
        assert_codes(got, a.codes @ w.codes, "popcount vs integer matmul")


@pytest.mark.parametrize("fmt", [LNS(5, 10), LNS(5, 7, Interp(5), rounding="sr"),
                                 LNS(4, 8, Table(6), underflow="min")], ids=str)
def test_lns_large(data, fmt):
    plain = LNS(fmt.int_bits, fmt.frac_bits, fmt.adder)
    x = assert_same_everywhere(lambda be: E.cast(data, plain, backend=be), "cast")
    a, b = E.from_codes(x, fmt), E.from_codes(x[::-1].copy(), fmt)
    for op in ("add", "sub", "mul"):
        assert_same_everywhere(lambda be: getattr(E, op)(a, b, seed=4, backend=be), op)
    assert_same_everywhere(lambda be: E.cast(a, LNS(fmt.int_bits, fmt.frac_bits - 2, rounding="sr"),
                                      seed=4, backend=be), "convert")
    m = E.from_codes(x[:48 * 40].reshape(48, 40), fmt)
    for order, comp in (("sequential", False), ("sequential", True), ("pairwise", False)):
        assert_same_everywhere(lambda be: E.matmul(m, m.T, order=order, compensated=comp, seed=2,
                                            backend=be), f"matmul {order} {comp}")
    s = E.from_codes(x[:280 * 240].reshape(280, 240), fmt)
    assert_same_everywhere(lambda be: E.sum(s, 1, compensated=True, seed=3, backend=be), "sum")
