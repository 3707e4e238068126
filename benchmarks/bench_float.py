"""Float and block formats against baselines measured in the same run.

    python benchmarks/bench_float.py [--out FILE] [--repeat N]

Workloads (issue 15): float32 -> E4M3 cast of 10^7 values against np.copyto, torch's
``to(float8_e4m3fn)``, ml_dtypes and APyTypes; MXFP8, MXFP4 and NVFP4 block casts of 2^22
values against torchao's CPU ``to_mx`` / ``nvfp4_quantize``; a 256^3 E4M3 matmul with fp32
accumulation and on the Hopper FP8 model (with and without promotion) against float32
``torch.matmul`` and APyTypes; one mixed-precision training step (784-256-256-10, batch
128, forward + backward + Adam) in bf16 and in FP8 against the float32 step. Peers that are
not installed are skipped.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import Row, measure, run_benchmark  # noqa: E402

import lowbit.emulators as E  # noqa: E402
from lowbit.numerics import parse_format  # noqa: E402


def _casts(repeat: int, rows: list[Row]) -> None:
    import torch

    rs = np.random.default_rng(0)
    x = (rs.standard_normal(10**7) * 40).astype(np.float32)
    dst = np.empty_like(x)
    t_copy = measure(lambda: np.copyto(dst, x), repeat)
    e4m3 = parse_format("e4m3")
    tx = torch.from_numpy(x)
    t_torch = measure(lambda: tx.to(torch.float8_e4m3fn), repeat)
    rows.append(Row("cast 1e7 f32 -> e4m3", f"torch {torch.__version__} to(float8_e4m3fn)",
                    t_torch, "np.copyto", t_copy,
                    f"{torch.get_num_threads()} threads; saturates, maps inf to 448"))
    ml = None
    try:
        import ml_dtypes

        ml = measure(lambda: x.astype(ml_dtypes.float8_e4m3fn), max(3, repeat // 3))
        rows.append(Row("cast 1e7 f32 -> e4m3", f"ml_dtypes {ml_dtypes.__version__}", ml,
                        "np.copyto", t_copy, "NaN above 464 (non-saturating only)"))
    except ImportError:
        pass
    try:
        import apytypes as apy

        t = measure(lambda: apy.APyFloatArray.from_float(x, exp_bits=4, man_bits=3), 3)
        rows.append(Row("cast 1e7 f32 -> e4m3", f"APyTypes {apy.__version__} from_float(4, 3)",
                        t, "np.copyto", t_copy, "IEEE-like E4M3 (max 240), not OCP's"))
    except ImportError:
        pass
    # what the int64 codes alone cost: a fresh 8-byte array the OS must zero, then written
    t_alloc = measure(lambda: np.empty(x.shape, np.int64).fill(1), repeat)
    rows.append(Row("cast 1e7 f32 -> e4m3", "np.empty(int64) + fill (the codes' memory alone)",
                    t_alloc, "np.copyto", t_copy, f"{t_alloc / t_torch:.1f}x torch's cast"))
    for be in E.BACKENDS:
        t = measure(lambda: E.cast(x, e4m3, backend=be), repeat)  # codes stored in bytes
        note = f"{t / t_torch:.1f}x torch's cast"
        if ml:
            note += f", {ml / t:.1f}x faster than ml_dtypes"
        rows.append(Row("cast 1e7 f32 -> e4m3", f"lowbit {be} (saturating OCP E4M3)", t,
                        "np.copyto", t_copy, note))

    # ---- block casts
    xb = (rs.standard_normal(1 << 22) * 3).astype(np.float32)
    dstb = np.empty_like(xb)
    t_copyb = measure(lambda: np.copyto(dstb, xb), repeat)
    peer = {}
    try:
        from torchao.prototype.mx_formats.mx_tensor import to_mx
        from torchao.prototype.mx_formats.nvfp4_tensor import nvfp4_quantize

        import torchao
        txb = torch.from_numpy(xb).reshape(-1, 1024)
        # best of `repeat` (its times vary 5x from call to call: fresh intermediate tensors)
        peer["mxfp8"] = measure(lambda: to_mx(txb, torch.float8_e4m3fn, 32), repeat)
        peer["mxfp4"] = measure(lambda: to_mx(txb, torch.float4_e2m1fn_x2, 32), repeat)
        peer["nvfp4"] = measure(lambda: nvfp4_quantize(txb, 16), repeat)
        for name, t in peer.items():
            rows.append(Row(f"block cast 2^22 f32 -> {name}", f"torchao {torchao.__version__} "
                            "(CPU eager)", t, "np.copyto", t_copyb))
    except Exception:  # torchao absent, or its CPU path unavailable in this build
        pass
    t_alloc = measure(lambda: np.empty(xb.shape, np.int64).fill(1), repeat)
    rows.append(Row("block cast 2^22 f32 -> mxfp8", "np.empty(int64) + fill (the codes' memory "
                    "alone)", t_alloc, "np.copyto", t_copyb))
    for name in ("mxfp8", "mxfp4", "nvfp4"):
        fmt = parse_format(name)
        for be in E.BACKENDS:
            t = measure(lambda: E.block_cast(xb, fmt, backend=be), repeat)
            note = f"{peer[name] / t:.1f}x faster than torchao" if name in peer else ""
            rows.append(Row(f"block cast 2^22 f32 -> {name}", f"lowbit {be}", t, "np.copyto",
                            t_copyb, note))


def _matmuls(repeat: int, rows: list[Row]) -> None:
    import torch

    rs = np.random.default_rng(1)
    A, B = rs.standard_normal((256, 256)), rs.standard_normal((256, 256))
    a, b = E.cast(A, "e4m3"), E.cast(B, "e4m3")
    ta, tb = torch.from_numpy(A).float(), torch.from_numpy(B).float()
    t_torch = measure(lambda: torch.matmul(ta, tb), 4 * repeat)
    apy_t = None
    try:
        import apytypes as apy

        pa = apy.APyFloatArray.from_float(A, exp_bits=4, man_bits=3)
        pb = apy.APyFloatArray.from_float(B, exp_bits=4, man_bits=3)

        def apy_mm():
            with apy.APyFloatAccumulatorContext(exp_bits=8, man_bits=23):
                return pa @ pb
        apy_t = measure(apy_mm, 3)
        rows.append(Row("matmul 256^3 e4m3, fp32 acc", f"APyTypes {apy.__version__}", apy_t,
                        "torch f32", t_torch, "accumulator context e8m23"))
    except ImportError:
        pass
    for acc, label in (("fp32", "fp32 acc"), ("hopper_fp8", "Hopper model"),
                       ("hopper_fp8_promote128", "Hopper model, promote 128")):
        for be in E.BACKENDS:
            t = measure(lambda: E.matmul(a, b, "fp32", acc, backend=be), max(3, repeat // 3))
            note = f"{apy_t / t:.0f}x faster than APyTypes" if apy_t else ""
            rows.append(Row(f"matmul 256^3 e4m3, {label}", f"lowbit {be}", t, "torch f32",
                            t_torch, note))


def _training_step(repeat: int, rows: list[Row]) -> None:
    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    from lowbit.integrations.torch import swap_layers

    torch.manual_seed(0)
    x = torch.randn(128, 784)
    y = torch.randint(0, 10, (128,))

    def step_of(spec):
        model = nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(),
                              nn.Linear(256, 10))
        if spec is not None:
            model = swap_layers(model, spec, cast_weights=False)
        opt = torch.optim.Adam(model.parameters(), 1e-3)

        def step():
            opt.zero_grad()
            F.cross_entropy(model(x), y).backward()
            opt.step()
        return step

    t_f32 = measure(step_of(None), repeat)
    for spec, label in (("bf16", "bf16 everywhere, fp32 acc"),
                        ("w=e4m3,a=e4m3,o=bf16,gi=e5m2,gw=e5m2", "FP8 (E4M3/E5M2), fp32 acc"),
                        ("w=mxfp8,a=mxfp8,o=bf16,gi=e5m2,gw=e5m2", "MXFP8 weights+activations"),
                        ("w=e4m3,a=e4m3,o=bf16,gi=e5m2,gw=e5m2,acc=hopper_fp8", "FP8, Hopper model")):
        t = measure(step_of(spec), max(3, repeat // 3))
        rows.append(Row("train step 784-256-256-10, batch 128", f"lowbit {label}", t,
                        "float32 step", t_f32))


def bench(repeat: int) -> list[Row]:
    rows: list[Row] = []
    _casts(repeat, rows)
    _matmuls(repeat, rows)
    _training_step(repeat, rows)
    return rows


def main() -> None:
    run_benchmark(bench, "Float and block formats (bench_float.py)", __doc__, repeat=9)


if __name__ == "__main__":
    main()
