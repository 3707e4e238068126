"""Teacher-selected training data: difficulty, selection, counting, learning."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from lowbit.integrations.programs.teacher.train import (
    TeacherConfig,
    difficulty,
    select_hardest,
    train,
)


@settings(max_examples=100, deadline=None)
@given(scores=arrays(np.float64, st.integers(1, 200),
                     elements=st.floats(-1e6, 1e6, allow_nan=False)), data=st.data())
def test_select_hardest_returns_the_k_highest(scores, data):
    k = data.draw(st.integers(1, len(scores)))
    chosen = select_hardest(scores, k)
    assert len(set(chosen.tolist())) == k
    rest = np.setdiff1d(np.arange(len(scores)), chosen)
    assert np.all(np.diff(scores[chosen]) <= 0)  # highest first
    if len(rest):
        assert scores[chosen].min() >= scores[rest].max()


def test_select_hardest_breaks_ties_by_position():
    assert select_hardest(np.array([1.0, 3.0, 3.0, 0.0, 3.0]), 2).tolist() == [1, 2]
    with pytest.raises(ValueError):
        select_hardest(np.ones(3), 4)


def test_difficulty_by_hand():
    p_t = np.array([[1.0, 0.0], [0.5, 0.5]])
    p_s = np.array([[0.5, 0.5], [0.9, 0.1]])
    ce = difficulty(p_t, p_s, "ce")
    assert ce[0] == pytest.approx(math.log(2))
    assert ce[1] == pytest.approx(-0.5 * math.log(0.9) - 0.5 * math.log(0.1))
    eu = difficulty(p_t, p_s, "euclidean")
    assert eu[0] == pytest.approx(math.sqrt(0.5)) and eu[1] == pytest.approx(math.sqrt(0.32))
    with pytest.raises(ValueError):
        difficulty(p_t, p_s, "kl")


def _small(tmp_path, **kw) -> TeacherConfig:
    base = dict(teacher_hidden=64, teacher_max_epochs=3, teacher_patience=2, max_backward=200,
                eval_every=50, patience=100, teacher_dir=str(tmp_path / "teachers"),
                out=str(tmp_path / "run"))
    return TeacherConfig(**{**base, **kw})


def test_student_learns_and_counts_passes(tmp_path):
    s = train(_small(tmp_path, select="ce", stack=2, targets="soft"), progress=False)
    assert s["test_acc"] > 0.5  # chance is 0.1
    assert s["backward_done"] == 200
    # each update: the stack's 2 prediction passes and the training pass
    assert s["forward_at_best"] == 3 * s["backward_at_best"]
    assert s["teacher_forward_at_best"] == 2 * s["backward_at_best"]
    assert (tmp_path / "teachers" / "digits-seed0" / "teacher.pt").exists()


def test_teacher_drops_its_learning_rate_on_plateaus(tmp_path):
    import json

    cfg = _small(tmp_path, teacher_max_epochs=30, teacher_patience=1, teacher_lr_drops=2)
    train(cfg, progress=False)
    log = json.loads((tmp_path / "teachers" / "digits-seed0" / "teacher.json").read_text())
    lrs = [e["lr"] for e in log["epochs"]]
    assert lrs[0] == 1e-3 and all(a >= b for a, b in zip(lrs, lrs[1:]))  # never raised
    levels = [1e-3, 1e-4, 1e-5]  # at most two drops by 10
    assert all(min(abs(lr - v) for v in levels) < 1e-12 for lr in lrs)
    if len(lrs) < 30:  # stopped early: only after the second drop's plateau
        assert abs(lrs[-1] - 1e-5) < 1e-12


def test_interrupted_teacher_resumes_on_the_same_trajectory(tmp_path):
    """Cut after 2 of 6 epochs, then resumed: the same weights and log as one run."""
    import json

    import torch

    from lowbit.integrations.data import load_digits
    from lowbit.integrations.programs.teacher.train import split, train_teacher

    ds = load_digits()
    data = split(ds, 0.1, 0)
    runs = {}
    for name, cut in (("whole", None), ("cut", 2)):
        cfg = _small(tmp_path, teacher_max_epochs=6, teacher_patience=1, teacher_lr_drops=1,
                     teacher_dir=str(tmp_path / name))
        if cut:
            assert train_teacher(cfg, data, ds, progress=False, max_epochs=cut) is None
            ckpt = torch.load(tmp_path / name / "digits-seed0" / "teacher-checkpoint.pt",
                              weights_only=False)
            assert ckpt["state"]["epoch"] == cut
        runs[name] = train_teacher(cfg, data, ds, progress=False).state_dict()
        d = tmp_path / name / "digits-seed0"
        assert not (d / "teacher-checkpoint.pt").exists()
        runs[name + "-log"] = json.loads((d / "teacher.json").read_text())["epochs"]
    assert runs["whole-log"] == runs["cut-log"] and len(runs["whole-log"]) >= 3
    for k, v in runs["whole"].items():
        assert torch.equal(v, runs["cut"][k]), k


def test_baseline_counts_one_forward_per_backward(tmp_path):
    s = train(_small(tmp_path, select="none"), progress=False)
    assert s["test_acc"] > 0.5
    assert s["forward_at_best"] == s["backward_at_best"] and s["teacher_forward_at_best"] == 0


def test_bad_configs_are_refused():
    for kw in ({"select": "hardest"}, {"targets": "soft-ish"}, {"stack": 0},
               {"temperature": 0.0}, {"max_backward": 0}, {"val_fraction": 1.0},
               {"teacher_lr_drops": -1}):
        with pytest.raises(ValueError):
            TeacherConfig(**kw).check()


def test_cli_runs_a_student(tmp_path, capsys):
    from lowbit.integrations.cli import main

    assert main(["train", "teacher", "--select", "euclidean", "--stack", "3", "--targets", "true",
                 "--teacher-hidden", "32", "--teacher-max-epochs", "2", "--max-backward", "60",
                 "--eval-every", "30", "--teacher-dir", str(tmp_path / "t"),
                 "--out", str(tmp_path / "s"), "--quiet"]) == 0
    assert "backward passes" in capsys.readouterr().out
    assert (tmp_path / "s" / "curve.png").exists()


def test_reach_is_the_first_evaluation_at_the_level():
    from lowbit.integrations.programs.teacher.grid import reach

    m = [{"backward": 250, "val_acc": 0.5}, {"backward": 500, "val_acc": 0.8},
         {"backward": 750, "val_acc": 0.9}]
    assert reach(m, 0.8) == 500
    assert reach(m, 0.95) is None


def test_reached_says_how_many_runs_got_there():
    from lowbit.integrations.programs.teacher.grid import reached

    assert reached([1000, 3000]) == "2,000 ± 1,414"
    assert reached([1000, None, 3000]) == "2,000 ± 1,414 (2 of 3)"
    assert reached([None, None]) == "-"
