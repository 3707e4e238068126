"""`lowbit experiment tables` on a hand-made results tree: summaries of several grids
side by side, means and sample standard deviations computed by hand."""
import json
from pathlib import Path

from lowbit.integrations.programs.experiments import write_tables


def _put(root: Path, rel: str, config: dict, **fields) -> None:
    d = root / rel
    d.mkdir(parents=True)
    summary = {"config": {**config, "out": str(d)}, "epochs_done": 3, "seconds": 6.0,
               "seconds_per_epoch": 2.0, **fields}
    (d / "summary.json").write_text(json.dumps(summary))


def test_tables_from_mixed_grids(tmp_path):
    root, docs = tmp_path / "experiments", tmp_path / "docs"
    for seed, acc in enumerate((0.90, 0.92)):
        _put(root, f"qnn/digits/float/seed{seed}",
             {"recipe": "float", "data": "digits", "hidden": [8]}, test_acc=acc)
        _put(root, f"eqprop/digits/fixed8.6/seed{seed}",
             {"format": "fixed8.6", "data": "digits", "update": None}, test_acc=acc - 0.5)
    _put(root, "eqprop/digits/float-symmetric/seed0",
         {"format": "float", "symmetric": True, "data": "digits", "update": None}, test_acc=0.75)
    _put(root, "qnn/digits/binarynet/seed0",
         {"recipe": "binarynet", "data": "digits", "hidden": [8]}, test_acc=0.5)
    for rec, acc in (("lns-float", 0.8), ("lns-kahan", 0.7)):
        _put(root, f"lns/digits/lns5.10/{rec}/seed0",
             {"recipe": rec, "data": "digits", "hidden": [8], "lns": "lns5.10"}, test_acc=acc)
    _put(root, "lns-sweep/digits/lns-kahan-f4/seed0",
         {"recipe": "lns-kahan", "data": "digits", "hidden": [8], "lns": "lns5.4"}, test_acc=0.25)
    _put(root, "eqprop-sweep/digits/fixed6-kahan/seed0",
         {"format": "fixed6.4", "data": "digits", "update": "kahan"}, test_acc=0.125)

    (root / "lns/digits/lns5.10/lns-kahan/seed0/metrics.csv").write_text(
        "epoch,train_loss,test_acc\n1,0.5,0.6\n2,0.25,0.7\n")  # the last epoch's loss counts

    write_tables(root, docs)

    qnn = (docs / "qnn_table.md").read_text()
    # mean 91, sample std of (90, 92) = sqrt(2) = 1.41
    assert "| float32 | 91.00 ± 1.41 (n=2) | 9.00 | 3 |" in qnn
    assert "| BinaryNet (binary weights and activations) | 50.00 ± 0.00 (n=1) |" in qnn
    assert "41.00" not in qnn and "80.00" not in qnn  # no EP or LNS row leaks in
    lns = (docs / "lns_table.md").read_text()
    assert "| normal DNN (float32) | 80.00 ± 0.00 (n=1) | 20.00 |" in lns
    assert lns.rstrip().endswith("| 0.2500 | 2.29 |")  # the talk's Kahan row, last
    assert "| - | 2.14 |" in lns  # no metrics.csv: no loss
    assert "| digits | 4 | - | 25.00 ± 0.00 (n=1) |" in (docs / "lns_sweep_table.md").read_text()
    ep = (docs / "eqprop_table.md").read_text()
    assert "| EP, Fixed(8, 6) states and weights | 41.00 ± 1.41 (n=2) | 59.00 | 3 |" in ep
    assert "| EP, float64, symmetric ±β estimate | 75.00 ± 0.00 (n=1) | 25.00 | 3 |" in ep
    assert "| digits | 6 | - | - | 12.50 ± 0.00 (n=1) |" in (
        docs / "eqprop_sweep_table.md").read_text()
    for png in ("lns_frac_bits_sweep.png", "eqprop_bits_sweep.png"):
        assert (docs / png).stat().st_size > 1000


