"""One node: a private shard, an inbox, a model, and the per-round protocol.

Every round a node (1) takes its next minibatch: from its inbox with probability
Q (``consume_p``) when the inbox is not empty, else from its shard; (2) takes one
training step on it; (3) with probability P (``broadcast_p``) broadcasts it to
its neighbours, with what it shares about it: the labels it trained on (true
labels, or received ones: re-broadcast is allowed), or its own logits or
top-level features on those images, cast into the message format. Both random
draws happen every round, from the node's own generator, so a node's stream of
decisions does not depend on the others or on the runtime.

Training targets: shard batches and received labels: cross-entropy; received
logits: cross-entropy against softmax(logits / T) (the full target
distribution); received features: mean squared error between the node's own
top-level features and the received ones.
"""

from __future__ import annotations

import logging
from collections import deque
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

import lowbit.emulators as E
from lowbit.integrations.data import Dataset
from lowbit.integrations.programs.nodes.protocol import (
    BASELINES,
    SHARES,
    Message,
    message_bytes,
    ring_neighbours,
)
from lowbit.integrations.programs.nodes.wire import Expect, WireError, decode, encode
from lowbit.integrations.torch import EmulationSpec, swap_layers
from lowbit.numerics import LNS, Fixed, Float, parse_format

log = logging.getLogger("lowbit.nodes")


def fresh_counts() -> dict[str, int]:
    """Every node's counters, at zero (summed over the nodes into the metrics)."""
    return {"rounds": 0, "from_shard": 0, "from_inbox": 0, "broadcasts": 0, "dropped": 0,
            "rejected": 0, "bytes_images": 0, "bytes_payload": 0}


