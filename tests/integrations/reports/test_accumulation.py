"""The accumulation-error table: the Hopper model's truncation error grows with K on
positive inputs and promotion every 128 bounds it (the published model's behaviour)."""

from __future__ import annotations

import numpy as np

from lowbit.integrations.reports import accumulation


def test_promotion_bounds_the_hopper_truncation_error():
    rs = lambda: np.random.default_rng(0)  # noqa: E731
    plain = [accumulation.errors(K, "hopper_fp8", 4, True, rs())[0] for K in (256, 4096)]
    promoted = [accumulation.errors(K, "hopper_fp8_promote128", 4, True, rs())[0]
                for K in (256, 4096)]
    fp32 = accumulation.errors(4096, "fp32", 4, True, rs())[0]
    assert plain[1] > 8 * plain[0]  # grows roughly with K
    assert promoted[1] < 2 * promoted[0] and promoted[1] < plain[1] / 50
    assert 0.03 < plain[1] < 0.1  # ~6.5 %, as the golden vector's 4324 vs 4608
    assert fp32 < 1e-5


def test_table_and_cli(tmp_path):
    out = tmp_path / "t.md"
    assert accumulation.main(["--trials", "2", "--out", str(out)]) == 0
    text = out.read_text()
    assert "| Hopper FP8 model, promoted to fp32 every 128 |" in text and "K=16384" in text
