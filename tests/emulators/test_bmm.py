"""bmm: batch element i is matmul(a[i], b[i]) with seed s_i -- in the vectorised cases
(binary32 sums, exact fixed-point sums) and in the loop -- on both backends."""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import lowbit.emulators as E
from lowbit.numerics import rng

CASES = [
    # (a format, b format, out, acc): vectorised binary32 ...
    ("bf16", "bf16", "bf16", "fp32"), ("fp16", "bf16", "fp32", "fp32"), ("e4m3", "e5m2", "bf16", "fp32"),
    ("tf32", "e4m3", "fp16", "fp32"),
    # ... exact fixed point ...
    ("fixed16.8", "fixed16.8", "fixed16.8", None), ("fixed8.4", "fixed8.6", "fixed12.4:rtz", None),
    # ... and the loop: stochastic outputs, other accumulators, LNS, binary
    ("bf16", "bf16", "bf16:sr", "fp32"), ("fixed16.8", "fixed16.8", "fixed16.8:sr", None),
    ("e4m3", "e4m3", "fp32", "hopper_fp8"), ("bf16", "bf16", "bf16", "bf16"),
    ("fixed8.4", "fixed8.4", "fixed16.8", "fixed16.8"), ("lns5.10", "lns5.10", None, None),
    ("binary", "fixed8.4", "fixed16.4", None),
]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.sampled_from(CASES), st.integers(0, 4), st.integers(1, 5), st.integers(0, 7),
       st.integers(1, 5), st.integers(0, 2**32), st.sampled_from([1.0, 2.0**-70, 2.0**70]))
def test_bmm_is_matmul_per_batch_element(backend, case, B, M, K, N, seed, magnitude):
    fa, fb, out, acc = case
    rs = np.random.default_rng(seed)
    a = E.cast(rs.standard_normal((B, M, K)) * (magnitude if "e" not in fa[:1] else 1.0), fa)
    b = E.cast(rs.standard_normal((B, K, N)), fb)
    try:
        got = E.bmm(a, b, out, acc, seed=seed, backend=backend)
    except ValueError as exc:
        with pytest.raises(ValueError, match=str(exc).split(":")[0]):
            for i in range(B):
                E.matmul(a[i], b[i], out, acc, seed=seed, backend=backend)
        return
    assert got.shape == (B, M, N)
    for i in range(B):
        want = E.matmul(a[i], b[i], out, acc, seed=seed if i == 0 else rng.random_u64(seed, i),
                        backend=backend)
        assert got[i].identical(want), (case, i)


def test_bad_shapes():
    a = E.cast(np.ones((2, 3, 4)), "bf16")
    with pytest.raises(ValueError, match=r"bmm takes \(B, M, K\)"):
        E.bmm(a, E.cast(np.ones((2, 5, 1)), "bf16"), acc="fp32")
    with pytest.raises(ValueError, match="bmm takes"):
        E.bmm(a[0], a[0].T, acc="fp32")


@pytest.mark.parametrize("case", CASES[:6])
def test_the_vectorised_cases_are_taken(case):
    """So that the property above compares the vectorised code, not the loop with itself."""
    from lowbit.emulators.backends import get_backend
    from lowbit.emulators.ops import _bmm_fast

    fa, fb, out, acc = case
    rs = np.random.default_rng(1)
    a, b = E.cast(rs.standard_normal((3, 4, 5)), fa), E.cast(rs.standard_normal((3, 5, 2)), fb)
    assert _bmm_fast(a, b, out, acc, "sequential", False, 7, get_backend()) is not None
