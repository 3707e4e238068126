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
    for k in range(6):  # the reference splitmix64 in Python ints, element by element:
        words = [random_u64(key, 2 * k + m) for m in range(2)]  # low half, then high half
        u = [(w >> s & 0xFFFFFFFF) * 2.0**-32 for w in words for s in (0, 32)]
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


# --- integer ES: weights are Fixed codes that move by whole codes ---------------------------

def test_sign_perturbation_is_the_counter_rng_bits_by_hand():
    from lowbit.integrations.programs.nodes.es import ES_SIGN_STREAM, sign_perturbation

    eps = sign_perturbation(5, 7, 3, 130)
    key = random_u64(5 ^ ES_SIGN_STREAM, (7 << 24) | 3)
    expect = [1 - 2 * (random_u64(key, k // 64) >> (k % 64) & 1) for k in range(130)]
    assert eps.dtype == np.int8 and eps.tolist() == expect
    assert abs(float(sign_perturbation(1, 2, 3, 100_000).mean())) < 0.02


def test_integer_ranks_by_hand():
    from lowbit.integrations.programs.nodes.es import integer_ranks

    assert integer_ranks(np.array([[3.0, -1.0], [3.0, 0.5]])).tolist() == [[2, 0], [3, 1]]


def _int_cfg(tmp_path, **kw):
    return _cfg(tmp_path, es_format="fixed8.5", es_sigma=0.03, **kw)


def test_integer_es_moves_whole_codes_and_matches_a_hand_update(ds, tmp_path):
    from lowbit.integrations.programs.nodes.es import (
        integer_ranks,
        sign_perturbation,
    )

    nodes = build_nodes(_int_cfg(tmp_path, es_z=0.5), ds)
    n0 = nodes[0]
    assert n0.sigma_codes == 1  # 0.03 * 32 = 0.96 -> 1 code
    for r in range(4):
        before = n0.flat().double() * 32
        assert (before == before.round()).all() and before.abs().max() <= 128
        results = [t for n in nodes for t in n.evaluate_pairs(r)]
        # the step by hand, in Python ints: G_k = sum_j (R+_j - R-_j) eps_jk
        f = np.array([[a, b] for _, a, b in sorted(results)], dtype=np.float32)
        rk = integer_ranks(f)
        w = [int(a - b) for a, b in rk]
        size = before.numel()
        eps = [sign_perturbation(0, r, j, size).astype(np.int64) for j in range(7)]
        g = sum(w[j] * eps[j] for j in range(7))
        var = sum(x * x for x in w)
        move = np.where(g * g * 4 >= var, np.sign(g), 0)  # z = 0.5: G^2 >= V / 4
        expect = np.clip(before.numpy() + move, -128, 127)
        for n in nodes:
            n.update(r, results)
        after = n0.flat().double().numpy() * 32
        assert (after == expect).all(), r
        assert len({params_hash(n.model) for n in nodes}) == 1
    assert n0.counts["code_moves"] > 0


def test_integer_es_learns_on_digits(tmp_path):
    s = train(_int_cfg(tmp_path, es_pairs=30, rounds=150, eval_every=150), progress=False)
    assert s["avg_acc"] > 0.4, s  # chance is 0.1


@pytest.mark.parametrize("fmt, sigma, match", [
    ("lns3.3", 0.03, "signed Fixed"), ("ufixed8.5", 0.03, "signed Fixed"),
    ("fixed32.16", 0.03, "at most 24"), ("fixed8.2", 0.01, "below half a code"),
])
def test_integer_es_refuses_bad_formats(fmt, sigma, match):
    with pytest.raises(ValueError, match=match):
        NodeConfig(share="es", es_format=fmt, es_sigma=sigma).check()


@pytest.mark.parametrize("es_format, sigma", [("float", 0.02), ("fixed8.5", 0.03)])
def test_gloo_replicas_compute_the_simulated_es(ds, tmp_path, es_format, sigma):
    """Three processes all-gathering (pair, f+, f-) end bit-identical to each other and to
    the simulated replicas."""
    import torch

    from lowbit.integrations.runs import torch_load

    kw = {"es_format": es_format, "es_sigma": sigma, "rounds": 6, "eval_every": 3}
    sim = build_nodes(_cfg(tmp_path / "sim", **kw), ds)
    run_rounds(sim, 0, 6, [])
    train(_cfg(tmp_path / "gloo", **kw), runtime="gloo", timeout=60)
    for k in range(3):
        with open(tmp_path / "gloo" / f"node{k}" / "checkpoint.pt", "rb") as fh:
            got = torch_load(fh)["node"]["model"]
        for name, v in sim[k].model.state_dict().items():
            assert torch.equal(got[name], v), (k, name)
