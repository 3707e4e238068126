"""Data-parallel baselines in the same harness: synchronous SGD and QSGD.

Every node holds a replica of one model (all start from node 0's initial
weights). In round r node i computes the gradient of the loss on its next shard
minibatch; the gradients are averaged over the N nodes and every replica takes
the same Adam step with the mean, so the replicas stay equal.

- ``share="sync"``: the float32 gradients are averaged by an all-reduce. Bytes
  per node and round: a ring all-reduce of P float32 values, 2 (N-1)/N * 4P.
- ``share="qsgd"``: each node sends its gradient quantized as in QSGD (Alistarh
  et al. 2017), tensor by tensor: the float32 norm ||g|| and, per coordinate, the
  sign and a level l in 0..s drawn by unbiased stochastic rounding of
  s |g_j| / ||g|| (the node's own seeded generator); the value is
  ||g|| sign(g_j) l / s. The codes travel as int8 (s <= 127) through an
  all-gather and every node sums the N decoded gradients in node order. Bytes per
  node and round: (N-1) times (4 per tensor + P coordinates at
  1 + ceil(log2(s + 1)) bits, packed).

- ``share="localsgd"`` (model averaging, Su & Chen 2015; local SGD): every node
  steps its own replica on its own minibatches and every H = ``local_steps`` rounds
  (every round before ``local_from``: post-local SGD) the replicas are replaced by their
  mean, the parameters travelling in the message format. Bytes per node and averaging
  round: a ring all-reduce of P values at the format's bits, 2 (N-1)/N * P * bits / 8,
  so at float32 exactly sync's bytes / H. With H = 1 and plain SGD it is sync SGD in
  exact arithmetic (mean(theta - lr g_i) = theta - lr mean(g_i)); in floating point
  the two round differently.

The simulated runtime keeps one model for all replicas (they are equal by
construction) and sums the gradients in node order; the gloo runtime
(:mod:`lowbit.integrations.programs.nodes.distributed`) uses ``all_reduce`` / ``all_gather``.
QSGD is bit-identical between the runtimes; ``sync`` differs by the rounding of
the all-reduce's summation order.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from lowbit.integrations.programs.nodes.node import (
    Node,
    NodeConfig,
    to_message_values,
    value_bits,
)


def qsgd_bits(levels: int) -> int:
    """Bits of one QSGD coordinate: a sign and a level in 0..levels."""
    return 1 + math.ceil(math.log2(levels + 1))


def qsgd_encode(g: torch.Tensor, levels: int, gen: torch.Generator):
    """(norm, int8 codes) of one float32 tensor; codes are sign * level.

    Level l = floor(s |g_j| / ||g||) + Bernoulli(frac), so E[decode] = g."""
    if not 1 <= levels <= 127:
        raise ValueError(f"qsgd levels must be in 1..127 (int8 codes), got {levels}")
    flat = g.detach().reshape(-1).float()  # (QSGD codes float32 gradients)
    norm = flat.norm()
    u = torch.rand(flat.shape, generator=gen)
    if float(norm) == 0.0:
        return norm, torch.zeros(flat.shape, dtype=torch.int8)
    r = flat.abs() / norm * levels
    low = torch.floor(r)
    level = low + (u < (r - low)).float()
    return norm, (torch.sign(flat) * level).to(torch.int8)


def qsgd_decode(norm: torch.Tensor, codes: torch.Tensor, levels: int) -> torch.Tensor:
    """The QSGD gradient from its norm and signed level codes: norm * codes / levels."""
    return norm * codes.float() / levels


class SyncNode(Node):
    """A data-parallel worker: its shard cursor, a model replica and a QSGD stream."""

    def __init__(self, index: int, cfg: NodeConfig, ds, shard: np.ndarray):
        super().__init__(index, cfg, ds, shard, model_seed=cfg.seed * 100_003)
        self.gen = torch.Generator().manual_seed(cfg.seed * 7919 + index)
        self.sizes = [p.numel() for p in self.model.parameters()]

    def gradient(self) -> torch.Tensor:
        """The flat float32 gradient of the loss on the next shard minibatch."""
        idx = self._shard_batch()
        x = self.tensor(self.ds.x_train[idx])
        self.model.train()
        self.opt.zero_grad()
        loss = F.cross_entropy(self.model(x)[0], torch.from_numpy(self.ds.y_train[idx]))
        loss.backward()
        self.counts["rounds"] += 1
        self.counts["from_shard"] += 1
        return torch.cat([p.grad.reshape(-1) for p in self.model.parameters()])

    def encode(self, g: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """QSGD (norms float32 per tensor, codes int8) of a flat gradient."""
        norms, codes = [], []
        for part in torch.split(g, self.sizes):
            n, c = qsgd_encode(part, self.cfg.qsgd_levels, self.gen)
            norms.append(n)
            codes.append(c)
        return torch.stack(norms), torch.cat(codes)

    def decode(self, norms: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
        parts = torch.split(codes, self.sizes)
        return torch.cat([qsgd_decode(n, c, self.cfg.qsgd_levels) for n, c in zip(norms, parts)])

    def count_bytes(self) -> None:
        n, p = self.cfg.nodes, sum(self.sizes)
        if self.cfg.share == "sync":
            sent = 2 * (n - 1) * 4 * p // n
        else:
            sent = (n - 1) * (4 * len(self.sizes) + math.ceil(p * qsgd_bits(self.cfg.qsgd_levels) / 8))
        self.counts["bytes_payload"] += sent
        self.counts["broadcasts"] += 1

    def apply(self, mean: torch.Tensor) -> None:
        """Set the gradients to ``mean`` and take the optimizer step."""
        for p, part in zip(self.model.parameters(), torch.split(mean, self.sizes)):
            p.grad = part.reshape(p.shape).clone()
        self.opt.step()

    def local_step(self) -> None:
        """Local SGD: one optimizer step of this node's own replica on its next minibatch."""
        self.apply(self.gradient())

    def averages_after(self, r: int) -> bool:
        """Local SGD: whether the models are averaged after round ``r`` (every H steps; every
        step before ``local_from``)."""
        done = r + 1
        h = 1 if done <= self.cfg.local_from else self.cfg.local_steps
        return done % h == 0

    def wire_params(self) -> torch.Tensor:
        """Local SGD: the flat parameters as they travel, in the message format (float64
        values)."""
        flat = torch.cat([p.detach().reshape(-1) for p in self.model.parameters()])
        return torch.from_numpy(to_message_values(flat, self.cfg.message_format))

    def set_params(self, flat: torch.Tensor) -> None:
        """Local SGD: the replica's parameters := ``flat`` (rounded to the models' dtype)."""
        with torch.no_grad():
            for p, part in zip(self.model.parameters(), torch.split(flat, self.sizes)):
                p.copy_(part.reshape(p.shape))

    def count_average(self) -> None:
        """Local SGD bytes of one averaging round per node: a ring all-reduce of P values in
        the message format, 2 (N-1)/N * P * bits / 8 (= sync's bytes for float32)."""
        n, p = self.cfg.nodes, sum(self.sizes)
        self.counts["bytes_payload"] += 2 * (n - 1) * p * value_bits(self.cfg.message_format) \
            // (8 * n)
        self.counts["broadcasts"] += 1

    def state(self) -> dict:
        return {**super().state(), "gen": self.gen.get_state()}

    def load(self, st: dict) -> None:
        super().load(st)
        self.gen.set_state(st["gen"])


def share_replica(nodes: list[SyncNode]) -> None:
    """Simulated runtime: every node uses node 0's model and optimizer (sync, QSGD; local
    SGD keeps a replica per node)."""
    if nodes[0].cfg.share == "localsgd":
        return
    for n in nodes[1:]:
        n.model, n.opt = nodes[0].model, nodes[0].opt


def localsgd_round(nodes: list[SyncNode], r: int) -> None:
    """One simulated local-SGD round: every node steps its own replica; every H rounds the
    wire parameters are summed in node order (float64), divided by N and set everywhere."""
    for n in nodes:
        n.local_step()
    if nodes[0].averages_after(r):
        total = nodes[0].wire_params()
        for n in nodes[1:]:
            total = total + n.wire_params()
        mean = total / len(nodes)
        for n in nodes:
            n.set_params(mean)
            n.count_average()


def sync_round(nodes: list[SyncNode]) -> None:
    """One simulated round: gradients in node order, their mean, one step."""
    total = None
    for n in nodes:
        g = n.gradient()
        if n.cfg.share == "qsgd":
            g = n.decode(*n.encode(g))
        total = g.clone() if total is None else total + g
        n.count_bytes()
    nodes[0].apply(total / len(nodes))
