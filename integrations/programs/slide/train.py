"""``lowbit train slide``: SLIDE's LSH-sampled training against dense training.

Two settings (``--data``):

- ``xmc`` (default): the synthetic extreme-classification task
  (:mod:`lowbit.integrations.synthetic_xmc`, Amazon-670K's statistics, ``--labels`` N): a
  sparse-input MLP V -> ``hidden`` (128) ReLU -> N labels, SLIDE's shape. The input layer is
  an embedding bag (the sum of the rows of a sample's non-zero features, weighted by their
  values) and runs in float32; the output layer is a :class:`SlideLinear` whose products
  run in ``--format``. Loss: cross-entropy against SLIDE's target (1/n_labels at each
  label) with the softmax over the active set; evaluation dense, P@1 and P@5 on the test set;
- ``fashion-mnist`` / ``digits``: the 2017 LSH paper's setting, a wide hidden layer: 784 (64)
  -> ``hidden`` (4096) LSH-sampled ReLU units -> 10, the output layer reading only the
  active units; accuracy on the test set.

``--policy dense`` trains the same network with a dense output (or hidden) layer in the
same format, optimizer and epochs: the baseline. ``--optimizer adam_dense`` (the released
code: every row every step) or ``adam_lazy`` (the active rows only) for the SLIDE layer;
Adam everywhere else. Per epoch: P@1/P@5 (or accuracy), the loss, the mean active set
and its split (labels / retrieved / fill), and the wall time split into hashing, query,
the products (forward and backward), optimizer and rebuild. Checkpoint per epoch; rerun
resumes.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from lowbit.integrations.runs import load_checkpoint, save_checkpoint, torch_load, write_run
from lowbit.integrations.synthetic_xmc import make_xmc
from lowbit.integrations.torch import emulated_linear
from lowbit.integrations.torch.optim import EmulatedOptimizer
from lowbit.integrations.torch.slide import (
    POLICIES,
    LazyAdam,
    SlideLinear,
    active_targets,
    sparse_softmax_cross_entropy,
)
from lowbit.integrations.torch.updates import update_format
from lowbit.numerics import parse_format

OPTIMIZERS = ("adam_dense", "adam_lazy")
UPDATES = ("plain", "stochastic", "kahan")  # how an update meets master weights in a format


@dataclass
class SlideConfig:
    """One run (saved in summary.json)."""

    data: str = "xmc"  # or "fashion-mnist" / "digits": the wide-hidden-layer setting
    data_dir: str | None = None
    labels: int = 5000
    features: int = 20000
    train: int = 20000
    test: int = 2000
    hidden: int = 128
    policy: str = "union"
    scope: str = "sample"
    products: str = "sparse"  # scope sample, float32: per-sample sparse kernels, or "masked"
    family: str = "simhash"
    dwta_shift: int = 3
    bits: int = 6
    tables: int = 20
    beta: int = 64
    min_active: int = 0
    fill: str = "batch"  # random fill up to min_active: per "batch" or per "sample"
    threshold: int = 2
    rebuild: str = "period"
    rebuild_every: int = 50
    rebuild_growth: float = 1.0
    change_threshold: float = 0.1  # rebuild="change": flipped fraction of the row sketch
    format: str = "float"
    optimizer: str = "adam_dense"
    master: str = "float"  # the SLIDE (or dense) layer's master weights: float32 or a format
    update: str = "plain"  # master weights in a format: plain (nearest), stochastic or kahan
    lr: float = 1e-2  # the dense baseline at N = 5k, 3 epochs: P@1 0.08 / 0.18 / 0.11 at 1e-3 / 1e-2 / 3e-2
    batch: int = 128
    epochs: int = 2
    seed: int = 0
    out: str = "results/slide"

    def check(self) -> None:
        if self.policy not in POLICIES + ("dense",):
            raise ValueError(f"policy must be one of {POLICIES + ('dense',)}, got {self.policy!r}")
        if self.data != "xmc" and self.data not in ("fashion-mnist", "digits") \
                and self.data_dir is None:
            raise ValueError(f"data must be xmc, fashion-mnist or digits (or an IDX folder "
                             f"via data_dir), got {self.data!r}")
        if self.products not in ("sparse", "masked"):
            raise ValueError(f"products must be 'sparse' or 'masked', got {self.products!r}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}")
        if self.update not in UPDATES:
            raise ValueError(f"update must be one of {UPDATES}, got {self.update!r}")
        if self.master != "float":
            update_format(parse_format(self.master))  # raises for binary/ternary masters


def slide_layer(cfg: SlideConfig, n_in: int, n_out: int) -> SlideLinear:
    """The run's LSH-sampled layer (``--policy dense``: the same layer, used densely)."""
    return SlideLinear(n_in, n_out, spec=None if cfg.format == "float" else cfg.format,
                       bits=cfg.bits, tables=cfg.tables,
                       policy=cfg.policy if cfg.policy != "dense" else "union",
                       beta=cfg.beta, min_active=cfg.min_active, threshold=cfg.threshold,
                       rebuild=cfg.rebuild, rebuild_every=cfg.rebuild_every,
                       rebuild_growth=cfg.rebuild_growth,
                       change_threshold=cfg.change_threshold, seed=cfg.seed, scope=cfg.scope,
                       family=cfg.family, dwta_shift=cfg.dwta_shift,
                       sparse_products=cfg.products == "sparse", fill=cfg.fill)


