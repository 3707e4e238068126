"""The counter RNG is splitmix64, independent of call order."""

from __future__ import annotations

import pytest

from lowbit.numerics import rng


def test_matches_published_splitmix64_outputs():
    """The first outputs of splitmix64 from state 0 (Vigna's reference implementation)."""
    expected = [0xE220A8397B1DCDAF, 0x6E789E6AA1B965F4, 0x06C45D188009454F, 0xF88BB8A8724C81EC]
    assert [rng.random_u64(0, i) for i in range(4)] == expected


def test_counter_is_random_access():
    """Drawing counter 1000 does not depend on having drawn 0..999."""
    assert rng.random_u64(12345, 1000) == rng.random_u64(12345, 1000)
    assert rng.random_u64(1, 0) != rng.random_u64(2, 0)
    assert rng.random_u53(7, 3) == rng.random_u64(7, 3) >> 11 < 2**53


def test_step_counter_layout():
    assert rng.step_counter(3, 5) == (3 << 32) | 5
    assert rng.step_counter(0, rng.FINAL_STEP) == 0xFFFFFFFF


@pytest.mark.parametrize("seed, exc", [(-1, ValueError), (2**64, ValueError), (1.0, TypeError),
                                       (True, TypeError)])
def test_check_seed_rejects(seed, exc):
    with pytest.raises(exc, match="seed must be"):
        rng.check_seed(seed)
