"""The Numba backend behind :mod:`lowbit.emulators.backends`' common interface."""

from __future__ import annotations

import numpy as np

from lowbit.emulators._numba import binary, fixed, lsh
from lowbit.emulators._numba.jit import sized

name = "numba"
ORDERS = {"sequential": fixed.SEQUENTIAL, "pairwise": fixed.PAIRWISE}
_NO_ACC = (1, 0, 1, 0, 0, -1, 0)  # placeholder format tuple when the sum is exact


def fixed_cast(x, fmt, seed, out=None):
    out = np.empty(x.shape, np.int64) if out is None else out
    status = sized(fixed.fixed_cast, x.size)(x.reshape(-1), fixed.fmt_tuple(fmt), np.uint64(seed), out.reshape(-1))
    return out, int(status)


def fixed_convert(codes, src_frac, fmt, seed, counter_shift=0, counter_low=0):
    out = np.empty(codes.shape, np.int64)
    sized(fixed.fixed_convert, codes.size)(codes.reshape(-1), src_frac, fixed.fmt_tuple(fmt), np.uint64(seed),
                        counter_shift, np.uint64(counter_low), out.reshape(-1))
    return out


def fixed_add(a, fa, b, fb, negate_b, fmt, seed):
    out = np.empty(a.shape, np.int64)
    sized(fixed.fixed_add, a.size)(a.reshape(-1), fa, b.reshape(-1), fb, bool(negate_b),
                    fixed.fmt_tuple(fmt), np.uint64(seed), out.reshape(-1))
    return out


def fixed_mul(a, b, pfrac, fmt, seed):
    out = np.empty(a.shape, np.int64)
    sized(fixed.fixed_mul, a.size)(a.reshape(-1), b.reshape(-1), pfrac, fixed.fmt_tuple(fmt),
                    np.uint64(seed), out.reshape(-1))
    return out


def fixed_matmul(a, b, pfrac, acc, order, compensated, fmt, seed):
    out = np.empty((a.shape[0], b.shape[1]), np.int64)
    if acc is None:
        sized(fixed.fixed_matmul_exact, a.size * b.shape[1])(a, b, pfrac, fixed.fmt_tuple(fmt), np.uint64(seed), out)
    else:
        sized(fixed.fixed_matmul_acc, a.size * b.shape[1])(a, b, pfrac, fixed.fmt_tuple(acc), ORDERS[order], bool(compensated),
                               fixed.fmt_tuple(fmt), np.uint64(seed), out)
    return out


def fixed_sum(a, tfrac, acc, order, compensated, fmt, seed):
    out = np.empty(a.shape[0], np.int64)
    acc_t = _NO_ACC if acc is None else fixed.fmt_tuple(acc)
    sized(fixed.fixed_sum, a.size)(a, tfrac, acc_t, acc is not None, ORDERS[order], bool(compensated),
                    fixed.fmt_tuple(fmt), np.uint64(seed), out)
    return out


def binary_cast(x):
    out = np.empty(x.shape, np.int64)
    return out, int(sized(binary.binary_cast, x.size)(x.reshape(-1), out.reshape(-1)))


def ternary_cast(x, threshold):
    out = np.empty(x.shape, np.int64)
    return out, int(sized(binary.ternary_cast, x.size)(x.reshape(-1), float(threshold), out.reshape(-1)))


def pack_bits(codes, value):
    rows, K = codes.shape
    W = (K + 63) // 64
    words = np.empty((rows, W), np.uint64)
    sized(binary.pack_bits, codes.size)(codes, W, value, words)
    return words


def pack_cols(codes, value):
    K, N = codes.shape
    W = (K + 63) // 64
    words = np.empty((N, W), np.uint64)
    sized(binary.pack_cols, codes.size)(codes, W, value, words)
    return words


def binary_matmul(a, bt, K):
    out = np.empty((a.shape[0], bt.shape[0]), np.int64)
    sized(binary.binary_matmul, a.size * bt.shape[0])(a, bt, K, out)
    return out


def ternary_matmul(ap, an, btp, btn):
    out = np.empty((ap.shape[0], btp.shape[0]), np.int64)
    sized(binary.ternary_matmul, ap.size * btp.shape[0])(ap, an, btp, btn, out)
    return out


# ---------------------------------------------------------------- LNS ---

from lowbit.emulators._numba import lns  # noqa: E402
from lowbit.numerics import gaussian_log  # noqa: E402

LNS_ORDERS = {"sequential": lns.SEQUENTIAL, "pairwise": lns.PAIRWISE}


def _adder(fmt):
    t = gaussian_log.adder_tables(fmt)
    return t.sub, t.tab, lns.tables_tuple(t)


def lns_cast(x, fmt):
    out = np.empty(x.shape, np.int64)
    thresholds = gaussian_log.cast_thresholds(fmt.frac_bits, fmt.rounding)
    status = sized(lns.lns_cast, x.size)(x.reshape(-1), thresholds, lns.fmt_tuple(fmt),
                                         out.reshape(-1))
    return out, int(status)


