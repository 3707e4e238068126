"""The LNS report measures what the adder specs promise."""

from __future__ import annotations

import csv

from lowbit.integrations.cli import main


def test_lns_report(tmp_path):
    assert main(["lns-report", "--out", str(tmp_path)]) == 0
    for name in ("lns_report.md", "lns_adder_error.png", "lns_dot_error.png"):
        assert (tmp_path / name).stat().st_size > 0
    rows = list(csv.DictReader(open(tmp_path / "lns_adder_error.csv")))
    exact = [r for r in rows if r["adder"] == "exact"]
    assert exact and all(float(r["max_ulp"]) <= 0.5 for r in exact)  # correctly rounded
    table = {(r["format"], r["function"]): float(r["max_ulp"]) for r in rows if r["adder"] == "table8"}
    assert table[("lns5.10", "db")] > 1  # a small table is visibly worse near db's singularity
    dots = [r for r in csv.DictReader(open(tmp_path / "lns_dot_error.csv"))
            if r["adder"] == "exact" and r["K"] == "4096"]
    assert all(float(r["kahan"]) < float(r["plain"]) / 5 for r in dots)
