"""The demo runs on real digits and its numbers behave as the formats imply."""

from __future__ import annotations

import csv

from integrations.cli import main


def test_demo_writes_report(tmp_path):
    assert main(["demo", "--out", str(tmp_path), "--formats", "fixed8.4", "fixed16.12",
                 "binary:mean_abs"]) == 0
    rows = {r["format"]: r for r in csv.DictReader(open(tmp_path / "demo.csv"))}
    assert set(rows) == {"fixed8.4", "fixed16.12", "binary:mean_abs"}
    assert (tmp_path / "demo.md").read_text().startswith("# lowbit demo")
    wide, narrow = rows["fixed16.12"], rows["fixed8.4"]
    # more fractional bits -> smaller weight error; 16-bit logits keep the float accuracy
    assert float(wide["weight_rms_err"]) < float(narrow["weight_rms_err"]) / 16
    assert float(wide["accuracy_exact"]) > 0.95
    # Kahan compensation never does worse than plain narrow accumulation here
    for r in rows.values():
        assert float(r["logit_rms_err_kahan"]) <= float(r["logit_rms_err_narrow"]) + 1e-12
