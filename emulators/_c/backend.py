"""The C backend behind :mod:`lowbit.emulators.backends`' common interface.

The compiled module is ``lowbit.emulators._c._lowbit_c``, built at install time. Set
``LOWBIT_C_MODULE_DIR`` to load another build of it (e.g. the sanitizer build
CI makes with ``python -m lowbit.emulators._c.build --sanitize --outdir DIR``).
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import numpy as np

name = "c"
BUILD_HINT = (
    "the C backend of lowbit is not built: run `pip install -e .` in the lowbit "
    "checkout (or `make build`); it needs gcc and cffi"
)


def _load():
    where = os.environ.get("LOWBIT_C_MODULE_DIR")
    if where:
        found = sorted(Path(where).rglob("_lowbit_c*.so"))
        if not found:
            raise ImportError(f"LOWBIT_C_MODULE_DIR={where!r} holds no _lowbit_c*.so; {BUILD_HINT}")
        spec = importlib.util.spec_from_file_location("lowbit.emulators._c._lowbit_c", found[0])
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)  # type: ignore[union-attr]
        return module
    try:
        from lowbit.emulators._c import _lowbit_c
    except ImportError as exc:
        raise ImportError(f"{BUILD_HINT} ({exc})") from exc
    return _lowbit_c


_mod = _load()
ffi, lib = _mod.ffi, _mod.lib
ORDERS = {"sequential": lib.LOWBIT_SEQUENTIAL, "pairwise": lib.LOWBIT_PAIRWISE}
_CTYPES = {np.dtype(np.float64): "double *", np.dtype(np.float32): "float *",
           np.dtype(np.int64): "int64_t *", np.dtype(np.int32): "int32_t *",
           np.dtype(np.uint64): "uint64_t *", np.dtype(np.uint8): "uint8_t *"}


def _p(a: np.ndarray):
    """A C pointer to the data of a C-contiguous array."""
    return ffi.cast(_CTYPES[a.dtype], ffi.from_buffer(a, require_writable=False))


def _fmt(fmt):
    return ffi.new("lowbit_fixed *", (fmt.bits, fmt.frac, int(fmt.signed),
                                       int(fmt.rounding), int(fmt.overflow)))


def _check(status: int) -> int:
    if status == lib.LOWBIT_ERR_NOMEM:
        raise MemoryError("the C backend could not allocate a scratch buffer")
    return status


def fixed_cast(x, fmt, seed, out=None):
    out = np.empty(x.shape, np.int64) if out is None else out
    fn = lib.lowbit_fixed_cast_f32 if x.dtype == np.float32 else lib.lowbit_fixed_cast_f64
    return out, _check(fn(_p(out), _p(x), x.size, _fmt(fmt), seed))


def fixed_convert(codes, src_frac, fmt, seed, counter_shift=0, counter_low=0):
    out = np.empty(codes.shape, np.int64)
    lib.lowbit_fixed_convert(_p(out), _p(codes), codes.size, src_frac, _fmt(fmt), seed,
                             counter_shift, counter_low)
    return out


def fixed_add(a, fa, b, fb, negate_b, fmt, seed):
    out = np.empty(a.shape, np.int64)
    lib.lowbit_fixed_add(_p(out), _p(a), fa, _p(b), fb, a.size, int(negate_b), _fmt(fmt), seed)
    return out


def fixed_mul(a, b, pfrac, fmt, seed):
    out = np.empty(a.shape, np.int64)
    lib.lowbit_fixed_mul(_p(out), _p(a), _p(b), a.size, pfrac, _fmt(fmt), seed)
    return out


def fixed_matmul(a, b, pfrac, acc, order, compensated, fmt, seed):
    M, K = a.shape
    N = b.shape[1]
    out = np.empty((M, N), np.int64)
    if acc is None:
        fn = lib.lowbit_fixed_matmul_exact_i32 if a.dtype == np.int32 else \
            lib.lowbit_fixed_matmul_exact_i64
        _check(fn(_p(out), _p(a), _p(b), M, K, N, pfrac, _fmt(fmt), seed))
    else:
        _check(lib.lowbit_fixed_matmul_acc(_p(out), _p(a), _p(b), M, K, N, pfrac, _fmt(acc),
                                           ORDERS[order], int(compensated), _fmt(fmt), seed))
    return out


def fixed_sum(a, tfrac, acc, order, compensated, fmt, seed):
    M, K = a.shape
    out = np.empty(M, np.int64)
    acc_p = ffi.NULL if acc is None else _fmt(acc)
    _check(lib.lowbit_fixed_sum(_p(out), _p(a), M, K, tfrac, acc_p, ORDERS[order],
                                int(compensated), _fmt(fmt), seed))
    return out


def binary_cast(x):
    out = np.empty(x.shape, np.int64)
    fn = lib.lowbit_binary_cast_f32 if x.dtype == np.float32 else lib.lowbit_binary_cast_f64
    return out, fn(_p(out), _p(x), x.size)


def ternary_cast(x, threshold):
    out = np.empty(x.shape, np.int64)
    fn = lib.lowbit_ternary_cast_f32 if x.dtype == np.float32 else lib.lowbit_ternary_cast_f64
    return out, fn(_p(out), _p(x), x.size, float(threshold))


def pack_bits(codes, value):
    rows, K = codes.shape
    W = (K + 63) // 64
    words = np.empty((rows, W), np.uint64)
    lib.lowbit_pack_bits(_p(words), _p(codes), rows, K, W, value)
    return words


def pack_cols(codes, value):
    K, N = codes.shape
    W = (K + 63) // 64
    words = np.empty((N, W), np.uint64)
    lib.lowbit_pack_cols(_p(words), _p(codes), K, N, W, value)
    return words


def binary_matmul(a, bt, K):
    out = np.empty((a.shape[0], bt.shape[0]), np.int64)
    lib.lowbit_binary_matmul(_p(out), _p(a), _p(bt), a.shape[0], bt.shape[0], a.shape[1], K)
    return out


def ternary_matmul(ap, an, btp, btn):
    out = np.empty((ap.shape[0], btp.shape[0]), np.int64)
    lib.lowbit_ternary_matmul(_p(out), _p(ap), _p(an), _p(btp), _p(btn),
                              ap.shape[0], btp.shape[0], ap.shape[1])
    return out


# ---------------------------------------------------------------- LNS ---

from lowbit.emulators._block_ops import mx_case  # noqa: E402
from lowbit.numerics import gaussian_log  # noqa: E402

_keep: dict = {}  # keeps the table arrays behind cached lowbit_adder structs alive


def _lns(fmt):
    return ffi.new("lowbit_lns *", {"frac_bits": fmt.frac_bits,
                                    "underflow_min": int(fmt.underflow == "min"),
                                    "rounding": int(fmt.rounding), "e_min": fmt.e_min,
                                    "e_max": fmt.e_max})


def _adder(fmt):
    """The lowbit_adder struct of fmt's adder tables (built once per format)."""
    if fmt not in _keep:
        t = gaussian_log.adder_tables(fmt)
        sub, tab = np.ascontiguousarray(t.sub), np.ascontiguousarray(t.tab)
        fits = np.abs(tab).max() < 2**31
        tab32 = tab.astype(np.int32) if fits else None
        ad = ffi.new("lowbit_adder *", {
            "sub": _p(sub), "sub_len": sub.shape[1], "tab": _p(tab), "tab_len": tab.shape[1],
            "tab32": ffi.cast("int32_t *", _p(tab32)) if fits else ffi.NULL,
            "last": t.last, "beyond": [int(t.beyond[0]), int(t.beyond[1])], "k": t.k,
            "guard": t.guard, "interp": int(t.interp)})
        _keep[fmt] = (ad, sub, tab, tab32)
    return _keep[fmt][0]


