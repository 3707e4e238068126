"""The CLI's commands run on real data and their numbers behave as the formats imply."""

from __future__ import annotations

import csv
import subprocess
import sys

import pytest

from lowbit.integrations.cli import CliError, build_parser, main


@pytest.mark.parametrize("command", ["report", "lns-report", "compare", "demo", "energy", "inspect"])
def test_help(command):
    out = subprocess.run([sys.executable, "-m", "lowbit.integrations.cli", command, "--help"],
                         capture_output=True, text=True, check=True).stdout
    assert "--out" in out


def test_report(tmp_path):
    assert main(["report", "fixed4.2", "fixed16.12", "binary:mean_abs", "lns5.7:interp6",
                 "--out", str(tmp_path)]) == 0
    text = (tmp_path / "report.md").read_text()
    for name in ("cast_error.png", "dot_error.png", "lns_adder_error.png"):
        assert (tmp_path / name).stat().st_size > 0
    assert "## LNS adders" in text
    rows = list(csv.DictReader(open(tmp_path / "report.csv")))
    err = {(r["format"], r["data"]): float(r["rms_abs_err"]) for r in rows}
    acc = {r["format"]: float(r["mlp_accuracy"]) for r in rows}
    assert err[("fixed16.12", "N(0,1)")] < err[("fixed4.2", "N(0,1)")] / 100
    assert acc["fixed16.12"] > 0.9 and acc["fixed4.2"] < acc["fixed16.12"]


def test_report_takes_float_and_block_formats(tmp_path):
    assert main(["report", "e4m3", "mxfp4", "mxfp4:rule=rceil", "nvfp4", "--out", str(tmp_path)]) == 0
    rows = list(csv.DictReader(open(tmp_path / "report.csv")))
    sat = {(r["format"], r["data"]): float(r["saturated"]) for r in rows}
    err = {(r["format"], r["data"]): float(r["rms_rel_err"]) for r in rows}
    assert sat[("mxfp4", "N(0,1)")] > 0  # OCP's floor rule clips a block's top element
    assert sat[("mxfp4:rule=rceil", "N(0,1)")] == 0 and sat[("nvfp4", "N(0,1)")] == 0
    assert err[("e4m3", "N(0,1)")] < err[("mxfp4", "N(0,1)")]
    assert "| nvfp4 | plain |" in (tmp_path / "report.md").read_text()


def test_compare(tmp_path):
    assert main(["compare", "float", "fixed16.12", "--epochs", "2", "--out", str(tmp_path)]) == 0
    rows = list(csv.DictReader(open(tmp_path / "training.csv")))
    final = {r["spec"]: float(r["test_accuracy"]) for r in rows if r["epoch"] == "2"}
    assert final["float"] > 0.8 and final["fixed16.12"] > 0.8


def test_parser_rejects_unknown_commands():
    with pytest.raises(CliError, match="invalid choice: 'train-everything'"):
        build_parser().parse_args(["train-everything"])


def test_inspect_a_model_given_as_module_callable(tmp_path, monkeypatch, capsys):
    (tmp_path / "user_model.py").write_text(
        "import torch, torch.nn as nn\n"
        "def make():\n"
        "    torch.manual_seed(0)\n"
        "    m = nn.Sequential(nn.Conv1d(2, 4, 3, padding='same', groups=2), nn.Flatten(),\n"
        "                      nn.Linear(4 * 8, 3))\n"
        "    return m, torch.randn(2, 2, 8)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert main(["inspect", "user_model:make", "--format", "fixed16.8", "--out", str(tmp_path / "o")]) == 0
    out = capsys.readouterr().out
    assert "(100.0 %)" in out and "| conv1d | 0 |" in out and "groups=2" in out
    assert (tmp_path / "o" / "coverage.md").exists()


def test_energy_writes_markdown_png_and_json(tmp_path, capsys):
    assert main(["energy", "--format", "bf16", "--batch", "2", "--memory", "sram:32KB",
                 "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "not a measurement" in out and "| total | pJ / step |" in out and "memory" in out
    assert {p.name for p in tmp_path.iterdir()} == {"energy.md", "energy.png", "energy.json"}
