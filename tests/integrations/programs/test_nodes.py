"""Communicating nodes: the protocol's pieces, the collective decision, the
data-parallel baselines, and the two runtimes (simulated and gloo processes)."""

from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import lowbit.emulators as E
from lowbit.integrations.data import load_digits
from lowbit.integrations.programs.nodes.collective import accuracies, collective, weights
from lowbit.integrations.programs.nodes.node import Node, NodeConfig, value_bits
from lowbit.integrations.programs.nodes.protocol import (
    Message,
    message_bytes,
    ring_neighbours,
    shards,
)
from lowbit.integrations.programs.nodes.sync import qsgd_decode, qsgd_encode
from lowbit.integrations.programs.nodes.train import train
from lowbit.numerics import parse_format


@pytest.fixture(scope="module")
def ds():
    return load_digits()


# --- shards and neighbourhoods ---------------------------------------------------

@settings(max_examples=50, deadline=None)
@given(n=st.integers(1, 500), nodes=st.integers(1, 40), seed=st.integers(0, 10))
def test_shards_are_disjoint_and_cover(n, nodes, seed):
    parts = shards(n, nodes, seed)
    assert len(parts) == nodes
    joined = np.concatenate(parts)
    assert np.array_equal(np.sort(joined), np.arange(n))  # each index exactly once
    sizes = [len(p) for p in parts]
    assert max(sizes) - min(sizes) <= 1


def test_shards_depend_on_the_seed():
    assert not np.array_equal(shards(100, 4, 0)[0], shards(100, 4, 1)[0])


@pytest.mark.parametrize("n,k,node,expected", [
    (5, 2, 0, [1, 4]), (5, 2, 2, [1, 3]), (6, 3, 0, [1, 2, 5]), (6, 4, 3, [1, 2, 4, 5]),
    (10, 9, 4, [0, 1, 2, 3, 5, 6, 7, 8, 9]), (4, 0, 1, []), (2, 1, 1, [0]),
])
def test_ring_neighbours_by_hand(n, k, node, expected):
    assert ring_neighbours(node, n, k) == expected


@pytest.mark.parametrize("n", [2, 3, 7, 10, 20])
def test_ring_neighbours_are_the_nearest(n):
    for k in range(n):
        for i in range(n):
            nb = ring_neighbours(i, n, k)
            assert len(nb) == k and i not in nb
            dist = [min((j - i) % n, (i - j) % n) for j in nb]
            assert max(dist, default=0) <= math.ceil(k / 2)
            if k % 2 == 0:  # even k: the relation is symmetric
                assert all(i in ring_neighbours(j, n, k) for j in nb)


def test_ring_neighbours_reject_bad_k():
    with pytest.raises(ValueError, match="neighbours"):
        ring_neighbours(0, 5, 5)


# --- messages ------------------------------------------------------------------

def test_message_bytes_by_hand():
    img = np.zeros((32, 64), np.uint8)
    lab = Message(0, 0, "labels", img, labels=np.zeros(32, np.int64))
    assert message_bytes(lab, 10, 32) == {"images": 2048, "payload": 16}  # 32 x 4 bits
    lg = Message(0, 0, "logits", img, values=np.zeros((32, 10)))
    assert message_bytes(lg, 10, 8) == {"images": 2048, "payload": 320}
    assert message_bytes(lg, 10, 32)["payload"] == 1280
    assert value_bits("fixed8.4") == 8 and value_bits("lns4.2") == 8
    with pytest.raises(ValueError):
        value_bits("binary")


def test_pixels_travel_exactly(ds):
    assert np.array_equal(ds.pixels(ds.pixel_codes(ds.x_train)), ds.x_train)


# --- the node protocol -----------------------------------------------------------

def _node(ds, **kw) -> Node:
    cfg = NodeConfig(**{"nodes": 3, "neighbours": 2, "hidden": 16, "batch": 8, **kw})
    return Node(0, cfg, ds, shards(len(ds.y_train), cfg.nodes, cfg.seed)[0])


def _label_msg(ds, sender=1, n=8, start=0):
    idx = np.arange(start, start + n)
    return Message(sender, 0, "labels", ds.pixel_codes(ds.x_train[idx]), labels=ds.y_train[idx])


@pytest.mark.parametrize("q,p", [(0.5, 0.25), (0.2, 0.9), (1.0, 0.0)])
def test_decisions_have_the_configured_frequencies(ds, q, p):
    node = _node(ds, consume_p=q, broadcast_p=p)
    draws = np.array([node.draw() for _ in range(20000)])
    for freq, prob in zip(draws.mean(0), (q, p)):
        sd = math.sqrt(prob * (1 - prob) / len(draws))
        assert abs(freq - prob) <= 5 * sd + 1e-12


def test_default_broadcast_keeps_the_inbox_stable():
    cfg = NodeConfig(nodes=10, neighbours=9, consume_p=0.5)
    assert cfg.p_broadcast == pytest.approx(0.5 / 9)  # arrivals K * P = consumption Q
    assert NodeConfig(share="none").p_broadcast == 0.0


