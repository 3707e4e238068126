"""The per-format error report: ``lowbit report FORMAT... --out DIR`` (``--all``).

For each format, on real data:

1. cast error of scikit-learn digits pixels, of the weights of a small MLP
   trained in float on digits, and of N(0, 1) samples: max and RMS absolute
   error, RMS relative error, share saturated, share flushed to zero;
2. dot-product error against float64 (from the same cast inputs, so only the
   arithmetic is measured) for K = 1..4096 terms of N(0, 1) vectors, as
   |emulated - float64| / sum |x_k y_k|, without and with Kahan compensation
   (fixed point: the narrow accumulator Fixed(2 x bits, frac), which rounds
   every product; LNS: accumulation in the format; binary/ternary: exact
   integer dot products, so no Kahan variant);
3. the test accuracy of that float-trained MLP with its layers swapped into the
   format (weights, activations and outputs; binary/ternary: weights only);
4. for LNS formats, the adder's sb/db error in ulps over the z range.

Writes ``report.md``, ``cast_error.png``, ``dot_error.png``, ``lns_adder_error.png``
and ``report.csv`` into DIR.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

import lowbit.emulators as E
from lowbit.integrations.data import load_digits
from lowbit.integrations.reports.lns import adder_errors
from lowbit.integrations.runs import save_figure, write_csv, write_text
from lowbit.numerics import LNS, Binary, Block, Fixed, Float, Format, Ternary, parse_format

ALL_FORMATS = ("fixed4.2", "fixed8.5", "fixed12.8", "fixed16.12", "binary:mean_abs", "ternary",
               "lns5.10", "lns5.10:table8", "lns5.10:interp6", "lns5.7", "lns5.7:table8",
               "lns5.7:interp6")
DOT_KS = (1, 4, 16, 64, 256, 1024, 4096)
TRIALS = 16


@dataclass
class CastStats:
    """Errors of casting one data set into one format: absolute and relative errors, and the
    fractions saturated and flushed to zero."""
    format: str
    data: str
    max_abs_err: float
    rms_abs_err: float
    rms_rel_err: float
    saturated: float
    flushed: float


def cast_stats(fmt: Format, name: str, x: np.ndarray) -> CastStats:
    """Cast ``x`` into ``fmt`` and measure the errors of the values it decodes to (relative
    errors over the non-zero x)."""
    q = E.cast(x, fmt)
    v = q.to_float()
    err = v - x
    nz = x != 0
    rel = np.abs(err[nz]) / np.abs(x[nz])
    if isinstance(fmt, LNS):
        sat = np.mean(np.abs(q.codes) == fmt.max_code)
    elif isinstance(fmt, Fixed):
        sat = np.mean((q.codes == fmt.min_code) | (q.codes == fmt.max_code))
    elif isinstance(fmt, Block):  # elements the block scale could not hold (clipped)
        sat = E.block_cast(x, fmt).clipped / max(x.size, 1)
    else:
        sat = 0.0
    return CastStats(str(fmt), name, float(np.max(np.abs(err))), float(np.sqrt(np.mean(err**2))),
                     float(np.sqrt(np.mean(rel**2))) if rel.size else 0.0, float(sat),
                     float(np.mean((v == 0) & nz)))


def _narrow_acc(fmt: Fixed) -> Fixed:
    return Fixed(min(2 * fmt.bits, 62), fmt.frac)


def dot_errors(fmt: Format, rs: np.random.Generator) -> dict[str, list[float]]:
    """Mean relative dot-product error per K; keys 'plain' and (if any) 'kahan'."""
    out: dict[str, list[float]] = {"plain": [], "kahan": []}
    for K in DOT_KS:
        a, b = rs.standard_normal((TRIALS, K)), rs.standard_normal((TRIALS, K))
        x, y = E.cast(a, fmt), E.cast(b, fmt)
        xf, yf = x.to_float(), y.to_float()
        exact = np.array([math.fsum(r) for r in xf * yf])
        scale = np.maximum(np.abs(xf * yf).sum(axis=1), 1e-300)  # all-zero rows: error 0
        runs = {}
        if isinstance(fmt, LNS):
            prod = E.mul(x, y)
            runs = {"plain": E.sum(prod, axis=1), "kahan": E.sum(prod, axis=1, compensated=True)}
        elif isinstance(fmt, (Float, Block)):  # exact products accumulated in the format
            acc = fmt if isinstance(fmt, Float) else "fp32"  # (a block format: in fp32)
            for kind, comp in (("plain", False), ("kahan", True)):
                dots = np.array([float(E.matmul(x[i], y[i], acc, acc, compensated=comp)
                                       .to_float()) for i in range(TRIALS)])
                with np.errstate(invalid="ignore"):
                    out[kind].append(float(np.mean(np.abs(dots - exact) / scale)))
            continue
        elif isinstance(fmt, Fixed):
            acc = _narrow_acc(fmt)
            prod = E.mul(x, y, Fixed(min(2 * fmt.bits, 62), 2 * fmt.frac))
            runs = {"plain": E.sum(prod, axis=1, acc=acc),
                    "kahan": E.sum(prod, axis=1, acc=acc, compensated=True)}
        else:  # exact integer dot products times the scales
            dots = np.array([float(E.matmul(x[i], y[i]).to_float()) for i in range(TRIALS)])
            out["plain"].append(float(np.mean(np.abs(dots - exact) / scale)))
            continue
        for kind, r in runs.items():
            out[kind].append(float(np.mean(np.abs(r.to_float() - exact) / scale)))
    return {k: v for k, v in out.items() if v}


def train_float_mlp(data, epochs: int = 60, seed: int = 0):
    """A 64-32-10 tanh MLP trained in float32 on digits (Adam, full batch)."""
    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(data.n_features, 32), nn.Tanh(), nn.Linear(32, data.n_classes))
    opt = torch.optim.Adam(model.parameters(), lr=0.02)
    x, y = torch.from_numpy(data.x_train), torch.from_numpy(data.y_train)
    for _ in range(epochs):
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()
    return model


def mlp_accuracy(model, data, fmt: Format | None) -> float:
    """Test accuracy of a copy of ``model`` with its layers swapped into ``fmt``."""
    import copy

    import torch

    from lowbit.integrations.torch import EmulationSpec, swap_layers

    m = copy.deepcopy(model).eval()
    if fmt is not None:
        spec = EmulationSpec(weight=fmt) if isinstance(fmt, (Binary, Ternary)) else \
            EmulationSpec(weight=fmt, activation=fmt)
        swap_layers(m, spec)
    with torch.no_grad():
        pred = m(torch.from_numpy(data.x_test)).argmax(1).numpy()
    return float(np.mean(pred == data.y_test))


def run_report(formats, out_dir: Path, seed: int = 0) -> Path:
    """Compute the report for ``formats`` (strings or formats); returns report.md's path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from tqdm import tqdm

    fmts = [parse_format(f) for f in formats]
    out_dir.mkdir(parents=True, exist_ok=True)
    data = load_digits()
    model = train_float_mlp(data, seed=seed)
    weights = model[0].weight.detach().numpy().astype(np.float64)
    gauss = np.random.default_rng(seed).standard_normal(10_000)
    float_acc = mlp_accuracy(model, data, None)
    casts: list[CastStats] = []
    dots: dict[str, dict] = {}
    accs: dict[str, float] = {}
    adders: list = []
    for fmt in tqdm(fmts, desc="formats", unit="fmt"):
        for name, x in (("digits pixels", data.x_test.astype(np.float64).ravel()),
                        ("MLP weights", weights.ravel()), ("N(0,1)", gauss)):
            if isinstance(fmt, Binary) and fmt.scale == "per_channel":
                x = x.reshape(1, -1)
            casts.append(cast_stats(fmt, name, x))
        dots[str(fmt)] = dot_errors(fmt, np.random.default_rng(seed))
        accs[str(fmt)] = mlp_accuracy(model, data, fmt)
        if isinstance(fmt, LNS):
            adders += adder_errors(fmt)[0]

    write_csv(out_dir / "report.csv", [{**asdict(c), "mlp_accuracy": accs[c.format]}
                                       for c in casts])
    _plots(plt, fmts, casts, dots, out_dir)

    lines = ["# lowbit per-format error report", "",
             "Generated by `lowbit report`; method in `integrations/reports/formats.py`.", "",
             f"Float MLP (64-32-10, tanh) trained on scikit-learn digits: test accuracy "
             f"{float_acc:.4f} on {len(data.y_test)} images.", "",
             "## Cast error", "",
             "| format | data | max abs err | RMS abs err | RMS rel err | saturated | flushed to 0 |",
             "|---|---|---|---|---|---|---|"]
    lines += [f"| {c.format} | {c.data} | {c.max_abs_err:.3g} | {c.rms_abs_err:.3g} | "
              f"{c.rms_rel_err:.3g} | {c.saturated:.3f} | {c.flushed:.3f} |" for c in casts]
    lines += ["", "![cast error](cast_error.png)", "",
              "## Dot products of N(0, 1) vectors against float64", "",
              "Mean |emulated - float64| / sum|x y| over 16 trials, float64 computed from the "
              "same cast inputs. Fixed point accumulates in Fixed(2 x bits, frac) (every product "
              "rounded); LNS in the format; floats accumulate their exact products in the format "
              "itself (every addition rounded), block formats (MX, NVFP4) theirs in fp32 "
              "(saturated = elements their block scale clipped); binary/ternary dot products are exact integers, so "
              "0 by construction (their loss is the representation's: see the cast table).", "",
              "| format | accumulation | " + " | ".join(f"K={k}" for k in DOT_KS) + " |",
              "|---|---|" + "---|" * len(DOT_KS)]
    for f, d in dots.items():
        for kind, vals in d.items():
            lines.append(f"| {f} | {kind} | " + " | ".join(f"{v:.2e}" for v in vals) + " |")
    lines += ["", "![dot-product error](dot_error.png)", "",
              "## The float-trained MLP evaluated in each format", "",
              "| format | test accuracy | change vs float |", "|---|---|---|"]
    lines += [f"| {f} | {a:.4f} | {a - float_acc:+.4f} |" for f, a in accs.items()]
    if adders:
        lines += ["", "## LNS adders: sb/db error in ulps over the whole z range", "",
                  "| format | adder | function | max (ulp) | mean (ulp) |", "|---|---|---|---|---|"]
        lines += [f"| {a.fmt} | {a.adder} | {a.function} | {a.max_ulp:.3f} | {a.mean_ulp:.4f} |"
                  for a in adders]
        lines += ["", "![LNS adder error](lns_adder_error.png)"]
    path = out_dir / "report.md"
    write_text(path, "\n".join(lines) + "\n")
    return path


