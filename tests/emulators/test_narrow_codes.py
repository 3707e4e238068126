"""Narrow code storage: a cast into a format of at most 8 bits (FP8/FP6/FP4 and the MX
element codes) keeps one byte per code; ``codes`` and every operation still see the same
int64 codes as the int64 path."""

from __future__ import annotations

import numpy as np
import pytest

import lowbit.emulators as E
from lowbit.emulators import _block_ops
from lowbit.emulators.array import kernel_codes
from tests.emulators.helpers import BACKENDS


@pytest.mark.parametrize("fmt", ["e4m3", "e5m2", "e2m1", "e3m2", "e2m3", "e4m3fnuz"])
def test_a_float_cast_stores_bytes_and_gives_the_int64_codes(fmt):
    r = np.random.default_rng(1)
    x = (r.normal(size=(64, 100)) * 2.0 ** r.integers(-12, 12, (64, 100))).astype(np.float32)
    for be in BACKENDS:
        backend = E.get_backend(be)
        want, st = backend.float_cast(x, E.cast(np.zeros(1), fmt).fmt, 0)  # the int64 path
        got = E.cast(x, fmt, backend=be)
        assert got._codes.dtype == np.uint8 and st == 0
        assert got.codes.dtype == np.int64 and np.array_equal(got.codes, want)
        assert kernel_codes(got).dtype == np.int64 and not got.codes.flags.writeable
        # the array behaves as its int64 twin: values, views and products
        twin = E.from_codes(want, got.fmt)
        assert np.array_equal(got.to_float(), twin.to_float(), equal_nan=True)
        assert got.T.identical(twin.T) and got[3:7, ::5].identical(twin[3:7, ::5])
        assert got.reshape(-1).identical(twin.reshape(-1))
        m = E.matmul(got[:8], got[:8].T, acc="fp32", backend=be)
        assert m.identical(E.matmul(twin[:8], twin[:8].T, acc="fp32", backend=be))


def test_wider_formats_and_small_arrays_keep_int64():
    x = np.linspace(-3, 3, 10000).astype(np.float32)
    assert E.cast(x, "bf16")._codes.dtype == np.int64  # 16-bit codes
    assert E.cast(x[:100], "e4m3")._codes.dtype == np.int64  # below the table path's size
    assert E.cast(x.astype(np.float64), "e4m3")._codes.dtype == np.int64


@pytest.mark.parametrize("fmt", ["mxfp8", "mxfp4", "mxfp6e3m2", "mxfp8:axis=0"])
def test_an_mx_block_cast_stores_bytes(fmt):
    r = np.random.default_rng(2)
    x = (r.normal(size=(48, 96)) * 4).astype(np.float32)
    for be in BACKENDS:
        got = E.block_cast(x, fmt, backend=be)
        wide = E.block_cast(x.astype(np.float64), fmt, backend=be)  # the general, int64 path
        assert got.array._codes.dtype == np.uint8 and wide.array._codes.dtype == np.int64
        assert np.array_equal(got.array.codes, wide.array.codes)
        assert np.array_equal(got.scales, wide.scales) and got.clipped == wide.clipped
        assert np.array_equal(got.array.to_float(), wide.array.to_float())
    assert E.block_cast(x, "mxint8").array._codes.dtype == np.int64  # signed integer codes
    assert E.block_cast(x, "nvfp4").array._codes.dtype == np.int64  # not the MX kernel
    assert _block_ops.mx_case(x.reshape(-1, 32), E.block_cast(x, "mxfp8").array.fmt.grid,
                              False, True, 1.0)
