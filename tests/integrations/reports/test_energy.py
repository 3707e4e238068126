"""The energy table's derived entries, its pinned points, per-op costs by hand, and the
report (an estimate from published tables, not a measurement)."""

import json
import math

import pytest

from lowbit.integrations.reports.energy import (Costs, adder_table_size, estimate, markdown,
                                                memory_per_bit, parse_mac, run_energy, table)
from lowbit.integrations.torch.account import OpAccount
from lowbit.numerics import parse_format

T = table()
E = T["entry"]


def test_every_derived_entry_follows_from_the_read_ones():
    """Re-derive each D entry from the V entries (the fit through fp16 and fp32)."""
    c2 = (E["fp32_mult"]["value"] - E["fp16_mult"]["value"]) / (24 ** 2 - 11 ** 2)
    c0 = E["fp16_mult"]["value"] - c2 * 11 ** 2
    d1 = (E["fp32_add"]["value"] - E["fp16_add"]["value"]) / (24 - 11)
    d0 = E["fp16_add"]["value"] - d1 * 11
    D = T["derived"]
    assert D["fp_mult"]["c2"] == pytest.approx(c2, abs=5e-7) and D["fp_mult"]["c0"] == pytest.approx(c0, abs=5e-5)
    assert D["fp_add"]["d1"] == pytest.approx(d1, abs=5e-6) and D["fp_add"]["d0"] == pytest.approx(d0, abs=5e-5)
    for name, m in (("bf16", 8), ("e4m3", 4), ("e5m2", 3)):
        assert D[f"{name}_mult"]["value"] == pytest.approx(c0 + c2 * m * m, abs=5e-3)
        assert D[f"{name}_add"]["value"] == pytest.approx(d0 + d1 * m, abs=5e-3)
    per_bit = T["rule"]["int_add"]["per_bit"]
    assert D["xnor_popcount_mac"]["value"] == pytest.approx(1.3 * per_bit, abs=5e-4)
    assert all(v.get("status") == "D" for v in D.values())
    assert {v["status"] for v in E.values()} <= {"V", "S"} and all(v["source"] for v in E.values())


def test_pinned_points():
    c = Costs()
    assert c.int_add(32) == pytest.approx(0.1)
    assert c.int_mult(8, 8) == pytest.approx(0.2, abs=1e-3)
    assert c.int_mult(32, 32) == pytest.approx(3.1, abs=1e-2)
    assert c.fp_mult(24) == pytest.approx(3.7, abs=1e-3) and c.fp_add(11) == pytest.approx(0.4, abs=1e-3)
    assert memory_per_bit("sram:8KB") * 64 == pytest.approx(10.0)
    # the sqrt rule is exact at 8 KB and 1.77 (not the read 1.56) pJ/bit at 1 MB
    assert memory_per_bit("sram:1MB") * 64 == pytest.approx(0.15625 * math.sqrt(128) * 64)
    assert memory_per_bit("sram:1MB") == pytest.approx(E["sram_read_1mb_per_bit"]["value"], rel=0.15)
    assert memory_per_bit("dram") == pytest.approx(20.3125)
    assert 0.09 <= Costs(node=7).node_factor <= 0.11
    assert Costs(node=5).node_factor == pytest.approx(0.087) and Costs(node=5, vdd=0.8).node_factor == pytest.approx(0.080)
    assert Costs(node=28).node_factor == pytest.approx(0.19 + (1 - 0.19) * 12 / 29)


