"""Reference of the per-sample sparse products of SLIDE-style layers (emulators/sparse.py).

A batch of B samples, each with its own active rows of a weight matrix W (N, d): sample b
has the ids ``ids[offsets[b]:offsets[b + 1]]`` (CSR). Three products, every sum in a fixed
order so that every backend computes the same numbers:

- forward, ``dots[k] = sum_j x[b, j] * W[ids[k], j]`` over j = 0 .. d - 1 ascending, for the
  k of sample b;
- input gradient, ``dx[b, j] = sum_k g[k] * W[ids[k], j]`` over sample b's k ascending;
- row gradient, for each distinct active id r (ascending), ``dW[r, j] = sum_k g[k] *
  x[b(k), j]`` over the k with ids[k] = r, ascending.

float32 operands: every product is rounded to float32, then added to the float32 running
sum (round to nearest even, no fused multiply-add), starting from +0.0. int64 operands (the
integer codes of Fixed formats): exact integer sums (Python ints here; the callers bound
them below 2^62).
"""

from __future__ import annotations

import numpy as np


def _scalar(a: np.ndarray):
    if a.dtype == np.float32:
        return lambda v: np.float32(v)
    if a.dtype == np.int64:
        return int
    raise TypeError(f"sparse products take float32 or int64 operands, got {a.dtype}")


def _sum(terms, a: np.ndarray):
    if a.dtype == np.float32:
        s = np.float32(0.0)
        for p, q in terms:
            s = np.float32(s + np.float32(p * q))
        return s
    return sum(int(p) * int(q) for p, q in terms)


def sparse_dots(x: np.ndarray, w: np.ndarray, offsets: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """dots (nnz,) of every sample's active rows (module docstring)."""
    out = np.zeros(len(ids), x.dtype)
    for b in range(x.shape[0]):
        for k in range(int(offsets[b]), int(offsets[b + 1])):
            out[k] = _sum(zip(x[b].tolist(), w[int(ids[k])].tolist()), x)
    return out


def sparse_grad_input(g: np.ndarray, w: np.ndarray, offsets: np.ndarray,
                      ids: np.ndarray) -> np.ndarray:
    """dx (B, d) from the dots' gradients g (nnz,) (module docstring)."""
    B, d = len(offsets) - 1, w.shape[1]
    out = np.zeros((B, d), g.dtype)
    for b in range(B):
        ks = range(int(offsets[b]), int(offsets[b + 1]))
        for j in range(d):
            out[b, j] = _sum(((g[k], w[int(ids[k]), j]) for k in ks), g)
    return out


def sparse_grad_rows(g: np.ndarray, x: np.ndarray, offsets: np.ndarray,
                     ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(rows, dW): the distinct active ids ascending and their gradients (len(rows), d)."""
    sample = np.repeat(np.arange(len(offsets) - 1), np.diff(offsets))
    rows = np.unique(ids)
    out = np.zeros((len(rows), x.shape[1]), g.dtype)
    for u, r in enumerate(rows.tolist()):
        ks = [k for k in range(len(ids)) if int(ids[k]) == r]
        for j in range(x.shape[1]):
            out[u, j] = _sum(((g[k], x[sample[k], j]) for k in ks), g)
    return rows.astype(np.int64), out
