"""Shared test set-up: hypothesis profiles and the backends under test.

Profiles: ``ci`` (default, a few hundred examples per property), ``dev`` (more,
for local runs): ``HYPOTHESIS_PROFILE=dev pytest``. ``LOWBIT_TEST_BACKENDS``
restricts the backends compared (e.g. ``c`` for the sanitizer run).
"""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci", max_examples=200, deadline=None, derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile(
    "dev", max_examples=2000, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

BACKENDS = tuple(b for b in os.environ.get("LOWBIT_TEST_BACKENDS", "numba,c").split(",") if b)


@pytest.fixture(params=BACKENDS)
def backend(request) -> str:
    """Each backend under test, by name."""
    return request.param
