"""The distributed runtime: one operating-system process per node, on one machine or many.

Two launchers, one node program (:func:`node_main`):

- :func:`run_distributed` (``--runtime gloo``): this process hosts a
  ``torch.distributed.TCPStore`` on 127.0.0.1 and starts one process per node
  (``torch.multiprocessing``);
- :func:`run_launched` (``--runtime gloo`` under ``torchrun``, env:// rendezvous:
  MASTER_ADDR, MASTER_PORT, RANK, WORLD_SIZE): every process is node RANK, on any number
  of hosts; the store is torchrun's agent store (hosted by the agent of node rank 0).

Every node joins a gloo process group (a start barrier; the data-parallel baselines'
collectives) and exchanges its messages through the store, under the ``lowbit/`` prefix:
in round r it posts its message (or "nothing") under ``m/r/i`` in the fixed wire schema of
:mod:`~lowbit.integrations.programs.nodes.wire` and, before round r + 1, reads those of its
neighbours in sender order, exactly as the simulated runtime delivers them (with one torch
thread per process, the same seed gives the same result in every runtime). A message that
breaks the schema is dropped and logged, never executed. At each evaluation round a node
posts its report (counters, test-set probabilities) under ``e/r/i``; the launcher (or node 0
under torchrun) collects them into the run's metrics.

Failures: a neighbour whose message does not arrive within ``timeout`` seconds is
declared dead and skipped from then on; the others go on. The store server lives
in the launcher (or torchrun's agent), so any node may die. A node restarted after a crash
(``restart``; under torchrun its ``--max-restarts``) loads its last checkpoint and replays
the rounds from there, reading its neighbours' messages from the store (which keeps them
all), until it has caught up and finishes the run; the neighbours that declared it dead
meanwhile no longer read its messages. The collective decision at each evaluation round
uses the nodes that reported at that round.

The store has no authentication: anyone who reaches its port can post under a node's keys
(the schema checks bound what that can do: a dropped message). Keep it inside the cluster
network; ``docs/distributed.md`` lists the ports a multi-host run opens.
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

from lowbit.integrations.programs.nodes.asynchronous import RemoteWorker, processes, serve
from lowbit.integrations.programs.nodes.collective import accuracies
from lowbit.integrations.programs.nodes.node import Node, NodeConfig
from lowbit.integrations.programs.nodes.protocol import BASELINES, shards
from lowbit.integrations.programs.nodes.sync import SyncNode
from lowbit.integrations.programs.nodes.wire import WireError, decode_report, encode, encode_report
from lowbit.integrations.runs import (
    load_checkpoint,
    read_metrics,
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


class RendezvousError(RuntimeError):
    """A node could not reach the rendezvous store, or the launch does not fit the run."""


def _store(addr: str, port: int, master: bool, timeout: float):
    """The run's key-value store at addr:port (hosting it when ``master``), under the
    ``lowbit/`` prefix so that it can share torchrun's agent store."""
    import torch.distributed as dist

    try:
        store = dist.TCPStore(addr, port, None, master,
                              timeout=datetime.timedelta(seconds=timeout), wait_for_workers=False)
    except Exception as e:  # noqa: BLE001 - connection refused, timeout, bad address
        raise RendezvousError(f"cannot reach the rendezvous store at {addr}:{port} within "
                              f"{timeout:g} s ({type(e).__name__}: {str(e).splitlines()[0]})") \
            from None
    return dist.PrefixStore("lowbit", store)


def _node_dir(cfg: NodeConfig, i: int) -> Path:
    return Path(cfg.out) / f"node{i}"


def eval_rounds(cfg: NodeConfig) -> list[int]:
    """The rounds after which every node reports: multiples of ``eval_every`` and the last."""
    return sorted(set(range(cfg.eval_every, cfg.rounds + 1, cfg.eval_every)) | {cfg.rounds})