class XMCNet(nn.Module):
    """Sparse input -> hidden ReLU (an embedding bag, float32) -> the output layer."""

    def __init__(self, cfg: SlideConfig):
        super().__init__()
        torch.manual_seed(cfg.seed)
        self.bag = nn.EmbeddingBag(cfg.features, cfg.hidden, mode="sum")
        nn.init.normal_(self.bag.weight, 0, 0.05)
        self.bias = nn.Parameter(torch.zeros(cfg.hidden))
        self.out = slide_layer(cfg, cfg.hidden, cfg.labels)
        self.dense = cfg.policy == "dense"

    def hidden(self, s, rows: np.ndarray) -> torch.Tensor:
        starts = s.indptr[rows]
        idx = np.concatenate([s.indices[s.indptr[i]:s.indptr[i + 1]] for i in rows])
        val = np.concatenate([s.values[s.indptr[i]:s.indptr[i + 1]] for i in rows])
        offsets = torch.from_numpy(np.concatenate([[0], np.cumsum(s.indptr[rows + 1] - starts)[:-1]]))
        h = self.bag(torch.from_numpy(idx), offsets, per_sample_weights=torch.from_numpy(val))
        return F.relu(h + self.bias)

    def dense_logits(self, h: torch.Tensor) -> torch.Tensor:
        o = self.out
        return h @ o.weight.T + o.bias if o.spec is None else \
            emulated_linear(h, o.weight, o.bias, o.spec, seed=o.seed, step=o.batches)


def precision_at(logits: np.ndarray, label_lists, k: int) -> float:
    """Mean over samples of |top-k predictions ∩ labels| / k."""
    top = np.argpartition(-logits, k - 1, axis=1)[:, :k]
    return float(np.mean([len(set(t.tolist()) & set(lab.tolist())) / k
                          for t, lab in zip(top, label_lists)]))


def evaluate(net: XMCNet, task, batch: int = 512) -> dict:
    s = task.test
    p1 = p5 = 0.0
    with torch.no_grad():
        for lo in range(0, s.n, batch):
            rows = np.arange(lo, min(lo + batch, s.n))
            logits = net.dense_logits(net.hidden(s, rows)).numpy()
            labs = [s.labels_of(i) for i in rows]
            p1 += precision_at(logits, labs, 1) * len(rows)
            p5 += precision_at(logits, labs, 5) * len(rows)
    return {"p_at_1": p1 / s.n, "p_at_5": p5 / s.n}