def test_per_mac_costs_by_hand():
    """The illustrative per-MAC figures of the fact sheet (section 8.5)."""
    c = Costs()
    assert c.op("mac", "fp32 x fp32 -> fp32") == pytest.approx(4.6, abs=1e-3)
    assert c.op("mac", "bf16 x bf16 -> fp32") == pytest.approx(0.4086 + 0.005714 * 64 + 0.9, abs=2e-3)
    assert c.op("mac", "fixed8.4 x fixed8.4 -> fixed32.8") == pytest.approx(0.2 + 0.1, abs=2e-3)
    assert c.op("mac", "binary x binary -> exact12") == pytest.approx(0.004, abs=1e-4)
    lns = "lns5.10 x lns5.10 -> lns5.10"
    assert c.op("mac", lns) == pytest.approx(15 * 0.003125 * 3)  # mult + subtract + add
    f = parse_format("lns5.10")
    entries, bits = adder_table_size(f)
    assert bits == 10 and 11 * 2 ** 10 <= entries <= 1.1 * 11 * 2 ** 10  # up to the essential zero
    assert c.table_read(f, "free") == 0
    assert c.table_read(f, "logic") == pytest.approx(0.40, abs=0.01)
    assert c.table_read(f, "sram") == pytest.approx(2.05, abs=0.06)
    with pytest.raises(ValueError, match="no multiplication rule"):
        c.op("mac", "lns5.10 x fixed8.4 -> fixed16.8")


def test_parse_mac():
    a, b, acc = parse_mac("e4m3 x e4m3 -> hopper_fp8")
    assert str(a) == "e4m3" and acc.frac_bits == 13
    assert parse_mac("fixed8.4 x binary -> exact20")[2] == 20


def test_the_account_maps_to_pj():
    acct = OpAccount()
    acct.add("forward", "mac", "fp32 x fp32 -> fp32", 10)
    acct.add("forward", "table_read", "lns5.10", 4)
    acct.add("update", "update_mul", "fp32", 3)
    acct.move("forward", "read", "weight", parse_format("bf16"), 8)  # 16 bytes
    est = estimate(acct, Costs(memory="dram"), "x")
    assert est.pj[("forward", "mac")] == pytest.approx(46.0, abs=0.01)
    assert est.pj[("update", "update")] == pytest.approx(3 * 3.7, abs=0.01)
    assert est.pj[("forward", "memory")] == pytest.approx(16 * 8 * 20.3125)
    assert est.table_range["free"] == 0 and est.table_range["sram"] == pytest.approx(4 * 2.05, abs=0.2)
    with pytest.raises(ValueError, match="no rule for op"):
        acct.add("forward", "sqrt", "fp32", 1)
        estimate(acct, Costs(), "x")


def test_report_files_and_the_caveat(tmp_path):
    text = run_energy(["bf16", "lns5.10"], "mlp", 4, Costs(), tmp_path)
    assert "an estimate from published tables, not a measurement" in text
    assert (tmp_path / "energy.png").stat().st_size > 1000
    data = json.loads((tmp_path / "energy.json").read_text())
    assert [f["label"] for f in data["formats"]] == ["fp32", "bf16", "lns5.10"]
    lns = data["formats"][2]["total_by_sb_model"]
    assert lns["free"] < lns["logic"] < lns["sram"]
    fp32, bf16 = (f["by_role_component"]["forward/mac"] for f in data["formats"][:2])
    assert bf16 / fp32 == pytest.approx((0.4086 + 0.005714 * 64 + 0.9) / 4.6, rel=1e-3)


def test_bad_policies():
    for bad in ("sram", "sram:lots", "hbm"):
        with pytest.raises(ValueError, match="memory policy"):
            memory_per_bit(bad)
    with pytest.raises(ValueError, match="outside the scaling table"):
        Costs(node=2)
    with pytest.raises(ValueError, match="sb-table model"):
        Costs(sb="rom")


def test_the_committed_mlp_table_regenerates(tmp_path):
    """docs/results/energy/mlp holds what `lowbit energy` computes today (exact counts,
    fixed table): a change of a rule or a count shows up here."""
    from pathlib import Path

    committed = Path(__file__).parents[3] / "docs" / "results" / "energy" / "mlp" / "energy.json"
    specs = [f["label"] for f in json.loads(committed.read_text())["formats"]][1:]
    run_energy(specs, "mlp", 32, Costs(), tmp_path)
    assert json.loads((tmp_path / "energy.json").read_text()) == json.loads(committed.read_text())


def test_published_checks_are_printed():
    from lowbit.integrations.reports.energy import published_checks

    text = published_checks()
    print(text)
    assert "0.59" in text and "LNS-Madam" in text
