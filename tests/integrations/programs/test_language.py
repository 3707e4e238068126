"""Two agents' bit language: masks, Gumbel-softmax bits, the MI discriminator,
the communication levels' gradient paths, and learning."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn as nn

from lowbit.integrations.programs.language.train import (
    Agent,
    LanguageConfig,
    communication_loss,
    gumbel_bits,
    mask,
    mi_loss,
    observe,
    train,
)


def test_masks_invert_the_chosen_pixels():
    m = mask(10_000, 0.2, seed=3)
    assert abs(m.mean() - 0.2) < 5 * np.sqrt(0.2 * 0.8 / 10_000)
    assert not np.array_equal(m, mask(10_000, 0.2, seed=4))
    x = np.random.default_rng(0).random((5, 10_000)).astype(np.float32)
    o = observe(x, m)
    assert np.allclose(o[:, m == 1], 1 - x[:, m == 1]) and np.array_equal(o[:, m == 0], x[:, m == 0])
    assert np.allclose(observe(o, m), x, atol=1e-6)  # an involution: no information is lost


def test_gumbel_bits_harden_as_the_temperature_falls():
    torch.manual_seed(0)
    logits = torch.randn(2000, 32, 2)
    hot = torch.stack([gumbel_bits(logits, 10.0) for _ in range(3)])
    cold = torch.stack([gumbel_bits(logits, 0.01) for _ in range(3)])
    closeness = lambda b: torch.minimum(b, 1 - b)  # noqa: E731 - distance to {0, 1}
    assert closeness(cold).mean() < 0.01 and closeness(hot).mean() > 0.3
    hard = gumbel_bits(logits, 1.0, hard=True)
    assert torch.equal(hard, logits.argmax(-1).float())


def test_gradients_flow_through_the_soft_bits():
    logits = torch.randn(8, 4, 2, requires_grad=True)
    (gumbel_bits(logits, 0.7) * torch.arange(4.0)).sum().backward()
    assert logits.grad is not None and torch.isfinite(logits.grad).all() and logits.grad.abs().sum() > 0


def _train_disc(bits_fn, steps=400):
    torch.manual_seed(0)
    disc = nn.Sequential(nn.Linear(8 + 4, 64), nn.ReLU(), nn.Linear(64, 1))
    opt = torch.optim.Adam(disc.parameters(), lr=3e-3)
    for _ in range(steps):
        o = torch.randn(128, 8)
        loss, _ = mi_loss(disc, o, bits_fn(o))
        opt.zero_grad()
        loss.backward()
        opt.step()
    o = torch.randn(4096, 8)
    with torch.no_grad():
        return mi_loss(disc, o, bits_fn(o))[1]


def test_the_discriminator_separates_joint_from_shuffled_pairs():
    dependent = _train_disc(lambda o: (o[:, :4] > 0).float())
    independent = _train_disc(lambda o: (torch.rand(len(o), 4) > 0.5).float())
    assert dependent > 0.9 and independent < 0.6


def _agents():
    torch.manual_seed(1)
    agents = [Agent(16, 8, 4) for _ in range(2)]
    o = torch.rand(6, 16)
    outs = [a(o) for a in agents]
    bits = [gumbel_bits(lg, 1.0) for _, lg in outs]
    return agents, outs, bits


@pytest.mark.parametrize("level,into_a,into_b", [
    ("none", False, False), ("receive", False, True), ("feedback", True, True),
    ("both", True, True)])
def test_communication_levels_route_gradients(level, into_a, into_b):
    agents, outs, bits = _agents()
    loss = communication_loss(level, outs[0][1], outs[1][1], bits[0], bits[1])
    if level == "none":
        assert float(loss) == 0.0
        return
    loss.backward()
    grad = [a.heads.weight.grad for a in agents]
    assert (grad[0] is not None and grad[0].abs().sum() > 0) == into_a
    assert (grad[1] is not None and grad[1].abs().sum() > 0) == into_b


def test_agents_learn_above_chance(tmp_path):
    s = train(LanguageConfig(level="both", steps=150, eval_every=50, out=str(tmp_path)),
              progress=False)
    assert s["test_acc"] > 0.3  # chance is 0.1
    assert 0.0 <= s["final_bit_agreement"] <= 1.0 and (tmp_path / "curve.png").exists()


def _metrics(tmp_path, name, **kw):
    cfg = LanguageConfig(steps=40, eval_every=20, length=8, hidden=32, out=str(tmp_path / name),
                         **kw)
    train(cfg, progress=False)
    return (tmp_path / name / "metrics.csv").read_text().splitlines()


def _columns(lines, drop=("seconds",)):
    """The metrics rows without the ``drop`` columns (wall clock by default)."""
    head = lines[0].split(",")
    keep = [i for i, c in enumerate(head) if c not in drop]
    return [[line.split(",")[i] for i in keep] for line in lines]


def test_power_of_two_loss_scale_is_exact_in_float(tmp_path):
    a = _metrics(tmp_path, "s1", level="both")
    b = _metrics(tmp_path, "s64", level="both", loss_scale=64.0)
    assert _columns(a) == _columns(b)


def test_loss_scale_rescues_underflowing_fixed_point_communication(tmp_path):
    fmt = "fixed16.10"  # gradients in Fixed(16, 10): ulp 2^-10
    none = _metrics(tmp_path, "n", level="none", format=fmt)
    recv = _metrics(tmp_path, "r", level="receive", format=fmt)
    # the communication loss's gradients round to zero: only the reported loss differs
    drop = ("seconds", "loss")
    assert _columns(none, drop) == _columns(recv, drop)
    assert _columns(none) != _columns(recv)
    none_s = _metrics(tmp_path, "ns", level="none", format=fmt, loss_scale=256.0)
    recv_s = _metrics(tmp_path, "rs", level="receive", format=fmt, loss_scale=256.0)
    assert _columns(none_s, drop) != _columns(recv_s, drop)


def test_bad_configs_are_refused():
    for kw in ({"level": "shout"}, {"noise": 1.5}, {"tau_min": 0.0}, {"tau_decay": 1.5},
               {"length": 0}, {"loss_scale": 0.0}, {"loss_scale": float("nan")}):
        with pytest.raises(ValueError):
            LanguageConfig(**kw).check()
    cfg = LanguageConfig(tau_start=1.0, tau_decay=0.5, tau_every=10, tau_min=0.3)
    assert [cfg.tau(s) for s in (0, 9, 10, 20, 30, 1000)] == [1.0, 1.0, 0.5, 0.3, 0.3, 0.3]


def test_cli_runs_two_agents(tmp_path, capsys):
    from lowbit.integrations.cli import main

    assert main(["train", "language", "--level", "feedback", "--steps", "40", "--eval-every",
                 "20", "--length", "8", "--out", str(tmp_path), "--quiet"]) == 0
    assert "bits agreeing" in capsys.readouterr().out


def test_language_table_counts_seeds_per_row(tmp_path):
    """The language table gives each communication level its own mean ± sample std
    and seed count (levels of one variant may have different numbers of seeds); a run
    still training is left out."""
    import json

    from lowbit.integrations.programs.language.grid import write_language_tables

    root = tmp_path / "experiments"
    runs = {("none", 0): 0.50, ("none", 1): 0.60, ("both", 0): 0.70, ("both", 1): 0.10}
    for (level, seed), acc in runs.items():
        d = root / "language" / "digits" / "float" / level / f"seed{seed}"
        d.mkdir(parents=True)
        (d / "summary.json").write_text(json.dumps(
            {"test_acc": acc, "step_at_best": 100, "final_test_acc": acc,
             "final_bit_agreement": 0.5, "done": (level, seed) != ("both", 1)}))
        (d / "metrics.csv").write_text("step,val_acc\n100,0.5\n200,0.6\n")
    write_language_tables(root, tmp_path / "docs")
    table = (tmp_path / "docs" / "language_table.md").read_text()
    # mean 55.0, sample std of (50, 60) = 7.07
    assert "| Baseline (no communication) | 55.0 ± 7.1 | 100 ± 0 | 55.0 ± 7.1 | 50.0 ± 0.0 | 2 | 64.4 |" \
        in table
    assert "| Both ways, with feedback | 70.0 | 100 | 70.0 | 50.0 | 1 | 71.4 |" in table
    assert "Student receiving only" not in table  # no runs, no row


def test_frozen_agents_keep_their_weights_and_the_probe_still_learns(tmp_path):
    """The untrained-agents control: with ``frozen`` no agent parameter moves (the
    messages and features are those of the initial weights), yet the probe on those
    features learns above chance."""
    from lowbit.integrations.programs.language.train import LanguageConfig, train

    cfg = LanguageConfig(level="none", frozen=True, data="digits", steps=200, eval_every=50,
                         hidden=64, out=str(tmp_path / "frozen"))
    s = train(cfg, progress=False)
    assert s["test_acc"] > 0.5
    import csv

    rows = list(csv.DictReader(open(tmp_path / "frozen" / "metrics.csv")))
    # unchanged agents send the same (hard) messages at every evaluation: the agreement
    # of A's and B's bits on the validation images is the same number each time
    assert len({r["bit_agreement"] for r in rows}) == 1
    assert 0.3 < float(rows[0]["bit_agreement"]) < 0.7  # independent random generators
    trained = train(LanguageConfig(level="none", data="digits", steps=200, eval_every=50,
                                   hidden=64, out=str(tmp_path / "trained")), progress=False)
    moving = list(csv.DictReader(open(tmp_path / "trained" / "metrics.csv")))
    assert len({r["bit_agreement"] for r in moving}) > 1  # trained agents change their messages