def lns_cast(x, fmt):
    out = np.empty(x.shape, np.int64)
    th = gaussian_log.cast_thresholds(fmt.frac_bits, fmt.rounding)
    fn = lib.lowbit_lns_cast_f32 if x.dtype == np.float32 else lib.lowbit_lns_cast_f64
    return out, fn(_p(out), _p(x), x.size, _p(th), th.size, _lns(fmt))


def lns_convert(codes, src, dst, seed):
    out = np.empty(codes.shape, np.int64)
    lib.lowbit_lns_convert(_p(out), _p(codes), codes.size, src.e_min,
                           src.frac_bits - dst.frac_bits, _lns(dst), seed)
    return out


def lns_mul(a, fa, b, fb, out_fmt, divide):
    out = np.empty(a.shape, np.int64)
    status = lib.lowbit_lns_mul(_p(out), _p(a), fa.e_min, _p(b), fb.e_min, a.size, int(divide),
                                _lns(out_fmt))
    return out, int(status != lib.LOWBIT_OK)


def lns_add(a, fa, b, fb, negate_b, out_fmt, seed):
    out = np.empty(a.shape, np.int64)
    lib.lowbit_lns_add(_p(out), _p(a), fa.e_min, _p(b), fb.e_min, a.size, int(negate_b),
                       _lns(out_fmt), _adder(out_fmt), seed)
    return out


