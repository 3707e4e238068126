"""The run-file writer and the table formatting shared by the result grids."""

from __future__ import annotations

from lowbit.integrations.runs import mean_std, read_metrics, write_run


def test_mean_std_formats_sample_statistics():
    assert mean_std([0.5, None, 0.7], 100) == "60.0 ± 14.1"  # sd of 50, 70 with ddof=1
    assert mean_std([0.25], 100, 2) == "25.00"
    assert mean_std([None]) == "-" and mean_std([]) == "-"
    assert mean_std([1000, 3000], digits=0) == "2,000 ± 1,414"


def test_write_run_round_trips_the_metrics(tmp_path):
    rows = [{"step": 1, "acc": 0.5}, {"step": 2, "acc": 0.75}]
    write_run(tmp_path, rows, {"done": True}, "step", {"accuracy": "acc"}, "t", "steps")
    assert read_metrics(tmp_path) == [{"step": 1.0, "acc": 0.5}, {"step": 2.0, "acc": 0.75}]
    assert (tmp_path / "curve.png").stat().st_size > 1000
