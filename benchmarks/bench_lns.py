"""LNS kernels against float32 torch and the xlns library, in one run.

    python benchmarks/bench_lns.py [--out FILE] [--repeat N]

Workloads (issue 3): element-wise addition of 10^6 LNS(5, 10) values; 64x64 and
256x256 matmuls (sequential accumulation in LNS(5, 10), Exact adder; plus Kahan,
Table(8) and Interp(6)); each as throughput and as a ratio to float32 torch on
the same shape. xlns (xlnsnp arrays, F = 10) runs the same workloads when installed.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import Row, measure, run_benchmark  # noqa: E402

import lowbit.emulators as E  # noqa: E402
from lowbit.numerics import LNS, Interp, Table  # noqa: E402

FMT = LNS(5, 10)


def bench(repeat: int) -> list[Row]:
    import torch

    rs = np.random.default_rng(0)
    rows: list[Row] = []
    n = 10**6
    xa, xb = rs.standard_normal(n), rs.standard_normal(n)
    a, b = E.cast(xa, FMT), E.cast(xb, FMT)
    ta, tb = torch.from_numpy(xa.astype(np.float32)), torch.from_numpy(xb.astype(np.float32))
    t_torch = measure(lambda: torch.add(ta, tb), repeat)
    xl = None
    try:
        import xlns

        xlns.xlnssetF(10)
        xl = xlns
        la, lb = xlns.xlnsnp(xa), xlns.xlnsnp(xb)
        t = measure(lambda: la + lb, 5)
        rows.append(Row("add 1e6", "xlns (xlnsnp, F=10)", t, "torch f32 add", t_torch,
                        f"{n / t / 1e6:.0f} M adds/s"))
        t_xl_add = t
    except ImportError:
        t_xl_add = None
    for be in E.BACKENDS:
        t = measure(lambda: E.add(a, b, backend=be), repeat)
        note = f"{n / t / 1e6:.0f} M adds/s"
        if t_xl_add:
            note += f"; {t_xl_add / t:.0f}x faster than xlns"
        rows.append(Row("add 1e6 LNS(5,10)", f"lowbit {be}", t, "torch f32 add", t_torch, note))

    for size in (64, 256):
        A = E.cast(rs.standard_normal((size, size)), FMT)
        B = E.cast(rs.standard_normal((size, size)), FMT)
        tA, tB = torch.from_numpy(A.to_float().astype(np.float32)), \
            torch.from_numpy(B.to_float().astype(np.float32))
        t_mm = measure(lambda: torch.matmul(tA, tB), 4 * repeat)
        macs = size**3
        t_xl = None
        if xl is not None and size == 64:
            XA, XB = xl.xlnsnp(A.to_float()), xl.xlnsnp(B.to_float())
            t_xl = measure(lambda: XA @ XB, 5)
            rows.append(Row(f"matmul {size}^3", "xlns", t_xl, "torch f32", t_mm,
                            f"{macs / t_xl / 1e9:.3f} G MAC/s"))
        for be in E.BACKENDS:
            for label, kw, fmt in (("sequential", {}, FMT), ("Kahan", {"compensated": True}, FMT),
                                   ("Table(8)", {}, LNS(5, 10, Table(8))),
                                   ("Interp(6)", {}, LNS(5, 10, Interp(6)))):
                if be == "numba" and size == 256 and label != "sequential":
                    continue  # minutes of runtime, shown by the C rows
                AA, BB = (A, B) if fmt == FMT else (E.cast(A, fmt), E.cast(B, fmt))
                t = measure(lambda: E.matmul(AA, BB, backend=be, **kw), 3 if size == 256 else 7)
                note = f"{macs / t / 1e9:.3f} G MAC/s"
                if t_xl is not None and label == "sequential":
                    note += f"; {t_xl / t:.0f}x faster than xlns"
                rows.append(Row(f"matmul {size}^3 LNS(5,10)", f"lowbit {be} {label}", t,
                                "torch f32", t_mm, note))
    return rows


def main() -> None:
    run_benchmark(bench, "LNS (bench_lns.py)", __doc__, repeat=15)


if __name__ == "__main__":
    main()
