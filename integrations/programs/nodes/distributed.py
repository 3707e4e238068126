"""The distributed runtime: one operating-system process per node, on loopback.

The launcher starts a ``torch.distributed.TCPStore`` server and one process per
node (``torch.multiprocessing``); each node joins a gloo process group (used for a
start barrier and by the data-parallel baselines) and exchanges its messages
through the store: in round r it posts its message (or "nothing") under
``m/r/i`` and, before round r + 1, reads those of its neighbours in sender order,
exactly as the simulated runtime delivers them — with one torch thread per
process, the same seed gives the same result in both runtimes.

Failures: a neighbour whose message does not arrive within ``timeout`` seconds is
declared dead and skipped from then on; the others go on. The store server lives
in the launcher, so any node may die. A node restarted after a crash (``restart``)
loads its last checkpoint and replays the rounds from there, reading its
neighbours' messages from the store (which keeps them all), until it has caught
up and finishes the run; the neighbours that declared it dead meanwhile no
longer read its messages. The collective decision at each evaluation round uses
the nodes that reported at that round.
"""

from __future__ import annotations

import datetime
import json
import os
import socket
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

from lowbit.integrations.programs.nodes.collective import accuracies
from lowbit.integrations.programs.nodes.node import Node, NodeConfig
from lowbit.integrations.programs.nodes.protocol import BASELINES, shards
from lowbit.integrations.programs.nodes.sync import SyncNode
from lowbit.integrations.programs.nodes.wire import encode
from lowbit.integrations.runs import (
    atomic_write,
    load_checkpoint,
    save_checkpoint,
    torch_load,
    write_text,
)

NOTHING = b"-"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free now (the OS picks it; another process may take it
    before it is used)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _store(port: int, world: int, master: bool, timeout: float):
    import torch.distributed as dist

    return dist.TCPStore("127.0.0.1", port, world, master,
                         timeout=datetime.timedelta(seconds=timeout), wait_for_workers=False)


def _node_dir(cfg: NodeConfig, i: int) -> Path:
    return Path(cfg.out) / f"node{i}"


def node_main(i: int, cfg_dict: dict, port: int, timeout: float, kill_at: int | None,
              restarted: bool) -> None:
    """The body of node i's process."""
    import torch
    import torch.distributed as dist

    from lowbit.integrations.data import load_dataset

    torch.set_num_threads(1)
    cfg = NodeConfig(**cfg_dict)
    ds = load_dataset(cfg.data, cfg.data_dir)
    shard = shards(len(ds.y_train), cfg.nodes, cfg.seed)[i]
    node = (SyncNode if cfg.share in BASELINES else Node)(i, cfg, ds, shard)
    store = _store(port, cfg.nodes + 1, False, timeout)
    d = _node_dir(cfg, i)
    d.mkdir(parents=True, exist_ok=True)
    start = 0
    st = load_checkpoint(d / "checkpoint.pt", torch_load) if restarted else None
    if st is not None:
        node.load(st["node"])
        start = st["round"]
    else:
        pg_store = dist.PrefixStore("pg", store)
        dist.init_process_group("gloo", store=pg_store, rank=i, world_size=cfg.nodes,
                                timeout=datetime.timedelta(seconds=timeout))
        dist.barrier()
    dead: set[int] = set()
    t0 = time.perf_counter()
    if cfg.share in BASELINES:
        _sync_main(node, ds, d)
        store.set(f"done/{i}", "1")
        return
    for r in range(start, cfg.rounds):
        if kill_at is not None and r == kill_at and not restarted:
            os._exit(3)  # a crash, without any goodbye
        if r > start:
            msgs = []
            for j in node.neighbours:
                if j in dead:
                    continue
                key = f"m/{r - 1}/{j}"
                try:
                    store.wait([key], datetime.timedelta(seconds=timeout))
                except Exception:  # noqa: BLE001 - a timeout: the neighbour is dead
                    dead.add(j)
                    continue
                raw = store.get(key)
                if raw != NOTHING:
                    msg = node.receive(raw, j, r - 1)
                    if msg is not None:
                        msgs.append(msg)
            node.deliver(msgs)
        msg = node.round(r)
        store.set(f"m/{r}/{i}", NOTHING if msg is None else encode(msg))
        done = r + 1
        if done % cfg.eval_every == 0 or done == cfg.rounds:
            _save(node, ds, d, done, time.perf_counter() - t0, dead, restarted)
    store.set(f"done/{i}", "1")


