"""Local SGD / model averaging in the nodes harness: H = 1 with plain SGD is sync SGD
(to rounding in float64), bytes fall by exactly H, and the gloo runtime agrees."""

from __future__ import annotations

import csv

import pytest
import torch

from lowbit.integrations.data import load_digits
from lowbit.integrations.programs.nodes.node import NodeConfig
from lowbit.integrations.programs.nodes.simulated import build_nodes, run_rounds
from lowbit.integrations.programs.nodes.train import train


def _cfg(tmp_path, **kw):
    base = {"nodes": 3, "neighbours": 2, "hidden": 16, "rounds": 20, "eval_every": 10,
            "optimizer": "sgd", "lr": 0.05, "out": str(tmp_path)}
    return NodeConfig(**{**base, **kw})


def _params(nodes):
    return [torch.cat([p.detach().reshape(-1) for p in n.model.parameters()]) for n in nodes]


@pytest.fixture(scope="module")
def ds():
    return load_digits()


def _run(ds, cfg, rounds):
    nodes = build_nodes(cfg, ds)
    run_rounds(nodes, 0, rounds, [])
    return nodes


def test_h1_with_plain_sgd_is_sync_sgd_in_float64(ds, tmp_path):
    kw = {"dtype": "float64", "message_format": "float64"}
    sync = _run(ds, _cfg(tmp_path, share="sync", **kw), 20)
    local = _run(ds, _cfg(tmp_path, share="localsgd", local_steps=1, **kw), 20)
    ref = _params(sync)[0]
    assert ref.dtype == torch.float64
    for p in _params(local):
        # mean_i(theta - lr g_i) vs theta - lr mean_i(g_i): the same to float64 rounding
        assert torch.allclose(p, ref, rtol=0, atol=1e-13)
    # and not the same replica: a real average was taken
    assert (_params(local)[0] == _params(local)[1]).all()


def test_h1_in_float32_differs_from_sync_only_by_rounding(ds, tmp_path):
    sync = _params(_run(ds, _cfg(tmp_path, share="sync"), 20))[0]
    local = _params(_run(ds, _cfg(tmp_path, share="localsgd"), 20))[0]
    diff = float((sync - local).abs().max())
    assert diff < 1e-5, diff  # float32 rounding of two different orders of operations


def test_local_steps_diverge_then_agree_at_each_average(ds, tmp_path):
    nodes = build_nodes(_cfg(tmp_path, share="localsgd", local_steps=4), ds)
    run_rounds(nodes, 0, 3, [])
    p = _params(nodes)
    assert not torch.equal(p[0], p[1])  # three local steps on different shards
    run_rounds(nodes, 3, 4, [])
    p = _params(nodes)
    assert torch.equal(p[0], p[1]) and torch.equal(p[1], p[2])


def _bytes(path):
    with open(path / "metrics.csv") as fh:
        return [int(r["bytes_payload"]) for r in csv.DictReader(fh)]


@pytest.mark.parametrize("h", [2, 5, 10])  # divisors of the evaluation period
def test_bytes_are_sync_bytes_over_h(tmp_path, h):
    train(_cfg(tmp_path / "sync", share="sync"), progress=False)
    train(_cfg(tmp_path / "local", share="localsgd", local_steps=h), progress=False)
    for s, loc in zip(_bytes(tmp_path / "sync"), _bytes(tmp_path / "local")):
        assert loc * h == s


def test_post_local_averages_every_step_first(ds, tmp_path):
    nodes = build_nodes(_cfg(tmp_path, share="localsgd", local_steps=8, local_from=5), ds)
    assert [nodes[0].averages_after(r) for r in range(16)] == \
        [True] * 5 + [False, False, True] + [False] * 7 + [True]


def test_averaging_in_a_fixed_format_puts_the_replicas_on_its_grid(ds, tmp_path):
    nodes = _run(ds, _cfg(tmp_path, share="localsgd", message_format="fixed16.12"), 1)
    p = _params(nodes)[0].double()
    # the mean of three values on the 2^-12 grid is on the 2^-12/3 grid
    assert torch.allclose(p * 3 * 2**12, torch.round(p * 3 * 2**12), atol=1e-3)


def test_gloo_runtime_matches_the_simulation(tmp_path):
    kw = {"dtype": "float64", "message_format": "float64", "share": "localsgd", "local_steps": 3}
    train(_cfg(tmp_path / "sim", **kw), progress=False)
    train(_cfg(tmp_path / "gloo", **kw), runtime="gloo", timeout=60)
    with open(tmp_path / "sim" / "metrics.csv") as a, open(tmp_path / "gloo" / "metrics.csv") as b:
        for x, y in zip(csv.DictReader(a), csv.DictReader(b)):
            assert x["bytes_payload"] == y["bytes_payload"]
            # gloo's all-reduce sums in its own order: float64 rounding, not the decision
            assert abs(float(x["avg_acc"]) - float(y["avg_acc"])) < 1e-9


def test_bad_h_is_refused(tmp_path):
    with pytest.raises(ValueError, match="local_steps"):
        _cfg(tmp_path, share="localsgd", local_steps=0).check()
