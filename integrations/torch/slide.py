"""``SlideLinear``: an LSH-sampled sparse linear layer (SLIDE, Chen et al. 2020), at any
emulated precision.

Training forward (batch scope, MONGOOSE's form: one gather and one product per batch, the
fast form on 2 cores): every query x of the batch is hashed (bias-augmented, [x; 1]) into
the L tables of the rows ([w_j; b_j]); a sampling ``policy`` turns the buckets into active
ids, the batch's labels are always added, and the union S over the batch is the active
set. The layer returns the logits of S only -- ``emulated_linear`` of x and the gathered
rows W[S], b[S], so each active logit is exactly the dense emulated layer's logit -- and S.
Evaluation (``model.eval()``) is dense unless ``lsh_inference``. With ``scope="sample"``
each sample keeps only its own retrieved ids and labels (and the batch's random fill): its
logits outside them are -inf, so a softmax normalises over the sample's own active set, as
SLIDE does. With float32 products (``spec=None``, ``sparse_products=True``, the default) the
sample scope computes only each sample's own (sample, row) pairs, forward and backward, by
the per-sample sparse kernels of :mod:`lowbit.emulators.sparse` (SLIDE's savings: work in
proportion to the active pairs); otherwise the products run over the batch's union and the
masked entries' gradients are exact zeros (SLIDE's numbers, not its savings).

Policies (``beta``: the active count a policy aims at per query):

- ``union``: every id in any of the query's L buckets (the released code's Mode 4); if the
  batch's set is smaller than ``min_active``, random ids fill it up to that size (with
  ``fill="sample"``: every sample's own set is filled up to ``min_active``, as the released
  code does per input, and the fill is that sample's own);
- ``vanilla``: the paper's: visit the tables in a random order, take whole buckets until
  beta ids are collected;
- ``threshold``: ids found in at least ``threshold`` of the L buckets (Mode 1);
- ``topk``: the beta ids found in the most buckets (ties: smaller id first);
- ``random``: beta uniformly random ids per query (sampled softmax, same count);
- ``oracle``: the true top-beta ids by the dense float product (an upper bound for recall).

Hashing runs on integer codes (:mod:`lowbit.emulators.lsh`): rows and queries are cast
into ``hash_format`` (a fixed-point format: a SimHash sum of float codes would not be a
projection) unless the spec already stores them in one. ``family="dwta"`` hashes by
densified winner-take-all (SLIDE's Amazon setting) with ``dwta_shift`` 3 (true
concatenation) or 2 (the released code's overlapping packing). Tables are rebuilt (rows re-hashed,
same functions) on a schedule: every ``rebuild_every`` training batches, the period
growing by ``rebuild_growth`` after each rebuild (1: fixed, SLIDE's code; > 1: the paper's
exponential schedule), or ``rebuild="change"``: MONGOOSE's trigger, a rebuild when more than
``change_threshold`` of a 1-bit x ``sketch_tables`` SimHash sketch of the rows has flipped
since the last rebuild. Every rebuild is logged with its cost (``rebuild_log``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn as nn

from lowbit.emulators.lsh import Tables, build_tables, lsh_hash, simhash
from lowbit.integrations.torch.carriers import from_carrier, to_carrier
from lowbit.integrations.torch.functions import emulated_linear
from lowbit.integrations.torch.spec import EmulationSpec
from lowbit.integrations.torch.optim import cast_to_master
from lowbit.numerics import Fixed, parse_format, rng
from lowbit.numerics.lsh import DWTA, SimHash

POLICIES = ("union", "vanilla", "threshold", "topk", "random", "oracle")
SCHEDULES = ("period", "change")
SCOPES = ("batch", "sample")


@dataclass
class Rebuild:
    """One table rebuild: the training batch it ran before, why, and its cost in seconds."""

    batch: int
    reason: str
    seconds: float


class SlideLinear(nn.Module):
    """y = x W^T + b over an LSH-sampled active set of the ``out_features`` rows (see the
    module docstring). ``forward(x, labels=None)`` returns (logits (B, |S|), S) in
    training, the dense logits (B, N) in evaluation."""

    def __init__(self, in_features: int, out_features: int, *, spec: EmulationSpec | str | None = None,
                 bits: int = 6, tables: int = 20, policy: str = "union", beta: int = 64,
                 min_active: int = 0, threshold: int = 2, hash_format: str = "fixed16.12",
                 rebuild: str = "period", rebuild_every: int = 50, rebuild_growth: float = 1.0,
                 change_threshold: float = 0.1, sketch_tables: int = 10, seed: int = 0,
                 lsh_inference: bool = False, scope: str = "batch", family: str = "simhash",
                 dwta_shift: int = 3, sparse_products: bool = True, fill: str = "batch"):
        super().__init__()
        if policy not in POLICIES:
            raise ValueError(f"SlideLinear: policy must be one of {POLICIES}, got {policy!r}")
        if scope not in SCOPES:
            raise ValueError(f"SlideLinear: scope must be one of {SCOPES}, got {scope!r}")
        if rebuild not in SCHEDULES:
            raise ValueError(f"SlideLinear: rebuild must be one of {SCHEDULES}, got {rebuild!r}")
        if rebuild_every < 1 or rebuild_growth < 1 or beta < 1 or min_active < 0 or threshold < 1:
            raise ValueError("SlideLinear: rebuild_every, beta, threshold >= 1, rebuild_growth >= 1, "
                             "min_active >= 0")
        if not 0.0 < change_threshold <= 1.0:
            raise ValueError(f"SlideLinear: change_threshold must be in (0, 1], got {change_threshold!r}")
        self.weight = nn.Parameter(torch.randn(out_features, in_features) * 0.01)
        self.bias = nn.Parameter(torch.zeros(out_features))
        self.spec = None if spec is None else EmulationSpec.parse(spec)
        self.hash_fmt = parse_format(hash_format)
        if not isinstance(self.hash_fmt, Fixed):
            raise ValueError(f"SlideLinear: hash_format must be a fixed-point format, got {hash_format!r}")
        if family not in ("simhash", "dwta"):
            raise ValueError(f"SlideLinear: family must be simhash or dwta, got {family!r}")
        self.lsh = SimHash(bits, tables, in_features + 1, seed=seed) if family == "simhash" else \
            DWTA(bits, tables, in_features + 1, shift=dwta_shift, seed=seed)
        self.sketch = SimHash(1, sketch_tables, in_features + 1, seed=seed ^ 0x5C37C4)
        self.policy, self.beta, self.min_active, self.threshold = policy, beta, min_active, threshold
        self.rebuild, self.rebuild_every, self.rebuild_growth = rebuild, rebuild_every, rebuild_growth
        self.change_threshold, self.lsh_inference = change_threshold, lsh_inference
        if fill not in ("batch", "sample"):
            raise ValueError(f"SlideLinear: fill must be 'batch' or 'sample', got {fill!r}")
        self.scope, self.fill = scope, fill
        self.sparse_products = sparse_products
        self.query_kernel = True  # union policy on the sparse path: the bucket-union kernel
        self._found: list[np.ndarray] = []
        self.seed = seed
        self.batches = 0
        self.period = float(rebuild_every)
        self.next_rebuild = 0.0
        self.tables: Tables | None = None
        self.sketch_bits: np.ndarray | None = None
        self.rebuild_log: list[Rebuild] = []
        self.last_stats: dict = {}
        self.row_grad = None  # None: off; () or (rows, dW rows, db rows): see SampleRows
        self.timing = {"hash": 0.0, "query": 0.0, "products": 0.0, "check": 0.0}

    # --- hashing -------------------------------------------------------------------
    def _codes(self, t: torch.Tensor) -> np.ndarray:
        return from_carrier(t, self.hash_fmt).codes

    def row_codes(self) -> np.ndarray:
        """[w_j; b_j] as codes of the hash format, (N, d + 1)."""
        w = torch.cat([self.weight.detach(), self.bias.detach()[:, None]], 1)
        return self._codes(w)

    def query_codes(self, x: torch.Tensor) -> np.ndarray:
        """[x; 1] as codes of the hash format, (B, d + 1)."""
        return self._codes(torch.cat([x.detach().reshape(-1, x.shape[-1]),
                                      torch.ones(x.shape[0], 1, dtype=x.dtype)], 1))

    def rebuild_tables(self, reason: str = "manual") -> None:
        """Re-hash every row into the tables (same functions) and reset the change sketch."""
        t0 = time.perf_counter()
        rows = self.row_codes()
        self.tables = build_tables(lsh_hash(rows, self.lsh), self.lsh)
        self.sketch_bits = simhash(rows, self.sketch)
        self.rebuild_log.append(Rebuild(self.batches, reason, time.perf_counter() - t0))

    def changed_fraction(self) -> float:
        """The fraction of sketch bits that flipped since the last rebuild (1.0 before any)."""
        if self.sketch_bits is None:
            return 1.0
        return float((simhash(self.row_codes(), self.sketch) != self.sketch_bits).mean())

    def _changed(self) -> float:
        t0 = time.perf_counter()
        frac = self.changed_fraction()
        self.timing["check"] += time.perf_counter() - t0
        return frac

    def rebuild_seconds(self) -> float:
        """Seconds spent rebuilding the tables, and (``rebuild="change"``) sketching the rows
        every batch to decide whether to."""
        return sum(r.seconds for r in self.rebuild_log) + self.timing["check"]

    def _maybe_rebuild(self) -> None:
        if self.policy in ("random", "oracle"):
            return  # they read no table: building one would only cost time
        if self.tables is None:
            self.rebuild_tables("initial")
        elif self.rebuild == "period" and self.batches >= self.next_rebuild:
            self.rebuild_tables("period")
        elif self.rebuild == "change" and self._changed() > self.change_threshold:
            self.rebuild_tables("change")
        else:
            return
        if self.rebuild == "period":
            self.next_rebuild = self.batches + self.period
            self.period *= self.rebuild_growth

    # --- sampling ------------------------------------------------------------------
    def active_set(self, x: torch.Tensor, labels=None) -> tuple[np.ndarray, dict]:
        """The batch's active ids (ascending) and where they came from: counts of
        labels, retrieved and fill ids."""
        rs = np.random.default_rng([self.seed, self.batches])
        N = self.weight.shape[0]
        found: list[np.ndarray] = []
        if self.policy == "random":
            found = [rs.choice(N, min(self.beta, N), replace=False) for _ in range(x.shape[0])]
        elif self.policy == "oracle":
            with torch.no_grad():
                logits = (x.detach() @ self.weight.detach().T + self.bias.detach()).numpy()
            k = min(self.beta, N)
            found = [np.argpartition(-row, k - 1)[:k] for row in logits]
        else:
            t0 = time.perf_counter()
            buckets = lsh_hash(self.query_codes(x), self.lsh)
            t1 = time.perf_counter()
            self.timing["hash"] += t1 - t0
            for q in buckets:
                if self.policy == "union":
                    found.append(self.tables.union(q))
                elif self.policy == "vanilla":
                    got, n = [], 0
                    for t in rs.permutation(self.lsh.tables):
                        ids = self.tables.bucket(int(t), int(q[t]))
                        got.append(ids)
                        n += len(ids)
                        if n >= self.beta:
                            break
                    found.append(np.unique(np.concatenate(got)))
                else:
                    ids, counts = self.tables.counts(q)
                    if self.policy == "threshold":
                        found.append(ids[counts >= self.threshold])
                    else:  # topk by count, ties by smaller id (ids ascending, stable sort)
                        found.append(ids[np.argsort(-counts, kind="stable")[:self.beta]])
            self.timing["query"] += time.perf_counter() - t1
        lab = np.zeros(0, np.int64) if labels is None else np.unique(_label_ids(labels))
        hashed = np.unique(np.concatenate(found)) if found else np.zeros(0, np.int64)
        if self.fill == "sample" and self.min_active > 0:  # each sample's own random fill
            own_labels = _per_sample_labels(labels, len(found))
            for i, f in enumerate(found):
                have = np.union1d(f, own_labels[i])
                if len(have) < self.min_active:
                    rest = np.setdiff1d(np.arange(N), have)
                    found[i] = np.union1d(f, rs.choice(
                        rest, min(self.min_active - len(have), len(rest)), replace=False))
        self._found = found
        retrieved = np.unique(np.concatenate(found)) if found else np.zeros(0, np.int64)
        active = np.union1d(retrieved, lab)
        fill = np.zeros(0, np.int64)
        if self.fill == "batch" and len(active) < self.min_active:
            rest = np.setdiff1d(np.arange(N), active)
            fill = rs.choice(rest, min(self.min_active - len(active), len(rest)), replace=False)
            active = np.union1d(active, fill)
        stats = {"active": len(active), "labels": len(lab),
                 "retrieved": len(np.setdiff1d(hashed, lab)),
                 "fill": len(np.setdiff1d(active, np.union1d(hashed, lab))),
                 "per_query_mean": float(np.mean([len(f) for f in found])) if found else 0.0}
        return active.astype(np.int64), stats

    # --- forward -------------------------------------------------------------------
    def forward(self, x: torch.Tensor, labels=None, sparse_output: bool = False):
        """Dense logits (B, N) in evaluation (unless ``lsh_inference``); else (logits over the
        batch's set S (B, |S|), S) -- or, with ``sparse_output`` on the per-sample sparse path
        (:attr:`sparse_path`), (:class:`SparseLogits`, S)."""
        if sparse_output and not self.sparse_path(x):
            raise ValueError("sparse_output needs scope='sample', sparse_products=True, no "
                             "emulation spec and float32 inputs")
        if not self.training and not self.lsh_inference:
            return self._product(x, self.weight, self.bias)
        if self.tables is None or self.training:
            self._maybe_rebuild()
        labels = labels if self.training else None
        pairs = self._union_pairs(x, labels) if self.sparse_path(x) and self.query_kernel \
            and self.policy == "union" and not (self.fill == "sample" and self.min_active) \
            else None
        if pairs is None:
            active, self.last_stats = self.active_set(x, labels)
        else:
            active, offsets, ids = pairs
        t0 = time.perf_counter()
        if self.sparse_path(x):
            if pairs is None:
                offsets, ids = sample_pairs(self.sample_mask(active, labels), active)
            y = SparseLogits(SampleDots.apply(x, self.weight, self.bias, offsets, ids, self),
                             offsets, ids)
            if not sparse_output:
                y = y.dense(active)
        else:
            idx = torch.from_numpy(active)
            y = self._product(x, self.weight.index_select(0, idx), self.bias.index_select(0, idx))
            if self.scope == "sample":
                y = y.masked_fill(~torch.from_numpy(self.sample_mask(active, labels)),
                                  float("-inf"))
        self.timing["products"] += time.perf_counter() - t0  # forward only
        if self.training:
            self.batches += 1
        return y, active

    def _union_pairs(self, x: torch.Tensor, labels):
        """The union policy's sample pairs straight from the bucket-union kernel: (S,
        offsets, ids) with each sample's own set = its buckets' ids and its labels -- what
        :meth:`active_set` + :meth:`sample_mask` give, without per-query numpy set
        operations -- or None when a batch fill would be needed (then the general path)."""
        t0 = time.perf_counter()
        buckets = lsh_hash(self.query_codes(x), self.lsh)
        t1 = time.perf_counter()
        self.timing["hash"] += t1 - t0
        per_label = _per_sample_labels(labels, x.shape[0])
        eoff = np.zeros(x.shape[0] + 1, np.int64)
        np.cumsum([len(v) for v in per_label], out=eoff[1:])
        eids = np.concatenate(per_label + [np.zeros(0, np.int64)]).astype(np.int64)
        hoff, hids = self.tables.unions(buckets)
        offsets, ids = self.tables.unions(buckets, eoff, eids)
        active = np.unique(ids)
        self.timing["query"] += time.perf_counter() - t1
        if self.fill == "batch" and len(active) < self.min_active:
            return None
        self._found = np.split(hids, hoff[1:-1])
        lab = np.unique(eids)
        self.last_stats = {"active": len(active), "labels": len(lab),
                           "retrieved": len(np.setdiff1d(active, lab)), "fill": 0,
                           "per_query_mean": float(np.diff(hoff).mean()) if len(hoff) > 1
                           else 0.0,
                           "per_sample_mean": float(np.diff(offsets).mean()) if len(offsets) > 1
                           else 0.0}
        return active, offsets, ids

    def sparse_path(self, x: torch.Tensor) -> bool:
        """Whether training runs on the per-sample sparse kernels."""
        return self.scope == "sample" and self.sparse_products and self.spec is None \
            and x.dtype == torch.float32

    def sample_mask(self, active: np.ndarray, labels=None) -> np.ndarray:
        """(B, |S|) bool: which ids of the batch's set S each sample has (its retrieved ids,
        its own labels, its own fill or the batch's random fill)."""
        B = len(self._found)
        mask = np.zeros((B, len(active)), bool)
        per_label = _per_sample_labels(labels, B)
        fill = np.setdiff1d(active, np.concatenate(self._found + per_label +
                                                   [np.zeros(0, np.int64)]))  # the batch's fill
        mask[:, np.searchsorted(active, fill)] = True
        for i in range(B):  # every id of a sample's own set is in S: mark its position
            mask[i, np.searchsorted(active, self._found[i])] = True
            mask[i, np.searchsorted(active, per_label[i])] = True
        self.last_stats["per_sample_mean"] = float(mask.sum(1).mean())
        return mask

    def lsh_state(self) -> dict:
        """What a checkpoint needs beyond the parameters (tables, sketch, schedule, log)."""
        t = self.tables
        return {"batches": self.batches, "period": self.period, "next_rebuild": self.next_rebuild,
                "offsets": None if t is None else t.offsets, "ids": None if t is None else t.ids,
                "sketch_bits": self.sketch_bits, "timing": dict(self.timing),
                "rebuild_log": [(r.batch, r.reason, r.seconds) for r in self.rebuild_log]}

    def load_lsh_state(self, st: dict) -> None:
        self.batches, self.period, self.next_rebuild = st["batches"], st["period"], st["next_rebuild"]
        self.tables = None if st["offsets"] is None else Tables(self.lsh, st["offsets"], st["ids"])
        self.sketch_bits, self.timing = st["sketch_bits"], {"check": 0.0, **st["timing"]}
        self.rebuild_log = [Rebuild(*r) for r in st["rebuild_log"]]

    def _product(self, x, w, b):
        if self.spec is None:
            return x @ w.T + b
        return emulated_linear(x, w, b, self.spec, seed=self.seed, step=self.batches)


