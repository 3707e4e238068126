"""The LNS error report: how far each adder spec is from the exact Gaussian logs,
and what that does to dot products, with and without Kahan summation.

    lowbit lns-report --out DIR

writes ``DIR/lns_report.md`` with its tables, ``DIR/lns_adder_error.png``,
``DIR/lns_dot_error.png`` and the raw numbers as CSV. For LNS(5, 10) and
LNS(5, 7), and the adders Exact(), Table(8) and Interp(6) (round to nearest):

1. the error of sb and db in ulps (units of 2**-frac_bits) against the exact
   function, at every z from 0 to past the essential zero: max and mean;
2. the relative error of a K-term dot product of N(0, 1) vectors against
   float64 (from the same LNS-rounded inputs, so only the arithmetic is
   measured), |lns - float64| / sum|x_k y_k|, for K = 1..4096, averaged over
   trials, with sequential accumulation and with Kahan compensation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

import lowbit.emulators as E
from lowbit.integrations.runs import save_figure, write_csv, write_text
from lowbit.numerics import LNS, Exact, Interp, Table
from lowbit.numerics import gaussian_log as gl

FORMATS = (LNS(5, 10), LNS(5, 7))
ADDERS = (Exact(), Table(8), Interp(6))
DOT_KS = tuple(2**i for i in range(13))
TRIALS = 16


@dataclass
class AdderError:
    """The error of one adder function (sb or db) of one LNS format against the exact
    function (in float64), in ulps of 2**-F, over the differences 0 <= |z| <= ``z_range``
    (in 2**-F units)."""
    fmt: str
    adder: str
    function: str
    max_ulp: float
    mean_ulp: float
    z_range: int


def _final_values(fmt: LNS, which: int, zabs: np.ndarray) -> np.ndarray:
    """The adder's final f(-zabs) in ulps, through the kernels' tables."""
    t = gl.adder_tables(fmt)
    out = np.empty(zabs.size, np.int64)
    small = zabs < (1 << t.k)
    out[small] = t.sub[which, zabs[small]]
    q = zabs >> t.k
    big = ~small
    beyond = big & (q > t.last)
    out[beyond] = t.beyond[which] << t.guard
    inside = big & ~beyond
    qi = q[inside]
    lo = t.tab[which, qi]
    if t.interp:
        r = zabs[inside] & ((1 << t.k) - 1)
        lo = lo + (((t.tab[which, qi + 1] - lo) * r) >> t.k)
    out[inside] = lo
    assert t.guard == 0 or isinstance(fmt.adder, Interp)
    return np.array([gl.round_guard(int(v), t.guard, fmt.rounding) for v in out]) \
        if t.guard else out


def adder_errors(fmt: LNS) -> tuple[list[AdderError], dict]:
    """Error in ulps of sb and db over 0 <= |z| <= 1.25 x the essential zero."""
    zmax = int(gl.essential_zero(fmt.frac_bits) * 1.25)
    rows, curves = [], {}
    for which, name in ((gl.SB, "sb"), (gl.DB, "db")):
        z = np.arange(1 if which == gl.DB else 0, zmax + 1)
        exact = gl._float_values(which, z, fmt.frac_bits) * 2.0**fmt.frac_bits
        got = _final_values(fmt, which, z)
        err = np.abs(got - exact)
        rows.append(AdderError(str(LNS(fmt.int_bits, fmt.frac_bits)), str(fmt.adder), name,
                               float(err.max()), float(err.mean()), zmax))
        curves[name] = (z, err)
    return rows, curves


def dot_errors(fmt: LNS, rs: np.random.Generator) -> dict[str, np.ndarray]:
    """Mean relative dot-product error for each K in DOT_KS, plain and Kahan."""
    out = {"plain": [], "kahan": []}
    for K in DOT_KS:
        x = E.cast(rs.standard_normal((TRIALS, K)), fmt)
        y = E.cast(rs.standard_normal((TRIALS, K)), fmt)
        xf, yf = x.to_float(), y.to_float()
        exact = np.array([math.fsum(r) for r in xf * yf])
        scale = np.abs(xf * yf).sum(axis=1)
        prod = E.mul(x, y)
        for kind, comp in (("plain", False), ("kahan", True)):
            got = E.sum(prod, axis=1, compensated=comp).to_float()
            out[kind].append(float(np.mean(np.abs(got - exact) / scale)))
    return {k: np.array(v) for k, v in out.items()}


def run_report(out_dir: Path, seed: int = 0) -> Path:
    """Compute everything, write the markdown, PNGs and CSVs; returns the markdown path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    adder_rows: list[AdderError] = []
    dots: dict[tuple[str, str], dict] = {}
    fig, axes = plt.subplots(len(FORMATS), 2, figsize=(11, 4 * len(FORMATS)), squeeze=False)
    for r, base in enumerate(FORMATS):
        for adder in ADDERS:
            fmt = LNS(base.int_bits, base.frac_bits, adder)
            rows, curves = adder_errors(fmt)
            adder_rows += rows
            for c, name in enumerate(("sb", "db")):
                z, err = curves[name]
                ax = axes[r, c]
                ax.plot(z / 2**fmt.frac_bits, err, lw=0.6, label=str(adder))
                ax.set_title(f"{name} error, {base}")
                ax.set_xlabel("|z| (log2 units)")
                ax.set_ylabel("|error| (ulps)")
                ax.set_yscale("symlog", linthresh=0.5)
            dots[(str(base), str(adder))] = dot_errors(fmt, np.random.default_rng(seed))
    for ax in axes.ravel():
        ax.axhline(0.5, color="k", lw=0.5, ls=":")
        ax.legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, out_dir / "lns_adder_error.png", dpi=110)
    plt.close(fig)

    fig, axes = plt.subplots(1, len(FORMATS), figsize=(6 * len(FORMATS), 4.2), squeeze=False)
    for c, base in enumerate(FORMATS):
        ax = axes[0, c]
        for i, adder in enumerate(ADDERS):
            d = dots[(str(base), str(adder))]
            ks = DOT_KS[1:]  # K = 1 is one exact product: no error to show
            ax.loglog(ks, d["plain"][1:], color=f"C{i}", marker="o", ms=3, label=f"{adder}")
            ax.loglog(ks, d["kahan"][1:], color=f"C{i}", ls="--", marker="x", ms=3,
                      label=f"{adder} + Kahan")
        ax.set_title(f"dot-product error, {base}")
        ax.set_xlabel("K (terms)")
        ax.set_ylabel("|lns - float64| / sum |x y|")
        ax.legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, out_dir / "lns_dot_error.png", dpi=110)
    plt.close(fig)

    write_csv(out_dir / "lns_adder_error.csv",
              [[a.fmt, a.adder, a.function, a.max_ulp, a.mean_ulp, a.z_range] for a in adder_rows],
              ["format", "adder", "function", "max_ulp", "mean_ulp", "z_range"])
    write_csv(out_dir / "lns_dot_error.csv",
              [[base, adder, K, p, k] for (base, adder), d in dots.items()
               for K, p, k in zip(DOT_KS, d["plain"], d["kahan"])],
              ["format", "adder", "K", "plain", "kahan"])

    lines = ["# LNS error report", "",
             "Generated by `lowbit lns-report`; see `integrations/reports/lns.py` for the method.",
             "", "## Gaussian-log adders: error in ulps over the whole z range", "",
             "| format | adder | function | max error (ulp) | mean error (ulp) | z range |",
             "|---|---|---|---|---|---|"]
    lines += [f"| {a.fmt} | {a.adder} | {a.function} | {a.max_ulp:.3f} | {a.mean_ulp:.4f} | "
              f"0..{a.z_range} |" for a in adder_rows]
    lines += ["", "![adder error](lns_adder_error.png)", "",
              f"## K-term dot products of N(0, 1) vectors ({TRIALS} trials each)", "",
              "Mean of |lns - float64| / sum|x_k y_k|, sequential accumulation in the format.", "",
              "| format | adder | " + " | ".join(f"K={k}" for k in DOT_KS[::2]) + " |",
              "|---|---|" + "---|" * len(DOT_KS[::2])]
    for (base, adder), d in dots.items():
        for kind in ("plain", "kahan"):
            vals = " | ".join(f"{v:.2e}" for v in d[kind][::2])
            lines.append(f"| {base} | {adder}{' + Kahan' if kind == 'kahan' else ''} | {vals} |")
    lines += ["", "![dot-product error](lns_dot_error.png)", ""]
    path = out_dir / "lns_report.md"
    write_text(path, "\n".join(lines))
    return path