def _optimizers(cfg: SlideConfig, net: nn.Module, layer: SlideLinear, ckpt: Path):
    """(Adam over the parameters, LazyAdam over ``layer`` or None, the metrics so far):
    fresh, or resumed from ``ckpt`` when it holds a run of the same config."""
    lazy = cfg.optimizer == "adam_lazy" and not net.dense
    own = {id(layer.weight), id(layer.bias)}
    opt = torch.optim.Adam([p for p in net.parameters() if id(p) not in own or not lazy], cfg.lr)
    master = None if cfg.master == "float" else cfg.master
    comp = None if cfg.update == "plain" else cfg.update
    if master is not None and not lazy:
        opt = EmulatedOptimizer(opt, {layer.weight: master, layer.bias: master}, comp, cfg.seed)
    lazy_opt = LazyAdam(layer, cfg.lr, master=master, compensation=comp, seed=cfg.seed) \
        if lazy else None
    saved = load_checkpoint(ckpt, torch_load)
    if saved is None or saved["config"] != asdict(cfg):
        return opt, lazy_opt, []
    net.load_state_dict(saved["model"])
    opt.load_state_dict(saved["opt"])
    if lazy_opt is not None:
        lazy_opt.load_state_dict(saved["lazy"])
    layer.load_lsh_state(saved["lsh"])
    return opt, lazy_opt, saved["metrics"]


def _backward_and_step(loss, opt, lazy_opt, layer: SlideLinear, active) -> tuple[float, float]:
    """Backward, then the optimizer steps (lazy Adam on the active rows of ``layer``);
    returns the perf_counter times after the backward and after the steps."""
    opt.zero_grad()
    if lazy_opt is not None:
        layer.weight.grad = layer.bias.grad = None
    loss.backward()
    t1 = time.perf_counter()
    opt.step()
    if lazy_opt is not None:
        lazy_opt.step(active)
    return t1, time.perf_counter()


def _save(ckpt: Path, cfg: SlideConfig, net, layer, opt, lazy_opt, metrics) -> None:
    """The epoch's checkpoint: config, parameters, optimizers, LSH state, metrics."""
    state = {"config": asdict(cfg), "model": net.state_dict(), "opt": opt.state_dict(),
             "lazy": None if lazy_opt is None else lazy_opt.state_dict(),
             "lsh": layer.lsh_state(), "metrics": metrics}
    ckpt.parent.mkdir(parents=True, exist_ok=True)
    save_checkpoint(ckpt, lambda fh: torch.save(state, fh))


def train_xmc(cfg: SlideConfig, progress: bool = True) -> dict:
    """Train (resuming from the checkpoint in ``cfg.out``) and return the summary."""
    cfg.check()
    out = Path(cfg.out)
    task = make_xmc(cfg.labels, cfg.features, train=cfg.train, test=cfg.test, seed=cfg.seed)
    net = XMCNet(cfg)
    ckpt = out / "checkpoint.pt"
    opt, lazy_opt, metrics = _optimizers(cfg, net, net.out, ckpt)
    s = task.train
    steps = (s.n + cfg.batch - 1) // cfg.batch
    for epoch in range(len(metrics), cfg.epochs):
        order = np.random.default_rng([cfg.seed, epoch]).permutation(s.n)
        t_prod = t_opt = loss_sum = 0.0
        act, split, per_sample = [], np.zeros(3), []
        rebuild_before = net.out.rebuild_seconds()
        timing_before = dict(net.out.timing)
        it = range(steps)
        if progress:
            from tqdm import tqdm

            it = tqdm(it, desc=f"slide {cfg.policy} epoch {epoch + 1}/{cfg.epochs}", unit="batch")
        net.train()
        for b in it:
            rows = np.sort(order[b * cfg.batch:(b + 1) * cfg.batch])
            labs = [s.labels_of(i) for i in rows]
            t0 = time.perf_counter()
            h = net.hidden(s, rows)
            if net.dense:
                logits = net.dense_logits(h)
                active = np.arange(cfg.labels)
                net.out.batches += 1
                per_sample.append(cfg.labels)
            else:
                sparse = net.out.sparse_path(h)  # O(active pairs) logits and loss
                logits, active = net.out(h, labs, sparse_output=sparse)
                st = net.out.last_stats
                split += (st["labels"], st["retrieved"], st["fill"])
                per_sample.append(st.get("per_sample_mean", len(active)))
            act.append(len(active))
            if not net.dense and sparse:
                loss = sparse_softmax_cross_entropy(logits, labs)
            else:
                target = active_targets(labs, active)
                logp = F.log_softmax(logits, 1).masked_fill(target == 0, 0.0)  # -inf: not own
                loss = -(target * logp).sum(1).mean()
            t1, t2 = _backward_and_step(loss, opt, lazy_opt, net.out, active)
            t_prod += t1 - t0
            t_opt += t2 - t1
            loss_sum += float(loss.detach())
        net.eval()
        ev = evaluate(net, task)
        lsh = {k: net.out.timing[k] - timing_before[k] for k in net.out.timing}
        rebuild = net.out.rebuild_seconds() - rebuild_before
        metrics.append({"epoch": epoch + 1, **ev, "loss": loss_sum / steps,
                        "active_mean": float(np.mean(act)), "active_p95": float(np.percentile(act, 95)),
                        "active_labels": split[0] / steps, "active_retrieved": split[1] / steps,
                        "active_fill": split[2] / steps,
                        "active_per_sample": float(np.mean(per_sample)),
                        "s_hash": lsh["hash"], "s_query": lsh["query"], "s_rebuild": rebuild,
                        "s_products": t_prod - lsh["hash"] - lsh["query"] - rebuild,
                        "s_optimizer": t_opt, "s_step": (t_prod + t_opt) / steps})
        _save(ckpt, cfg, net, net.out, opt, lazy_opt, metrics)
    last = metrics[-1]
    summary = {"config": asdict(cfg), "epochs_done": len(metrics), **{k: last[k] for k in
               ("p_at_1", "p_at_5", "active_mean", "active_p95", "active_per_sample", "s_step")},
               "active_fraction": last["active_mean"] / cfg.labels,
               "per_sample_fraction": last["active_per_sample"] / cfg.labels,
               "rebuilds": len(net.out.rebuild_log),
               "note": "input layer (embedding bag) in float32; output layer in " + cfg.format}
    write_run(out, metrics, summary, "epoch", {"P@1": "p_at_1", "P@5": "p_at_5"},
              f"slide {cfg.policy} ({cfg.format}), N={cfg.labels}", "epoch", "precision")
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    return summary


