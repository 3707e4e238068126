"""Per-sample sparse products in Numba: the twins of ``csrc/sparse.c``; semantics in
numerics/reference/sparse.py. One source for float32 and int64 operands: every running sum
starts from the zero the caller put in ``out`` (so it has the operands' type)."""

from __future__ import annotations

from numba import prange

from lowbit.emulators._numba.jit import pjit


@pjit
def sparse_dots(x, w, offsets, ids, out):
    """out[k] += sum_j x[b, j] * w[ids[k], j], j ascending (out zeroed)."""
    d = x.shape[1]
    for b in prange(x.shape[0]):
        k = offsets[b]
        while k + 4 <= offsets[b + 1]:  # four independent chains, each in j order
            r0, r1, r2, r3 = ids[k], ids[k + 1], ids[k + 2], ids[k + 3]
            s0, s1, s2, s3 = out[k], out[k + 1], out[k + 2], out[k + 3]
            for j in range(d):
                s0 += x[b, j] * w[r0, j]
                s1 += x[b, j] * w[r1, j]
                s2 += x[b, j] * w[r2, j]
                s3 += x[b, j] * w[r3, j]
            out[k], out[k + 1], out[k + 2], out[k + 3] = s0, s1, s2, s3
            k += 4
        while k < offsets[b + 1]:
            r = ids[k]
            s = out[k]
            for j in range(d):
                s += x[b, j] * w[r, j]
            out[k] = s
            k += 1


@pjit
def sparse_grad_input(g, w, offsets, ids, out):
    """out[b, j] += sum_k g[k] * w[ids[k], j], k ascending within sample b (out zeroed)."""
    d = w.shape[1]
    for b in prange(out.shape[0]):
        for k in range(offsets[b], offsets[b + 1]):
            r = ids[k]
            for j in range(d):
                out[b, j] += g[k] * w[r, j]


@pjit
def sparse_grad_rows(g, x, sample, row_offsets, order, out):
    """out[u, j] += sum g[k] * x[sample[k], j] over k = order[row_offsets[u]:row_offsets[u+1]]
    (ascending k: ``order`` is a stable argsort of ids) (out zeroed)."""
    d = x.shape[1]
    for u in prange(out.shape[0]):
        for e in range(row_offsets[u], row_offsets[u + 1]):
            k = order[e]
            b = sample[k]
            for j in range(d):
                out[u, j] += g[k] * x[b, j]
