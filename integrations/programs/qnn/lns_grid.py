"""The grids of the LNS table behind docs/results/lns.md, trained by ``lowbit train qnn``
with its ``lns-*`` recipes (or an all-LNS emulation spec):

- ``lns``: the seed talk's four configurations (float, LNS matmuls, LNS everywhere, LNS
  everywhere + Kahan) with LNS(5, 10) and LNS(5, 6);
- ``lns-sweep``: LNS everywhere (with and without Kahan) for frac_bits 2..12;
- ``lns-matmul-parts``: the LNS-matmul network (float master weights) with one part
  changed — gradients with a wider exponent range, only the forward matmul in LNS, a
  finer accumulator, the forward and the input-gradient matmuls: which part of the LNS
  matmul costs accuracy (Kahan-compensated accumulation is the lns grid's row).

Runs go to ``ROOT/GRID/DATA/...``; the tables are ``lns_table.md``,
``lns_matmul_parts_table.md``, ``lns_sweep_table.md`` and ``lns_frac_bits_sweep.png``.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np

from lowbit.integrations.programs import tables
from lowbit.integrations.programs.qnn.train import LNS_RECIPES, TrainConfig
from lowbit.integrations.runs import save_figure, write_text

GRIDS = ("lns", "lns-sweep", "lns-matmul-parts")
SWEEP_FRAC_BITS = (2, 4, 6, 8, 10, 12)
# The LNS grids train with plain SGD (no momentum, which would multiply the updates
# by ~10) and a per-epoch decaying rate, so that late updates get small relative to
# the weights: the regime where rounding them in LNS loses them. The rates are the
# ones where the float32 network is well trained in the epochs given (digits, 30
# epochs: 97.1 % test; Fashion-MNIST, 3 epochs: 86.6 %; seed 0). An earlier
# schedule (0.05, decay 0.85) left the digits float network at 92.9 %.
LNS_SGD = {"digits": {"lr": 0.1, "momentum": 0.0, "lr_decay": 0.95, "batch": 20},
           "fashion-mnist": {"lr": 0.2, "momentum": 0.0, "lr_decay": 0.75, "batch": 100}}


def lns_sgd(data: str) -> dict:
    """The LNS grids' SGD settings for ``data`` (an IDX folder: Fashion-MNIST's)."""
    return LNS_SGD.get(data, LNS_SGD["fashion-mnist"])


LNS_FORMATS = ("lns5.10", "lns5.6")
# The lns-matmul-parts grid: the "matrix multiply in LNS" row of the lns grid (every
# forward and backward matmul in LNS(5, 10), weights stored in float) with one part
# changed each (wide-gradients: one more exponent bit for both gradients, whose
# small values LNS(5, 10) flushes to zero below 2^-16). A recipe that is an all-LNS spec gets the LNS rows' network and
# optimizer (lowbit.integrations.programs.qnn.train.lns_network).
LNS_MATMUL_PARTS = {"wide-gradients": "w=lns5.10,a=lns5.10,gi=lns6.10,gw=lns6.10",
                    "forward-only": "w=lns5.10,a=lns5.10",
                    "acc-lns5.16": "lns5.10,acc=lns5.16",
                    "forward-and-grad-input": "w=lns5.10,a=lns5.10,gi=lns5.10"}
LOSS_SCALED_PARTS = {"loss-scale-dynamic": "dynamic"}
"""The LNS-matmul row with loss scaling (issue 15): the gradients that LNS(5, 10) flushes
below 2^-16, scaled up by a dynamic loss scale (Micikevicius et al.), beside the wider
gradient exponent of ``wide-gradients``."""
MATMUL_PART_LABELS = {
    "loss-scale-dynamic": "with dynamic loss scaling (the gradients scaled up out of LNS(5, 10)'s "
                          "flush-to-zero range)",
    "acc-lns5.16": "accumulator LNS(5, 16) (6 more fractional bits)",
    "forward-only": "only the forward matmul in LNS (both gradients in float32)",
    "forward-and-grad-input": "forward and input-gradient matmuls in LNS (weight gradient "
                              "in float32)",
    "wide-gradients": "gradients in LNS(6, 10) (magnitudes down to 2^-32 instead of 2^-16)"}
LNS_LABELS = {"lns-float": "normal DNN (float32)", "lns-matmul": "matrix multiply in LNS",
              "lns-everywhere": "LNS everywhere", "lns-kahan": "LNS everywhere with Kahan summation"}
TALK = {"lns-float": 2.14, "lns-matmul": 2.12, "lns-everywhere": 3.62, "lns-kahan": 2.29}


def configs(name: str, data: str, seeds: int, epochs: int, root: Path) -> list[TrainConfig]:
    """The TrainConfigs of grid ``name`` (one of GRIDS) on ``data``: every row x ``seeds``
    seeds, ``epochs`` epochs, outputs under ``root/name/data``."""
    out = []
    for seed in range(seeds):
        if name == "lns":
            for lns in LNS_FORMATS:
                for r in LNS_RECIPES:
                    if r == "lns-float" and lns != LNS_FORMATS[0]:
                        continue  # the float row does not depend on the LNS format
                    out.append(TrainConfig(recipe=r, data=data, epochs=epochs, seed=seed, lns=lns,
                                           **lns_sgd(data),
                                           out=str(root / name / data / lns / r / f"seed{seed}")))
        elif name == "lns-matmul-parts":
            for label, spec in LNS_MATMUL_PARTS.items():
                out.append(TrainConfig(recipe=spec, data=data, epochs=epochs, seed=seed,
                                       **lns_sgd(data),
                                       out=str(root / name / data / label / f"seed{seed}")))
            for label, scale in LOSS_SCALED_PARTS.items():
                out.append(TrainConfig(recipe="lns-matmul", loss_scale=scale, data=data,
                                       epochs=epochs, seed=seed, **lns_sgd(data),
                                       out=str(root / name / data / label / f"seed{seed}")))
        elif name == "lns-sweep":
            for f in SWEEP_FRAC_BITS:
                for r in ("lns-everywhere", "lns-kahan"):
                    out.append(TrainConfig(recipe=r, data=data, epochs=epochs, seed=seed,
                                           lns=f"lns5.{f}", **lns_sgd(data),
                                           out=str(root / name / data / f"{r}-f{f}" / f"seed{seed}")))
        else:
            raise ValueError(f"unknown LNS grid {name!r} ({', '.join(GRIDS)})")
    return out


def _matmul_parts_table(runs: list[dict], docs: Path) -> None:
    """lns_matmul_parts_table.md: float and LNS-matmul (LNS(5, 10)) rows of the lns grid
    beside the lns-matmul-parts variants, per dataset, over the seeds each row has."""
    lines = []
    for data in ("fashion-mnist", "digits"):
        var = [r for r in runs if "/lns-matmul-parts/" in r["config"]["out"]
               and r["config"]["data"] == data]
        if not var:
            continue
        ref = [r for r in runs if "/lns/" in r["config"]["out"] and r["config"]["data"] == data
               and (r["config"]["recipe"] == "lns-float" or
                    (r["config"]["recipe"] == "lns-matmul" and r["config"]["lns"] == "lns5.10"))]
        rows = [(LNS_LABELS[k], g) for k, g in
                tables.group(ref, lambda r: r["config"]["recipe"]).items()]
        g = tables.group(var, lambda r: Path(r["config"]["out"]).parent.name)
        rows += [(f"matmuls in LNS(5, 10), {MATMUL_PART_LABELS[k]}", g[k])
                 for k in list(LNS_MATMUL_PARTS) + list(LOSS_SCALED_PARTS) if k in g]
        lines += [f"### {data}", "",
                  "| configuration | test accuracy % (mean ± std) | test error % | epochs | "
                  "wall time per run | hidden | final train loss | seeds |",
                  "|---|---|---|---|---|---|---|---|"]
        lines += [tables.row(label, rs) + f" {tables.final_train_loss(rs)} | "
                  f"{', '.join(str(r['config']['seed']) for r in rs)} |" for label, rs in rows]
        lines.append("")
    if lines:
        write_text(docs / "lns_matmul_parts_table.md", "\n".join(lines))


def _sweep(runs: list[dict], docs: Path, plt) -> None:
    """lns_frac_bits_sweep.png and lns_sweep_table.md: accuracy and final training loss of
    LNS everywhere (with and without Kahan) against frac_bits, float32 as a line."""
    sweep = [r for r in runs if "/lns-sweep/" in r["config"]["out"]]
    if not sweep:
        return
    datasets = tables.present(sweep)
    fig, axes = plt.subplots(2, len(datasets), figsize=(5 * len(datasets), 7),
                             squeeze=False, sharex=True)
    for col, data in enumerate(datasets):
        acc_ax, loss_ax = axes[0][col], axes[1][col]
        for recipe, style in (("lns-everywhere", "o-"), ("lns-kahan", "x--")):
            pts = tables.group([r for r in sweep if r["config"]["data"] == data and
                                r["config"]["recipe"] == recipe],
                               lambda r: int(r["config"]["lns"].split(".")[1]))
            fs = sorted(pts)
            if fs:
                m = [tables.stats(pts[f])[0] for f in fs]
                s = [tables.stats(pts[f])[1] for f in fs]
                acc_ax.errorbar(fs, m, yerr=s, fmt=style, ms=4, capsize=2,
                                label=LNS_LABELS[recipe])
                loss = [np.mean(tables.losses(pts[f]) or [np.nan]) for f in fs]
                loss_ax.plot(fs, loss, style, ms=4, label=LNS_LABELS[recipe])
        ref = [r for r in runs if "/lns/" in r["config"]["out"] and
               r["config"]["data"] == data and r["config"]["recipe"] == "lns-float"]
        if ref:
            acc_ax.axhline(tables.stats(ref)[0], color="k", lw=0.8, ls=":", label="float32")
            if tables.losses(ref):
                loss_ax.axhline(np.mean(tables.losses(ref)), color="k", lw=0.8, ls=":",
                                label="float32")
        acc_ax.set_title(data)
        acc_ax.set_ylabel("test accuracy %")
        if any(np.isfinite(line.get_ydata()).any() for line in loss_ax.get_lines()):
            loss_ax.set_yscale("log")
        loss_ax.set_ylabel("final training loss (mean of seeds)")
        loss_ax.set_xlabel("LNS frac_bits (int_bits = 5)")
        for ax in (acc_ax, loss_ax):
            if ax.get_legend_handles_labels()[0]:
                ax.legend(fontsize=7)
    fig.tight_layout()
    save_figure(fig, docs / "lns_frac_bits_sweep.png", dpi=110)
    plt.close(fig)
    lines = ["| data | frac_bits | LNS everywhere (acc %) | with Kahan (acc %) | "
             "LNS everywhere (final train loss) | with Kahan (final train loss) |",
             "|---|---|---|---|---|---|"]
    for data in ("digits", "fashion-mnist"):
        for f in SWEEP_FRAC_BITS:
            cells, losses = [], []
            for recipe in ("lns-everywhere", "lns-kahan"):
                sel = [r for r in sweep if r["config"]["data"] == data and
                       r["config"]["recipe"] == recipe and r["config"]["lns"] == f"lns5.{f}"]
                cells.append("-" if not sel else "%.2f ± %.2f (n=%d)" % tables.stats(sel))
                losses.append(tables.final_train_loss(sel))
            if any(c != "-" for c in cells):
                lines.append(f"| {data} | {f} | {cells[0]} | {cells[1]} | {losses[0]} | "
                             f"{losses[1]} |")
    write_text(docs / "lns_sweep_table.md", "\n".join(lines) + "\n")


def write_tables(runs: list[dict], docs: Path, plt) -> None:
    """lns_table.md (per dataset and LNS format, beside the talk's numbers), then the
    matmul-parts table and the frac_bits sweep."""
    lines = []
    for data, lns in itertools.product(("fashion-mnist", "digits"), LNS_FORMATS):
        sel = [r for r in runs if r["config"]["data"] == data and "/lns/" in r["config"]["out"]
               and (r["config"]["lns"] == lns or r["config"]["recipe"] == "lns-float")]
        if all(r["config"]["recipe"] == "lns-float" for r in sel):
            continue  # no run in this LNS format (the float row alone says nothing)
        g = tables.group(sel, lambda r: r["config"]["recipe"])
        lines += [f"### {data}, {lns}", "",
                  "| configuration | test accuracy % (mean ± std) | test error % | epochs | "
                  "wall time per run | hidden | final train loss | "
                  "the talk (MNIST, validation error %) |",
                  "|---|---|---|---|---|---|---|---|"]
        lines += [tables.row(LNS_LABELS[k], g[k]) + f" {tables.final_train_loss(g[k])} | "
                  f"{TALK[k]:.2f} |" for k in LNS_RECIPES if k in g]
        lines.append("")
    write_text(docs / "lns_table.md", "\n".join(lines))
    _matmul_parts_table(runs, docs)
    _sweep(runs, docs, plt)
