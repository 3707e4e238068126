"""A synthetic extreme-classification task with the statistics of Amazon-670K, generated
on this machine (no XMC dataset ships in PyPI or Debian: see the SLIDE fact sheet, §7).

A random **teacher network** of the student's shape decides the labels, so the true top
logits of every sample are known exactly (recall of an LSH-sampled active set can be
measured against them):

- features: V of them; a sample has 1 + Poisson(74) distinct non-zeros (Amazon-670K: 74.7),
  drawn without replacement with Zipf(``feature_zipf``) popularity over a random feature
  ranking; values 1 + Exp(1) (tf-like), each row scaled to unit l2 norm;
- teacher: h = relu(E^T x) - 1/sqrt(2 pi) (centred: E^T x is N(0, 1) per unit) with E
  (V x ``hidden``) N(0, 1) entries, logits = 4 U h / sqrt(hidden) + prior, U (N x hidden)
  N(0, 1), prior_j = -``label_zipf`` * ln(rank_j) for a random label ranking (popular labels
  get a head start; at the default 0.5 and 5k labels, 20k samples use 80 % of the labels and
  the top 1 % of labels take a quarter of the label slots: a long tail, as in XMC data);
- labels: the k largest teacher logits, k = 1 + Poisson(4.4) (Amazon-670K: 5.4 labels per
  sample), at most N.

Everything is a deterministic function of ``seed`` (numpy's PCG64); train and test samples
come from the same teacher with different streams. Sizes from 5k labels (tests) to 200k+
(benchmarks; the teacher's U is N x 128 float32: 100 MB at 200k).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

NNZ_MEAN = 74.0         # + 1: Amazon-670K's 74.7 non-zeros per sample
EXTRA_LABELS_MEAN = 4.4  # + 1: Amazon-670K's 5.4 labels per sample
LOGIT_SCALE = 4.0        # teacher logits' spread against the Zipf prior's
RELU_MEAN = np.float32(1 / np.sqrt(2 * np.pi))  # E relu(z), z ~ N(0, 1): centres the hidden units


@dataclass(frozen=True)
class SparseSet:
    """Samples as CSR rows (``indptr``, ``indices``, float32 ``values``) and their label
    lists (``label_ptr``, ``labels``: the labels of sample i are
    ``labels[label_ptr[i]:label_ptr[i+1]]``, largest teacher logit first)."""

    indptr: np.ndarray
    indices: np.ndarray
    values: np.ndarray
    label_ptr: np.ndarray
    labels: np.ndarray

    @property
    def n(self) -> int:
        return len(self.indptr) - 1

    def labels_of(self, i: int) -> np.ndarray:
        return self.labels[self.label_ptr[i]:self.label_ptr[i + 1]]

    def dense(self, rows: np.ndarray, features: int) -> np.ndarray:
        """Rows of the samples as a dense (len(rows), features) float32 array."""
        out = np.zeros((len(rows), features), np.float32)
        for r, i in enumerate(rows):
            a, b = self.indptr[i], self.indptr[i + 1]
            out[r, self.indices[a:b]] = self.values[a:b]
        return out


@dataclass(frozen=True)
class XMCTask:
    """The teacher and its train/test samples."""

    features: int
    labels: int
    hidden: int
    embed: np.ndarray      # E, (features, hidden) float32
    unembed: np.ndarray    # U, (labels, hidden) float32
    prior: np.ndarray      # (labels,) float32
    train: SparseSet
    test: SparseSet

    def teacher_logits(self, s: SparseSet, rows: np.ndarray) -> np.ndarray:
        """The teacher's logits of samples ``rows`` of ``s``, (len(rows), labels) float32."""
        x = s.dense(rows, self.features)
        h = np.maximum(x @ self.embed, 0) - RELU_MEAN
        return (h @ self.unembed.T) * np.float32(LOGIT_SCALE / np.sqrt(self.hidden)) + self.prior


def _zipf_weights(n: int, a: float, rs: np.random.Generator) -> np.ndarray:
    """Probabilities proportional to rank**-a over a random ranking of n items."""
    w = np.arange(1, n + 1, dtype=np.float64) ** -a
    return (w / w.sum())[rs.permutation(n)]


def _samples(n: int, task_parts, rs: np.random.Generator, chunk: int = 512) -> SparseSet:
    features, labels, hidden, embed, unembed, prior, p_feat = task_parts
    nnz = np.minimum(1 + rs.poisson(NNZ_MEAN, n), features)
    indptr = np.concatenate([[0], np.cumsum(nnz)]).astype(np.int64)
    indices = np.empty(indptr[-1], np.int64)
    for i in range(n):  # distinct features, Zipf popularity (Gumbel top-k: without replacement)
        keys = np.log(p_feat) + rs.gumbel(size=features)
        indices[indptr[i]:indptr[i + 1]] = np.sort(np.argpartition(-keys, nnz[i] - 1)[:nnz[i]])
    values = (1.0 + rs.exponential(1.0, indptr[-1])).astype(np.float32)
    norms = np.sqrt(np.add.reduceat(values.astype(np.float64) ** 2, indptr[:-1]))
    values /= np.repeat(norms, nnz).astype(np.float32)
    k = np.minimum(1 + rs.poisson(EXTRA_LABELS_MEAN, n), labels)
    label_ptr = np.concatenate([[0], np.cumsum(k)]).astype(np.int64)
    out = np.empty(label_ptr[-1], np.int64)
    s = SparseSet(indptr, indices, values, label_ptr, out)
    scale = np.float32(LOGIT_SCALE / np.sqrt(hidden))
    for lo in range(0, n, chunk):
        rows = np.arange(lo, min(lo + chunk, n))
        h = np.maximum(s.dense(rows, features) @ embed, 0) - RELU_MEAN
        logits = (h @ unembed.T) * scale + prior
        for r, i in enumerate(rows):
            top = np.argpartition(-logits[r], k[i] - 1)[:k[i]]
            out[label_ptr[i]:label_ptr[i + 1]] = top[np.argsort(-logits[r, top], kind="stable")]
    return s


def make_xmc(labels: int = 5000, features: int = 20000, hidden: int = 128, train: int = 20000,
             test: int = 2000, seed: int = 0, label_zipf: float = 0.5,
             feature_zipf: float = 1.0) -> XMCTask:
    """The synthetic task (see the module docstring); deterministic in ``seed``."""
    for name, v, lo in (("labels", labels, 2), ("features", features, 2), ("hidden", hidden, 1),
                        ("train", train, 1), ("test", test, 0)):
        if not isinstance(v, (int, np.integer)) or v < lo:
            raise ValueError(f"make_xmc: {name} must be an integer >= {lo}, got {v!r}")
    if label_zipf < 0 or feature_zipf < 0:
        raise ValueError("make_xmc: the Zipf exponents must be >= 0")
    rs = np.random.default_rng([seed, 0])
    embed = rs.standard_normal((features, hidden), dtype=np.float32)
    unembed = rs.standard_normal((labels, hidden), dtype=np.float32)
    ranks = rs.permutation(labels) + 1
    prior = (-label_zipf * np.log(ranks)).astype(np.float32)
    p_feat = _zipf_weights(features, feature_zipf, rs)
    parts = (features, labels, hidden, embed, unembed, prior, p_feat)
    tr = _samples(train, parts, np.random.default_rng([seed, 1]))
    te = _samples(test, parts, np.random.default_rng([seed, 2]))
    return XMCTask(features, labels, hidden, embed, unembed, prior, tr, te)
