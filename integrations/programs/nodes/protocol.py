"""The protocol's pieces: shards, ring neighbourhoods, messages and their bytes.

- :func:`shards`: the training set split into N disjoint private shards (a fixed
  permutation of the indices, cut into N nearly equal parts);
- :func:`ring_neighbours`: node i's K neighbours are the K nearest nodes on a ring
  (alternately i+1, i-1, i+2, i-2, ...; K = N-1 is fully connected);
- :class:`Message`: the images of a minibatch (uint8 pixels) and what is shared
  about them: true labels, logits (to be softened by the receiver with
  temperature T), or top-level features; logits and features travel cast into a
  message format (float32, or an emulated Fixed/LNS format);
- :func:`message_bytes`: the exact bytes of a message on the wire.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

SHARES = ("none", "labels", "logits", "features")
# data-parallel SGD: float32 / QSGD-quantized gradients; local SGD (model averaging every H steps)
BASELINES = ("sync", "qsgd", "localsgd", "async", "es", "pipeline")


def shards(n_examples: int, n_nodes: int, seed: int) -> list[np.ndarray]:
    """N disjoint shards covering ``range(n_examples)``, from a seeded permutation."""
    if n_nodes < 1:
        raise ValueError(f"nodes must be >= 1, got {n_nodes}")
    perm = np.random.default_rng([seed, 777]).permutation(n_examples)
    return [np.sort(part) for part in np.array_split(perm, n_nodes)]


def ring_neighbours(node: int, n_nodes: int, k: int) -> list[int]:
    """The k nearest nodes of ``node`` on a ring of ``n_nodes`` (ascending order)."""
    if not 0 <= k <= n_nodes - 1:
        raise ValueError(f"neighbours must be in 0..{n_nodes - 1}, got {k}")
    out = []
    d = 1
    while len(out) < k:
        for j in ((node + d) % n_nodes, (node - d) % n_nodes):
            if j != node and j not in out and len(out) < k:
                out.append(j)
        d += 1
    return sorted(out)


@dataclass
class Message:
    """A broadcast minibatch: ``images`` (uint8, n x features), the sender, the round
    it was sent in, and the shared content (``labels`` int64, or ``values`` float64:
    logits or features, already rounded to the message format)."""

    sender: int
    round: int
    kind: str
    images: np.ndarray
    labels: np.ndarray | None = None
    values: np.ndarray | None = None


def label_bits(n_classes: int) -> int:
    """Bits of one label code for ``n_classes`` classes: ceil(log2(n_classes)), at least 1."""
    return max(1, math.ceil(math.log2(n_classes)))


def message_bytes(msg: Message, n_classes: int, value_bits: int) -> dict[str, int]:
    """Bytes on the wire: the images (1 byte per pixel code) and the payload (labels
    packed at ceil(log2 C) bits, values at ``value_bits`` bits each), each rounded
    up to whole bytes."""
    n = len(msg.images)
    payload = 0
    if msg.kind == "labels":
        payload = math.ceil(n * label_bits(n_classes) / 8)
    elif msg.kind in ("logits", "features"):
        payload = math.ceil(msg.values.size * value_bits / 8)
    return {"images": int(msg.images.size), "payload": int(payload)}
