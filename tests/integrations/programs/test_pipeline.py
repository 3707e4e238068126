"""Model parallelism in the nodes harness: one micro-batch in float32 is single-process
training bit for bit; micro-batches and wire formats change only what they should."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from lowbit.integrations.data import load_digits
from lowbit.integrations.programs.nodes.node import NodeConfig, build_model
from lowbit.integrations.programs.nodes.simulated import build_nodes, run_rounds
from lowbit.integrations.programs.nodes.train import train


@pytest.fixture(scope="module")
def ds():
    return load_digits()


def _cfg(tmp_path, **kw):
    base = {"nodes": 3, "neighbours": 0, "hidden": 16, "share": "pipeline", "rounds": 10,
            "eval_every": 5, "out": str(tmp_path)}
    return NodeConfig(**{**base, **kw})


def _flat(model):
    return torch.cat([p.detach().reshape(-1) for p in model.parameters()])


def _single_process(cfg, ds, rounds):
    """The same model trained the plain way: one Adam, the same batches (one thread, as
    the harness runs)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _train_plain(cfg, ds, rounds)
    finally:
        torch.set_num_threads(threads)


def _train_plain(cfg, ds, rounds):
    model = build_model(cfg, ds, cfg.seed * 100_003)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    epoch, cursor = 0, 0
    order = np.random.default_rng([cfg.seed, 0, 2, epoch]).permutation(len(ds.y_train))
    for _ in range(rounds):
        if cursor + cfg.batch > len(order):
            epoch, cursor = epoch + 1, 0
            order = np.random.default_rng([cfg.seed, 0, 2, epoch]).permutation(len(ds.y_train))
        idx = order[cursor:cursor + cfg.batch]
        cursor += cfg.batch
        opt.zero_grad()
        F.cross_entropy(model(torch.from_numpy(ds.x_train[idx]))[0],
                        torch.from_numpy(ds.y_train[idx])).backward()
        opt.step()
    return model


@pytest.mark.parametrize("stages", [1, 2, 3])
def test_one_micro_batch_is_single_process_training(ds, tmp_path, stages):
    cfg = _cfg(tmp_path, nodes=stages)
    nodes = build_nodes(cfg, ds)
    run_rounds(nodes, 0, 60, [])  # past an epoch boundary of digits (1437 / 32 batches)
    assert torch.equal(_flat(nodes[0].pipe.model), _flat(_single_process(cfg, ds, 60)))


def test_micro_batches_agree_to_rounding(ds, tmp_path):
    one = build_nodes(_cfg(tmp_path, dtype="float64", message_format="float64"), ds)
    four = build_nodes(_cfg(tmp_path, dtype="float64", message_format="float64",
                            micro_batches=4), ds)
    run_rounds(one, 0, 10, [])
    run_rounds(four, 0, 10, [])
    a, b = _flat(one[0].pipe.model), _flat(four[0].pipe.model)
    assert not torch.equal(a, b) and torch.allclose(a, b, rtol=0, atol=1e-10)


def test_a_fixed_wire_rounds_the_activations(ds, tmp_path):
    nodes = build_nodes(_cfg(tmp_path, message_format="fixed8.4"), ds)
    seen = []
    stage1 = nodes[0].pipe.stages[1]
    stage1.register_forward_pre_hook(lambda m, args: seen.append(args[0].detach()))
    run_rounds(nodes, 0, 1, [])
    h = seen[0].double()
    assert torch.equal(h * 16, torch.round(h * 16)) and float(h.max()) <= 127 / 16


def test_bytes_are_activations_and_gradients(ds, tmp_path):
    s = train(_cfg(tmp_path, message_format="fixed8.4"), progress=False)
    # two boundaries of 16 values per example, 32 examples, 8 bits, forward and backward
    assert s["bytes_payload"] == 10 * 2 * 2 * 32 * 16


def test_a_separate_gradient_format_rounds_and_counts_only_the_gradients(ds, tmp_path):
    s = train(_cfg(tmp_path / "a", message_format="fixed8.4", grad_format="float32"),
              progress=False)
    # two boundaries of 16 values per example, 32 examples: 8 bits forward, 32 backward
    assert s["bytes_payload"] == 10 * 2 * 32 * 16 * (1 + 4)
    nodes = build_nodes(_cfg(tmp_path / "b", message_format="e4m3", grad_format="e5m2"), ds)
    seen = []
    nodes[0].pipe.stages[0].register_full_backward_hook(
        lambda mod, gin, gout: seen.append(gout[0].detach().clone()))
    run_rounds(nodes, 0, 1, [])
    g = seen[0].numpy().astype(np.float32)
    import ml_dtypes

    assert (g.astype(ml_dtypes.float8_e5m2).astype(np.float32) == g).all()  # on E5M2's grid
    assert not (g.astype(ml_dtypes.float8_e4m3fn).astype(np.float32) == g).all()


def test_more_stages_than_layers_is_refused(ds, tmp_path):
    with pytest.raises(ValueError, match="only 3 Linear layers"):
        build_nodes(_cfg(tmp_path, nodes=4), ds)


def test_pipeline_learns_and_resumes(tmp_path):
    whole = train(_cfg(tmp_path / "a", rounds=60, eval_every=30, micro_batches=4, lr=1e-2),
                  progress=False)
    train(_cfg(tmp_path / "b", rounds=30, eval_every=30, micro_batches=4, lr=1e-2),
          progress=False)
    resumed = train(_cfg(tmp_path / "b", rounds=60, eval_every=30, micro_batches=4, lr=1e-2),
                    progress=False)
    assert resumed["avg_acc"] == whole["avg_acc"] > 0.6


@pytest.mark.parametrize("fmt, grad_fmt", [("float32", ""), ("e4m3", "e5m2")])
def test_gloo_stage_processes_compute_the_simulated_pipeline(ds, tmp_path, fmt, grad_fmt):
    """Three stage processes exchanging activations and gradients with send/recv end with
    the simulated pipeline's weights bit for bit, and count the same bytes."""
    from lowbit.integrations.runs import torch_load

    kw = {"micro_batches": 4, "message_format": fmt, "grad_format": grad_fmt, "rounds": 6,
          "eval_every": 3}
    sim = build_nodes(_cfg(tmp_path / "sim", **kw), ds)
    run_rounds(sim, 0, 6, [])
    s = train(_cfg(tmp_path / "gloo", **kw), runtime="gloo", timeout=60)
    for k, stage in enumerate(sim[0].pipe.stages):
        with open(tmp_path / "gloo" / f"node{k}" / "checkpoint.pt", "rb") as fh:
            st = torch_load(fh)
        got = st["node"]["stage"]
        for name, v in stage.state_dict().items():
            assert torch.equal(got[name], v), (k, name)
        assert st["node"]["counts"]["bytes_payload"] == sim[k].counts["bytes_payload"]
    # evaluation goes through the stages too: the simulated model's accuracy
    probs = sim[0].predict_proba(ds.x_test)
    assert s["avg_acc"] == pytest.approx(float((probs.argmax(1) == ds.y_test).mean()), abs=1e-12)