# --- the wide-hidden-layer setting (Spring & Shrivastava 2017) ---------------------------

class WideNet(nn.Module):
    """Images -> a wide LSH-sampled hidden layer of ReLU units -> 10 classes.

    The hidden layer is a :class:`SlideLinear` (784 -> ``hidden``) whose active set is
    found by hashing each image; with the sample scope a sample's inactive units have
    logit -inf, so ReLU makes them exactly 0 (and their gradients 0), and the output layer
    (float32, dense) reads only the batch's active units: ``W2[:, S]``. ``--policy dense``:
    every unit, the same network. Evaluation both ways: the dense hidden layer (every unit
    on: a sum over ~1/fraction times more units than in training, as dropout without its
    rescaling) and LSH inference (each test image's own active units, as in training)."""

    def __init__(self, cfg: SlideConfig, n_in: int, n_out: int):
        super().__init__()
        torch.manual_seed(cfg.seed)
        self.hid = slide_layer(cfg, n_in, cfg.hidden)
        nn.init.normal_(self.hid.weight, 0, (2 / n_in) ** 0.5)  # He: ReLU units
        self.head = nn.Linear(cfg.hidden, n_out)
        self.dense = cfg.policy == "dense"

    def dense_hidden(self, x: torch.Tensor) -> torch.Tensor:
        o = self.hid
        y = x @ o.weight.T + o.bias if o.spec is None else \
            emulated_linear(x, o.weight, o.bias, o.spec, seed=o.seed, step=o.batches)
        return F.relu(y)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, np.ndarray]:
        """Logits and the active hidden units (all of them when dense, or evaluating without
        ``hid.lsh_inference``)."""
        if self.dense or not (self.training or self.hid.lsh_inference):
            return self.head(self.dense_hidden(x)), np.arange(self.hid.weight.shape[0])
        y, active = self.hid(x)
        idx = torch.from_numpy(active)
        h = F.relu(y)  # -inf (inactive for this sample) -> 0
        return h @ self.head.weight.index_select(1, idx).T + self.head.bias, active


