"""Evolution strategies over the nodes: perturbations regenerated identically, centred
ranks by hand, replicas bit-identical after every step, scalars-only bytes, learning."""

from __future__ import annotations

import numpy as np
import pytest

from lowbit.integrations.data import load_digits
from lowbit.integrations.programs.nodes.es import (
    centered_ranks,
    params_hash,
    perturbation,
)
from lowbit.integrations.programs.nodes.node import NodeConfig
from lowbit.integrations.programs.nodes.simulated import build_nodes, run_rounds
from lowbit.integrations.programs.nodes.train import train
from lowbit.numerics.rng import random_u64


def test_perturbation_is_the_counter_rng_by_hand():
    from lowbit.integrations.programs.nodes.es import ES_STREAM

    eps = perturbation(5, 7, 3, 6)
    key = random_u64(5 ^ ES_STREAM, (7 << 24) | 3)
    for k in range(6):  # the reference splitmix64 in Python ints, element by element
        u = [(random_u64(key, 4 * k + m) >> 11) * 2.0**-53 for m in range(4)]
        assert eps[k] == np.float32(((u[0] + u[1]) + (u[2] + u[3]) - 2.0) * np.sqrt(3.0))
    assert (perturbation(5, 7, 3, 6) == eps).all()
    assert not (perturbation(5, 7, 4, 6) == eps).any()


def test_perturbation_moments():
    e = perturbation(0, 0, 0, 200_000).astype(np.float64)
    assert abs(e.mean()) < 0.01 and abs(e.var() - 1.0) < 0.01 and np.abs(e).max() <= 2 * 3**0.5


def test_centered_ranks_by_hand():
    r = centered_ranks(np.array([[3.0, -1.0], [10.0, 0.5]]))
    assert (r == np.array([[2, 0], [3, 1]]) / 3 - 0.5).all()  # ranks 2 0 3 1 of 0..3


@pytest.fixture(scope="module")
def ds():
    return load_digits()


def _cfg(tmp_path, **kw):
    base = {"nodes": 3, "neighbours": 2, "hidden": 16, "share": "es", "es_pairs": 7,
            "rounds": 10, "eval_every": 5, "lr": 0.01, "out": str(tmp_path)}
    return NodeConfig(**{**base, **kw})


def test_replicas_stay_bit_identical_after_every_step(ds, tmp_path):
    nodes = build_nodes(_cfg(tmp_path), ds)
    before = params_hash(nodes[0].model)
    for r in range(6):
        run_rounds(nodes, r, r + 1, [])
        hashes = {params_hash(n.model) for n in nodes}
        assert len(hashes) == 1, r
    assert hashes != {before}
    # pairs dealt out round-robin: nodes evaluate 3, 2, 2 pairs (2 forward passes each)
    assert [n.counts["evals"] for n in nodes] == [6 * 6, 6 * 4, 6 * 4]
    # bytes: 12 per pair to each of the other 2 nodes
    assert sum(n.counts["bytes_payload"] for n in nodes) == 6 * 7 * 12 * 2


def test_es_learns_on_digits(tmp_path):
    s = train(_cfg(tmp_path, es_pairs=30, rounds=150, eval_every=150, lr=0.03), progress=False)
    assert s["avg_acc"] > 0.4, s  # chance is 0.1


def test_es_resumes_exactly(tmp_path):
    whole = train(_cfg(tmp_path / "a"), progress=False)
    train(_cfg(tmp_path / "b", rounds=5), progress=False)
    resumed = train(_cfg(tmp_path / "b"), progress=False)
    assert resumed["avg_acc"] == whole["avg_acc"]
