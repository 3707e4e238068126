"""Loss scaling: static and dynamic schedules, overflow detection (inf, and saturation of
formats that saturate), exact unscaling, and skipped steps in training."""

from __future__ import annotations

import math

import pytest
import torch

from lowbit.integrations.programs.qnn.train import TrainConfig, train
from lowbit.integrations.torch.loss_scaling import LossScaler, saturation_bound
from lowbit.numerics import parse_format


def _param(*values):
    p = torch.nn.Parameter(torch.zeros(len(values)))
    p.grad = torch.tensor(values, dtype=torch.float32)
    return p


def test_dynamic_schedule():
    s = LossScaler("dynamic", interval=3)
    assert s.scale == 2.0**16
    assert not s.unscale_and_check([_param(1.0, math.inf)])
    assert s.scale == 2.0**15 and s.skipped == 1
    for _ in range(3):
        p = _param(2.0**15, -(2.0**14))
        assert s.unscale_and_check([p])
        assert p.grad.tolist() == [1.0, -0.5]  # divided exactly
    assert s.scale == 2.0**16 and s.clean == 0  # grew after 3 clean steps
    assert not s.unscale_and_check([_param(math.nan)])
    assert s.state_dict() == {"scale": 2.0**15, "clean": 0, "skipped": 2}


def test_static_and_none():
    s = LossScaler.parse("1024")
    assert s.mode == "static" and s.scale_loss(torch.tensor(1.0)).item() == 1024
    assert not s.unscale_and_check([_param(math.inf)]) and s.scale == 1024
    n = LossScaler.parse("none")
    p = _param(3.0, math.inf)
    assert n.unscale_and_check([p]) and p.grad[0].item() == 3.0
    with pytest.raises(ValueError, match="power of two"):
        LossScaler.parse("1000")
    with pytest.raises(ValueError, match="none, dynamic or a power of two"):
        LossScaler.parse("auto")


def test_saturating_gradient_formats_signal_overflow():
    """LNS and Fixed gradients saturate instead of becoming inf: a gradient at the format's
    largest magnitude counts as an overflow."""
    assert saturation_bound(parse_format("fp16")) is None
    assert saturation_bound(parse_format("e4m3")) == 448
    assert saturation_bound(parse_format("fixed8.4")) == 8.0
    lns = parse_format("lns5.10")
    s = LossScaler("dynamic", grad_format=lns)
    assert not s.unscale_and_check([_param(saturation_bound(lns))])
    assert s.unscale_and_check([_param(1.0)])


def test_training_skips_overflowing_steps_and_resumes_with_the_scale(tmp_path):
    """A static scale of 2^30 overflows fp16 gradients at every step: every step is skipped
    and the weights do not move; a dynamic run resumed from epoch 1 ends as an
    uninterrupted one, its scale included."""
    over = train(TrainConfig(recipe="mp-fp16", data="digits", hidden=(16,), epochs=1,
                             loss_scale=str(2**30), out=str(tmp_path / "over")), progress=False)
    ck = torch.load(tmp_path / "over" / "checkpoint.pt", weights_only=False)
    assert ck["scaler"]["skipped"] == math.ceil(1347 / 100)
    assert over["test_acc"] < 0.3  # untrained
    cfg = dict(recipe="mp-fp16", data="digits", hidden=(16,), epochs=2)
    full = train(TrainConfig(**cfg, out=str(tmp_path / "full")), progress=False)
    train(TrainConfig(**cfg, out=str(tmp_path / "cut")), progress=False, max_epochs=1)
    resumed = train(TrainConfig(**cfg, out=str(tmp_path / "cut")), progress=False)
    a = torch.load(tmp_path / "full" / "checkpoint.pt", weights_only=False)
    b = torch.load(tmp_path / "cut" / "checkpoint.pt", weights_only=False)
    assert full["test_acc"] == resumed["test_acc"] and a["scaler"] == b["scaler"]
    for k, v in a["model"].items():
        assert torch.equal(v, b["model"][k]), k
