"""lowbit train slide: runs, resumes to the uninterrupted run's numbers, and its dense
baseline and lazy optimizer work."""

import json
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest

from lowbit.integrations.programs.slide.train import SlideConfig, train_xmc

TINY = dict(labels=400, features=600, train=512, test=64, batch=64, bits=4, tables=6)
DETERMINISTIC = ("p_at_1", "p_at_5", "loss", "active_mean", "active_labels", "active_retrieved",
                 "active_fill")


def _metrics(out):
    import csv

    with open(out / "metrics.csv") as fh:
        return [{k: float(r[k]) for k in DETERMINISTIC} for r in csv.DictReader(fh)]


@pytest.mark.parametrize("optimizer,master", [("adam_dense", "float"), ("adam_lazy", "float"),
                                              ("adam_lazy", "bf16"), ("adam_dense", "bf16")])
def test_resume_repeats_the_uninterrupted_run(tmp_path, monkeypatch, optimizer, master):
    import lowbit.integrations.programs.slide.train as T

    kw = dict(TINY, epochs=2, optimizer=optimizer, master=master,
              update="kahan" if master != "float" else "plain")
    whole = tmp_path / "whole"
    train_xmc(SlideConfig(**kw, out=str(whole)), progress=False)
    part = tmp_path / "part"
    cfg = SlideConfig(**kw, out=str(part))
    save = T.save_checkpoint

    def stop_after_first(path, dump):  # the run is killed right after epoch 1's checkpoint
        save(path, dump)
        raise KeyboardInterrupt

    monkeypatch.setattr(T, "save_checkpoint", stop_after_first)
    with pytest.raises(KeyboardInterrupt):
        train_xmc(cfg, progress=False)
    monkeypatch.setattr(T, "save_checkpoint", save)
    train_xmc(cfg, progress=False)  # resumes at epoch 2 (tables, schedule and moments included)
    assert _metrics(part) == _metrics(whole)


def test_dense_baseline_and_summary(tmp_path):
    s = train_xmc(SlideConfig(**TINY, epochs=1, policy="dense", out=str(tmp_path)), progress=False)
    assert s["active_fraction"] == 1.0 and 0 <= s["p_at_1"] <= 1
    saved = json.loads((tmp_path / "summary.json").read_text())
    assert saved["config"]["policy"] == "dense" and "float32" in saved["note"]


def test_sampled_runs_report_their_active_sets(tmp_path):
    s = train_xmc(SlideConfig(**TINY, epochs=1, policy="topk", beta=8, format="bf16",
                              out=str(tmp_path)), progress=False)
    m = _metrics(tmp_path)[0]
    assert m["active_labels"] > 0 and s["active_fraction"] < 1
    assert abs(m["active_labels"] + m["active_retrieved"] + m["active_fill"] - m["active_mean"]) < 1e-6


def test_recall_report(tmp_path):
    from lowbit.integrations.programs.slide.recall import recall_table

    train_xmc(SlideConfig(**TINY, epochs=1, beta=20, out=str(tmp_path)), progress=False)
    text = recall_table(tmp_path, top=5, queries=40)
    rows = {line.split("|")[1].strip().split(" ")[0]: line.split("|") for line in text.splitlines()
            if line.startswith("| ") and "policy" not in line}
    assert set(rows) == {"union", "vanilla", "threshold", "topk", "oracle"}
    assert float(rows["oracle"][4]) == 1.0  # beta 20 >= top 5: the oracle finds them all
    assert float(rows["union"][4]) >= float(rows["union"][5])  # LSH at least as good as random
    assert "Bucket loads" in text


# --- the wide-hidden-layer setting on images ------------------------------------------------

WIDE = dict(data="digits", hidden=256, bits=5, tables=6, batch=64, lr=1e-3, epochs=2)


