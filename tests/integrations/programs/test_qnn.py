"""The QNN training program: every recipe learns; resume is bit-exact; LNS everywhere
really runs every matmul and update in the emulator."""

from __future__ import annotations

import json

import pytest
import torch

import lowbit.emulators
from lowbit.integrations.data import load_digits
from lowbit.integrations.programs.qnn.train import RECIPES, TrainConfig, build, train
from lowbit.integrations.torch import from_carrier, to_carrier
from lowbit.numerics import LNS


def small(recipe: str, out, epochs: int = 3, **kw) -> TrainConfig:
    hidden = (64, 64) if recipe.startswith("lns") else (128, 128)
    return TrainConfig(recipe=recipe, data="digits", hidden=hidden, epochs=epochs, batch=50,
                       out=str(out), **kw)


@pytest.mark.parametrize("recipe", RECIPES)
def test_each_recipe_learns(recipe, tmp_path):
    s = train(small(recipe, tmp_path), progress=False)
    metrics = [l for l in (tmp_path / "metrics.csv").read_text().splitlines()[1:]]
    first_loss = float(metrics[0].split(",")[1])
    last_loss = float(metrics[-1].split(",")[1])
    assert last_loss < first_loss
    assert s["test_acc"] > 0.5, s  # chance is 0.1
    assert (tmp_path / "curve.png").exists()
    assert json.loads((tmp_path / "summary.json").read_text())["epochs_done"] == 3


@pytest.mark.parametrize("recipe", ["binarynet", "fixed4", "lns-kahan", "mp-fp8-hopper",
                                    "mp-fp8-delayed"])
def test_resume_is_bit_exact(recipe, tmp_path):
    full = train(small(recipe, tmp_path / "full"), progress=False)
    train(small(recipe, tmp_path / "cut"), progress=False, max_epochs=1)
    resumed = train(small(recipe, tmp_path / "cut"), progress=False)
    a = torch.load(tmp_path / "full" / "checkpoint.pt", weights_only=False)
    b = torch.load(tmp_path / "cut" / "checkpoint.pt", weights_only=False)
    assert full["test_acc"] == resumed["test_acc"]
    for k, v in a["model"].items():
        assert torch.equal(v, b["model"][k]), k
    assert [m["train_loss"] for m in a["metrics"]] == [m["train_loss"] for m in b["metrics"]]


def test_lns_everywhere_runs_in_the_emulator(tmp_path, monkeypatch):
    cfg = small("lns-everywhere", tmp_path).resolved(load_digits())
    model, opt, after = build(cfg, load_digits())
    counts = {"matmul": 0, "add": 0}
    real_matmul, real_add = lowbit.emulators.matmul, lowbit.emulators.add

    def matmul(*a, **k):
        counts["matmul"] += 1
        return real_matmul(*a, **k)

    def add(*a, **k):
        counts["add"] += 1
        return real_add(*a, **k)

    monkeypatch.setattr(lowbit.emulators, "matmul", matmul)
    monkeypatch.setattr(lowbit.emulators, "add", add)
    d = load_digits()
    x, y = torch.from_numpy(d.x_train[:50]), torch.from_numpy(d.y_train[:50])
    opt.zero_grad()
    torch.nn.functional.cross_entropy(model(x), y).backward()
    opt.step()
    # 3 layers: forward + grad_w each, grad_x for the 2 layers whose input needs it
    assert counts["matmul"] == 3 + 3 + 2
    # bias additions in the forward (3) and one update per parameter (6)
    assert counts["add"] == 3 + 6
    for m in model.modules():
        if isinstance(m, torch.nn.Linear):
            w = m.weight.detach()
            assert torch.equal(to_carrier(from_carrier(w, cfg_fmt(cfg))), w)  # LNS values


def cfg_fmt(cfg):
    from lowbit.numerics import parse_format

    return parse_format(cfg.lns)


def test_wrong_checkpoint_is_refused(tmp_path):
    train(small("float", tmp_path, epochs=1), progress=False)
    with pytest.raises(ValueError, match="belongs to another run"):
        train(small("ternary", tmp_path, epochs=1), progress=False)


@pytest.mark.parametrize("recipe", ["float", "binarynet", "fixed4"])
def test_small_cnn_learns(recipe, tmp_path):
    cfg = TrainConfig(recipe=recipe, data="digits", arch="cnn", epochs=2, batch=50, out=str(tmp_path))
    s = train(cfg, progress=False)
    assert s["test_acc"] > 0.3, s
    model, _, _ = build(cfg.resolved(load_digits()), load_digits())
    kinds = {type(m).__name__ for m in model.modules()}
    assert ("EmulatedConv2d" in kinds) == (recipe != "float")


def test_lns_matmul_parts_grid_changes_one_thing_of_lns_matmul(tmp_path):
    """Each variant's spec is lns-matmul's with one part changed, and the
    unchanged spec as a recipe trains bit for bit as lns-matmul does."""
    from dataclasses import fields

    from lowbit.integrations.programs.experiments import grid
    from lowbit.integrations.torch import EmulationSpec

    def asdict(spec):
        return {f.name: getattr(spec, f.name) for f in fields(spec)}

    base = asdict(EmulationSpec.everywhere("lns5.10"))
    changed = {}
    scaled = []
    for cfg in grid("lns-matmul-parts", "digits", 1, 1, tmp_path):
        if cfg.loss_scale not in ("", "none"):  # the loss-scaled rows: lns-matmul, scaled
            scaled.append((cfg.recipe, cfg.loss_scale))
            continue
        spec = asdict(EmulationSpec.parse(cfg.recipe))
        changed[cfg.recipe] = {k: v for k, v in spec.items() if v != base[k]}
        assert cfg.resolved(load_digits()).hidden == (128, 128)  # the LNS rows' network
    assert changed == {"lns5.10,acc=lns5.16": {"accumulator": LNS(5, 16)},
                       "w=lns5.10,a=lns5.10": {"grad_input": None, "grad_weight": None},
                       "w=lns5.10,a=lns5.10,gi=lns5.10": {"grad_weight": None},
                       "w=lns5.10,a=lns5.10,gi=lns6.10,gw=lns6.10": {"grad_input": LNS(6, 10),
                                                                     "grad_weight": LNS(6, 10)}}
    assert scaled == [("lns-matmul", "dynamic")]
    a = train(small("lns-matmul", tmp_path / "a", epochs=1), progress=False)
    b = train(small("lns5.10", tmp_path / "b", epochs=1), progress=False)
    assert a["test_acc"] == b["test_acc"]
    assert (tmp_path / "a" / "metrics.csv").read_text().split("\n")[1].split(",")[:3] == \
        (tmp_path / "b" / "metrics.csv").read_text().split("\n")[1].split(",")[:3]