def node_main(i: int, cfg_dict: dict, addr: str, port: int, timeout: float,
              kill_at: int | None = None, restarted: bool = False, host: bool = False,
              collector: bool = False) -> None:
    """The body of node i's process: join the store at addr:port (hosting it if ``host``),
    train, report every evaluation round through the store; the ``collector`` then waits for
    the others and writes the run's metrics (:func:`collect`)."""
    import torch
    import torch.distributed as dist

    from lowbit.integrations.data import load_dataset

    torch.set_num_threads(1)
    cfg = NodeConfig(**cfg_dict)
    ds = load_dataset(cfg.data, cfg.data_dir)
    if i == cfg.nodes:  # the parameter server of share "async": a process of its own
        _server_process(cfg, ds, addr, port, host, timeout)
        return
    shard = shards(len(ds.y_train), cfg.nodes, cfg.seed)[i]
    node = _build_node(i, cfg, ds, shard)
    store = _store(addr, port, host, timeout)
    d = _node_dir(cfg, i)
    d.mkdir(parents=True, exist_ok=True)
    start = 0
    st = load_checkpoint(d / "checkpoint.pt", torch_load) if restarted else None
    if st is not None:
        node.load(st["node"])
        start = st["round"]
    else:
        pg_store = dist.PrefixStore("pg", store)
        dist.init_process_group("gloo", store=pg_store, rank=i, world_size=processes(cfg),
                                timeout=datetime.timedelta(seconds=timeout))
        dist.barrier()
    dead: set[int] = set()
    t0 = time.perf_counter()
    if cfg.share in BASELINES:
        _sync_main(node, ds, d, store)
    else:
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
                _save(node, ds, d, store, done, time.perf_counter() - t0, dead, restarted)
    store.set(f"done/{i}", "1")
    if collector:
        _write_collected(cfg, store, timeout)


def _server_process(cfg: NodeConfig, ds, addr: str, port: int, host: bool,
                    timeout: float) -> None:
    """Rank ``nodes`` of an async run: the parameter server (:func:`serve`)."""
    import torch.distributed as dist

    store = _store(addr, port, host, timeout)
    dist.init_process_group("gloo", store=dist.PrefixStore("pg", store), rank=cfg.nodes,
                            world_size=processes(cfg),
                            timeout=datetime.timedelta(seconds=timeout))
    dist.barrier()
    serve(cfg, ds)
    dist.destroy_process_group()


def _build_node(i: int, cfg: NodeConfig, ds, shard: np.ndarray):
    """Node i of the run, as its own process builds it."""
    if cfg.share == "async":
        return RemoteWorker(i, cfg, ds, shard)
    if cfg.share == "es":
        from lowbit.integrations.programs.nodes.es import IntESNode, ESNode

        return (ESNode if cfg.es_format == "float" else IntESNode)(i, cfg, ds, shard)
    if cfg.share == "pipeline":
        from lowbit.integrations.programs.nodes.pipeline import StageProcess

        return StageProcess(i, cfg, ds)
    return (SyncNode if cfg.share in BASELINES else Node)(i, cfg, ds, shard)


def _save(node, ds, d: Path, store, done: int, seconds: float, dead=(), restarted=False) -> None:
    """Node i's checkpoint and counters after round ``done`` (in its folder), and its report
    (counters and test-set probabilities) in the store for the collector."""
    import torch

    probs = node.predict_proba(ds.x_test)  # first: an async worker's fetch updates its counts
    state = {"node": node.state(), "round": done}
    save_checkpoint(d / "checkpoint.pt", lambda fh: torch.save(state, fh))
    counts = {"round": done, **node.counts, "seconds": seconds, "dead_neighbours": sorted(dead),
              "restarted": restarted}
    write_text(d / f"counts_r{done}.json", json.dumps(counts))
    store.set(f"e/{done}/{node.i}", encode_report(probs, counts))