def test_eqprop_check_table(tmp_path):
    from lowbit.integrations.reports.eqprop_check import write_check_table

    root, docs = tmp_path / "experiments", tmp_path / "docs"
    (root / "eqprop-check" / "digits").mkdir(parents=True)
    cos = {"float/seed0": {"one-sided": [0.5, 0.9], "symmetric": [0.7, 1.0]},
           "float/seed1": {"one-sided": [0.7, 0.9], "symmetric": [0.7, 1.0]},
           "fixed8.6/seed0": {"one-sided": [0.1, 0.0], "symmetric": [0.2, 0.0]}}
    (root / "eqprop-check" / "digits" / "cosines.json").write_text(json.dumps(
        {"betas": [0.5, 0.01], "arch": [64, 32, 10], "steps": 7, "batch": 4, "results": cos}))
    write_check_table(root, docs)
    text = (docs / "eqprop_check.md").read_text()
    assert "| states and weights | estimate | β = 0.5 | β = 0.01 |" in text
    # mean 0.6, sample std of (0.5, 0.7) = 0.1414
    assert "| float | one-sided | 0.6000 ± 0.1414 | 0.9000 ± 0.0000 |" in text
    assert "| fixed8.6 | symmetric | 0.2000 | 0.0000 |" in text
    assert text.index("| float |") < text.index("| fixed8.6 |")


def test_grid_refuses_a_stored_run_of_another_configuration(tmp_path):
    """A grid counts a stored run only if its configuration is the grid's: a run
    trained with another schedule is an error naming the differing field."""
    import pytest

    from lowbit.integrations.programs.experiments import grid
    from lowbit.integrations.programs.qnn.grid import finished as _finished

    cfg = next(c for c in grid("qnn", "fashion-mnist", 1, 10, tmp_path) if c.recipe == "float")
    assert not _finished(cfg, 10)  # nothing stored yet
    stored = {"recipe": "float", "data": "fashion-mnist", "seed": 0, "lr_decay": cfg.lr_decay}
    d = Path(cfg.out)
    d.mkdir(parents=True)
    (d / "summary.json").write_text(json.dumps({"config": stored, "epochs_done": 10}))
    assert _finished(cfg, 10) and not _finished(cfg, 11)
    stored["lr_decay"] = 1.0
    (d / "summary.json").write_text(json.dumps({"config": stored, "epochs_done": 10}))
    with pytest.raises(ValueError, match=r"another configuration.*lr_decay"):
        _finished(cfg, 10)


def test_runs_still_training_are_left_out(tmp_path):
    root, docs = tmp_path / "experiments", tmp_path / "docs"
    cfg = {"recipe": "float", "data": "digits", "hidden": [8], "epochs": 3}
    _put(root, "qnn/digits/float/seed0", cfg, test_acc=0.9)
    _put(root, "qnn/digits/float/seed1", cfg, test_acc=0.5, epochs_done=1)
    write_tables(root, docs)
    table = (docs / "qnn_table.md").read_text()
    assert "| float32 | 90.00 ± 0.00 (n=1) | 10.00 | 3 |" in table  # seed 1 is at epoch 1 of 3


def test_the_stored_runs_regenerate_the_published_tables(tmp_path):
    """`lowbit experiment tables` on the committed runs (results/experiments) rewrites every
    table of docs/results byte for byte (the plots are drawn; their bytes depend on the
    matplotlib release, so only the tables are compared)."""
    root = Path(__file__).resolve().parents[3]
    write_tables(root / "results" / "experiments", tmp_path)
    written = sorted(p.name for p in tmp_path.glob("*.md"))
    assert len(written) >= 12, written
    for name in written:
        assert (tmp_path / name).read_bytes() == (root / "docs" / "results" / name).read_bytes(), name
    for png in ("lns_frac_bits_sweep.png", "eqprop_bits_sweep.png", "nodes_bytes.png",
                "parallel_bytes.png"):
        assert (tmp_path / png).stat().st_size > 10_000