def lns_convert(codes, src, dst, seed):
    out = np.empty(codes.shape, np.int64)
    sized(lns.lns_convert, codes.size)(codes.reshape(-1), src.e_min,
                                       src.frac_bits - dst.frac_bits, lns.fmt_tuple(dst),
                                       np.uint64(seed), out.reshape(-1))
    return out


def lns_mul(a, fa, b, fb, out_fmt, divide):
    out = np.empty(a.shape, np.int64)
    status = sized(lns.lns_mul, a.size)(a.reshape(-1), fa.e_min, b.reshape(-1), fb.e_min,
                                        bool(divide), lns.fmt_tuple(out_fmt), out.reshape(-1))
    return out, int(status)


def lns_add(a, fa, b, fb, negate_b, out_fmt, seed):
    out = np.empty(a.shape, np.int64)
    sub, tab, tp = _adder(out_fmt)
    sized(lns.lns_add, a.size)(a.reshape(-1), fa.e_min, b.reshape(-1), fb.e_min, bool(negate_b),
                               lns.fmt_tuple(out_fmt), sub, tab, tp, np.uint64(seed),
                               out.reshape(-1))
    return out


def lns_matmul(a, b, fa, fb, acc, out_fmt, order, compensated, seed):
    out = np.empty((a.shape[0], b.shape[1]), np.int64)
    sub, tab, tp = _adder(acc)
    da, db = np.empty_like(a), np.empty_like(b)
    sized(lns.decode_all, a.size)(a, fa.e_min, da)
    sized(lns.decode_all, b.size)(b, fb.e_min, db)
    sized(lns.lns_matmul, a.size * b.shape[1])(
        da, db, (acc.frac_bits - fa.frac_bits,), lns.fmt_tuple(acc), lns.fmt_tuple(out_fmt), sub,
        tab, tp, LNS_ORDERS[order], bool(compensated), np.uint64(seed), out)
    return out


def lns_sum(a, fa, acc, out_fmt, order, compensated, seed):
    out = np.empty(a.shape[0], np.int64)
    sub, tab, tp = _adder(acc)
    sized(lns.lns_sum, a.size)(a, fa.e_min, acc.frac_bits - fa.frac_bits, lns.fmt_tuple(acc),
                               lns.fmt_tuple(out_fmt), sub, tab, tp, LNS_ORDERS[order],
                               bool(compensated), np.uint64(seed), out)
    return out


# ---------------------------------------------------------------- Float ---

from lowbit.emulators._float_ops import kernel_fields  # noqa: E402
from lowbit.emulators._numba import floating  # noqa: E402


def _general_float_cast(x, fmt, seed):
    out = np.empty(x.shape, np.int64)
    if x.dtype == np.float32:
        kernel, bits = floating.float_cast_f32, x.reshape(-1).view(np.uint32)
    else:
        kernel, bits = floating.float_cast_f64, x.reshape(-1).view(np.uint64)
    status = sized(kernel, x.size)(bits, kernel_fields(fmt), np.uint64(seed), out.reshape(-1))
    return out, int(status)


def float_cast(x, fmt, seed, narrow=False):
    """Codes of float32/float64 x in fmt: a float32 input whose cast depends only on its
    top 16 bits (and the low ones' being zero) reads the table of those classes (into
    uint8 codes with ``narrow`` and a format of at most 8 bits; else int64)."""
    from lowbit.emulators._float_ops import cast_table, table_cast_ok, table_shift

    if x.dtype == np.float32 and x.size > 4096 and table_cast_ok(fmt):
        table = cast_table(fmt, _general_float_cast)
        if table is not None:
            out = np.empty(x.shape, np.uint8 if narrow and fmt.width <= 8 else np.int64)
            status = sized(floating.float_cast_f32_table, x.size)(
                x.reshape(-1).view(np.uint32), table, table_shift(fmt), out.reshape(-1))
            return out, int(status)
    return _general_float_cast(x, fmt, seed)


FLOAT_OPS = {"add": floating.OP_ADD, "sub": floating.OP_SUB, "mul": floating.OP_MUL,
             "div": floating.OP_DIV, "fma": floating.OP_FMA}


def float_elementwise(op, a, fa, b, fb, c, fc, fmt, seed):
    out = np.empty(a.shape, np.int64)
    if c is None:
        c, fc = a, fa  # unread
    status = sized(floating.float_elementwise, a.size)(
        a.reshape(-1), kernel_fields(fa), b.reshape(-1), kernel_fields(fb), c.reshape(-1),
        kernel_fields(fc), FLOAT_OPS[op], kernel_fields(fmt), np.uint64(seed), out.reshape(-1))
    return out, int(status)


FACC_MODES = {"exact": floating.FACC_EXACT, "sequential": floating.FACC_SEQUENTIAL,
              "pairwise": floating.FACC_PAIRWISE, "kahan": floating.FACC_KAHAN,
              "fused": floating.FACC_FUSED}