def train_wide(cfg: SlideConfig, progress: bool = True) -> dict:
    """The wide-hidden-layer setting on images (``cfg.data``): train, resuming from the
    checkpoint in ``cfg.out``; per epoch the test accuracy, the active units (batch union
    and per sample) and the time split; returns the summary."""
    from lowbit.integrations.data import load_dataset

    cfg.check()
    out = Path(cfg.out)
    ds = load_dataset(cfg.data, cfg.data_dir)
    xtr = torch.from_numpy(ds.x_train.reshape(len(ds.x_train), -1).astype(np.float32))
    xte = torch.from_numpy(ds.x_test.reshape(len(ds.x_test), -1).astype(np.float32))
    ytr, yte = torch.from_numpy(ds.y_train.astype(np.int64)), ds.y_test
    net = WideNet(cfg, xtr.shape[1], ds.n_classes)
    ckpt = out / "checkpoint.pt"
    opt, lazy_opt, metrics = _optimizers(cfg, net, net.hid, ckpt)
    n, H = len(xtr), cfg.hidden
    steps = (n + cfg.batch - 1) // cfg.batch
    for epoch in range(len(metrics), cfg.epochs):
        order = np.random.default_rng([cfg.seed, epoch]).permutation(n)
        t_fwd_bwd = t_opt = loss_sum = 0.0
        act, per_sample = [], []
        rebuild_before = net.hid.rebuild_seconds()
        timing_before = dict(net.hid.timing)
        it = range(steps)
        if progress:
            from tqdm import tqdm

            it = tqdm(it, desc=f"slide wide {cfg.policy} epoch {epoch + 1}/{cfg.epochs}",
                      unit="batch")
        net.train()
        for b in it:
            rows = torch.from_numpy(order[b * cfg.batch:(b + 1) * cfg.batch])
            t0 = time.perf_counter()
            logits, active = net(xtr[rows])
            act.append(len(active))
            per_sample.append(net.hid.last_stats.get("per_sample_mean", len(active))
                              if not net.dense else H)
            loss = F.cross_entropy(logits, ytr[rows])
            t1, t2 = _backward_and_step(loss, opt, lazy_opt, net.hid, active)
            t_fwd_bwd += t1 - t0
            t_opt += t2 - t1
            loss_sum += float(loss.detach())
        net.eval()
        accs = {}
        for mode in ("dense", "lsh"):
            net.hid.lsh_inference = mode == "lsh"
            with torch.no_grad():
                pred = torch.cat([net(xte[i:i + 1000])[0].argmax(1)
                                  for i in range(0, len(xte), 1000)])
            accs[mode] = float((pred.numpy() == yte).mean())
        net.hid.lsh_inference = False
        acc = accs["dense"]
        lsh = {k: net.hid.timing[k] - timing_before[k] for k in ("hash", "query")}
        rebuild = net.hid.rebuild_seconds() - rebuild_before
        metrics.append({"epoch": epoch + 1, "accuracy": acc, "accuracy_lsh": accs["lsh"],
                        "loss": loss_sum / steps,
                        "active_mean": float(np.mean(act)),
                        "active_p95": float(np.percentile(act, 95)),
                        "active_per_sample": float(np.mean(per_sample)),
                        "s_hash": lsh["hash"], "s_query": lsh["query"], "s_rebuild": rebuild,
                        "s_products": t_fwd_bwd - lsh["hash"] - lsh["query"] - rebuild,
                        "s_optimizer": t_opt, "s_step": (t_fwd_bwd + t_opt) / steps})
        _save(ckpt, cfg, net, net.hid, opt, lazy_opt, metrics)
    last = metrics[-1]
    summary = {"config": asdict(cfg), "epochs_done": len(metrics),
               **{k: last[k] for k in ("accuracy", "accuracy_lsh", "active_mean", "active_p95",
                                       "active_per_sample", "s_step")},
               "active_fraction": last["active_mean"] / H,
               "per_sample_fraction": last["active_per_sample"] / H,
               "rebuilds": len(net.hid.rebuild_log),
               "note": "hidden layer in " + cfg.format + "; output layer in float32"}
    write_run(out, metrics, summary, "epoch", {"dense inference": "accuracy",
                                               "LSH inference": "accuracy_lsh"},
              f"slide wide {cfg.policy} ({cfg.format}), {cfg.data}, {H} hidden", "epoch",
              "test accuracy")
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    return summary


def train(cfg: SlideConfig, progress: bool = True) -> dict:
    """``lowbit train slide``: :func:`train_xmc` or :func:`train_wide` by ``cfg.data``."""
    return (train_xmc if cfg.data == "xmc" else train_wide)(cfg, progress)
