"""The gradient-flush diagnostic counts the non-zero gradients a format rounds to zero."""

from __future__ import annotations

import math

import torch
import torch.nn as nn

from lowbit.integrations.reports.gradient_range import flushed_fraction, gradient_flush
from lowbit.numerics import LNS, Fixed


def test_flushed_fraction_by_hand():
    # LNS(5, 10) holds magnitudes down to 2^-16 = 1.53e-5; zeros are not counted
    t = torch.tensor([0.0, 1e-6, 1e-3, -2e-5, 0.0, -3e-7])
    assert flushed_fraction(t, LNS(5, 10)) == 0.5
    assert flushed_fraction(t, Fixed(16, 8)) == 1.0  # half an ulp is 2^-9
    assert math.isnan(flushed_fraction(torch.zeros(3), LNS(5, 10)))


def test_gradient_flush_measures_every_linear_layer():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 3))
    x, y = torch.randn(8, 6), torch.tensor([0, 1, 2, 0, 1, 2, 0, 1])
    rows = gradient_flush(model, x, y, LNS(8, 10))  # down to 2^-128: nothing flushes
    assert [r.name for r in rows] == ["0: dL/d(output)", "0.weight", "0.bias",
                                      "2: dL/d(output)", "2.weight", "2.bias"]
    assert [r.size for r in rows] == [40, 30, 5, 24, 15, 3]
    assert all(r.flushed == 0.0 for r in rows)
    coarse = gradient_flush(model, x, y, Fixed(8, 0))  # integers: every |g| < 0.5 flushes
    assert all(r.flushed == 1.0 for r in coarse)
    assert model[2].weight.grad is not None