def lns_matmul(a, b, fa, fb, acc, out_fmt, order, compensated, seed):
    M, K = a.shape
    N = b.shape[1]
    out = np.empty((M, N), np.int64)
    _check(lib.lowbit_lns_matmul(_p(out), _p(a), _p(b), M, K, N, fa.e_min, fb.e_min,
                                 acc.frac_bits - fa.frac_bits, _lns(acc), _adder(acc),
                                 ORDERS[order], int(compensated), _lns(out_fmt), seed))
    return out


def lns_sum(a, fa, acc, out_fmt, order, compensated, seed):
    M, K = a.shape
    out = np.empty(M, np.int64)
    _check(lib.lowbit_lns_sum(_p(out), _p(a), M, K, fa.e_min, acc.frac_bits - fa.frac_bits,
                              _lns(acc), _adder(acc), ORDERS[order], int(compensated),
                              _lns(out_fmt), seed))
    return out


# ---------------------------------------------------------------- Float ---

def _float_fmt(fmt):
    from lowbit.emulators._float_ops import kernel_fields

    return ffi.new("lowbit_float *", kernel_fields(fmt))


def _general_float_cast(x, fmt, seed):
    out = np.empty(x.shape, np.int64)
    fn = lib.lowbit_float_cast_f32 if x.dtype == np.float32 else lib.lowbit_float_cast_f64
    return out, fn(_p(out), _p(x), x.size, _float_fmt(fmt), seed)


def float_cast(x, fmt, seed, narrow=False):
    """Codes of float32/float64 x in fmt: a float32 input whose cast depends only on its
    top 16 bits (and the low ones' being zero) reads the table of those classes (into
    uint8 codes with ``narrow`` and a format of at most 8 bits; else int64)."""
    from lowbit.emulators._float_ops import cast_table, table_cast_ok, table_shift

    if x.dtype == np.float32 and x.size > 4096 and table_cast_ok(fmt):
        table = cast_table(fmt, _general_float_cast)
        if table is not None:
            if narrow and fmt.width <= 8:
                out = np.empty(x.shape, np.uint8)
                return out, lib.lowbit_float_cast_f32_table_u8(_p(out), _p(x), x.size,
                                                               _p(table), table_shift(fmt))
            out = np.empty(x.shape, np.int64)
            return out, lib.lowbit_float_cast_f32_table(_p(out), _p(x), x.size, _p(table),
                                                        table_shift(fmt))
    return _general_float_cast(x, fmt, seed)


FLOAT_OPS = {"add": lib.LOWBIT_OP_ADD, "sub": lib.LOWBIT_OP_SUB, "mul": lib.LOWBIT_OP_MUL,
             "div": lib.LOWBIT_OP_DIV, "fma": lib.LOWBIT_OP_FMA}


def float_elementwise(op, a, fa, b, fb, c, fc, fmt, seed):
    out = np.empty(a.shape, np.int64)
    cp, fcp = (ffi.NULL, ffi.NULL) if c is None else (_p(c), _float_fmt(fc))
    status = lib.lowbit_float_elementwise(_p(out), _p(a), _float_fmt(fa), _p(b), _float_fmt(fb),
                                          cp, fcp, a.size, FLOAT_OPS[op], _float_fmt(fmt), seed)
    return out, status


FACC_MODES = {"exact": lib.LOWBIT_FACC_EXACT, "sequential": lib.LOWBIT_FACC_SEQUENTIAL,
              "pairwise": lib.LOWBIT_FACC_PAIRWISE, "kahan": lib.LOWBIT_FACC_KAHAN,
              "fused": lib.LOWBIT_FACC_FUSED}


def float_matmul(a, fa, b, fb, mode, lsb_exp, acc, fused, outer, fmt, seed):
    M, K = a.shape
    N = b.shape[1]
    out = np.empty((M, N), np.int64)
    acc_p = _float_fmt(acc) if acc is not None else ffi.NULL
    fused_p = ffi.new("lowbit_fused *", fused) if fused is not None else ffi.NULL
    outer_p = _float_fmt(outer) if outer is not None else ffi.NULL
    status = _check(lib.lowbit_float_matmul(_p(out), _p(a), _float_fmt(fa), _p(b), _float_fmt(fb),
                                            M, K, N, FACC_MODES[mode], lsb_exp, acc_p, fused_p,
                                            outer_p, _float_fmt(fmt), seed))
    return out, status


