"""The value-space oracle of the exhaustive float32 sweep (tests/exhaustive) equals the
exact reference, and the sweep's pipeline runs (Numba == C == oracle) on a stride of
the float32 patterns for every combination it covers."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lowbit.numerics import parse_format, rng
from lowbit.numerics import testing as lt
from lowbit.numerics.reference import floating as ref
from tests.exhaustive.float_casts import combinations, sweep
from tests.exhaustive.float_oracle import Oracle

SWEPT = sorted({c.split(":")[0] for c in combinations()})


@settings(max_examples=200)
@given(st.one_of(lt.float_formats(max_exp_bits=5, max_man_bits=4, presets=False),
                 st.builds(lambda n, r: parse_format(f"{n}:{r}"), st.sampled_from(SWEPT),
                           st.sampled_from(["rne", "rna", "rtz", "floor", "ceil", "odd", "sr",
                                            "sr8", "sr3"]))), st.data())
def test_oracle_equals_the_reference(fmt, data):
    """On grid points, midpoints, their neighbours, the range's edges and specials."""
    if fmt.man_bits == 0 or not fmt.zero:
        return
    grid = ref.to_float(np.arange(fmt.max_code + 1), fmt)
    grid = np.unique(grid[np.isfinite(grid)])
    mids = (grid[:-1] + grid[1:]) / 2
    pool = np.concatenate([grid, mids, np.nextafter(mids, 0), np.nextafter(mids, np.inf),
                           [float(fmt.max_value) * 1.5, 1e30, -1e30, 1e-30, np.inf, -np.inf]])
    x = np.array(data.draw(st.lists(st.sampled_from(pool.tolist()), min_size=1, max_size=40)))
    x = x.astype(np.float32).astype(np.float64)
    if fmt.nan_code is None and fmt.inf != "max":
        x = x[np.isfinite(x)]
    seed = data.draw(st.integers(0, 2**64 - 1))
    want = [ref.quantize(float(v), fmt, rng.random_u64(seed, i)) for i, v in enumerate(x)]
    assert Oracle(fmt).cast(x, seed).tolist() == want


@pytest.mark.parametrize("fmt", combinations())
def test_the_sweep_on_a_stride(fmt):
    """Every 2^20 + 7th float32 pattern (4,096): no disagreement among Numba, C, oracle."""
    r = sweep(fmt, stride=(1 << 20) + 7)
    assert r["checked"] > 3000 and r["numba_vs_c"] == 0 and r["kernels_vs_oracle"] == 0, r
