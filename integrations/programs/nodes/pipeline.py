"""Model parallelism: the layers split over the nodes, GPipe-style micro-batches.

The model (the run's MLP: ``Linear-ReLU-Linear-ReLU-Linear``) is cut into S = ``nodes``
contiguous stages at its Linear layers (S <= the number of Linear layers); node s holds
stage s and an optimizer over its parameters only. Node 0 reads the minibatches (the whole
training set is its data: one stream, as a single-process run reads it). A round: the
minibatch is cut into ``micro_batches`` equal parts; each goes forward stage by stage, the
activations crossing every boundary rounded into the message format (float32, float64,
Fixed, LNS or a Float format), and its gradient goes back the same way, the activation
gradients rounded into ``grad_format`` (default: the message format; e.g. E4M3 forward and
E5M2 backward, the usual FP8 training split); the stages accumulate the micro-batches' gradients of the mean loss
(each weighted by its share of the batch) and then every stage takes its optimizer step.

Bytes on the wire per round and boundary: the activations forward and their gradients
backward, batch x width values at their format's bits each (counted by the sender).

Built-in identity: with one micro-batch and float32 messages this is single-process
training of the same model on the same batches, bit for bit.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from lowbit.integrations.programs.nodes.node import (
    Node,
    NodeConfig,
    build_model,
    fresh_counts,
    to_message_values,
    value_bits,
)


class WireCast(torch.autograd.Function):
    """Identity up to the wire: forward rounds activations into ``fmt``, backward rounds
    their gradients into ``grad_fmt``."""

    @staticmethod
    def forward(ctx, h, fmt, grad_fmt):
        ctx.grad_fmt = grad_fmt
        return torch.from_numpy(to_message_values(h, fmt)).to(h.dtype)

    @staticmethod
    def backward(ctx, g):
        return torch.from_numpy(to_message_values(g, ctx.grad_fmt)).to(g.dtype), None, None


def gradient_format(cfg: NodeConfig) -> str:
    """The format of the activation gradients on the pipeline's wire."""
    return cfg.grad_format or cfg.message_format


def split_stages(model, stages: int) -> list[nn.Sequential]:
    """``model.body`` + ``model.head`` as ``stages`` contiguous chunks, cut before Linear
    layers (balanced by Linear count); ValueError if there are fewer Linear layers."""
    layers = list(model.body) + [model.head]
    starts = [i for i, m in enumerate(layers) if isinstance(m, nn.Linear)]
    if stages > len(starts):
        raise ValueError(f"{stages} pipeline stages but the model has only {len(starts)} "
                         "Linear layers to split at")
    cuts = [starts[math.floor(k * len(starts) / stages)] for k in range(stages)] + [len(layers)]
    return [nn.Sequential(*layers[a:b]) for a, b in zip(cuts, cuts[1:])]