def _plots(plt, fmts, casts, dots, out_dir: Path) -> None:
    names = [str(f) for f in fmts]
    datas = ["digits pixels", "MLP weights", "N(0,1)"]
    fig, ax = plt.subplots(figsize=(max(8, len(names) * 0.9), 4.2))
    width = 0.8 / len(datas)
    for i, d in enumerate(datas):
        vals = [next(c.rms_abs_err for c in casts if c.format == n and c.data == d) for n in names]
        ax.bar(np.arange(len(names)) + i * width, np.maximum(vals, 1e-12), width, label=d)
    ax.set_yscale("log")
    ax.set_xticks(np.arange(len(names)) + width)
    ax.set_xticklabels(names, rotation=35, ha="right", fontsize=8)
    ax.set_ylabel("RMS cast error")
    ax.legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, out_dir / "cast_error.png", dpi=110)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(8, 5))
    for i, (f, d) in enumerate(dots.items()):
        ax.loglog(DOT_KS[1:], d["plain"][1:], color=f"C{i % 10}", marker="o", ms=3, label=f)
        if "kahan" in d:
            ax.loglog(DOT_KS[1:], d["kahan"][1:], color=f"C{i % 10}", ls="--", marker="x", ms=3)
    ax.set_xlabel("K (terms); dashed: Kahan")
    ax.set_ylabel("|emulated - float64| / sum |x y|")
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    save_figure(fig, out_dir / "dot_error.png", dpi=110)
    plt.close(fig)

    lns = [f for f in fmts if isinstance(f, LNS)]
    if lns:
        fig, axes = plt.subplots(1, 2, figsize=(11, 4))
        for f in lns:
            _, curves = adder_errors(f)
            for ax, name in zip(axes, ("sb", "db")):
                z, err = curves[name]
                ax.plot(z / 2**f.frac_bits, err, lw=0.6, label=str(f))
                ax.set_title(f"{name} error")
                ax.set_yscale("symlog", linthresh=0.5)
                ax.set_xlabel("|z| (log2 units)")
                ax.set_ylabel("|error| (ulps)")
        for ax in axes:
            ax.legend(fontsize=7)
        fig.tight_layout()
        save_figure(fig, out_dir / "lns_adder_error.png", dpi=110)
        plt.close(fig)
