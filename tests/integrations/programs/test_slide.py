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