class Pipeline:
    """The stages of one model, their optimizers, node 0's data stream and the counters of
    every node (``counts[s]``)."""

    def __init__(self, cfg: NodeConfig, ds):
        if cfg.model != "mlp":
            raise ValueError("the pipeline splits the MLP (model 'mlp')")
        if cfg.batch % cfg.micro_batches:
            raise ValueError(f"batch {cfg.batch} is not a multiple of micro_batches "
                             f"{cfg.micro_batches}")
        self.cfg, self.ds = cfg, ds
        self.model = build_model(cfg, ds, cfg.seed * 100_003)
        self.stages = split_stages(self.model, cfg.nodes)
        opt = torch.optim.Adam if cfg.optimizer == "adam" else torch.optim.SGD
        self.opts = [opt(s.parameters(), lr=cfg.lr) for s in self.stages]
        self.i, self.shard = 0, np.arange(len(ds.y_train))  # node 0 reads all the data
        self.epoch, self.cursor = 0, 0
        self.order = self._order()

    _order = Node._order  # node 0's stream of minibatches over the whole training set
    next_batch = Node._shard_batch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of ``x`` through the stages, every boundary on the wire."""
        h = x
        for k, stage in enumerate(self.stages):
            if k:
                h = WireCast.apply(h, self.cfg.message_format, gradient_format(self.cfg))
            h = stage(h)
        return h

    def boundary_widths(self) -> list[int]:
        """Values per example crossing each boundary (the stage outputs but the last)."""
        widths = []
        for stage in self.stages[:-1]:
            lin = [m for m in stage if isinstance(m, nn.Linear)][-1]
            widths.append(lin.out_features)
        return widths

    def step(self, nodes) -> None:
        """One round: micro-batches forward and backward, then every stage's step."""
        cfg = self.cfg
        idx = self.next_batch()
        x = torch.from_numpy(self.ds.x_train[idx]).to(getattr(torch, cfg.dtype))
        y = torch.from_numpy(self.ds.y_train[idx])
        self.model.train()
        for opt in self.opts:
            opt.zero_grad()
        m = cfg.micro_batches
        for part in range(m):
            sl = slice(part * cfg.batch // m, (part + 1) * cfg.batch // m)
            loss = F.cross_entropy(self.forward(x[sl]), y[sl])
            (loss / m if m > 1 else loss).backward()
        for opt in self.opts:
            opt.step()
        bits, gbits = value_bits(cfg.message_format), value_bits(gradient_format(cfg))
        for s, w in enumerate(self.boundary_widths()):
            nodes[s].counts["bytes_payload"] += math.ceil(cfg.batch * w * bits / 8)  # forward
            nodes[s + 1].counts["bytes_payload"] += math.ceil(cfg.batch * w * gbits / 8)
        for n in nodes:
            n.counts["rounds"] += 1
        nodes[0].counts["from_shard"] += 1

    def state(self) -> dict:
        return {"model": self.model.state_dict(), "opts": [o.state_dict() for o in self.opts],
                "epoch": self.epoch, "cursor": self.cursor}

    def load(self, st: dict) -> None:
        self.model.load_state_dict(st["model"])
        for o, s in zip(self.opts, st["opts"]):
            o.load_state_dict(s)
        self.epoch, self.cursor = st["epoch"], st["cursor"]
        self.order = self._order()


class StageNode:
    """Node s of the pipeline: its counters; node 0 also carries the pipeline's state."""

    def __init__(self, index: int, pipe: Pipeline):
        self.i, self.pipe, self.cfg = index, pipe, pipe.cfg
        self.eval_model = pipe.model
        self.counts = fresh_counts()

    def predict_proba(self, x: np.ndarray, batch: int = 2000) -> np.ndarray:
        self.pipe.model.eval()
        out = []
        with torch.no_grad():
            for i in range(0, len(x), batch):
                xb = torch.from_numpy(x[i:i + batch]).to(getattr(torch, self.cfg.dtype))
                out.append(torch.softmax(self.pipe.forward(xb), 1).double())
        return torch.cat(out).numpy()

    def state(self) -> dict:
        st = {"counts": dict(self.counts)}
        if self.i == 0:
            st["pipe"] = self.pipe.state()
        return st

    def load(self, st: dict) -> None:
        self.counts = dict(st["counts"])
        if "pipe" in st:
            self.pipe.load(st["pipe"])


def build_pipeline(cfg: NodeConfig, ds) -> list[StageNode]:
    pipe = Pipeline(cfg, ds)
    return [StageNode(s, pipe) for s in range(cfg.nodes)]


def pipeline_round(nodes: list[StageNode], r: int) -> None:
    nodes[0].pipe.step(nodes)


class StageProcess:
    """Stage s of the pipeline as its own process (the gloo runtime).

    Every process builds the same model and cuts it the same way (:class:`Pipeline`) and
    trains only stage s. A round: stage 0 reads the minibatch (every stage follows the same
    data stream, so the last stage takes the labels of that minibatch from its own copy of
    the data set: they are not on the wire); the micro-batches go forward (stage s receives
    each from s - 1, sends its output, rounded into the message format, to s + 1; sends are
    non-blocking), then their gradients come back in micro-batch order (the last stage does
    each micro-batch's backward as soon as its forward is done), every gradient sent back
    rounded into the message format; then the stage's optimizer step. The gradients
    accumulate in the order of the simulated :class:`Pipeline`, so both runtimes compute the
    same numbers. Evaluation is pipelined the same way and the last stage's probabilities
    are broadcast to every stage.
    """

    def __init__(self, index: int, cfg: NodeConfig, ds):
        self.pipe = Pipeline(cfg, ds)
        self.i, self.cfg, self.ds = index, cfg, ds
        self.stage, self.opt = self.pipe.stages[index], self.pipe.opts[index]
        self.widths = self.pipe.boundary_widths()
        self.dtype = getattr(torch, cfg.dtype)
        self.last = index == cfg.nodes - 1
        self.grad_fmt = gradient_format(cfg)
        self.counts = fresh_counts()

    def _wire(self, t: torch.Tensor, fmt: str) -> torch.Tensor:
        return torch.from_numpy(to_message_values(t.detach(), fmt)).to(t.dtype).contiguous()

    def _receive(self, rows: int, src: int) -> torch.Tensor:
        import torch.distributed as dist

        h = torch.empty(rows, self.widths[min(src, self.i)], dtype=self.dtype)
        dist.recv(h, src=src)
        return h

    def step(self) -> None:
        import torch.distributed as dist

        cfg, s, m = self.cfg, self.i, self.cfg.micro_batches
        idx = self.pipe.next_batch()
        x = torch.from_numpy(self.ds.x_train[idx]).to(self.dtype)
        y = torch.from_numpy(self.ds.y_train[idx])
        self.stage.train()
        self.opt.zero_grad()
        sends, kept = [], []
        parts = [slice(k * cfg.batch // m, (k + 1) * cfg.batch // m) for k in range(m)]
        for sl in parts:
            rows = sl.stop - sl.start
            h = x[sl] if s == 0 else self._receive(rows, s - 1).requires_grad_()
            out = self.stage(h)
            if self.last:
                loss = F.cross_entropy(out, y[sl])
                (loss / m if m > 1 else loss).backward()
                if s > 0:
                    sends.append(dist.isend(self._wire(h.grad, self.grad_fmt), dst=s - 1))
            else:
                wire = self._wire(out, cfg.message_format)
                sends.append(dist.isend(wire, dst=s + 1))
                kept.append((h, out, wire))
        for h, out, _ in kept:
            out.backward(self._receive(out.shape[0], s + 1))
            if s > 0:
                sends.append(dist.isend(self._wire(h.grad, self.grad_fmt), dst=s - 1))
        for w in sends:
            w.wait()
        self.opt.step()
        bits, gbits = value_bits(cfg.message_format), value_bits(gradient_format(cfg))
        if not self.last:  # activations forward over boundary s
            self.counts["bytes_payload"] += math.ceil(cfg.batch * self.widths[s] * bits / 8)
        if s > 0:  # gradients backward over boundary s - 1
            self.counts["bytes_payload"] += math.ceil(cfg.batch * self.widths[s - 1] * gbits / 8)
        self.counts["rounds"] += 1
        if s == 0:
            self.counts["from_shard"] += 1

    def predict_proba(self, x: np.ndarray, batch: int = 2000) -> np.ndarray:
        """The model's probabilities on ``x`` through the stages (every stage calls this at
        the same time); every stage returns the last stage's result."""
        import torch.distributed as dist

        s = self.i
        self.stage.eval()
        out = []
        with torch.no_grad():
            for a in range(0, len(x), batch):
                rows = min(batch, len(x) - a)
                h = torch.from_numpy(x[a:a + rows]).to(self.dtype) if s == 0 \
                    else self._receive(rows, s - 1)
                h = self.stage(h)
                if self.last:
                    out.append(torch.softmax(h, 1).double())
                else:
                    dist.send(self._wire(h, self.cfg.message_format), dst=s + 1)
        probs = torch.cat(out) if self.last else torch.empty(len(x), self.ds.n_classes,
                                                             dtype=torch.float64)
        dist.broadcast(probs, src=self.cfg.nodes - 1)
        return probs.numpy()

    def state(self) -> dict:
        return {"stage": self.stage.state_dict(), "opt": self.opt.state_dict(),
                "epoch": self.pipe.epoch, "cursor": self.pipe.cursor,
                "counts": dict(self.counts)}

    def load(self, st: dict) -> None:
        self.stage.load_state_dict(st["stage"])
        self.opt.load_state_dict(st["opt"])
        self.pipe.epoch, self.pipe.cursor = st["epoch"], st["cursor"]
        self.pipe.order = self.pipe._order()
        self.counts = dict(st["counts"])
