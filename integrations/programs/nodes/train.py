"""``lowbit train nodes``: a network of communicating nodes, and its results.

Writes ``metrics.csv`` (every ``eval_every`` rounds: the nodes' mean test
accuracy, the collective decision's, and the bytes sent so far), ``curve.png``,
``summary.json`` and ``checkpoint.pt`` (every node's state and the messages in
flight, as tensors, numbers and wire bytes: it loads with ``torch.load(weights_only=True)``,
never as arbitrary pickled objects) into ``out``; a rerun resumes from the checkpoint.
"""

from __future__ import annotations

import time
from dataclasses import asdict
from pathlib import Path

import torch

from lowbit.integrations.data import load_dataset
from lowbit.integrations.programs.nodes.collective import accuracies
from lowbit.integrations.programs.nodes.node import NodeConfig
from lowbit.integrations.programs.nodes.simulated import build_nodes, node_probs, run_rounds
from lowbit.integrations.programs.nodes.wire import decode, encode
from lowbit.integrations.runs import load_checkpoint, save_checkpoint, torch_load, write_run


def evaluate(nodes, ds, alive=None) -> dict:
    """Average accuracy over the nodes (those in ``alive``, default all) and the entropy-
    weighted collective decision's accuracy on the test set."""
    probs = node_probs(nodes, ds.x_test)
    avg, coll = accuracies(probs, ds.y_test, alive)
    return {"avg_acc": avg, "coll_acc": coll}


def totals(nodes) -> dict:
    """Every counter of the nodes (rounds, broadcasts, bytes sent, minibatches drawn from
    inbox or shard, ...) summed over the nodes."""
    keys = nodes[0].counts.keys()
    return {k: int(sum(n.counts[k] for n in nodes)) for k in keys}


def train(cfg: NodeConfig, progress: bool = True, runtime: str = "simulated",
          timeout: float = 60.0, kill: dict[int, int] | None = None,
          restart: bool = False, port: int | None = None) -> dict:
    """Run the network and write its results into ``cfg.out``; returns the summary.

    ``runtime="simulated"``: all nodes in this process, resuming from
    ``checkpoint.pt``. ``runtime="gloo"``: one process per node
    (:func:`lowbit.integrations.programs.nodes.distributed.run_distributed`, with its fault
    injection ``kill`` / ``restart`` and message ``timeout``), from scratch; started by
    ``torchrun`` (RANK and WORLD_SIZE set), this process is one node
    (:func:`~lowbit.integrations.programs.nodes.distributed.run_launched`) and only rank 0
    returns the summary (the others return None).
    """
    if runtime == "gloo":
        from lowbit.integrations.programs.nodes.distributed import (
            launched_rank,
            run_distributed,
            run_launched,
        )

        if launched_rank() is not None:  # one node of a torchrun launch
            if restart:
                raise ValueError("restart is the built-in launcher's; under torchrun use "
                                 "its --max-restarts")
            metrics = run_launched(cfg, timeout=timeout, kill=kill)
            return summary(cfg, metrics) if metrics is not None else None

        metrics = run_distributed(cfg, timeout=timeout, kill=kill, restart=restart, port=port)
        write_outputs(cfg, metrics)
        return summary(cfg, metrics)
    if runtime != "simulated":
        raise ValueError(f"runtime must be 'simulated' or 'gloo', got {runtime!r}")
    from tqdm import tqdm

    cfg.check()
    ds = load_dataset(cfg.data, cfg.data_dir)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    nodes = build_nodes(cfg, ds)
    ckpt = out / "checkpoint.pt"
    start, sent, metrics, seconds = 0, [], [], 0.0
    st = load_checkpoint(ckpt, torch_load)
    if st is not None:
        if st["config"] != cfg.key():
            raise ValueError(f"{ckpt} belongs to another run; use another --out")
        for node, ns in zip(nodes, st["nodes"]):
            node.load(ns)
        start, metrics, seconds = st["round"], st["metrics"], st["seconds"]
        sent = [decode(raw, nodes[0].expect(s, r)) for s, r, raw in st["sent"]]
    bar = tqdm(total=cfg.rounds, initial=start, disable=not progress, unit="round",
               desc=f"{cfg.nodes} nodes, share {cfg.share}")
    t0 = time.perf_counter()

    def on_round(r, last_sent):
        nonlocal seconds, t0
        bar.update(1)
        if r % cfg.eval_every == 0 or r == cfg.rounds:
            seconds += time.perf_counter() - t0
            row = {"round": r, **evaluate(nodes, ds), **totals(nodes), "seconds": seconds,
                   "alive": cfg.nodes}
            metrics.append(row)
            bar.set_postfix(avg=f"{row['avg_acc']:.3f}", coll=f"{row['coll_acc']:.3f}")
            state = {"config": cfg.key(), "nodes": [n.state() for n in nodes], "round": r,
                     "sent": [(m.sender, m.round, encode(m)) for m in last_sent],
                     "metrics": metrics, "seconds": seconds}
            save_checkpoint(ckpt, lambda fh: torch.save(state, fh))
            _write(cfg, metrics, out)
            t0 = time.perf_counter()

    if metrics and start >= cfg.rounds:  # resumed after the last checkpoint: outputs may lag
        _write(cfg, metrics, out)
    run_rounds(nodes, start, cfg.rounds, sent, on_round)
    bar.close()
    return summary(cfg, metrics)


def summary(cfg: NodeConfig, metrics: list[dict]) -> dict:
    """The run's summary from its last evaluation: rounds done, accuracies, bytes sent, wall
    time, nodes alive, and whether all rounds were done."""
    last = metrics[-1] if metrics else {}
    return {"config": asdict(cfg), "done": last.get("round", 0) == cfg.rounds,
            "rounds_done": last.get("round", 0),
            "avg_acc": last.get("avg_acc"), "coll_acc": last.get("coll_acc"),
            "bytes_payload": last.get("bytes_payload"), "bytes_images": last.get("bytes_images"),
            "seconds": last.get("seconds"), "alive": last.get("alive", cfg.nodes)}


def write_outputs(cfg: NodeConfig, metrics: list[dict]) -> None:
    """metrics.csv, summary.json and curve.png of a run into ``cfg.out`` (nothing before the
    first evaluation)."""
    if metrics:
        _write(cfg, metrics, Path(cfg.out))


def _write(cfg: NodeConfig, metrics: list[dict], out: Path) -> None:
    write_run(out, metrics, summary(cfg, metrics), "round",
              {"mean of nodes": "avg_acc", "collective decision": "coll_acc"},
              f"{cfg.nodes} nodes, share {cfg.share} ({cfg.data})", "training steps per node",
              "test accuracy")