def float_matmul(a, fa, b, fb, mode, lsb_exp, acc, fused, outer, fmt, seed):
    M, K = a.shape
    N = b.shape[1]
    out = np.empty((M, N), np.int64)
    group, frac_bits, floor_align, promote = fused if fused is not None else (1, 1, 0, 0)
    acc_t = kernel_fields(acc) if acc is not None else kernel_fields(fmt)
    outer_t = kernel_fields(outer) if outer is not None else kernel_fields(fmt)
    status = sized(floating.float_matmul, M * K * N)(
        a, kernel_fields(fa), b, kernel_fields(fb), M, K, N, FACC_MODES[mode], lsb_exp, acc_t,
        group, frac_bits, floor_align, promote, outer_t, kernel_fields(fmt), np.uint64(seed), out)
    return out, int(status)


def float_matmul_binary32(a, b):
    M, K = a.shape
    N = b.shape[1]
    out = np.empty((M, N), np.float32)
    sized(floating.float_matmul_binary32, M * K * N)(a, b, out)
    return out


# ---------------------------------------------------------------- Block ---

from lowbit.emulators._block_ops import mx_case  # noqa: E402
from lowbit.emulators._float_ops import to_float as float_values  # noqa: E402
from lowbit.emulators._numba import block as _block  # noqa: E402


def block_quantize(x2d, index, grid, is_int, asym, scale_fmt, pow2, rule, emax, precision,
                   mpos, T, daz, seed, n, narrow=False):
    nblocks, width = x2d.shape
    dense = index is None
    scales = np.empty(nblocks, np.int64)
    clipped = np.empty(nblocks, np.int64)
    idx = np.empty(0, np.int64) if dense else index.reshape(-1)
    if mx_case(x2d, grid, is_int, pow2, T):
        codes = np.empty(n, np.uint8 if narrow and grid.width <= 8 else np.int64)
        status = sized(_block.mx_quantize_f32, x2d.size)(
            x2d.reshape(-1), idx, nblocks, width, kernel_fields(grid), bool(asym),
            kernel_fields(scale_fmt), rule, emax, precision, float(mpos), bool(daz),
            np.uint64(seed), codes, scales, clipped)
        return codes, scales, clipped, int(status)
    codes = np.empty(n, np.int64)
    sv = np.zeros(1) if pow2 else float_values(np.arange(scale_fmt.max_field + 1), scale_fmt)
    status = sized(_block.block_quantize, x2d.size)(
        x2d.reshape(-1), idx, nblocks, width, kernel_fields(grid), bool(is_int), bool(asym),
        kernel_fields(scale_fmt), sv, bool(pow2), rule, emax, precision, float(mpos), float(T),
        bool(daz), np.uint64(seed), codes, scales, clipped)
    return codes, scales, clipped, int(status)


def fused_matmul_f64(a, b, group, frac_bits, floor_align, promote, reg):
    M, K = a.shape
    N = b.shape[1]
    out = np.empty((M, N), np.float64)
    sized(floating.fused_matmul_f64, M * K * N)(a, b, group, frac_bits, bool(floor_align),
                                                promote, kernel_fields(reg), out)
    return out


def fused_matmul_f32(a, b, group, frac_bits, promote, reg):
    M, K = a.shape
    N = b.shape[1]
    out = np.empty((M, N), np.float32)
    status = sized(floating.fused_matmul_f32, M * K * N)(a, b, group, frac_bits, promote,
                                                        kernel_fields(reg), out)
    return out, int(status)


def simhash(codes, idx, sign, K, L):
    out = np.empty((codes.shape[0], L), np.int64)
    sized(lsh.simhash, codes.size * K * L)(codes, idx, sign, K, L, out)
    return out


def dwta(codes, bins, probes, K, L, shift):
    out = np.empty((codes.shape[0], L), np.int64)
    sized(lsh.dwta, codes.size * L)(codes, bins, probes, K, L, shift, out)
    return out


from lowbit.emulators._numba import sparse as _sparse  # noqa: E402


def sparse_dots(x, w, offsets, ids):
    out = np.zeros(len(ids), x.dtype)
    sized(_sparse.sparse_dots, len(ids) * x.shape[1])(x, w, offsets, ids, out)
    return out


def sparse_grad_input(g, w, offsets, ids):
    out = np.zeros((len(offsets) - 1, w.shape[1]), g.dtype)
    sized(_sparse.sparse_grad_input, len(ids) * w.shape[1])(g, w, offsets, ids, out)
    return out


def sparse_grad_rows(g, x, sample, row_offsets, order):
    out = np.zeros((len(row_offsets) - 1, x.shape[1]), g.dtype)
    sized(_sparse.sparse_grad_rows, len(order) * x.shape[1])(g, x, sample, row_offsets, order,
                                                             out)
    return out


def bucket_union(offsets, ids, queries, eoff, eids, cap):
    B, N = queries.shape[0], ids.shape[1]
    counts = np.zeros(B, np.int64)
    out_off = np.zeros(B + 1, np.int64)
    lsh.bucket_union_pass(offsets, ids, queries, eoff, eids, np.full(N, -1, np.int64), counts,
                          out_off, counts, False)
    np.cumsum(counts, out=out_off[1:])
    out = np.empty(int(out_off[-1]), np.int64)
    lsh.bucket_union_pass(offsets, ids, queries, eoff, eids, np.full(N, -1, np.int64), counts,
                          out_off, out, True)
    return out_off, out
