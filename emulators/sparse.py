"""Per-sample sparse products of SLIDE-style layers (dispatch to the backends).

Sample b of a batch uses only its active rows ``ids[offsets[b]:offsets[b + 1]]`` of a
weight matrix W (N, d) (CSR active sets; a sample's ids need not be sorted or distinct).
:func:`sparse_dots` is the forward (one dot per active (sample, row) pair),
:func:`sparse_grad_input` and :func:`sparse_grad_rows` the backward, so that the work is
proportional to the active pairs, not to B x N. Operands are float32 (each product rounded
to float32, then added in a fixed order, no fused multiply-add) or int64 integer codes
(exact sums, bounded below 2^62 here); the order and semantics are those of
:mod:`lowbit.numerics.reference.sparse`, which every backend reproduces bit for bit.
"""

from __future__ import annotations

import numpy as np

from lowbit.emulators.backends import get_backend

LIMIT = 1 << 62


def _dtype(*arrays) -> np.dtype:
    dt = {a.dtype for a in arrays}
    if len(dt) != 1 or next(iter(dt)) not in (np.float32, np.int64):
        raise TypeError(f"sparse products take float32 or int64 operands of one dtype, got "
                        f"{sorted(str(d) for d in dt)}")
    return next(iter(dt))


def _csr(offsets, ids, B: int, N: int) -> tuple[np.ndarray, np.ndarray]:
    offsets = np.ascontiguousarray(offsets, dtype=np.int64)
    ids = np.ascontiguousarray(ids, dtype=np.int64)
    if offsets.shape != (B + 1,) or offsets[0] != 0 or offsets[-1] != len(ids) \
            or (np.diff(offsets) < 0).any():
        raise ValueError(f"offsets must be (B + 1,) = ({B + 1},), nondecreasing from 0 to "
                         f"len(ids) = {len(ids)}; got shape {offsets.shape}")
    if ids.ndim != 1 or (ids.size and (ids.min() < 0 or ids.max() >= N)):
        raise ValueError(f"ids must be a 1-D array of row numbers in 0..{N - 1}")
    return offsets, ids


def _bound(a: np.ndarray, b: np.ndarray, terms: int, op: str) -> None:
    if a.dtype == np.int64 and a.size and b.size:
        peak = max(int(a.max()), -int(a.min())) * max(int(b.max()), -int(b.min()))
        if peak * max(terms, 1) >= LIMIT:
            raise ValueError(f"{op}: {terms} products of codes up to {peak} could overflow "
                             "62 bits")


def sparse_dots(x, w, offsets, ids, *, backend: str | None = None) -> np.ndarray:
    """dots (nnz,): ``dots[k] = x[b] . w[ids[k]]`` for the k of sample b (j ascending)."""
    x, w = np.ascontiguousarray(x), np.ascontiguousarray(w)
    _dtype(x, w)
    if x.ndim != 2 or w.ndim != 2 or x.shape[1] != w.shape[1]:
        raise ValueError(f"sparse_dots: x (B, d) and w (N, d), got {x.shape} and {w.shape}")
    offsets, ids = _csr(offsets, ids, x.shape[0], w.shape[0])
    _bound(x, w, x.shape[1], "sparse_dots")
    return get_backend(backend).sparse_dots(x, w, offsets, ids)


def sparse_grad_input(g, w, offsets, ids, *, backend: str | None = None) -> np.ndarray:
    """dx (B, d): ``dx[b] = sum_k g[k] w[ids[k]]`` over sample b's k ascending."""
    g, w = np.ascontiguousarray(g), np.ascontiguousarray(w)
    _dtype(g, w)
    if g.ndim != 1 or w.ndim != 2:
        raise ValueError(f"sparse_grad_input: g (nnz,) and w (N, d), got {g.shape}, {w.shape}")
    offsets, ids = _csr(offsets, ids, len(offsets) - 1, w.shape[0])
    if len(g) != len(ids):
        raise ValueError(f"sparse_grad_input: {len(g)} gradients for {len(ids)} active pairs")
    _bound(g, w, int(np.diff(offsets).max(initial=0)), "sparse_grad_input")
    return get_backend(backend).sparse_grad_input(g, w, offsets, ids)


def sparse_grad_rows(g, x, offsets, ids, *, backend: str | None = None
                     ) -> tuple[np.ndarray, np.ndarray]:
    """(rows, dW): the distinct active ids ascending and ``dW[u] = sum_k g[k] x[b(k)]`` over
    the k with ids[k] = rows[u], ascending (the rows SLIDE's update touches)."""
    g, x = np.ascontiguousarray(g), np.ascontiguousarray(x)
    _dtype(g, x)
    if g.ndim != 1 or x.ndim != 2:
        raise ValueError(f"sparse_grad_rows: g (nnz,) and x (B, d), got {g.shape}, {x.shape}")
    offsets, ids = _csr(offsets, ids, x.shape[0], np.iinfo(np.int64).max)
    if len(g) != len(ids):
        raise ValueError(f"sparse_grad_rows: {len(g)} gradients for {len(ids)} active pairs")
    order = np.argsort(ids, kind="stable").astype(np.int64)  # k ascending within a row
    rows, counts = np.unique(ids[order], return_counts=True)
    row_offsets = np.zeros(len(rows) + 1, np.int64)
    np.cumsum(counts, out=row_offsets[1:])
    _bound(g, x, int(counts.max(initial=0)), "sparse_grad_rows")
    sample = np.repeat(np.arange(x.shape[0], dtype=np.int64), np.diff(offsets))
    return rows.astype(np.int64), get_backend(backend).sparse_grad_rows(g, x, sample,
                                                                        row_offsets, order)