@dataclass
class NodeConfig:
    """A network of nodes (saved with every checkpoint and result)."""

    nodes: int = 10
    neighbours: int = 9
    share: str = "labels"
    temperature: float = 1.0
    broadcast_p: float = -1.0  # -1: consume_p / neighbours (a stable inbox)
    consume_p: float = 0.5
    format: str = "float"  # the node models' arithmetic: "float" or an emulation spec
    message_format: str = "float32"  # logits/features on the wire: float32 or a format
    model: str = "mlp"  # "mlp" or "cnn" (strided convolutions, no pooling)
    hidden: int = 256
    batch: int = 32
    lr: float = 1e-3
    rounds: int = 1000
    eval_every: int = 250
    inbox_cap: int = 64
    qsgd_levels: int = 127  # share "qsgd": s levels per sign (8 bits with the sign)
    local_steps: int = 1  # share "localsgd": H, steps between model averages
    local_from: int = 0  # share "localsgd": average every step before this one (post-local SGD)
    async_delay: float = 0.0  # share "async": mean push delay in ticks (Poisson)
    n_push: int = 1  # share "async": gradients per push
    n_fetch: int = 1  # share "async": ticks between fetches
    async_apply: str = "each"  # share "async": "each" push is a step, or the "mean" of N
    staleness_lr: bool = False  # share "async": lr / max(1, staleness)
    es_pairs: int = 20  # share "es": antithetic pairs per round (over all nodes)
    es_sigma: float = 0.02  # share "es": noise standard deviation
    es_l2: float = 0.005  # share "es": weight decay coefficient
    es_format: str = "float"  # share "es": "float" (Adam) or a Fixed format (integer ES)
    es_z: float = 0.5  # share "es", integer: z-score at which a weight moves one code
    micro_batches: int = 1  # share "pipeline": micro-batches per minibatch (GPipe)
    grad_format: str = ""  # share "pipeline": activation gradients on the wire ("": message_format)
    optimizer: str = "adam"  # "adam" or "sgd" (plain, no momentum)
    dtype: str = "float32"  # the models' float dtype: "float32" or "float64"
    data: str = "digits"
    data_dir: str | None = None
    seed: int = 0
    out: str = "results/nodes"

    def check(self) -> None:
        if self.share not in SHARES + BASELINES:
            raise ValueError(f"share must be one of {SHARES + BASELINES}, got {self.share!r}")
        if self.model not in ("mlp", "cnn"):
            raise ValueError(f"model must be 'mlp' or 'cnn', got {self.model!r}")
        if self.optimizer not in ("adam", "sgd"):
            raise ValueError(f"optimizer must be 'adam' or 'sgd', got {self.optimizer!r}")
        if self.dtype not in ("float32", "float64"):
            raise ValueError(f"dtype must be 'float32' or 'float64', got {self.dtype!r}")
        if self.async_delay < 0:
            raise ValueError(f"async_delay must be >= 0, got {self.async_delay}")
        for name in ("n_push", "n_fetch"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.async_apply not in ("each", "mean"):
            raise ValueError(f"async_apply must be 'each' or 'mean', got {self.async_apply!r}")
        if self.es_pairs < 1 or self.es_sigma <= 0 or self.es_l2 < 0:
            raise ValueError(f"es_pairs must be >= 1, es_sigma > 0, es_l2 >= 0; got "
                             f"{self.es_pairs}, {self.es_sigma}, {self.es_l2}")
        if self.es_format != "float":
            from lowbit.integrations.programs.nodes.es import sigma_codes

            sigma_codes(self)
        if self.es_z <= 0:
            raise ValueError(f"es_z must be > 0, got {self.es_z}")
        if self.micro_batches < 1:
            raise ValueError(f"micro_batches must be >= 1, got {self.micro_batches}")
        if self.local_steps < 1:
            raise ValueError(f"local_steps (H) must be >= 1, got {self.local_steps}")
        if self.local_from < 0:
            raise ValueError(f"local_from must be >= 0, got {self.local_from}")
        if self.qsgd_levels < 1:
            raise ValueError(f"qsgd_levels must be >= 1, got {self.qsgd_levels}")
        for name in ("nodes", "batch", "rounds", "eval_every", "hidden", "inbox_cap"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        value_bits(self.message_format)
        if self.grad_format:
            value_bits(self.grad_format)
        if self.temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {self.temperature}")
        for name in ("consume_p",):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        if not (self.broadcast_p == -1.0 or 0 <= self.broadcast_p <= 1):
            raise ValueError(f"broadcast_p must be in [0, 1] (or -1), got {self.broadcast_p}")
        ring_neighbours(0, self.nodes, self.neighbours)

    @property
    def p_broadcast(self) -> float:
        if self.share not in SHARES[1:] or self.neighbours == 0:
            return 0.0
        return self.consume_p / self.neighbours if self.broadcast_p < 0 else self.broadcast_p

    def key(self) -> dict:
        k = asdict(self)
        for f in ("out", "rounds", "eval_every"):
            k.pop(f)
        return k


class NodeModel(nn.Module):
    """``body`` computes the top-level features (ReLU), ``head`` the logits from them.

    "mlp": two hidden layers of ``hidden`` units; "cnn": the thesis' kind of
    network (DCGAN-style: strided 3x3 convolutions, no pooling) - 32 and 64
    channels at stride 2, then a ``hidden``-unit fully connected feature layer.
    """

    def __init__(self, kind: str, image_shape: tuple[int, int, int], hidden: int, n_out: int):
        super().__init__()
        c, h, w = image_shape
        if kind == "mlp":
            n_in = c * h * w
            self.body = nn.Sequential(nn.Linear(n_in, hidden), nn.ReLU(),
                                      nn.Linear(hidden, hidden), nn.ReLU())
        elif kind == "cnn":
            h2, w2 = (h + 3) // 4, (w + 3) // 4  # two stride-2 convolutions, padding 1
            self.body = nn.Sequential(
                nn.Unflatten(1, (c, h, w)),
                nn.Conv2d(c, 32, 3, stride=2, padding=1), nn.ReLU(),
                nn.Conv2d(32, 64, 3, stride=2, padding=1), nn.ReLU(),
                nn.Flatten(), nn.Linear(64 * h2 * w2, hidden), nn.ReLU())
        else:
            raise ValueError(f"model must be 'mlp' or 'cnn', got {kind!r}")
        self.head = nn.Linear(hidden, n_out)

    def forward(self, x):
        f = self.body(x)
        return self.head(f), f


def value_bits(message_format: str) -> int:
    """Bits of one logit/feature (or parameter) on the wire: 32/64 for float32/64, a Fixed format's
    width, a float format's width (e4m3: 8), or W + 2 for an LNS format (its 2**(W+1) + 1 codes: sign, exponent, zero)."""
    if message_format in ("float32", "float64"):
        return int(message_format[5:])
    fmt = parse_format(message_format)
    if isinstance(fmt, Fixed):
        return fmt.bits
    if isinstance(fmt, LNS):
        return fmt.exp_bits + 2
    if isinstance(fmt, Float):
        return fmt.width
    raise ValueError(f"message format must be float32/64, a fixed, float (e4m3, ...) or LNS "
                     f"format, got {message_format!r}")


def to_message_values(v: torch.Tensor, message_format: str) -> np.ndarray:
    """Values as the receiver sees them: float32, or rounded into the message format."""
    a = v.detach().double().numpy()
    if message_format == "float64":
        return a
    if message_format == "float32":
        return a.astype(np.float32).astype(np.float64)
    return E.cast(a, parse_format(message_format)).to_float()


def build_model(cfg: NodeConfig, ds: Dataset, seed: int) -> NodeModel:
    """A node's model, initialised from ``seed``, emulated when ``cfg.format`` says so."""
    torch.manual_seed(seed)
    model = NodeModel(cfg.model, ds.image_shape, cfg.hidden, ds.n_classes).to(
        getattr(torch, cfg.dtype))
    if cfg.format != "float":
        swap_layers(model, EmulationSpec.parse(cfg.format), seed=seed, cast_weights=False)
    return model


class Node:
    """A node's model, optimizer, shard cursor, inbox, random stream and counters."""

    def __init__(self, index: int, cfg: NodeConfig, ds: Dataset, shard: np.ndarray,
                 model_seed: int | None = None):
        self.i, self.cfg, self.ds = index, cfg, ds
        self.shard = shard
        self.neighbours = ring_neighbours(index, cfg.nodes, cfg.neighbours)
        seed = cfg.seed * 100_003 + index if model_seed is None else model_seed
        self.model = build_model(cfg, ds, seed)
        self.opt = (torch.optim.Adam if cfg.optimizer == "adam" else torch.optim.SGD)(
            self.model.parameters(), lr=cfg.lr)
        self.rng = np.random.default_rng([cfg.seed, index, 1])
        self.inbox: deque[Message] = deque()
        self.epoch, self.cursor = 0, 0
        self.order = self._order()
        self.counts = fresh_counts()
        if cfg.share == "async":
            self.counts.update(updates=0, staleness_sum=0)

    def _order(self) -> np.ndarray:
        return np.random.default_rng([self.cfg.seed, self.i, 2, self.epoch]).permutation(self.shard)

    def _shard_batch(self) -> np.ndarray:
        b = self.cfg.batch
        if self.cursor + b > len(self.order):
            self.epoch += 1
            self.order, self.cursor = self._order(), 0
        idx = self.order[self.cursor:self.cursor + b]
        self.cursor += b
        return idx

    def deliver(self, messages: list[Message]) -> None:
        """Append messages (already in sender order) to the inbox; beyond
        ``inbox_cap`` the oldest are dropped (counted)."""
        for m in messages:
            self.inbox.append(m)
            if len(self.inbox) > self.cfg.inbox_cap:
                self.inbox.popleft()
                self.counts["dropped"] += 1

    def draw(self) -> tuple[bool, bool]:
        """This round's two decisions from the node's own stream: (consume from the
        inbox if it is not empty: probability Q; broadcast: probability P)."""
        u, v = self.rng.random(), self.rng.random()
        return bool(u < self.cfg.consume_p), bool(v < self.cfg.p_broadcast)

    def round(self, r: int) -> Message | None:
        """One round: choose a batch, train on it, maybe broadcast it."""
        cfg = self.cfg
        consume, broadcast = self.draw()
        if self.inbox and consume:
            msg = self.inbox.popleft()
            self.counts["from_inbox"] += 1
        else:
            idx = self._shard_batch()
            msg = Message(self.i, r, "labels", self.ds.pixel_codes(self.ds.x_train[idx]),
                          labels=self.ds.y_train[idx])
            self.counts["from_shard"] += 1
        x = self.tensor(self.ds.pixels(msg.images))
        self.model.train()
        self.opt.zero_grad()
        logits, feats = self.model(x)
        if msg.kind == "labels":
            loss = F.cross_entropy(logits, torch.from_numpy(msg.labels))
        elif msg.kind == "logits":
            soft = self.tensor(torch.softmax(torch.from_numpy(msg.values) / cfg.temperature, 1))
            loss = -(soft * torch.log_softmax(logits, 1)).sum(1).mean()
        else:
            loss = F.mse_loss(feats, self.tensor(msg.values))
        loss.backward()
        self.opt.step()
        self.counts["rounds"] += 1
        if not broadcast:
            return None
        out = Message(self.i, r, cfg.share, msg.images)
        if cfg.share == "labels":
            if msg.kind != "labels":
                return None  # nothing to pass on: this batch came without labels
            out.labels = msg.labels
        elif cfg.share == "logits":
            out.values = to_message_values(logits, cfg.message_format)
        else:
            out.values = to_message_values(feats, cfg.message_format)
        b = message_bytes(out, self.ds.n_classes, value_bits(cfg.message_format))
        k = len(self.neighbours)
        self.counts["broadcasts"] += 1
        self.counts["bytes_images"] += k * b["images"]
        self.counts["bytes_payload"] += k * b["payload"]
        return out

    def predict_proba(self, x: np.ndarray, batch: int = 2000) -> np.ndarray:
        self.model.eval()
        out = []
        with torch.no_grad():
            for i in range(0, len(x), batch):
                out.append(torch.softmax(self.model(self.tensor(x[i:i + batch]))[0], 1).double())
        return torch.cat(out).numpy()

    def tensor(self, a) -> torch.Tensor:
        """``a`` (array or tensor) as a tensor of the models' dtype."""
        return torch.as_tensor(a).to(getattr(torch, self.cfg.dtype))

    def expect(self, sender: int, rnd: int) -> Expect:
        """What a message of this run from ``sender`` in round ``rnd`` must look like."""
        cols = {"logits": self.ds.n_classes, "features": self.cfg.hidden}.get(self.cfg.share, 0)
        kind = self.cfg.share if self.cfg.share in SHARES[1:] else "labels"
        return Expect(sender=sender, round=rnd, kind=kind, features=self.ds.n_features,
                      classes=self.ds.n_classes, columns=cols, max_batch=self.cfg.batch)

    def receive(self, raw: bytes, sender: int, rnd: int) -> Message | None:
        """The message in ``raw`` (read under ``sender``'s key for round ``rnd``), or None
        when it breaks the schema: dropped, counted in ``rejected`` and logged once."""
        try:
            return decode(raw, self.expect(sender, rnd))
        except WireError as e:
            self.counts["rejected"] += 1
            log.warning("node %d: dropped a malformed message under node %d round %d: %s",
                        self.i, sender, rnd, e)
            return None

    def state(self) -> dict:
        """Everything to resume the node: tensors, numbers and wire bytes only (loadable by
        ``torch.load(weights_only=True)``)."""
        return {"model": self.model.state_dict(), "opt": self.opt.state_dict(),
                "rng": self.rng.bit_generator.state,
                "inbox": [(m.sender, m.round, encode(m)) for m in self.inbox],
                "epoch": self.epoch, "cursor": self.cursor, "counts": dict(self.counts)}

    def load(self, st: dict) -> None:
        self.model.load_state_dict(st["model"])
        self.opt.load_state_dict(st["opt"])
        self.rng.bit_generator.state = st["rng"]
        self.inbox = deque(decode(raw, self.expect(s, r)) for s, r, raw in st["inbox"])
        self.epoch, self.cursor = st["epoch"], st["cursor"]
        self.order = self._order()
        self.counts = dict(st["counts"])