def _save(node, ds, d: Path, done: int, seconds: float, dead=(), restarted=False) -> None:
    """Node i's test predictions, checkpoint and counters after round ``done``."""
    import torch

    probs = node.predict_proba(ds.x_test)
    atomic_write(d / f"probs_r{done}.npy", lambda fh: np.save(fh, probs))
    state = {"node": node.state(), "round": done}
    save_checkpoint(d / "checkpoint.pt", lambda fh: torch.save(state, fh))
    write_text(d / f"counts_r{done}.json", json.dumps(
        {"round": done, **node.counts, "seconds": seconds, "dead_neighbours": sorted(dead),
         "restarted": restarted}))


def _sync_main(node: SyncNode, ds, d: Path) -> None:
    """The data-parallel baselines over the gloo process group."""
    import torch
    import torch.distributed as dist

    cfg, n = node.cfg, node.cfg.nodes
    t0 = time.perf_counter()
    for r in range(cfg.rounds):
        g = node.gradient()
        if cfg.share == "sync":
            dist.all_reduce(g)
            mean = g / n
        else:
            norms, codes = node.encode(g)
            all_norms = [torch.empty_like(norms) for _ in range(n)]
            all_codes = [torch.empty_like(codes) for _ in range(n)]
            dist.all_gather(all_norms, norms)
            dist.all_gather(all_codes, codes)
            total = node.decode(all_norms[0], all_codes[0]).clone()
            for j in range(1, n):
                total = total + node.decode(all_norms[j], all_codes[j])
            mean = total / n
        node.count_bytes()
        node.apply(mean)
        done = r + 1
        if done % cfg.eval_every == 0 or done == cfg.rounds:
            _save(node, ds, d, done, time.perf_counter() - t0)
    dist.destroy_process_group()


def run_distributed(cfg: NodeConfig, timeout: float = 30.0, kill: dict[int, int] | None = None,
                    restart: bool = False, port: int | None = None) -> dict:
    """Run the network as ``cfg.nodes`` processes (from scratch: ``cfg.out``'s node
    folders are cleared); returns the per-evaluation-round metrics of :func:`collect`.

    ``kill`` maps a node to the round at which its process crashes (fault
    injection); with ``restart`` a crashed node is started again from its last
    checkpoint once the crash is seen. ``port``: the store's TCP port on 127.0.0.1
    (default: a free one).
    """
    import torch.multiprocessing as mp

    cfg.check()
    if cfg.share in BASELINES and (kill or restart):
        raise ValueError("the data-parallel baselines are not fault tolerant: every step "
                         "needs every node (kill/restart apply to the sharing protocols)")
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("node*/*"):
        old.unlink()
    port = free_port() if port is None else port
    store = _store(port, cfg.nodes + 1, True, timeout)
    ctx = mp.get_context("spawn")
    kill = kill or {}
    procs = {}
    for i in range(cfg.nodes):
        procs[i] = ctx.Process(target=node_main,
                               args=(i, asdict(cfg), port, timeout, kill.get(i), False))
        procs[i].start()
    restarted = set()
    while True:
        alive = [i for i, p in procs.items() if p.is_alive()]
        for i, p in list(procs.items()):
            if not p.is_alive() and p.exitcode not in (0, None) and restart and i not in restarted:
                restarted.add(i)
                procs[i] = ctx.Process(target=node_main,
                                       args=(i, asdict(cfg), port, timeout, None, True))
                procs[i].start()
                alive.append(i)
        if not alive:
            break
        time.sleep(0.2)
    del store
    return collect(cfg)


def collect(cfg: NodeConfig) -> dict:
    """Per evaluation round: the mean and collective accuracy of the nodes that
    reported (alive at that round), and the bytes they sent."""
    from lowbit.integrations.data import load_dataset

    ds = load_dataset(cfg.data, cfg.data_dir)
    rounds = sorted({int(p.stem.split("_r")[1]) for p in Path(cfg.out).glob("node*/probs_r*.npy")})
    rows = []
    for r in rounds:
        files = [(_node_dir(cfg, i) / f"probs_r{r}.npy") for i in range(cfg.nodes)]
        present = [f.exists() for f in files]
        probs = np.stack([np.load(f, allow_pickle=False) if ok else np.zeros((len(ds.y_test), ds.n_classes))
                          for f, ok in zip(files, present)])
        avg, coll = accuracies(probs, ds.y_test, present)
        counts = [json.loads((_node_dir(cfg, i) / f"counts_r{r}.json").read_text())
                  for i in range(cfg.nodes) if present[i]]
        keys = [k for k in counts[0]
                if k not in ("round", "seconds", "dead_neighbours", "restarted")]
        rows.append({"round": r, "avg_acc": avg, "coll_acc": coll,
                     **{k: int(sum(c[k] for c in counts)) for k in keys},
                     "seconds": max(c["seconds"] for c in counts), "alive": int(sum(present))})
    return rows