def _sync_main(node: SyncNode, ds, d: Path, store) -> None:
    """The data-parallel baselines over the gloo process group."""
    import torch
    import torch.distributed as dist

    cfg, n = node.cfg, node.cfg.nodes
    t0 = time.perf_counter()
    for r in range(cfg.rounds):
        if cfg.share in ("es", "pipeline", "async"):
            if cfg.share == "es":
                _es_step(node, r)
            elif cfg.share == "async":
                node.tick(r)
            else:
                node.step()
            done = r + 1
            if done % cfg.eval_every == 0 or done == cfg.rounds:
                _save(node, ds, d, store, done, time.perf_counter() - t0)
            continue
        if cfg.share == "localsgd":
            node.local_step()
            if node.averages_after(r):
                flat = node.wire_params()
                dist.all_reduce(flat)
                node.set_params(flat / n)
                node.count_average()
            done = r + 1
            if done % cfg.eval_every == 0 or done == cfg.rounds:
                _save(node, ds, d, store, done, time.perf_counter() - t0)
            continue
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
            _save(node, ds, d, store, done, time.perf_counter() - t0)
    if cfg.share == "async":
        node.finish()
    dist.destroy_process_group()


def _es_step(node, r: int) -> None:
    """One ES round over gloo: this node's (pair, f+, f-) triples as a float32 (k, 3) tensor
    (pair numbers are exact in float32; unused rows -1), all-gathered; then the update."""
    import torch
    import torch.distributed as dist

    cfg = node.cfg
    mine = node.evaluate_pairs(r)
    buf = torch.full((-(-cfg.es_pairs // cfg.nodes), 3), -1.0, dtype=torch.float32)
    for row, triple in enumerate(mine):
        buf[row] = torch.tensor(triple, dtype=torch.float32)
    bufs = [torch.empty_like(buf) for _ in range(cfg.nodes)]
    dist.all_gather(bufs, buf)
    node.update(r, [(int(j), a, b) for t in bufs for j, a, b in t.tolist() if j >= 0])


def run_distributed(cfg: NodeConfig, timeout: float = 30.0, kill: dict[int, int] | None = None,
                    restart: bool = False, port: int | None = None) -> list[dict]:
    """Run the network as ``cfg.nodes`` processes on this machine (from scratch: ``cfg.out``'s
    node folders are cleared), the store hosted here; returns the per-evaluation-round
    metrics of :func:`collect`.

    ``kill`` maps a node to the round at which its process crashes (fault
    injection); with ``restart`` a crashed node is started again from its last
    checkpoint once the crash is seen. ``port``: the store's TCP port on 127.0.0.1
    (default: a free one).
    """
    import torch.multiprocessing as mp

    cfg.check()
    _refuse_async(cfg)
    if cfg.share in BASELINES and (kill or restart):
        raise ValueError("the data-parallel baselines are not fault tolerant: every step "
                         "needs every node (kill/restart apply to the sharing protocols)")
    _clear(cfg)
    port = free_port() if port is None else port
    store = _store("127.0.0.1", port, True, timeout)
    ctx = mp.get_context("spawn")
    kill = kill or {}
    procs = {}

    def start(i, kill_at, restarted):
        procs[i] = ctx.Process(target=node_main, args=(i, asdict(cfg), "127.0.0.1", port,
                                                       timeout, kill_at, restarted))
        procs[i].start()

    for i in range(processes(cfg)):
        start(i, kill.get(i), False)
    restarted = set()
    while True:
        alive = [i for i, p in procs.items() if p.is_alive()]
        for i, p in list(procs.items()):
            if not p.is_alive() and p.exitcode not in (0, None) and restart and i not in restarted:
                restarted.add(i)
                start(i, None, True)
                alive.append(i)
        if not alive:
            break
        time.sleep(0.2)
    return collect(cfg, store)


def _refuse_async(cfg: NodeConfig) -> None:
    if cfg.share == "async" and cfg.async_delay > 0:
        raise ValueError("async_delay is the simulated runtime's: under gloo the delays are "
                         "what the processes produce (their staleness is recorded)")


def _clear(cfg: NodeConfig) -> None:
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("node*/*"):
        old.unlink()


def launched_rank() -> tuple[int, int] | None:
    """(RANK, WORLD_SIZE) when this process was started by ``torchrun`` (or by hand with the
    env:// variables RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT), else None."""
    if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
        return None
    try:
        return int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    except ValueError:
        raise RendezvousError(f"RANK={os.environ['RANK']!r} WORLD_SIZE="
                              f"{os.environ['WORLD_SIZE']!r} are not integers") from None


def run_launched(cfg: NodeConfig, timeout: float = 60.0,
                 kill: dict[int, int] | None = None) -> list[dict] | None:
    """Run this process as node RANK of a ``torchrun`` launch (env:// rendezvous).

    The store is torchrun's agent store at MASTER_ADDR:MASTER_PORT (hosted by the agent of
    ``--node-rank 0``, so it outlives any worker); launched by hand without torchrun, rank 0
    hosts it. Node 0 collects the reports and writes the run's metrics into ``cfg.out`` on
    its host (returned there; None on the other ranks). A restarted worker
    (TORCHELASTIC_RESTART_COUNT > 0) resumes from its checkpoint. ``kill``: fault injection
    as in :func:`run_distributed` (node RANK crashes at the given round).
    """
    cfg.check()
    _refuse_async(cfg)
    rank, world = launched_rank()
    if world != processes(cfg):
        extra = " and one for the parameter server" if cfg.share == "async" else ""
        raise RendezvousError(f"the launch has WORLD_SIZE {world} processes but the run has "
                              f"--nodes {cfg.nodes}: start one process per node{extra}")
    if not 0 <= rank < world:
        raise RendezvousError(f"RANK {rank} outside 0..{world - 1}")
    for var in ("MASTER_ADDR", "MASTER_PORT"):
        if var not in os.environ:
            raise RendezvousError(f"{var} is not set: launch with torchrun or set the env:// "
                                  "variables MASTER_ADDR, MASTER_PORT, RANK, WORLD_SIZE")
    addr, port = os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"])
    agent = os.environ.get("TORCHELASTIC_USE_AGENT_STORE") == "True"
    restarted = int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0")) > 0 \
        and (_node_dir(cfg, rank) / "checkpoint.pt").exists()
    if not restarted and rank < cfg.nodes:
        d = _node_dir(cfg, rank)
        d.mkdir(parents=True, exist_ok=True)
        for old in d.glob("*"):
            old.unlink()
    node_main(rank, asdict(cfg), addr, port, timeout, (kill or {}).get(rank), restarted,
              host=rank == 0 and not agent, collector=rank == 0)
    return read_metrics(Path(cfg.out)) if rank == 0 else None


def _write_collected(cfg: NodeConfig, store, timeout: float) -> None:
    """Node 0 of a torchrun launch: wait (``timeout`` s each) for the others to finish,
    then write the run's metrics, curve and summary from their reports."""
    from lowbit.integrations.programs.nodes.train import write_outputs

    for j in range(cfg.nodes):
        try:
            store.wait([f"done/{j}"], datetime.timedelta(seconds=timeout))
        except Exception:  # noqa: BLE001 - a node that died: its reports may be partial
            pass
    write_outputs(cfg, collect(cfg, store))


def collect(cfg: NodeConfig, store) -> list[dict]:
    """Per evaluation round: the mean and collective accuracy of the nodes that
    reported (alive at that round), and the counters they reported, summed; reports that
    break their schema are left out with a logged warning."""
    import logging

    from lowbit.integrations.data import load_dataset

    ds = load_dataset(cfg.data, cfg.data_dir)
    shape = (len(ds.y_test), ds.n_classes)
    rows = []
    for r in eval_rounds(cfg):
        probs, counts = np.zeros((cfg.nodes, *shape)), []
        present = [False] * cfg.nodes
        for i in range(cfg.nodes):
            key = f"e/{r}/{i}"
            if not store.check([key]):
                continue
            try:
                probs[i], c = decode_report(store.get(key), *shape)
            except WireError as e:
                logging.getLogger("lowbit.nodes").warning("dropped node %d's report of round "
                                                          "%d: %s", i, r, e)
                continue
            present[i] = True
            counts.append(c)
        if not counts:
            continue
        avg, coll = accuracies(probs, ds.y_test, present)
        keys = [k for k in counts[0]
                if k not in ("round", "seconds", "dead_neighbours", "restarted")]
        rows.append({"round": r, "avg_acc": avg, "coll_acc": coll,
                     **{k: int(sum(c.get(k, 0) for c in counts)) for k in keys},
                     "seconds": max(c["seconds"] for c in counts), "alive": int(sum(present))})
    return rows
