"""The simulated runtime: every node in one process, rounds in lockstep.

Messages broadcast in round r reach the neighbours' inboxes at the start of round
r + 1, in the order of their senders. Nodes step one after the other with one
torch thread, so that each node computes exactly what it computes as its own
process in :mod:`lowbit.integrations.programs.nodes.distributed` (same seed, same result).
"""

from __future__ import annotations

import numpy as np
import torch

from lowbit.integrations.programs.nodes.asynchronous import async_round, build_async
from lowbit.integrations.programs.nodes.es import build_es, es_round
from lowbit.integrations.programs.nodes.node import Node, NodeConfig
from lowbit.integrations.programs.nodes.pipeline import build_pipeline, pipeline_round
from lowbit.integrations.programs.nodes.protocol import BASELINES, Message, shards
from lowbit.integrations.programs.nodes.sync import (
    SyncNode,
    localsgd_round,
    share_replica,
    sync_round,
)


def build_nodes(cfg: NodeConfig, ds) -> list[Node]:
    """The N nodes (data-parallel workers sharing one replica for the baselines)."""
    parts = shards(len(ds.y_train), cfg.nodes, cfg.seed)
    if cfg.share == "async":
        return build_async(cfg, ds, parts)
    if cfg.share == "pipeline":
        return build_pipeline(cfg, ds)
    if cfg.share == "es":
        return build_es(cfg, ds, parts)
    if cfg.share in BASELINES:
        nodes = [SyncNode(i, cfg, ds, parts[i]) for i in range(cfg.nodes)]
        share_replica(nodes)
        return nodes
    return [Node(i, cfg, ds, parts[i]) for i in range(cfg.nodes)]


def deliveries(node: Node, sent: list[Message]) -> list[Message]:
    """The messages of the last round addressed to ``node``, in sender order."""
    nb = set(node.neighbours)
    return sorted((m for m in sent if m.sender in nb), key=lambda m: m.sender)


def run_rounds(nodes: list[Node], start: int, stop: int, sent: list[Message],
               on_round=None) -> list[Message]:
    """Rounds start..stop-1; returns the messages sent in the last one."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for r in range(start, stop):
            share = nodes[0].cfg.share
            if share in ("async", "es", "pipeline"):
                {"async": async_round, "es": es_round, "pipeline": pipeline_round}[share](
                    nodes, r)
                if on_round is not None:
                    on_round(r + 1, [])
                continue
            if nodes[0].cfg.share == "localsgd":
                localsgd_round(nodes, r)
                if on_round is not None:
                    on_round(r + 1, [])
                continue
            if nodes[0].cfg.share in BASELINES:
                sync_round(nodes)
                if on_round is not None:
                    on_round(r + 1, [])
                continue
            for node in nodes:
                node.deliver(deliveries(node, sent))
            sent = [m for m in (node.round(r) for node in nodes) if m is not None]
            if on_round is not None:
                on_round(r + 1, sent)
    finally:
        torch.set_num_threads(threads)
    return sent


def node_probs(nodes: list[Node], x: np.ndarray) -> np.ndarray:
    """(nodes, examples, classes): every node's predictive distribution on ``x``
    (computed once per distinct model: the baselines' replicas are one)."""
    def evaluated(n):  # the async workers and pipeline stages are judged by one model
        return id(n.eval_model if hasattr(n, "eval_model") else n.model)

    seen: dict[int, np.ndarray] = {}
    for n in nodes:
        if evaluated(n) not in seen:
            seen[evaluated(n)] = n.predict_proba(x)
    return np.stack([seen[evaluated(n)] for n in nodes])