def test_wide_hidden_layer_inactive_units_are_exactly_zero():
    import numpy as np
    import torch
    import torch.nn.functional as F

    from lowbit.integrations.data import load_digits
    from lowbit.integrations.programs.slide.train import WideNet

    ds = load_digits()
    net = WideNet(SlideConfig(**WIDE, policy="topk", beta=20), 64, 10)
    net.train()
    x = torch.from_numpy(ds.x_train[:16].reshape(16, -1).astype(np.float32))
    logits, active = net(x)
    h = F.relu(net.hid._product(x, net.hid.weight[torch.from_numpy(active)],
                                net.hid.bias[torch.from_numpy(active)]))
    own = torch.from_numpy(net.hid.sample_mask(active))
    # the logits read only each sample's own active units: recompute them from the mask
    want = (h * own) @ net.head.weight[:, torch.from_numpy(active)].T + net.head.bias
    torch.testing.assert_close(logits, want)
    assert (own.sum(1) <= 20).all() and len(active) < 256


def test_wide_runs_resume_and_the_dense_baseline_learns(tmp_path):
    from lowbit.integrations.programs.slide.train import train

    dense = train(SlideConfig(**WIDE, policy="dense", out=str(tmp_path / "dense")),
                  progress=False)
    assert dense["accuracy"] > 0.8 and dense["per_sample_fraction"] == 1.0
    whole = train(SlideConfig(**WIDE, policy="topk", beta=40, optimizer="adam_lazy",
                              out=str(tmp_path / "whole")), progress=False)
    assert whole["accuracy_lsh"] > 0.5 and whole["active_per_sample"] <= 40
    part = tmp_path / "part"
    train(SlideConfig(**{**WIDE, "epochs": 1}, policy="topk", beta=40, optimizer="adam_lazy",
                      out=str(part)), progress=False)
    # a new config (2 epochs) does not resume the 1-epoch run: it starts again, and repeats
    again = train(SlideConfig(**WIDE, policy="topk", beta=40, optimizer="adam_lazy",
                              out=str(part)), progress=False)
    assert again["accuracy"] == whole["accuracy"]
    resumed = train(SlideConfig(**WIDE, policy="topk", beta=40, optimizer="adam_lazy",
                                out=str(part)), progress=False)
    assert resumed["accuracy"] == whole["accuracy"]


def test_wide_bad_data_is_refused():
    with pytest.raises(ValueError, match="data must be"):
        SlideConfig(data="cifar").check()


def test_wide_report_table_and_plot(tmp_path):
    from lowbit.integrations.programs.slide.report import main, wide_table
    from lowbit.integrations.programs.slide.train import train

    for name, kw in (("dense", dict(policy="dense")), ("topk", dict(policy="topk", beta=30))):
        for seed in (0, 1):
            train(SlideConfig(**{**WIDE, "epochs": 1}, **kw, seed=seed,
                              out=str(tmp_path / name / f"seed{seed}")), progress=False)
    table = wide_table(tmp_path).splitlines()
    assert len(table) == 4 and table[2].startswith("| dense | dense | float | 1 | 2 |")
    assert "topk (5 x 6)" in table[3] and " ± " in table[3]
    main([str(tmp_path), "--plot", str(tmp_path / "wide.png")])
    assert (tmp_path / "wide.png").stat().st_size > 5000


