"""Where lowbit's float and block formats differ from the peers on the same inputs: a
measured table (docs/results/float_peers.md), not an assumed one.

    python benchmarks/float_peers.py [--out docs/results/float_peers.md]

Named inputs (the spec sheet's section 3 cases) are cast by lowbit, torch, ml_dtypes and,
where installed, torchao; then 2^20 random values (normal, times 2^-20..2^20) are cast by
each and the values that differ from lowbit's are counted. Peers that are not installed
are reported as such.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

import lowbit as lb


def _fmt(v) -> str:
    return "NaN" if np.isnan(v) else f"{v:g}"


def _row(case, x, ours, peers) -> str:
    cells = [case, ", ".join(_fmt(v) for v in x), ", ".join(_fmt(v) for v in ours)]
    for got in peers:
        cells.append("-" if got is None else ", ".join(_fmt(v) for v in got))
    return "| " + " | ".join(cells) + " |"


def named_cases() -> list[str]:
    import ml_dtypes
    import torch

    out = ["| case | input | lowbit | torch " + torch.__version__ + " | ml_dtypes "
           + ml_dtypes.__version__ + " |", "|---|---|---|---|---|"]
    cases = [
        ("E4M3 saturating (`e4m3`)", "e4m3", np.array([448.0, 464.0, 465.0, 500.0, np.inf]),
         torch.float8_e4m3fn, ml_dtypes.float8_e4m3fn),
        ("E4M3 non-saturating (`e4m3:inf`)", "e4m3:inf", np.array([464.0, 465.0, np.inf]),
         None, ml_dtypes.float8_e4m3fn),
        ("float64 1 + 2^-4 + 2^-40 -> E4M3 (no double rounding)", "e4m3",
         np.array([1 + 2**-4 + 2**-40]), torch.float8_e4m3fn, ml_dtypes.float8_e4m3fn),
        ("float64 just above the fp16 tie 1 + 2^-11", "fp16", np.array([1 + 2**-11 + 2**-40]),
         torch.float16, np.float16),
        ("E2M1 ties (RNE) and 7 (saturates)", "e2m1", np.array([2.5, 0.25, 5.0, 7.0]),
         None, ml_dtypes.float4_e2m1fn),
        ("E5M2 overflow (`e5m2`, IEEE: inf)", "e5m2", np.array([57344.0, 61440.0, 1e6]),
         torch.float8_e5m2, ml_dtypes.float8_e5m2),
    ]
    for case, f, x, tdt, mdt in cases:
        ours = lb.cast(x, f).to_float()
        tv = None
        if tdt is not None:
            tv = torch.from_numpy(x).to(tdt).to(torch.float64).numpy()
        mv = x.astype(mdt).astype(np.float64) if mdt is not None else None
        out.append(_row(case, x, ours, [tv, mv]))
    return out


def pychop_cases() -> list[str]:
    """The spec sheet's T5: pychop's IEEE-like overflow, beside lowbit's two modes."""
    try:
        import pychop
        from pychop import Chop
    except ImportError:
        return ["pychop: not installed."]
    pychop.backend("numpy")
    out = [f"| format | input | lowbit (inf on overflow) | lowbit `:sat` | pychop "
           f"{pychop.__version__} `Chop` (numpy) |", "|---|---|---|---|---|"]
    for name, (e, m), x in (("float4.3", (4, 3), np.array([240.0, 248.0, 256.0, 300.0, 511.0, 600.0])),
                            ("fp16", (5, 10), np.array([65504.0, 65520.0, 70000.0, 131071.0]))):
        theirs = Chop(exp_bits=e, sig_bits=m, rmode=1)(x)
        out.append(_row(f"`{name}`", x, lb.cast(x, name).to_float(),
                        [lb.cast(x, name + ":sat").to_float(), theirs]))
    return out


