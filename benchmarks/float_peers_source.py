"""lowbit beside microxcaling and CPFloat, two peers without a wheel, run from source checkouts.

    python benchmarks/float_peers_source.py --microxcaling PATH --cpfloat-driver PATH

`--microxcaling PATH`: a checkout of github.com/microsoft/microxcaling (the folder that holds
`mx/`). It is imported from there and runs on the CPU through its pure-PyTorch path (its
CUDA/C++ extension is not built or used).

`--cpfloat-driver PATH`: a program you compile yourself against CPFloat's headers
(github.com/north-numerical-computing/cpfloat, folder `src/`), with this contract:

    DRIVER PRECISION EMIN EMAX SUBNORMAL ROUND SATURATION INFINITY

The seven integers go into the `optstruct` fields of those names, with their CPFloat enum
values (SUBNORMAL 1 = CPFLOAT_SUBN_USE, 0 = CPFLOAT_SUBN_RND; ROUND 1 = CPFLOAT_RND_NE,
-1 = CPFLOAT_RND_NA; SATURATION 1 = CPFLOAT_SAT_USE; INFINITY 1 = CPFLOAT_INF_USE, 0 =
CPFLOAT_INF_NO), `explim` = CPFLOAT_EXPRANGE_TARG and no bit flips. The driver reads native
float64 values from stdin until end of file, rounds them with one call of `cpfloat()`
(`cpfloat_binary64.h`) and writes the results, float64, to stdout.

A peer whose option is not given is skipped; the markdown goes to stdout. Inputs: the named
cases, and two sets of 2^20 float32 values (seed 0): "normal", as benchmarks/float_peers.py
(standard normal times 2^k, k uniform in -20..19), and "7-bit" (integers -128..127 times
2^-30..2^13), whose short significands put many inputs on midpoints (ties).
"""

from __future__ import annotations

import argparse
import subprocess
import sys

import numpy as np

import lowbit as lb

N = 1 << 20
COUNTS = "differ (of 2^20), normal inputs | differ, 7-bit inputs | where"


def _fmt(v) -> str:
    return "NaN" if np.isnan(v) else f"{v:g}"


def _cells(x) -> str:
    return ", ".join(_fmt(v) for v in np.asarray(x, dtype=np.float64).ravel())


def random_inputs() -> dict[str, np.ndarray]:
    r = np.random.default_rng(0)
    x = (r.standard_normal(N) * 2.0 ** r.integers(-20, 20, N)).astype(np.float32)
    t = (r.integers(-128, 128, N) * 2.0 ** r.integers(-30, 14, N)).astype(np.float32)
    return {"normal": x, "7-bit": t}


def _differ(a, b) -> np.ndarray:
    return ~((a == b) | (np.isnan(a) & np.isnan(b)))


def where(x, diff, fmt) -> str:
    """Sort the differing inputs: NaN/inf, above lowbit's largest value, ties (lowbit's rne
    and rna differ), below the smallest normal, the rest; with the range of |x| of each."""
    if not diff.any():
        return ""
    f = lb.parse_format(fmt)
    base = ":".join(t for t in fmt.split(":") if t not in ("sat", "inf", "rne", "rna"))
    a = np.abs(np.asarray(x, dtype=np.float64)[diff])
    tie = _differ(lb.cast(a, base + ":sat:rne").to_float(),
                  lb.cast(a, base + ":sat:rna").to_float())
    special, above = ~np.isfinite(a), np.isfinite(a) & (a > float(f.max_value))
    rest = ~special & ~above
    small = a < float(f.min_normal)
    out = []
    for name, m in (("NaN/inf input", special), (f"above {float(f.max_value):g}", above),
                    ("ties", rest & tie), ("subnormal range", rest & ~tie & small),
                    ("other", rest & ~tie & ~small)):
        if m.any():
            rng = f", \\|x\\| {a[m].min():.6g}..{a[m].max():.6g}" if not special[m].any() else ""
            out.append(f"{name} {int(m.sum()):,}{rng}")
    return "; ".join(out)


def both(xs: dict, compare) -> str:
    """The cells "count on normal | count on 7-bit | where"; compare(x) -> (count, where)."""
    got = {name: compare(x) for name, x in xs.items()}
    notes = "; ".join(f"{name}: {w}" for name, (_, w) in got.items() if w)
    return " | ".join([*(f"{c:,}" for c, _ in got.values()), notes])


