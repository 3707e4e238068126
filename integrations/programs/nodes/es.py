"""Evolution strategies (Salimans et al. 2017) over the nodes: only scalars travel.

Every node holds a replica of one model (the same initial weights) and an Adam optimizer.
In round r the P = ``es_pairs`` antithetic pairs are dealt out: node i evaluates pairs
j = i, i + N, i + 2N, ... For pair j the perturbation eps_j is regenerated from lowbit's
counter RNG keyed by (seed, r, j) (:func:`perturbation`); the node computes the fitness
f+- = -(cross-entropy) of theta +- sigma eps_j on its next shard minibatch (both signs on
the same minibatch), rounded to float32, and sends (j, f+, f-): 12 bytes per pair to each
of the other N - 1 nodes (an all-gather). Every node then holds all P triples, ranks the
2P fitnesses (centred ranks in [-0.5, 0.5], :func:`centered_ranks`), regenerates every
eps_j and takes the same step, in pair order:

    g = sum_j (rank+_j - rank-_j) eps_j / (2 P)            (sigma absorbed in the rate)
    Adam on  -g + l2 * theta                                (``es_l2``, weight decay)

so the replicas stay bit-identical without ever exchanging theta (hash them:
:func:`params_hash`). ``counts["evals"]`` counts minibatch forward passes (2 per pair).

The perturbation is an Irwin-Hall normal: eps = (u1 + u2 + u3 + u4 - 2) * sqrt(3) of four
53-bit uniforms from splitmix64, mean 0, variance 1, made of exactly rounded additions and
multiplications only, so every host regenerates it bit for bit (no libm).
"""

from __future__ import annotations

import hashlib

import numpy as np
import torch
import torch.nn.functional as F

from lowbit.integrations.programs.nodes.node import NodeConfig
from lowbit.integrations.programs.nodes.sync import SyncNode
from lowbit.numerics.rng import GAMMA, MIX1, MIX2, random_u64

ES_STREAM = 0x45535F5045525455  # "ES_PERTU": keeps ES draws apart from other streams


def _splitmix(seed: int, n: int) -> np.ndarray:
    """random_u64(seed, k) for k = 0..n-1 (numpy uint64 arithmetic wraps mod 2**64)."""
    k = np.arange(1, n + 1, dtype=np.uint64)
    with np.errstate(over="ignore"):
        z = np.uint64(seed) + k * np.uint64(GAMMA)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(MIX1)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(MIX2)
    return z ^ (z >> np.uint64(31))


def perturbation(seed: int, step: int, pair: int, size: int) -> np.ndarray:
    """eps (float32, ``size`` values) of pair ``pair`` in round ``step``: an Irwin-Hall
    normal from the counter RNG (module docstring); the same on every node."""
    key = random_u64(seed ^ ES_STREAM, (step << 24) | pair)
    u = (_splitmix(key, 4 * size) >> np.uint64(11)).astype(np.float64) * 2.0**-53
    s = u.reshape(size, 4)
    return (((s[:, 0] + s[:, 1]) + (s[:, 2] + s[:, 3]) - 2.0) * np.sqrt(3.0)).astype(np.float32)


def centered_ranks(x: np.ndarray) -> np.ndarray:
    """Ranks of ``x`` (ties by position) scaled to [-0.5, 0.5], as the ES starter code."""
    ranks = np.empty(x.size, dtype=np.float64)
    ranks[np.argsort(x.ravel(), kind="stable")] = np.arange(x.size)
    return (ranks / (x.size - 1) - 0.5).reshape(x.shape) if x.size > 1 else np.zeros(x.shape)


def params_hash(model) -> str:
    """SHA-256 of the parameters' bytes: equal hashes, identical replicas."""
    h = hashlib.sha256()
    for p in model.parameters():
        h.update(p.detach().cpu().numpy().tobytes())
    return h.hexdigest()


class ESNode(SyncNode):
    """A replica that evaluates its share of the pairs and applies everyone's update."""

    def __init__(self, index: int, cfg: NodeConfig, ds, shard: np.ndarray):
        super().__init__(index, cfg, ds, shard)
        self.counts["evals"] = 0

    def flat(self) -> torch.Tensor:
        return torch.cat([p.detach().reshape(-1) for p in self.model.parameters()])

    def _set(self, flat: torch.Tensor) -> None:
        with torch.no_grad():
            for p, part in zip(self.model.parameters(), torch.split(flat, self.sizes)):
                p.copy_(part.reshape(p.shape))

    def evaluate_pairs(self, r: int) -> list[tuple[int, float, float]]:
        """(pair, f+, f-) of this node's pairs in round r (float32 fitnesses)."""
        cfg = self.cfg
        theta = self.flat().clone()
        out = []
        self.model.eval()
        for j in range(self.i, cfg.es_pairs, cfg.nodes):
            idx = self._shard_batch()
            x, y = self.tensor(self.ds.x_train[idx]), torch.from_numpy(self.ds.y_train[idx])
            eps = torch.from_numpy(perturbation(cfg.seed, r, j, theta.numel())).to(theta.dtype)
            f = []
            for sign in (1.0, -1.0):
                self._set(theta + sign * cfg.es_sigma * eps)
                with torch.no_grad():
                    f.append(float(np.float32(-F.cross_entropy(self.model(x)[0], y).item())))
            out.append((j, f[0], f[1]))
            self.counts["evals"] += 2
        self._set(theta)
        self.counts["rounds"] += 1
        self.counts["from_shard"] += len(out)
        self.counts["bytes_payload"] += 12 * len(out) * (cfg.nodes - 1)
        self.counts["broadcasts"] += 1
        return out

    def update(self, r: int, results: list[tuple[int, float, float]]) -> None:
        """The ES step from all P triples (any order: sorted by pair here)."""
        cfg = self.cfg
        results = sorted(results)
        if [j for j, _, _ in results] != list(range(cfg.es_pairs)):
            raise ValueError(f"round {r}: fitnesses of pairs {[j for j, _, _ in results]}, "
                             f"expected 0..{cfg.es_pairs - 1}")
        ranks = centered_ranks(np.array([[a, b] for _, a, b in results], dtype=np.float32))
        theta = self.flat()
        g = torch.zeros_like(theta)
        for (j, _, _), (rp, rm) in zip(results, ranks):
            eps = torch.from_numpy(perturbation(cfg.seed, r, j, theta.numel())).to(theta.dtype)
            g += float(rp - rm) * eps
        g /= 2 * cfg.es_pairs
        grad = -g + cfg.es_l2 * theta
        for p, part in zip(self.model.parameters(), torch.split(grad, self.sizes)):
            p.grad = part.reshape(p.shape).clone()
        self.opt.step()


def es_round(nodes: list[ESNode], r: int) -> None:
    """One simulated ES round: every node evaluates its pairs; every node applies the
    update from all of them (its own replica)."""
    results = [t for n in nodes for t in n.evaluate_pairs(r)]
    for n in nodes:
        n.update(r, results)