def random_agreement() -> list[str]:
    import ml_dtypes
    import torch

    r = np.random.default_rng(0)
    x = (r.standard_normal(1 << 20) * 2.0 ** r.integers(-20, 20, 1 << 20)).astype(np.float32)
    tx = torch.from_numpy(x)
    out = ["| format | peer | values that differ from lowbit (of 2^20) | where |",
           "|---|---|---|---|"]

    def count(name, peer, theirs, ours, where=""):
        diff = ~((theirs == ours) | (np.isnan(theirs) & np.isnan(ours)))
        out.append(f"| `{name}` | {peer} | {int(diff.sum()):,} | {where} |")
        return diff

    # (format, torch dtype, ml_dtypes dtype, note on torch, note on ml_dtypes)
    sat = "above the format's max: lowbit saturates, the peer gives NaN/inf"
    for name, tdt, mdt, tnote, mnote in (
            ("e4m3", torch.float8_e4m3fn, ml_dtypes.float8_e4m3fn, "", sat),
            ("e4m3:inf", None, ml_dtypes.float8_e4m3fn, "", ""),
            ("e5m2", torch.float8_e5m2, ml_dtypes.float8_e5m2, "", ""),
            ("e5m2:sat", torch.float8_e5m2, ml_dtypes.float8_e5m2, sat, sat),
            ("bf16", torch.bfloat16, ml_dtypes.bfloat16, "", ""),
            ("fp16", torch.float16, np.float16, "", "")):
        ours = lb.cast(x, name).to_float()
        if tdt is not None:
            count(name, f"torch {torch.__version__}", tx.to(tdt).double().numpy(), ours, tnote)
        with np.errstate(over="ignore"):
            m = x.astype(mdt).astype(np.float64)
        count(name, f"ml_dtypes {ml_dtypes.__version__}", m, ours, mnote)
    try:
        import torchao
        from torchao.prototype.mx_formats.mx_tensor import to_mx
        from torchao.prototype.mx_formats.nvfp4_tensor import nvfp4_quantize

        xb = tx.reshape(-1, 1024)
        for name, elem in (("mxfp8", torch.float8_e4m3fn), ("mxfp4", torch.float4_e2m1fn_x2)):
            scale, data = to_mx(xb, elem, 32)
            s = scale.view(torch.uint8).to(torch.int64).numpy()
            theirs_scale = np.ldexp(1.0, (s - 127).astype(np.int32))
            ours = lb.block_cast(x.reshape(-1, 1024), name)
            ours_scale = np.ldexp(1.0, (ours.scales - 127).astype(np.int32))
            out.append(f"| `{name}` | torchao {torchao.__version__} `to_mx` | "
                       f"{int((theirs_scale != ours_scale).sum()):,} block scales (of "
                       f"{s.size:,}) | the FLOOR rule both |")
            if name == "mxfp8":
                tv = (data.to(torch.float64).numpy() * np.repeat(theirs_scale, 32, axis=1))
                count(name, f"torchao {torchao.__version__} `to_mx`", tv.reshape(-1),
                      ours.array.to_float().reshape(-1), "element values")
        scale, data = nvfp4_quantize(xb, 16)
        ours = lb.block_cast(x.reshape(-1, 1024), "nvfp4:nots:rule=nearest")
        ts = scale.to(torch.float64).numpy()
        os_ = lb.from_codes(ours.scales, lb.parse_format("ue4m3")).to_float()
        out.append(f"| `nvfp4:nots:rule=nearest` | torchao {torchao.__version__} "
                   f"`nvfp4_quantize` (no tensor scale) | {int((ts.reshape(-1) != os_.reshape(-1)).sum()):,}"
                   f" block scales (of {ts.size:,}) | torchao: amax/6 in fp32, then RNE |")
        ours = lb.block_cast(x.reshape(-1, 1024), "nvfp4:nots")
        os_ = lb.from_codes(ours.scales, lb.parse_format("ue4m3")).to_float()
        out.append(f"| `nvfp4:nots` (scale rounded up) | torchao {torchao.__version__} "
                   f"`nvfp4_quantize` | {int((ts.reshape(-1) != os_.reshape(-1)).sum()):,} block "
                   f"scales (of {ts.size:,}) | lowbit's default rounds the scale up (cuDNN) |")
    except ImportError:
        out.append("| MX, NVFP4 | torchao | not installed | |")
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path)
    args = p.parse_args()
    text = "\n".join(["# lowbit's floats and blocks beside the peers (measured)", "",
                      "Generated by `python benchmarks/float_peers.py`. Named inputs:", "",
                      *named_cases(), "", "IEEE-like overflow (spec sheet T5):", "",
                      *pychop_cases(), "", "Random float32 inputs:", "", *random_agreement(),
                      ""])
    print(text)
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