# ------------------------------------------------------------------ microxcaling
def microxcaling(path: str, xs: dict) -> list[str]:
    sys.path.insert(0, path)
    import torch
    from mx.elemwise_ops import _quantize_elemwise
    from mx.formats import _get_format_params
    from mx.mx_ops import _shared_exponents, quantize_mx_op
    from mx.specs import MxSpecs

    def elem(v, f, rnd, sat):
        t = torch.tensor(np.asarray(v, dtype=np.float32))
        return _quantize_elemwise(t, f, round=rnd, saturate_normals=sat).double().numpy()

    def block(v, f, rnd):
        """Dequantised values and scale exponents (NaN for a NaN scale)."""
        t = torch.tensor(np.asarray(v, dtype=np.float32))
        q = quantize_mx_op(t, MxSpecs(), elem_format=f, block_size=32, axes=[-1], round=rnd)
        # microxcaling returns no scales: the exponent as its _quantize_mx computes it
        e = _shared_exponents(t.reshape(-1, 32), axes=[-1]).reshape(-1).double().numpy()
        e = e - _get_format_params(f)[2]
        return q.double().numpy(), np.where(e > 127, np.nan, np.maximum(e, -127))

    def ours_block(v, f):
        b = lb.block_cast(np.asarray(v, dtype=np.float32), f)
        s = b.scales.reshape(-1).astype(np.float64)
        return b.array.to_float(), np.where(s == 255, np.nan, s - 127)

    out = ["### microxcaling: element casts, named inputs", "",
           "`mx.elemwise_ops._quantize_elemwise(x, fmt, round, saturate_normals)`, the element "
           "path of its ops; `saturate_normals=False` (its default) unless stated.", "",
           "| case | input | lowbit | microxcaling `nearest` | microxcaling `even` |",
           "|---|---|---|---|---|"]
    e4 = [448, 464, 465, 480, 500, np.inf, np.nan]
    ties = [2.5, 0.25, 5, 0.75, 7]
    named = [
        ("E4M3 (`e4m3`; fp8_e4m3)", "e4m3", "fp8_e4m3", False, e4),
        ("E4M3 non-saturating (`e4m3:inf`)", "e4m3:inf", "fp8_e4m3", False, e4),
        ("E4M3, `saturate_normals=True`", "e4m3", "fp8_e4m3", True, [464, 465, 500, np.inf]),
        ("E4M3, f32 2^-10 - 2^-34 (below half the smallest subnormal)", "e4m3", "fp8_e4m3",
         False, [2.0**-10 - 2.0**-34]),
        ("E5M2 (`e5m2`)", "e5m2", "fp8_e5m2", False, [57344, 61440, 1e6, np.inf]),
        ("E2M1 ties and 7 (`e2m1`; fp4_e2m1)", "e2m1", "fp4_e2m1", False, ties),
        ("E2M1, ties away (`e2m1:rna`)", "e2m1:rna", "fp4_e2m1", False, ties),
        ("E2M1, `saturate_normals=True`", "e2m1", "fp4_e2m1", True, [7, 1e9, np.inf]),
        ("E3M2 beyond its max (`e3m2`)", "e3m2", "fp6_e3m2", False, [30, 100]),
    ]
    for case, f, mf, sat, v in named:
        v = np.array(v, dtype=np.float32)
        cols = [_cells(elem(v, mf, rnd, sat)) for rnd in ("nearest", "even")]
        out.append(f"| {case} | {_cells(v)} | {_cells(lb.cast(v, f).to_float())} | "
                   f"{cols[0]} | {cols[1]} |")

    out += ["", "### microxcaling: element casts of the random values", "",
            f"| microxcaling call | lowbit | {COUNTS} |", "|---|---|---|---|---|"]
    rows = [("fp8_e4m3", "nearest", False, "e4m3"),
            ("fp8_e4m3", "nearest", False, "e4m3:inf:rna"),
            ("fp8_e4m3", "even", False, "e4m3:inf"), ("fp8_e4m3", "even", True, "e4m3"),
            ("fp8_e5m2", "nearest", False, "e5m2"), ("fp8_e5m2", "nearest", False, "e5m2:rna"),
            ("fp8_e5m2", "even", False, "e5m2"), ("fp8_e5m2", "even", True, "e5m2:sat")]
    for mf, f in (("fp4_e2m1", "e2m1"), ("fp6_e3m2", "e3m2"), ("fp6_e2m3", "e2m3")):
        rows += [(mf, "nearest", True, f), (mf, "nearest", True, f + ":rna"),
                 (mf, "even", True, f)]
    for mf, rnd, sat, f in rows:
        def compare(x):
            d = _differ(elem(x, mf, rnd, sat), lb.cast(x, f).to_float())
            return int(d.sum()), where(x, d, f)
        out.append(f"| `{mf}`, `{rnd}`, saturate_normals={sat} | `{f}` | {both(xs, compare)} |")

    out += ["", "### microxcaling: MX blocks (32 along the last axis), named blocks", "",
            "`mx.mx_ops.quantize_mx_op(x, MxSpecs(), fmt, block_size=32, axes=[-1], round)`; "
            "the first values of the block, then its scale.", "",
            "| case | block (first values; the rest 0) | lowbit | microxcaling `nearest` | "
            "microxcaling `even` |", "|---|---|---|---|---|"]

    def show(vals, e, k):
        return f"{_cells(vals.ravel()[:k])}; scale " + ("NaN" if np.isnan(e[0]) else f"2^{e[0]:g}")

    blocks = [
        ("all-zero block, MXFP8", "mxfp8", "fp8_e4m3", [0.0]),
        ("amax 7, MXFP4 (T16: FLOOR clips)", "mxfp4", "fp4_e2m1", [7, 0.5, 3]),
        ("E2M1 ties, MXFP4 (scale 1)", "mxfp4", "fp4_e2m1", [4, 2.5, 0.25, 5, 0.75]),
        ("amax 2^20 - 2^-4 (f32 log2 gives 20.0), MXFP8", "mxfp8", "fp8_e4m3",
         [2.0**20 - 2.0**-4, 1]),
        ("amax 2^20 - 2^-4, MXFP4", "mxfp4", "fp4_e2m1", [2.0**20 - 2.0**-4, 2.0**17]),
        ("NaN in the block, MXFP8", "mxfp8", "fp8_e4m3", [np.nan, 1]),
        ("inf in the block, MXFP8", "mxfp8", "fp8_e4m3", [np.inf, 1]),
        ("f32 2^-10 - 2^-34 beside amax 256 (scale 1), MXFP8", "mxfp8", "fp8_e4m3",
         [256, 2.0**-10 - 2.0**-34]),
        ("the -2 code, MXINT8", "mxint8", "int8", [1.5, -1.999]),
    ]
    for case, f, mf, v in blocks:
        b = np.zeros((1, 32), dtype=np.float32)
        b[0, :len(v)] = v
        cols = [show(*block(b, mf, rnd), len(v)) for rnd in ("nearest", "even")]
        out.append(f"| {case} | {_cells(v)} | {show(*ours_block(b, f), len(v))} | "
                   f"{cols[0]} | {cols[1]} |")

    out += ["", "### microxcaling: MX blocks of the random values (1,024 x 1,024, "
            "32,768 blocks of 32)", "",
            "| block format | microxcaling `round` | lowbit | block scales that differ, normal "
            f"\\| 7-bit | element values that {COUNTS} |", "|---|---|---|---|---|---|---|"]
    for f, mf in (("mxfp8", "fp8_e4m3"), ("mxfp8e5m2", "fp8_e5m2"), ("mxfp6", "fp6_e2m3"),
                  ("mxfp6e3m2", "fp6_e3m2"), ("mxfp4", "fp4_e2m1"), ("mxint8", "int8")):
        for rnd, lf in (("nearest", f), ("nearest", f + ":rna"), ("even", f)):
            scales = []

            def compare(x):
                xb = x.reshape(-1, 1024)
                (tv, te), (ov, oe) = block(xb, mf, rnd), ours_block(xb, lf)
                scales.append(f"{int(_differ(te, oe).sum()):,}")
                dv = _differ(tv.ravel(), ov.ravel())
                if not dv.any():
                    return 0, ""
                tie = _differ(lb.block_cast(xb, f + ":rne").array.to_float().ravel()[dv],
                              lb.block_cast(xb, f + ":rna").array.to_float().ravel()[dv])
                return int(dv.sum()), f"ties {int(tie.sum()):,}, other {int((~tie).sum()):,}"
            cells = both(xs, compare)
            scale_cells = " \\| ".join(scales)
            out.append(f"| `{f}` | `{rnd}` | `{lf}` | {scale_cells} | {cells} |")
    return out