def sample_pairs(mask: np.ndarray, active: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(offsets (B + 1,), ids (nnz,)): the CSR active sets of a (B, |S|) sample mask, each
    sample's ids ascending."""
    offsets = np.zeros(mask.shape[0] + 1, np.int64)
    np.cumsum(mask.sum(1), out=offsets[1:])
    return offsets, active[np.nonzero(mask)[1]].astype(np.int64)


class SampleDots(torch.autograd.Function):
    """The logits of each sample's own active rows, (nnz,) in CSR order: per-sample sparse
    dots (float32, j ascending) plus the bias; backward by the sparse input and row
    gradients, so every product is over an active (sample, row) pair. The weight's gradient
    is dense in shape (zero outside the active rows), the bias' is summed in pair order --
    unless the layer's ``row_grad`` is on (a :class:`LazyAdam` sets it): then the gradients
    of the active rows only are left in ``layer.row_grad`` = (rows, dW rows, db rows) and
    ``weight.grad`` / ``bias.grad`` stay None (no N x d gradient is ever written)."""

    @staticmethod
    def forward(ctx, x, weight, bias, offsets: np.ndarray, ids: np.ndarray, layer=None):
        from lowbit.emulators.sparse import sparse_dots

        xn, wn = x.detach().numpy(), weight.detach().numpy()
        dots = sparse_dots(xn, wn, offsets, ids) + bias.detach().numpy()[ids]
        ctx.save_for_backward(x, weight, bias)
        ctx.csr, ctx.layer = (offsets, ids), layer
        return torch.from_numpy(dots)

    @staticmethod
    def backward(ctx, gv):
        from lowbit.emulators.sparse import sparse_grad_input, sparse_grad_rows

        x, weight, bias = ctx.saved_tensors
        offsets, ids = ctx.csr
        g = np.ascontiguousarray(gv.numpy(), dtype=np.float32)
        dx = sparse_grad_input(g, weight.detach().numpy(), offsets, ids)
        rows, drows = sparse_grad_rows(g, x.detach().numpy(), offsets, ids)
        db = np.zeros(len(rows), np.float32)
        np.add.at(db, np.searchsorted(rows, ids), g)  # in pair order
        if ctx.layer is not None and ctx.layer.row_grad is not None:
            ctx.layer.row_grad = (rows, torch.from_numpy(drows), torch.from_numpy(db))
            return torch.from_numpy(dx), None, None, None, None, None
        dw = torch.zeros_like(weight)
        dw[torch.from_numpy(rows)] = torch.from_numpy(drows)
        dbias = torch.zeros_like(bias)
        dbias[torch.from_numpy(rows)] = torch.from_numpy(db)
        return torch.from_numpy(dx), dw, dbias, None, None, None


@dataclass
class SparseLogits:
    """Each sample's own logits only: ``values[offsets[b]:offsets[b+1]]`` are sample b's, of
    the rows ``ids[...]`` (ascending); what ``SlideLinear(..., sparse_output=True)`` returns."""

    values: torch.Tensor
    offsets: np.ndarray
    ids: np.ndarray

    @property
    def sample(self) -> np.ndarray:
        return np.repeat(np.arange(len(self.offsets) - 1), np.diff(self.offsets))

    def dense(self, active: np.ndarray) -> torch.Tensor:
        """The (B, |S|) matrix over the batch's set ``active``, -inf outside a sample's own."""
        y = torch.full((len(self.offsets) - 1, len(active)), float("-inf"))
        pos = torch.from_numpy(np.searchsorted(active, self.ids))
        return y.index_put((torch.from_numpy(self.sample), pos), self.values)


def sparse_softmax_cross_entropy(logits: SparseLogits, labels) -> torch.Tensor:
    """SLIDE's loss on sparse logits: per sample, -sum over its labels of (1 / n_labels) *
    log softmax over its own active set, averaged over the batch -- the work is O(nnz), not
    O(B x |S|). Every label must be in its sample's own set (SlideLinear adds them)."""
    v = logits.values
    B = len(logits.offsets) - 1
    sample = torch.from_numpy(logits.sample)
    m = torch.full((B,), float("-inf")).scatter_reduce(0, sample, v.detach(), "amax")
    lse = m + torch.log(torch.zeros(B).index_add(0, sample, torch.exp(v - m[sample])))
    weight = np.zeros(len(logits.ids), np.float32)
    for b, lab in enumerate(_per_sample_labels(labels, B)):
        lo, hi = logits.offsets[b], logits.offsets[b + 1]
        pos = lo + np.searchsorted(logits.ids[lo:hi], lab)
        if (pos >= hi).any() or (logits.ids[np.minimum(pos, len(logits.ids) - 1)] != lab).any():
            raise ValueError(f"sparse_softmax_cross_entropy: a label of sample {b} is not in "
                             "its active set")
        weight[pos] = 1.0 / len(lab)
    return -(torch.from_numpy(weight) * (v - lse[sample])).sum() / B


class LazyAdam:
    """Adam on the rows of a SlideLinear that were active (TF's LazyAdam): the moments and
    the parameters of other rows stay as they are; bias correction uses the global step.
    ``DenseAdam``'s counterpart is ``torch.optim.Adam`` on every row (the released SLIDE).

    ``master``: a format for the layer's weights and bias (``None``: float32). The
    parameters are cast into it at construction and every step applies the float32 Adam
    update of the active rows in that format (:meth:`MasterWeights.apply_rows`: rounded
    to nearest, ``compensation="stochastic"`` or ``"kahan"``), as
    :class:`~lowbit.integrations.torch.optim.EmulatedOptimizer` does for every row."""

    def __init__(self, layer: SlideLinear, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8,
                 master=None, compensation: str | None = None, seed: int = 0):
        self.layer, self.lr, self.betas, self.eps = layer, lr, betas, eps
        layer.row_grad = ()  # on: sparse sample products leave the active rows' gradients
        self.t = 0
        self.m = [torch.zeros_like(p) for p in (layer.weight, layer.bias)]
        self.v = [torch.zeros_like(p) for p in (layer.weight, layer.bias)]
        self.seed = seed
        self.masters = None
        if master is not None:
            self.masters = [cast_to_master(p, master, compensation)
                            for p in (layer.weight, layer.bias)]

    @torch.no_grad()
    def step(self, active: np.ndarray) -> None:
        self.t += 1
        b1, b2 = self.betas
        idx = torch.from_numpy(active)
        scale = self.lr * (1 - b2 ** self.t) ** 0.5 / (1 - b1 ** self.t)
        rg = self.layer.row_grad
        if rg:  # the sparse products' row gradients; the other active rows' are zero
            where = torch.from_numpy(np.searchsorted(active, rg[0]))
            grads = []
            for part in rg[1:]:
                full = torch.zeros((len(active),) + part.shape[1:], dtype=part.dtype)
                full[where] = part
                grads.append(full)
            self.layer.row_grad = ()
        for k, (p, m, v) in enumerate(zip((self.layer.weight, self.layer.bias), self.m, self.v)):
            if rg:
                g = grads[k]
            elif p.grad is None:
                continue
            else:
                g = p.grad.index_select(0, idx)
            mi = m.index_select(0, idx).mul_(b1).add_(g, alpha=1 - b1)
            vi = v.index_select(0, idx).mul_(b2).addcmul_(g, g, value=1 - b2)
            m.index_copy_(0, idx, mi)
            v.index_copy_(0, idx, vi)
            d = -scale * mi / (vi.sqrt() + self.eps)
            if self.masters is None:
                p.index_add_(0, idx, d)
            else:
                seed = rng.random_u64(self.seed, (self.t << 20) | k)
                new = self.masters[k].apply_rows(active, d.double().numpy(), seed)
                p.index_copy_(0, idx, to_carrier(new, like=p).to(p.dtype))

    def state_dict(self) -> dict:
        return {"t": self.t, "m": self.m, "v": self.v,
                "masters": None if self.masters is None else [mw.state() for mw in self.masters]}

    def load_state_dict(self, st: dict) -> None:
        self.t, self.m, self.v = st["t"], st["m"], st["v"]
        for mw, ms in zip(self.masters or (), st.get("masters") or ()):
            mw.load(ms)


def _per_sample_labels(labels, n: int) -> list[np.ndarray]:
    """Each sample's label ids (empty arrays without labels)."""
    if labels is None:
        return [np.zeros(0, np.int64)] * n
    if isinstance(labels, (torch.Tensor, np.ndarray)):
        return [np.asarray([int(v)]) for v in np.asarray(labels).reshape(-1)]
    return [np.asarray(list(r), np.int64) for r in labels]


def _label_ids(labels) -> np.ndarray:
    """Label ids of a batch: a tensor/array of ids, or a list of per-sample id lists."""
    if isinstance(labels, torch.Tensor):
        return labels.detach().reshape(-1).numpy().astype(np.int64)
    if isinstance(labels, np.ndarray):
        return labels.reshape(-1).astype(np.int64)
    return np.concatenate([np.asarray(list(r), np.int64) for r in labels]) if len(labels) else \
        np.zeros(0, np.int64)


def active_targets(labels, active: np.ndarray) -> torch.Tensor:
    """Multi-label targets over the active set, (B, |S|): 1/n_labels at each of a sample's
    labels (SLIDE's softmax target), 0 elsewhere."""
    pos = {int(a): i for i, a in enumerate(active)}
    rows = labels if not isinstance(labels, torch.Tensor) else [[int(v)] for v in labels.reshape(-1)]
    t = torch.zeros(len(rows), len(active))
    for r, lab in enumerate(rows):
        lab = list(lab)
        for v in lab:
            t[r, pos[int(v)]] = 1.0 / len(lab)
    return t


__all__ = ["POLICIES", "LazyAdam", "Rebuild", "SampleDots", "SlideLinear", "SparseLogits",
           "active_targets", "sparse_softmax_cross_entropy"]