def test_consume_all_takes_the_inbox_and_falls_back_to_the_shard(ds):
    node = _node(ds, consume_p=1.0, broadcast_p=0.0)
    node.deliver([_label_msg(ds), _label_msg(ds, sender=2)])
    for r in range(4):
        node.round(r)
    assert node.counts["from_inbox"] == 2 and node.counts["from_shard"] == 2
    assert not node.inbox


def test_consume_none_never_reads_the_inbox(ds):
    node = _node(ds, consume_p=0.0, broadcast_p=0.0)
    node.deliver([_label_msg(ds)])
    for r in range(5):
        node.round(r)
    assert node.counts["from_inbox"] == 0 and len(node.inbox) == 1


def test_inbox_drops_the_oldest_beyond_its_capacity(ds):
    node = _node(ds, inbox_cap=2)
    msgs = [_label_msg(ds, sender=s) for s in (1, 2, 1)]
    node.deliver(msgs)
    assert [m.sender for m in node.inbox] == [2, 1] and node.counts["dropped"] == 1


def test_received_labels_are_rebroadcast(ds):
    node = _node(ds, consume_p=1.0, broadcast_p=1.0)
    got = _label_msg(ds, start=100)
    node.deliver([got])
    out = node.round(7)
    assert out.sender == 0 and out.round == 7 and out.kind == "labels"
    assert np.array_equal(out.images, got.images) and np.array_equal(out.labels, got.labels)
    assert node.counts["bytes_images"] == 2 * got.images.size  # to both neighbours


def test_logits_travel_in_the_message_format(ds):
    node = _node(ds, share="logits", broadcast_p=1.0, consume_p=0.0, message_format="fixed8.4")
    out = node.round(0)
    fmt = parse_format("fixed8.4")
    x = torch.from_numpy(ds.pixels(out.images))
    node.model.eval()
    assert np.array_equal(out.values, E.cast(out.values, fmt).to_float())  # on the grid
    assert out.values.shape == (8, ds.n_classes) and np.all(np.abs(out.values) <= 8)
    assert node.counts["bytes_payload"] == 2 * 8 * ds.n_classes  # 8 bits, 2 neighbours
    assert x.shape == (8, ds.n_features)


def test_bad_configs_are_refused():
    for kw in ({"share": "gossip"}, {"consume_p": 1.5}, {"temperature": 0},
               {"neighbours": 10}, {"model": "rnn"}, {"message_format": "binary"},
               {"qsgd_levels": 0}, {"batch": 0}):
        with pytest.raises(ValueError):
            NodeConfig(**kw).check()


# --- the collective decision -------------------------------------------------------

def test_collective_weighting_by_hand():
    a, b = np.array([1.0, 0.0]), np.array([0.8, 0.2])
    h_b = -(0.8 * math.log(0.8) + 0.2 * math.log(0.2))
    wa, wb = math.log(2), math.log(2) - h_b  # log C - H
    expected = (wa * a + wb * b) / (wa + wb)
    probs = np.array([[a], [b]])
    assert np.allclose(weights(probs)[:, 0], [wa, wb])
    assert np.allclose(collective(probs)[0], expected)
    # a uniform node has weight 0 and does not move the decision
    u = np.array([0.5, 0.5])
    assert np.allclose(collective(np.array([[a], [b], [u]]))[0], expected)
    # all uniform: the plain mean; dead nodes are left out
    assert np.allclose(collective(np.array([[u], [u]]))[0], u)
    assert np.allclose(collective(probs, alive=[False, True])[0], b)
    with pytest.raises(ValueError, match="alive"):
        collective(probs, alive=[False, False])


def test_collective_beats_a_confident_minority():
    # three nodes unsure but leaning to class 1, one confident node says class 0
    probs = np.array([[[0.3, 0.7]]] * 3 + [[[0.99, 0.01]]])
    assert probs.mean(0).argmax() == 1 and collective(probs).argmax() == 0
    avg, coll = accuracies(probs, np.array([0]))
    assert avg == pytest.approx(1 / 4) and coll == 1.0


# --- QSGD ------------------------------------------------------------------------

def test_qsgd_is_unbiased_and_on_its_levels():
    g = torch.tensor([0.3, -1.2, 0.0, 2.5, -0.01])
    gen = torch.Generator().manual_seed(0)
    dec = []
    for _ in range(4000):
        norm, codes = qsgd_encode(g, 4, gen)
        assert codes.dtype == torch.int8 and int(codes.abs().max()) <= 4
        assert torch.all(torch.sign(codes) * torch.sign(g) >= 0)
        dec.append(qsgd_decode(norm, codes, 4))
    mean = torch.stack(dec).mean(0)
    sd = float(g.norm()) / 4 / math.sqrt(4000)  # one level, Bernoulli: sd <= step / 2
    assert torch.all((mean - g).abs() <= 5 * sd)
    norm, codes = qsgd_encode(torch.zeros(3), 4, gen)
    assert float(norm) == 0 and not codes.any()
    with pytest.raises(ValueError):
        qsgd_encode(g, 128, gen)


