"""The grids behind docs/results/eqprop.md:

- ``eqprop``: equilibrium propagation 784-500-10 (reference settings) in float, backprop
  on the same network, EP at Fixed 16/12/8-bit states and weights and at LNS(5, 10);
- ``eqprop-sweep``: EP with Fixed(b, b-2) states and weights, b = 6..16, with plain,
  stochastic and Kahan-compensated weight updates.

Runs go to ``ROOT/GRID/DATA/NAME/seedS``; the tables are ``eqprop_table.md``,
``eqprop_sweep_table.md`` and ``eqprop_bits_sweep.png``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from lowbit.integrations.programs import tables
from lowbit.integrations.programs.eqprop.train import EPConfig
from lowbit.integrations.runs import save_figure, write_text

GRIDS = ("eqprop", "eqprop-sweep")
EP_FORMATS = ("float", "bp", "fixed16.14", "fixed12.10", "fixed8.6", "lns5.10")
# Runs of the eqprop grid besides the formats (reference settings otherwise): float EP
# with the symmetric +-beta estimate (a float run with a one-sided estimate lost an
# output unit for good on one digits seed: clipped at 0 under both signs of beta).
EP_VARIANTS = {"float-symmetric": {"format": "float", "symmetric": True}}
EP_SWEEP_BITS = (6, 8, 10, 12, 14, 16)
EP_LABELS = {"float": "EP, float64", "float-symmetric": "EP, float64, symmetric ±β estimate",
             "bp": "backprop, float32 (same network)",
             "fixed16.14": "EP, Fixed(16, 14) states and weights",
             "fixed12.10": "EP, Fixed(12, 10) states and weights",
             "fixed8.6": "EP, Fixed(8, 6) states and weights", "lns5.10": "EP, LNS(5, 10)"}


def configs(name: str, data: str, seeds: int, epochs: int, root: Path) -> list[EPConfig]:
    """The EPConfigs of the ``eqprop`` grid (formats and variants) or of the ``eqprop-sweep``
    grid (Fixed(b, b-2) x plain/stochastic/Kahan updates) on ``data``, outputs under
    ``root/name/data``."""
    out = []
    for seed in range(seeds):
        if name == "eqprop":
            for f in EP_FORMATS:
                out.append(EPConfig(format=f, data=data, epochs=epochs, seed=seed,
                                    out=str(root / name / data / f / f"seed{seed}")))
            for v, kw in EP_VARIANTS.items():
                out.append(EPConfig(data=data, epochs=epochs, seed=seed, **kw,
                                    out=str(root / name / data / v / f"seed{seed}")))
        else:
            for b in EP_SWEEP_BITS:
                for upd in (None, "stochastic", "kahan"):
                    out.append(EPConfig(format=f"fixed{b}.{b - 2}", update=upd, data=data,
                                        epochs=epochs, seed=seed,
                                        out=str(root / name / data / f"fixed{b}-{upd or 'plain'}"
                                                / f"seed{seed}")))
    return out


def run(name: str, data: str, seeds: int, epochs: int, root: Path) -> None:
    """Train every run of grid ``name`` that has not reached ``epochs`` (resuming it)."""
    from lowbit.integrations.programs.eqprop.train import train

    for cfg in configs(name, data, seeds, epochs, root):
        s = Path(cfg.out) / "summary.json"
        if s.exists() and json.loads(s.read_text())["epochs_done"] >= epochs:
            continue
        train(cfg, progress=True)


def _name(run: dict) -> str:
    """The eqprop grid's name of a run: its format, or its variant's name."""
    c = run["config"]
    for v, kw in EP_VARIANTS.items():
        if all(c.get(k) == val for k, val in kw.items()):
            return v
    return c["format"]


def _row(label: str, runs: list[dict]) -> str:
    mean, std, n = tables.stats(runs)
    epochs = min(r["epochs_done"] for r in runs)
    per_epoch = np.mean([r["seconds_per_epoch"] for r in runs])
    return (f"| {label} | {mean:.2f} ± {std:.2f} (n={n}) | {100 - mean:.2f} | {epochs} | "
            f"{per_epoch:.1f} s |")


def write_tables(runs: list[dict], docs: Path, plt) -> None:
    """eqprop_table.md (per dataset, one row per format or variant), and the bit-width
    sweep's table and plot."""
    lines = []
    for data in ("fashion-mnist", "digits"):
        sel = [r for r in runs if r["config"]["data"] == data and "/eqprop/" in r["config"]["out"]]
        if not sel:
            continue
        g = tables.group(sel, _name)
        lines += [f"### {data}", "",
                  "| configuration | test accuracy % (mean ± std) | test error % | epochs | "
                  "time per epoch |", "|---|---|---|---|---|"]
        lines += [_row(EP_LABELS.get(k, k), g[k]) for k in EP_FORMATS[:1] +
                  tuple(EP_VARIANTS) + EP_FORMATS[1:] if k in g]
        lines.append("")
    if lines:
        write_text(docs / "eqprop_table.md", "\n".join(lines))
    sweep = [r for r in runs if "/eqprop-sweep/" in r["config"]["out"]]
    if not sweep:
        return
    datasets = tables.present(sweep)
    fig, axes = plt.subplots(1, len(datasets), figsize=(5 * len(datasets), 3.8), squeeze=False)
    rows = ["| data | bits | plain | stochastic | Kahan |", "|---|---|---|---|---|"]
    for ax, data in zip(axes[0], datasets):
        for upd, style in ((None, "o-"), ("stochastic", "s--"), ("kahan", "x:")):
            pts = tables.group([r for r in sweep if r["config"]["data"] == data and
                                r["config"]["update"] == upd],
                               lambda r: int(r["config"]["format"].split(".")[0][len("fixed"):]))
            bits = sorted(pts)
            if bits:
                ax.errorbar(bits, [tables.stats(pts[b])[0] for b in bits],
                            yerr=[tables.stats(pts[b])[1] for b in bits], fmt=style, ms=4,
                            capsize=2, label=f"{upd or 'plain'} updates")
        ref = [r for r in runs if "/eqprop/" in r["config"]["out"] and
               r["config"]["data"] == data and r["config"]["format"] == "float"]
        if ref:
            ax.axhline(tables.stats(ref)[0], color="k", lw=0.8, ls=":", label="float EP")
        ax.set_title(f"EP on {data}")
        ax.set_xlabel("bits of states and weights, Fixed(b, b-2)")
        ax.set_ylabel("test accuracy %")
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
        for b in EP_SWEEP_BITS:
            cells = []
            for upd in (None, "stochastic", "kahan"):
                sel = [r for r in sweep if r["config"]["data"] == data and
                       r["config"]["update"] == upd and r["config"]["format"] == f"fixed{b}.{b - 2}"]
                cells.append("-" if not sel else "%.2f ± %.2f (n=%d)" % tables.stats(sel))
            if any(c != "-" for c in cells):
                rows.append(f"| {data} | {b} | " + " | ".join(cells) + " |")
    fig.tight_layout()
    save_figure(fig, docs / "eqprop_bits_sweep.png", dpi=110)
    plt.close(fig)
    write_text(docs / "eqprop_sweep_table.md", "\n".join(rows) + "\n")