def test_slide_grids_are_seed_major_and_refuse_another_configuration(tmp_path):
    from lowbit.integrations.programs.slide import grid

    cfgs = grid.xmc_configs(2, tmp_path)
    per_seed = len(grid.XMC_RUNS) + len(grid.SIZES) * len(grid.SIZE_RUNS)
    assert len(cfgs) == 2 * per_seed
    assert {c.seed for c in cfgs[:per_seed]} == {0} and {c.seed for c in cfgs[per_seed:]} == {1}
    big = [c for c in cfgs if c.labels == 200_000]
    assert big and all(c.bits == (14 if "union-fine" in c.out else 11) for c in big)
    assert all("xmc-200k" in c.out for c in big)
    assert cfgs[0].out.endswith("slide/xmc-5k/dense/seed0") and cfgs[0].policy == "dense"
    change = next(c for c in cfgs if c.out.endswith("union-change/seed0"))
    assert change.rebuild == "change" and change.change_threshold == grid.CHANGE_THRESHOLD
    wide = grid.wide_configs("digits", 1, tmp_path)
    assert {c.data for c in wide} == {"digits"} and all("slide/digits/" in c.out for c in wide)

    cfg = cfgs[0]
    assert not grid.stored(cfg)
    Path(cfg.out).mkdir(parents=True)
    summary = {"config": {**asdict(cfg), "epochs": 3}, "epochs_done": 3}
    (Path(cfg.out) / "summary.json").write_text(json.dumps(summary))
    assert grid.stored(cfg)
    summary["epochs_done"] = 2  # still training
    (Path(cfg.out) / "summary.json").write_text(json.dumps(summary))
    assert not grid.stored(cfg)
    summary["config"]["lr"] = 1e-3
    (Path(cfg.out) / "summary.json").write_text(json.dumps(summary))
    with pytest.raises(ValueError, match=r"another configuration.*'lr'"):
        grid.stored(cfg)


def test_slide_grid_tables_from_runs(tmp_path):
    """Two seeds of two XMC rows and of the dense row at 50k, trained tiny: the tables hold
    their means and sample standard deviations (computed here from the summaries)."""
    from dataclasses import replace

    from lowbit.integrations.programs.slide import grid

    root = tmp_path / "experiments"
    tiny = dict(TINY, epochs=1)
    for seed in (0, 1):
        for name, rel, kw in (("dense", "xmc-5k", dict(policy="dense")),
                              ("union", "xmc-5k", dict(policy="union")),
                              ("dense", "xmc-50k", dict(policy="dense"))):
            train_xmc(replace(SlideConfig(**tiny), **kw, seed=seed,
                              out=str(root / "slide" / rel / name / f"seed{seed}")),
                      progress=False)
    docs = tmp_path / "docs"
    docs.mkdir()
    grid.write_tables(root, docs)
    table = (docs / "slide_xmc.md").read_text().splitlines()
    assert [r.split(" | ")[0] for r in table[2:]] == ["| dense", "| union"]  # XMC_RUNS order
    p1 = [json.loads((root / "slide/xmc-5k/union" / f"seed{s}/summary.json").read_text())["p_at_1"]
          for s in (0, 1)]
    import numpy as np

    assert f"| {np.mean(p1):,.4f} ± {np.std(p1, ddof=1):,.4f} |" in table[3]
    sizes = (docs / "slide_sizes.md").read_text().splitlines()
    assert sizes[2].startswith("| 5,000 | dense |") and " 1.00x |" in sizes[2]
    assert sizes[3].startswith("| 5,000 | union | adam_dense, 50 | 2 |")
    assert sizes[4].startswith("| 50,000 | dense |")
    assert (docs / "slide_xmc.png").stat().st_size > 10_000
    assert not (docs / "slide_wide.md").exists()  # no wide run stored


@pytest.mark.parametrize("optimizer,policy", [("adam_dense", "dense"), ("adam_lazy", "union")])
def test_master_weights_in_bf16(tmp_path, optimizer, policy):
    """--master bf16: the output layer's weights are bf16 values after training (dense Adam
    through EmulatedOptimizer, lazy Adam through its row updates), stochastic updates."""
    ml_dtypes = pytest.importorskip("ml_dtypes")
    cfg = SlideConfig(**TINY, epochs=1, policy=policy, optimizer=optimizer, master="bf16",
                      update="stochastic", out=str(tmp_path))
    s = train_xmc(cfg, progress=False)
    assert 0 <= s["p_at_1"] <= 1
    from lowbit.integrations.runs import load_checkpoint, torch_load

    w = load_checkpoint(tmp_path / "checkpoint.pt", torch_load)["model"]["out.weight"].numpy()
    assert np.array_equal(w.astype(ml_dtypes.bfloat16).astype(np.float32), w)
    with pytest.raises(ValueError, match="update must be"):
        SlideConfig(update="round").check()