# --- whole runs -------------------------------------------------------------------

def _rows(path):
    with open(path / "metrics.csv") as fh:
        return list(csv.DictReader(fh))


def _tiny(out, **kw) -> NodeConfig:
    base = {"nodes": 3, "neighbours": 2, "share": "logits", "message_format": "fixed8.4",
            "hidden": 32, "rounds": 30, "eval_every": 15, "consume_p": 0.5,
            "broadcast_p": 0.5, "out": str(out)}
    return NodeConfig(**{**base, **kw})


def test_simulated_run_resumes_bit_exactly(tmp_path):
    whole = train(_tiny(tmp_path / "a"), progress=False)
    train(_tiny(tmp_path / "b", rounds=15), progress=False)
    resumed = train(_tiny(tmp_path / "b"), progress=False)
    assert resumed["avg_acc"] == whole["avg_acc"] and resumed["coll_acc"] == whole["coll_acc"]
    assert resumed["bytes_payload"] == whole["bytes_payload"] > 0


def test_sharing_and_baselines_learn(tmp_path):
    for share in ("labels", "sync", "qsgd"):  # 60 steps: far above chance (0.1)
        s = train(_tiny(tmp_path / share, share=share, rounds=60, eval_every=60, lr=3e-3),
                  progress=False)
        assert s["coll_acc"] > 0.6, share


@pytest.mark.parametrize("share", ["logits", "qsgd"])
def test_gloo_processes_match_the_simulation(tmp_path, share):
    sim = train(_tiny(tmp_path / "sim", share=share), progress=False)
    dist = train(_tiny(tmp_path / "gloo", share=share), runtime="gloo", timeout=60)
    cols = ("avg_acc", "coll_acc", "bytes_payload", "bytes_images", "from_inbox", "broadcasts")
    for a, b in zip(_rows(tmp_path / "sim"), _rows(tmp_path / "gloo")):
        assert {k: a[k] for k in cols} == {k: b[k] for k in cols}
    assert sim["coll_acc"] == dist["coll_acc"]


def test_a_killed_node_leaves_the_others_finishing(tmp_path):
    cfg = _tiny(tmp_path, share="labels", rounds=30, eval_every=10)
    s = train(cfg, runtime="gloo", timeout=5, kill={1: 12})
    rows = _rows(tmp_path)
    assert [int(r["alive"]) for r in rows] == [3, 2, 2]
    assert s["rounds_done"] == 30 and 0.0 <= s["coll_acc"] <= 1.0
    for i in (0, 2):
        counts = json.loads((tmp_path / f"node{i}" / "counts_r30.json").read_text())
        assert counts["dead_neighbours"] == [1] and counts["rounds"] == 30


def test_a_restarted_node_resumes_from_its_checkpoint(tmp_path):
    cfg = _tiny(tmp_path, share="labels", rounds=30, eval_every=10)
    train(cfg, runtime="gloo", timeout=5, kill={1: 12}, restart=True)
    rows = _rows(tmp_path)
    assert int(rows[-1]["alive"]) == 3
    counts = json.loads((tmp_path / "node1" / "counts_r30.json").read_text())
    # it trained rounds 0..11, crashed, came back from its round-10 checkpoint
    # (counters included) and replayed rounds 10..29
    assert counts["restarted"] and counts["rounds"] == 30
    assert not json.loads((tmp_path / "node1" / "counts_r10.json").read_text())["restarted"]


def test_cli_runs_nodes(tmp_path, capsys):
    from lowbit.integrations.cli import main

    assert main(["train", "nodes", "--nodes", "2", "--rounds", "10", "--eval-every", "5",
                 "--hidden", "16", "--out", str(tmp_path), "--quiet"]) == 0
    assert "collective decision" in capsys.readouterr().out
    assert json.loads((tmp_path / "summary.json").read_text())["done"]
    assert (tmp_path / "curve.png").stat().st_size > 0
    assert main(["train", "nodes", "--kill", "1:5"]) == 2  # --kill needs --runtime gloo
    assert "needs --runtime gloo" in capsys.readouterr().err


def test_node_tables_leave_out_runs_still_training(tmp_path):
    from lowbit.integrations.programs.nodes.grid import _runs

    for seed, done in ((0, True), (1, False)):
        d = tmp_path / "nodes" / "fashion-mnist" / "10-labels" / f"seed{seed}"
        d.mkdir(parents=True)
        (d / "summary.json").write_text(json.dumps({"done": done, "avg_acc": 0.5 + seed}))
        (d / "metrics.csv").write_text("round,avg_acc\n10,0.5\n")
    runs = _runs(tmp_path, "fashion-mnist", "nodes")
    assert [s["avg_acc"] for s, _ in runs["10-labels"]] == [0.5]
