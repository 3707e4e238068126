"""Fixed-point and binary kernels against baselines measured in the same run.

    python benchmarks/bench_fixed.py [--out FILE] [--repeat N]

Workloads (issue 2): cast of 10^7 float32 to Fixed(16, 8) against np.copyto of
the same array; element-wise Fixed(16, 8) multiply of 10^6 values with
re-rounding; exact Fixed(16, 8) 256x256 @ 256x256 against float32
torch.matmul; binary (256x1024) @ (1024x1024) against float32 torch.matmul of
the same shape. APyTypes and QPyTorch run the same workloads when installed
(their exact round-half-even + saturate paths).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import Row, measure, run_benchmark  # noqa: E402

import lowbit.emulators as E  # noqa: E402
from lowbit.numerics import Binary, Fixed  # noqa: E402

FMT = Fixed(16, 8)


def bench(repeat: int) -> list[Row]:
    import torch

    rs = np.random.default_rng(0)
    rows: list[Row] = []

    # ---- cast 10^7 float32 -> Fixed(16, 8)
    x = (rs.standard_normal(10**7) * 40).astype(np.float32)
    dst = np.empty_like(x)
    t_copy = measure(lambda: np.copyto(dst, x), repeat)
    t_alloc = measure(lambda: np.empty(x.size, np.int64).fill(0), repeat)
    rows.append(Row("cast 1e7 f32", "np.empty(int64) + first touch", t_alloc, "np.copyto", t_copy,
                    "page-fault cost of a fresh 80 MB output"))
    for be in E.BACKENDS:
        t = measure(lambda: E.cast(x, FMT, backend=be), repeat)
        rows.append(Row("cast 1e7 f32", f"lowbit {be} (new array)", t, "np.copyto", t_copy,
                        f"{t_copy / t:.0%} of copy speed"))
        buf = np.empty(x.size, np.int64)
        backend = E.get_backend(be)
        t = measure(lambda: backend.fixed_cast(x, FMT, 0, out=buf), repeat)
        rows.append(Row("cast 1e7 f32", f"lowbit {be} kernel (into buffer)", t, "np.copyto", t_copy,
                        f"{t_copy / t:.0%} of copy speed; writes 2x the bytes"))
    try:
        import apytypes as apy

        def apy_cast():
            wide = apy.APyFixedArray.from_float(x, int_bits=12, frac_bits=40)
            return wide.cast(int_bits=8, frac_bits=8, quantization=apy.QuantizationMode.RND_CONV,
                             overflow=apy.OverflowMode.SAT)
        rows.append(Row("cast 1e7 f32", f"APyTypes {apy.__version__}", measure(apy_cast, 3),
                        "np.copyto", t_copy, "from_float (exact wide) + cast RND_CONV/SAT"))
    except ImportError:
        pass
    try:
        from qtorch.quant import fixed_point_quantize

        tx = torch.from_numpy(x)
        rows.append(Row("cast 1e7 f32", "QPyTorch", measure(
            lambda: fixed_point_quantize(tx, 16, 8, rounding="nearest"), 5), "np.copyto", t_copy,
            "float32 result; rounds twice (2^-9+2^-32 -> 0)"))
    except Exception:  # qtorch compiles C++ at import; absent or broken installs are skipped
        pass

    # ---- element-wise multiply 10^6 with re-rounding
    a = E.cast(rs.standard_normal(10**6) * 8, FMT)
    b = E.cast(rs.standard_normal(10**6) * 8, FMT)
    t_np = measure(lambda: np.multiply(a.codes, b.codes), repeat)
    apy_t = None
    try:
        import apytypes as apy

        aa = apy.APyFixedArray.from_float(a.to_float(), int_bits=8, frac_bits=8)
        ab = apy.APyFixedArray.from_float(b.to_float(), int_bits=8, frac_bits=8)
        apy_t = measure(lambda: (aa * ab).cast(int_bits=8, frac_bits=8,
                                               quantization=apy.QuantizationMode.RND_CONV,
                                               overflow=apy.OverflowMode.SAT), 5)
        rows.append(Row("mul 1e6 Fixed(16,8)", f"APyTypes {apy.__version__}", apy_t,
                        "np.multiply int64", t_np))
    except ImportError:
        pass
    for be in E.BACKENDS:
        t = measure(lambda: E.mul(a, b, backend=be), repeat)
        note = f"{apy_t / t:.0f}x faster than APyTypes" if apy_t else ""
        rows.append(Row("mul 1e6 Fixed(16,8)", f"lowbit {be}", t, "np.multiply int64", t_np, note))

    # ---- exact fixed matmul 256^3
    A = E.cast(rs.standard_normal((256, 256)) * 8, FMT)
    B = E.cast(rs.standard_normal((256, 256)) * 8, FMT)
    ta, tb = torch.randn(256, 256), torch.randn(256, 256)
    t_torch = measure(lambda: torch.matmul(ta, tb), 4 * repeat)
    for be in E.BACKENDS:
        t = measure(lambda: E.matmul(A, B, backend=be), repeat)
        rows.append(Row("matmul 256^3 Fixed(16,8) exact", f"lowbit {be}", t, "torch f32", t_torch))
        t = measure(lambda: E.matmul(A, B, acc=Fixed(32, 8), backend=be), 5)
        rows.append(Row("matmul 256^3 Fixed(16,8), acc Fixed(32,8)", f"lowbit {be}", t,
                        "torch f32", t_torch, "sequential, rounds every product"))
        t = measure(lambda: E.matmul(A, B, acc=Fixed(32, 8), compensated=True, backend=be), 5)
        rows.append(Row("matmul 256^3 Fixed(16,8), acc Fixed(32,8)", f"lowbit {be} Kahan", t,
                        "torch f32", t_torch))
    try:
        import apytypes as apy

        pa = apy.APyFixedArray.from_float(A.to_float(), int_bits=8, frac_bits=8)
        pb = apy.APyFixedArray.from_float(B.to_float(), int_bits=8, frac_bits=8)
        t = measure(lambda: (pa @ pb).cast(int_bits=8, frac_bits=8,
                                           quantization=apy.QuantizationMode.RND_CONV,
                                           overflow=apy.OverflowMode.SAT), 5)
        rows.append(Row("matmul 256^3 Fixed(16,8) exact", f"APyTypes {apy.__version__}", t,
                        "torch f32", t_torch))
    except ImportError:
        pass

    # ---- binary matmul (256x1024) @ (1024x1024)
    xb = E.cast(rs.standard_normal((256, 1024)), Binary())
    wb = E.cast(rs.standard_normal((1024, 1024)), Binary())
    ta, tb = torch.randn(256, 1024), torch.randn(1024, 1024)
    t_torch = measure(lambda: torch.matmul(ta, tb), repeat)
    for be in E.BACKENDS:
        t = measure(lambda: E.matmul(xb, wb, backend=be), repeat)
        rows.append(Row("binary (256x1024)@(1024x1024)", f"lowbit {be}", t, "torch f32", t_torch,
                        "includes packing both operands"))
        backend = E.get_backend(be)
        pa = backend.pack_bits(np.ascontiguousarray(xb.codes), 1)
        pw = backend.pack_cols(np.ascontiguousarray(wb.codes), 1)
        t = measure(lambda: backend.binary_matmul(pa, pw, 1024), repeat)
        rows.append(Row("binary (256x1024)@(1024x1024)", f"lowbit {be} (pre-packed)", t,
                        "torch f32", t_torch, "XNOR-popcount only"))
    return rows


def main() -> None:
    run_benchmark(bench, "Fixed point and binary (bench_fixed.py)", __doc__, repeat=15)


if __name__ == "__main__":
    main()