def float_matmul_binary32(a, b):
    M, K = a.shape
    N = b.shape[1]
    out = np.empty((M, N), np.float32)
    lib.lowbit_float_matmul_binary32(_p(out), _p(a), _p(b), M, K, N)
    return out


def block_quantize(x2d, index, grid, is_int, asym, scale_fmt, pow2, rule, emax, precision,
                   mpos, T, daz, seed, n, narrow=False):
    nblocks, width = x2d.shape
    u8 = narrow and mx_case(x2d, grid, is_int, pow2, T) and grid.width <= 8
    codes = np.empty(n, np.uint8 if u8 else np.int64)
    scales = np.empty(nblocks, np.int64)
    clipped = np.empty(nblocks, np.int64)
    status = _check(lib.lowbit_block_quantize(
        ffi.from_buffer(codes), int(u8), _p(scales), _p(clipped), ffi.from_buffer(x2d),
        int(x2d.dtype == np.float32), ffi.NULL if index is None else _p(index), nblocks, width,
        _float_fmt(grid), int(is_int), int(asym), _float_fmt(scale_fmt), int(pow2), rule, emax,
        precision, float(mpos), float(T), int(daz), seed))
    return codes, scales, clipped, status


def fused_matmul_f64(a, b, group, frac_bits, floor_align, promote, reg):
    M, K = a.shape
    N = b.shape[1]
    out = np.empty((M, N), np.float64)
    _check(lib.lowbit_fused_matmul_f64(_p(out), _p(a), _p(b), M, K, N, group, frac_bits,
                                       int(floor_align), promote, _float_fmt(reg)))
    return out


def fused_matmul_f32(a, b, group, frac_bits, promote, reg):
    M, K = a.shape
    N = b.shape[1]
    out = np.empty((M, N), np.float32)
    status = _check(lib.lowbit_fused_matmul_f32(_p(out), _p(a), _p(b), M, K, N, group,
                                                frac_bits, promote, _float_fmt(reg)))
    return out, int(status == lib.LOWBIT_ERR_RANGE)


def simhash(codes, idx, sign, K, L):
    out = np.empty((codes.shape[0], L), np.int64)
    lib.lowbit_simhash(_p(out), _p(codes), codes.shape[0], codes.shape[1], _p(idx), _p(sign),
                       idx.shape[1], K, L)
    return out


def dwta(codes, bins, probes, K, L, shift):
    out = np.empty((codes.shape[0], L), np.int64)
    _check(lib.lowbit_dwta(_p(out), _p(codes), codes.shape[0], codes.shape[1], _p(bins),
                           bins.shape[0], bins.shape[1], _p(probes), probes.shape[1], K, L, shift))
    return out


def _sparse_fn(name: str, dtype):
    return getattr(lib, f"lowbit_sparse_{name}_{'f32' if dtype == np.float32 else 'i64'}")


def sparse_dots(x, w, offsets, ids):
    out = np.empty(len(ids), x.dtype)
    _sparse_fn("dots", x.dtype)(_p(out), _p(x), _p(w), x.shape[0], x.shape[1], _p(offsets),
                                _p(ids))
    return out


def sparse_grad_input(g, w, offsets, ids):
    out = np.empty((len(offsets) - 1, w.shape[1]), g.dtype)
    _sparse_fn("grad_input", g.dtype)(_p(out), _p(g), _p(w), len(offsets) - 1, w.shape[1],
                                      _p(offsets), _p(ids))
    return out


def sparse_grad_rows(g, x, sample, row_offsets, order):
    out = np.empty((len(row_offsets) - 1, x.shape[1]), g.dtype)
    _sparse_fn("grad_rows", g.dtype)(_p(out), _p(g), _p(x), len(row_offsets) - 1, x.shape[1],
                                     _p(sample), _p(row_offsets), _p(order))
    return out


def bucket_union(offsets, ids, queries, eoff, eids, cap):
    B = queries.shape[0]
    out_off = np.empty(B + 1, np.int64)
    out = np.empty(max(int(cap), 1), np.int64)
    _check(lib.lowbit_bucket_union(_p(out_off), _p(out), int(cap), _p(offsets), _p(ids),
                                   ids.shape[0], offsets.shape[1], ids.shape[1], _p(queries), B,
                                   _p(eoff), _p(eids)))
    return out_off, out[:out_off[-1]].copy()