# ------------------------------------------------------------------ CPFloat
def cpfloat(driver: str, xs: dict) -> list[str]:
    def run(v, p, emin, emax, subn=1, rnd=1, sat=0, inf=1):
        args = [driver] + [str(a) for a in (p, emin, emax, subn, rnd, sat, inf)]
        raw = subprocess.run(args, input=np.asarray(v, dtype=np.float64).tobytes(),
                             capture_output=True, check=True).stdout
        return np.frombuffer(raw, dtype=np.float64)

    e4m3 = dict(p=4, emin=-6, emax=8, inf=0)  # what CPFloat's "E4M3" preset sets
    e4m3_sat, e4m3_rna = dict(e4m3, sat=1), dict(e4m3, rnd=-1)
    ieee43 = dict(p=4, emin=-6, emax=7)  # IEEE-like E4M3: max 240, inf
    e5m2, fp16 = dict(p=3, emin=-14, emax=15), dict(p=11, emin=-14, emax=15)
    bf16 = dict(p=8, emin=-126, emax=127)
    bf16_preset = dict(bf16, subn=0)  # the "bf16" preset: CPFLOAT_SUBN_RND
    out = ["### CPFloat, named inputs", "",
           "\"E4M3 preset\": the fields CPFloat's `\"E4M3\"` preset sets (precision 4, emin -6, "
           "emax 8, subnormals, RNE, no saturation, `CPFLOAT_INF_NO`: overflow gives NaN).", "",
           "| case | input | lowbit | CPFloat |", "|---|---|---|---|"]
    e4 = [448, 464, 465, 479, 480, 495, 496, 500, np.inf]
    tiny = [2.0**-130, 3 * 2.0**-134]
    named = [
        ("E4M3 preset; lowbit `e4m3:inf`", "e4m3:inf", e4m3, e4),
        ("E4M3 preset; lowbit `float4.3:none` (no specials: max 480)", "float4.3:none", e4m3, e4),
        ("E4M3 preset + `CPFLOAT_SAT_USE`; lowbit `e4m3`", "e4m3", e4m3_sat, e4),
        ("E4M3 preset, `CPFLOAT_RND_NA`; lowbit `e4m3:inf:rna`", "e4m3:inf:rna", e4m3_rna,
         [464, 2.5, 0.3125]),
        ("f64 1 + 2^-4 + 2^-40 -> E4M3 (one rounding)", "e4m3:inf", e4m3, [1 + 2**-4 + 2**-40]),
        ("IEEE-like E4M3 (`float4.3`)", "float4.3", ieee43, [240, 248, 256, 300, 511, 600]),
        ("E5M2 (`e5m2`)", "e5m2", e5m2, [57344, 61440, 1e6]),
        ("fp16: f64 just above the tie 1 + 2^-11; 65520", "fp16", fp16,
         [1 + 2**-11 + 2**-40, 65520]),
        ("bf16, subnormals on (`bf16`)", "bf16", bf16, tiny),
        ("bf16 preset (`CPFLOAT_SUBN_RND`); lowbit `bf16`", "bf16", bf16_preset, tiny),
    ]
    for case, f, o, v in named:
        v = np.array(v, dtype=np.float64)
        out.append(f"| {case} | {_cells(v)} | {_cells(lb.cast(v, f).to_float())} | "
                   f"{_cells(run(v, **o))} |")

    out += ["", "### CPFloat, the random values", "",
            f"| CPFloat options | lowbit | {COUNTS} |", "|---|---|---|---|---|"]
    rows = [("E4M3 preset", e4m3, "e4m3:inf"), ("E4M3 preset", e4m3, "float4.3:none"),
            ("E4M3 preset + saturation", e4m3_sat, "e4m3"),
            ("E4M3 preset + saturation", e4m3_sat, "float4.3:none"),
            ("E4M3 preset, ties away", e4m3_rna, "e4m3:inf:rna"),
            ("precision 4, emin -6, emax 7, inf (IEEE-like)", ieee43, "float4.3"),
            ("E5M2 preset", e5m2, "e5m2"), ("fp16 preset", fp16, "fp16"),
            ("fp16, ties away", dict(fp16, rnd=-1), "fp16:rna"),
            ("bf16, subnormals on", bf16, "bf16"), ("bf16 preset", bf16_preset, "bf16")]
    for name, o, f in rows:
        def compare(x):
            d = _differ(run(x, **o), lb.cast(x, f).to_float())
            return int(d.sum()), where(x, d, f)
        out.append(f"| {name} | `{f}` | {both(xs, compare)} |")
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--microxcaling", metavar="PATH", help="a microxcaling checkout (holds mx/)")
    p.add_argument("--cpfloat-driver", metavar="PATH", help="the compiled CPFloat driver")
    args = p.parse_args()
    xs = random_inputs()
    text = []
    if args.microxcaling:
        text += microxcaling(args.microxcaling, xs) + [""]
    else:
        text.append("microxcaling: skipped (no --microxcaling PATH).\n")
    if args.cpfloat_driver:
        text += cpfloat(args.cpfloat_driver, xs) + [""]
    else:
        text.append("CPFloat: skipped (no --cpfloat-driver PATH).\n")
    print("\n".join(text))


if __name__ == "__main__":
    main()
