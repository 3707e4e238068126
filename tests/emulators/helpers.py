"""Helpers for comparing backends with the reference: equality means identical codes."""

from __future__ import annotations

import numpy as np

from tests.conftest import BACKENDS


def assert_codes(result, expected: np.ndarray, context: str = "") -> None:
    """Exact equality of codes, shape and dtype (never a tolerance)."""
    codes = result.codes if hasattr(result, "codes") else result
    expected = np.asarray(expected, dtype=np.int64)
    assert codes.dtype == np.int64, context
    assert codes.shape == expected.shape, f"{context}: shape {codes.shape} != {expected.shape}"
    if not np.array_equal(codes, expected):
        bad = np.argwhere(codes != expected)[0]
        raise AssertionError(f"{context}: at {tuple(bad)} got {codes[tuple(bad)]}, "
                             f"expected {expected[tuple(bad)]}")


def assert_every_backend_gives(fn, expected: np.ndarray, context: str = ""):
    """Run ``fn(backend)`` on every backend under test; each must give ``expected``."""
    for be in BACKENDS:
        assert_codes(fn(be), expected, f"{be} {context}")
