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
32-bit uniforms (the low and high halves of two splitmix64 outputs), mean 0, variance 1,
made of exact additions and one rounded multiplication only, so every host regenerates it bit for bit (no libm). Nodes that
share a process (the simulated runtime) generate each perturbation once per round
(:func:`perturbation` keeps the last 64).

**Integer ES** (``es_format`` a Fixed format, e.g. ``fixed8.7``; :class:`IntESNode`): the
weights are that format's codes (the initial float weights rounded to nearest-even and
saturated; the model computes with the exact values code * 2^-frac). Pair j's perturbation
is a Rademacher vector of +-1 codes (:func:`sign_perturbation`, one counter-RNG bit per
weight), scaled to s = round(es_sigma * 2^frac) >= 1 codes; theta +- s eps saturates at the
format's range. The step uses the integer ranks R (0 .. 2P - 1) of the 2P fitnesses:
w_j = R+_j - R-_j, G = sum_j w_j eps_j (exact int64) and every weight whose z-score
G / sqrt(sum_j w_j^2) reaches ``es_z`` in magnitude moves by one whole code in the sign of G
(saturating); no float state, no optimizer, no weight decay (the range bounds the weights).
``counts["code_moves"]`` sums the moved weights.
"""

from __future__ import annotations

import functools
import hashlib

import numpy as np
import torch
import torch.nn.functional as F

from lowbit.integrations.programs.nodes.node import NodeConfig
from lowbit.integrations.programs.nodes.sync import SyncNode
from lowbit.numerics import Fixed, parse_format
from lowbit.numerics.rng import GAMMA, MIX1, MIX2, random_u64

ES_STREAM = 0x45535F5045525455  # "ES_PERTU": keeps ES draws apart from other streams
ES_SIGN_STREAM = 0x45535F5349474E53  # "ES_SIGNS": the integer variant's +-1 draws


def _splitmix(seed: int, n: int) -> np.ndarray:
    """random_u64(seed, k) for k = 0..n-1 (numpy uint64 arithmetic wraps mod 2**64)."""
    z = np.arange(1, n + 1, dtype=np.uint64)
    with np.errstate(over="ignore"):  # in place: one temporary (memory-bound otherwise)
        z *= np.uint64(GAMMA)
        z += np.uint64(seed)
        t = z >> np.uint64(30)
        z ^= t
        z *= np.uint64(MIX1)
        np.right_shift(z, np.uint64(27), out=t)
        z ^= t
        z *= np.uint64(MIX2)
        np.right_shift(z, np.uint64(31), out=t)
        z ^= t
    return z


@functools.lru_cache(maxsize=64)
def perturbation(seed: int, step: int, pair: int, size: int) -> np.ndarray:
    """eps (float32, ``size`` values, read-only) of pair ``pair`` in round ``step``: an
    Irwin-Hall normal from the counter RNG (module docstring); the same on every node."""
    key = random_u64(seed ^ ES_STREAM, (step << 24) | pair)
    z = _splitmix(key, 2 * size).astype("<u8", copy=False).view("<u4").reshape(size, 4)
    u = z.astype(np.float64)
    u *= 2.0**-32
    a = u[:, 0] + u[:, 1]
    a += u[:, 2] + u[:, 3]
    a -= 2.0
    a *= np.sqrt(3.0)
    eps = a.astype(np.float32)
    eps.flags.writeable = False
    return eps


@functools.lru_cache(maxsize=64)
def sign_perturbation(seed: int, step: int, pair: int, size: int) -> np.ndarray:
    """The integer variant's eps of pair ``pair`` in round ``step``: ``size`` int8 values
    +-1 (read-only); weight k takes bit k % 64 of the (k // 64)-th splitmix64 output keyed by
    (seed, step, pair): bit 1 -> -1, bit 0 -> +1."""
    key = random_u64(seed ^ ES_SIGN_STREAM, (step << 24) | pair)
    words = _splitmix(key, -(-size // 64)).astype("<u8", copy=False)
    bits = np.unpackbits(words.view(np.uint8), bitorder="little")[:size]
    eps = (1 - 2 * bits.astype(np.int8)).astype(np.int8)
    eps.flags.writeable = False
    return eps


@functools.lru_cache(maxsize=2)
def sign_matrix(seed: int, step: int, pairs: int, size: int) -> torch.Tensor:
    """(pairs, size) float32: the rows are the round's :func:`sign_perturbation` vectors."""
    if pairs * size >= 2**31:
        raise ValueError(f"{pairs} pairs x {size} weights: too large for one sign matrix")
    return torch.from_numpy(np.stack([sign_perturbation(seed, step, j, size)
                                      for j in range(pairs)]).astype(np.float32))


def integer_ranks(x: np.ndarray) -> np.ndarray:
    """Ranks 0 .. x.size - 1 of ``x`` (ties by position), int64, in ``x``'s shape."""
    ranks = np.empty(x.size, dtype=np.int64)
    ranks[np.argsort(x.ravel(), kind="stable")] = np.arange(x.size)
    return ranks.reshape(x.shape)


def centered_ranks(x: np.ndarray) -> np.ndarray:
    """Ranks of ``x`` (ties by position) scaled to [-0.5, 0.5], as the ES starter code."""
    ranks = integer_ranks(x).astype(np.float64)
    return ranks / (x.size - 1) - 0.5 if x.size > 1 else np.zeros(x.shape)


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
            f = []
            for sign in (1, -1):
                self._set(self.candidate(theta, r, j, sign))
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

    def candidate(self, theta: torch.Tensor, r: int, j: int, sign: int) -> torch.Tensor:
        """theta + sign * sigma * eps_j (round r), the weights pair j evaluates."""
        eps = torch.tensor(perturbation(self.cfg.seed, r, j, theta.numel()), dtype=theta.dtype)
        return theta + float(sign) * self.cfg.es_sigma * eps

    def fitnesses(self, r: int, results: list[tuple[int, float, float]]) -> np.ndarray:
        """(P, 2) float32 fitnesses (f+, f-) in pair order, checking that all P arrived."""
        results = sorted(results)
        if [j for j, _, _ in results] != list(range(self.cfg.es_pairs)):
            raise ValueError(f"round {r}: fitnesses of pairs {[j for j, _, _ in results]}, "
                             f"expected 0..{self.cfg.es_pairs - 1}")
        return np.array([[a, b] for _, a, b in results], dtype=np.float32)

    def update(self, r: int, results: list[tuple[int, float, float]]) -> None:
        """The ES step from all P triples (any order: sorted by pair here)."""
        cfg = self.cfg
        results = sorted(results)
        ranks = centered_ranks(self.fitnesses(r, results))
        theta = self.flat()
        g = torch.zeros_like(theta)
        for (j, _, _), (rp, rm) in zip(results, ranks):
            eps = torch.tensor(perturbation(cfg.seed, r, j, theta.numel()), dtype=theta.dtype)
            g += float(rp - rm) * eps
        g /= 2 * cfg.es_pairs
        grad = -g + cfg.es_l2 * theta
        for p, part in zip(self.model.parameters(), torch.split(grad, self.sizes)):
            p.grad = part.reshape(p.shape).clone()
        self.opt.step()


class IntESNode(ESNode):
    """Integer ES: weights in a Fixed format that move by whole codes (module docstring)."""

    def __init__(self, index: int, cfg: NodeConfig, ds, shard: np.ndarray):
        super().__init__(index, cfg, ds, shard)
        self.fmt = es_fixed_format(cfg)
        self.unit = 2.0 ** -self.fmt.frac
        self.sigma_codes = sigma_codes(cfg)
        self.counts["code_moves"] = 0
        self._set(self.values(self.saturate(torch.round(self.flat() / self.unit))))

    def saturate(self, codes: torch.Tensor) -> torch.Tensor:
        return codes.clamp(self.fmt.min_code, self.fmt.max_code)

    def values(self, codes: torch.Tensor) -> torch.Tensor:
        return codes * self.unit  # exact: codes of at most 24 bits, a power-of-two unit

    def codes(self) -> torch.Tensor:
        """The weights' codes (float tensor of integers; exact, recomputed from the values)."""
        return self.flat() / self.unit

    def candidate(self, theta: torch.Tensor, r: int, j: int, sign: int) -> torch.Tensor:
        eps = torch.tensor(sign_perturbation(self.cfg.seed, r, j, theta.numel()))
        codes = self.saturate(theta / self.unit + float(sign * self.sigma_codes) * eps.to(theta.dtype))
        return self.values(codes)

    def update(self, r: int, results: list[tuple[int, float, float]]) -> None:
        cfg = self.cfg
        ranks = integer_ranks(self.fitnesses(r, results))
        w = ranks[:, 0] - ranks[:, 1]
        # G = w @ E in float32 is exact in any summation order: |G| <= P (2P - 1) < 2^24
        g = torch.from_numpy(w.astype(np.float32)) @ sign_matrix(cfg.seed, r, cfg.es_pairs,
                                                                 sum(self.sizes))
        var = float(np.sum(w * w))  # exact: integers far below 2**53
        moves = torch.sign(g) * (g.double() ** 2 >= cfg.es_z ** 2 * var)
        self.counts["code_moves"] += int(torch.count_nonzero(moves))
        self._set(self.values(self.saturate(self.codes() + moves.to(self.flat().dtype))))


def es_fixed_format(cfg: NodeConfig) -> Fixed:
    """The integer variant's weight format: a signed Fixed format of at most 24 bits (so
    every value is exact in float32)."""
    fmt = parse_format(cfg.es_format)
    if not isinstance(fmt, Fixed) or not fmt.signed or fmt.bits > 24:
        raise ValueError(f"es_format must be 'float' or a signed Fixed format of at most 24 "
                         f"bits (e.g. fixed8.7), got {cfg.es_format!r}")
    return fmt


def sigma_codes(cfg: NodeConfig) -> int:
    """The integer variant's perturbation in codes: es_sigma * 2^frac rounded to nearest even,
    at least 1."""
    s = round(cfg.es_sigma * 2 ** es_fixed_format(cfg).frac)
    if s < 1:
        raise ValueError(f"es_sigma {cfg.es_sigma} is below half a code of {cfg.es_format} "
                         f"(2^-{es_fixed_format(cfg).frac}): the perturbation would be 0")
    return s


def build_es(cfg: NodeConfig, ds, parts) -> list[ESNode]:
    """The ES replicas (float or integer by ``es_format``)."""
    kind = ESNode if cfg.es_format == "float" else IntESNode
    return [kind(i, cfg, ds, parts[i]) for i in range(cfg.nodes)]


def es_round(nodes: list[ESNode], r: int) -> None:
    """One simulated ES round: every node evaluates its pairs; every node applies the
    update from all of them (its own replica)."""
    results = [t for n in nodes for t in n.evaluate_pairs(r)]
    for n in nodes:
        n.update(r, results)
