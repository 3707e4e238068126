"""Asynchronous SGD with a parameter server: simulated, with no delays and mean steps it is
sync SGD bit for bit and the staleness it records follows from the configured delays; over
gloo, a server process and worker processes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lowbit.integrations.data import load_digits
from lowbit.integrations.programs.nodes.node import NodeConfig
from lowbit.integrations.programs.nodes.simulated import build_nodes, run_rounds
from lowbit.integrations.programs.nodes.train import train
from lowbit.integrations.runs import read_metrics


@pytest.fixture(scope="module")
def ds():
    return load_digits()


def _cfg(tmp_path, **kw):
    base = {"nodes": 3, "neighbours": 2, "hidden": 16, "rounds": 20, "eval_every": 10,
            "out": str(tmp_path)}
    return NodeConfig(**{**base, **kw})


def _flat(model):
    return torch.cat([p.detach().reshape(-1) for p in model.parameters()])


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_no_delay_mean_steps_are_sync_sgd_bit_for_bit(ds, tmp_path, optimizer):
    sync = build_nodes(_cfg(tmp_path, share="sync", optimizer=optimizer), ds)
    workers = build_nodes(_cfg(tmp_path, share="async", async_apply="mean",
                               optimizer=optimizer), ds)
    server = workers[0].server
    for t in range(12):  # after every tick
        run_rounds(sync, t, t + 1, [])
        run_rounds(workers, t, t + 1, [])
        assert torch.equal(_flat(sync[0].model), _flat(server.model)), t
    assert server.taus == [0] * 36 and server.version == 12


def test_each_push_is_a_step_and_staleness_counts_the_updates_between(ds, tmp_path):
    workers = build_nodes(_cfg(tmp_path, share="async"), ds)
    run_rounds(workers, 0, 5, [])
    # all fetch at the tick's start; worker i's push is applied after i others
    assert workers[0].server.taus == [0, 1, 2] * 5
    assert [w.counts["staleness_sum"] for w in workers] == [0, 5, 10]


def test_fetch_period_adds_staleness(ds, tmp_path):
    workers = build_nodes(_cfg(tmp_path, share="async", nodes=1, neighbours=0, n_fetch=4), ds)
    run_rounds(workers, 0, 8, [])
    # one worker: fetched at ticks 0 and 4, each tick's push applied at its end
    assert workers[0].server.taus == [0, 1, 2, 3, 0, 1, 2, 3]


def test_recorded_staleness_follows_the_delay_distribution(ds, tmp_path):
    # one worker pushing every tick, fetching every tick: tau = updates applied between its
    # fetch at tick t and the step of its push (arriving at t + d) = pushes of ticks
    # t - d .. t - 1 that arrived before it; compute that from the same seeded delays
    cfg = _cfg(tmp_path, share="async", nodes=1, neighbours=0, async_delay=3.0, rounds=200)
    workers = build_nodes(cfg, ds)
    run_rounds(workers, 0, 200, [])
    d = np.random.default_rng([cfg.seed, 0, 3]).poisson(3.0, 200)
    arrival = np.arange(200) + d
    order = sorted(range(200), key=lambda t: (arrival[t], t))
    applied = [t for t in order if arrival[t] <= 199]
    version_at_step = {t: k for k, t in enumerate(applied)}
    fetched_version = [sum(1 for s in applied if arrival[s] <= t - 1) for t in range(200)]
    expected = [version_at_step[t] - fetched_version[t] for t in applied]
    assert workers[0].server.taus == expected
    assert 1.0 < np.mean(expected) < 6.0


def test_staleness_scaled_rate(ds, tmp_path):
    w = build_nodes(_cfg(tmp_path, share="async", staleness_lr=True, lr=0.01,
                         optimizer="sgd"), ds)
    run_rounds(w, 0, 1, [])
    assert w[0].server.opt.param_groups[0]["lr"] == pytest.approx(0.01 / 2)  # last tau = 2


def test_async_learns_and_resumes(tmp_path):
    whole = train(_cfg(tmp_path / "a", share="async", async_delay=1.0, rounds=40,
                       eval_every=20, lr=3e-3), progress=False)
    train(_cfg(tmp_path / "b", share="async", async_delay=1.0, rounds=20, eval_every=20,
               lr=3e-3), progress=False)
    resumed = train(_cfg(tmp_path / "b", share="async", async_delay=1.0, rounds=40,
                         eval_every=20, lr=3e-3), progress=False)
    assert resumed["avg_acc"] == whole["avg_acc"] > 0.5


def test_gloo_refuses_simulated_delays(tmp_path):
    with pytest.raises(ValueError, match="what the processes produce"):
        train(_cfg(tmp_path, share="async", async_delay=2.0), runtime="gloo")


def test_gloo_one_worker_computes_the_simulated_server(ds, tmp_path):
    """One worker process and the server process: no concurrency, so every push is applied
    before the next fetch, as in the simulation with no delay: equal weights, staleness 0."""
    from lowbit.integrations.runs import torch_load

    kw = {"nodes": 1, "neighbours": 0, "share": "async", "rounds": 12, "eval_every": 6}
    sim = build_nodes(_cfg(tmp_path / "sim", **kw), ds)
    run_rounds(sim, 0, 12, [])
    s = train(_cfg(tmp_path / "gloo", **kw), runtime="gloo", timeout=60)
    with open(tmp_path / "gloo" / "node0" / "checkpoint.pt", "rb") as fh:
        got = torch_load(fh)["node"]["model"]  # the worker's copy, fetched at tick 11
    for name, v in sim[0].model.state_dict().items():
        assert torch.equal(got[name], v), name
    last = read_metrics(tmp_path / "gloo")[-1]
    assert last["updates"] == 12 and last["staleness_sum"] == 0


def test_gloo_workers_record_their_real_staleness(tmp_path):
    """Three worker processes race for one server: every push is applied (updates = pushes,
    reported at the last evaluation's fetch), the staleness is whatever happened (>= 0; at
    most the updates the others could make meanwhile), and the server's model learns."""
    s = train(_cfg(tmp_path, share="async", rounds=60, eval_every=30, lr=3e-3),
              runtime="gloo", timeout=60)
    last = read_metrics(tmp_path)[-1]
    assert last["updates"] == last["broadcasts"] == 3 * 60
    assert 0 <= last["staleness_sum"] <= 3 * 60 * 2 * 2
    assert s["avg_acc"] > 0.5, s
