"""lowbit train slide: runs, resumes to the uninterrupted run's numbers, and its dense
baseline and lazy optimizer work."""

import json

import pytest

from lowbit.integrations.programs.slide.train import SlideConfig, train_xmc

TINY = dict(labels=400, features=600, train=512, test=64, batch=64, bits=4, tables=6)
DETERMINISTIC = ("p_at_1", "p_at_5", "loss", "active_mean", "active_labels", "active_retrieved",
                 "active_fill")


def _metrics(out):
    import csv

    with open(out / "metrics.csv") as fh:
        return [{k: float(r[k]) for k in DETERMINISTIC} for r in csv.DictReader(fh)]


@pytest.mark.parametrize("optimizer", ["adam_dense", "adam_lazy"])
def test_resume_repeats_the_uninterrupted_run(tmp_path, monkeypatch, optimizer):
    import lowbit.integrations.programs.slide.train as T

    whole = tmp_path / "whole"
    train_xmc(SlideConfig(**TINY, epochs=2, optimizer=optimizer, out=str(whole)), progress=False)
    part = tmp_path / "part"
    cfg = SlideConfig(**TINY, epochs=2, optimizer=optimizer, out=str(part))
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
