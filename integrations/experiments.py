"""The experiment grids behind docs/results/qnn.md and docs/results/lns.md.

``lowbit experiment run GRID --data D --seeds N --epochs E`` trains every run of
a grid into ``--root/GRID/DATA/RECIPE/seedS`` (resuming unfinished runs, skipping
finished ones); ``lowbit experiment tables`` reads every summary.json under the
root and writes the result pages. Grids:

- ``qnn``: float, BinaryConnect, BinaryNet, ternary, fixed 2/4/8 bits (MLP);
- ``lns``: the seed talk's four configurations (float, LNS matmuls, LNS
  everywhere, LNS everywhere + Kahan) with LNS(5, 10);
- ``lns-sweep``: LNS everywhere (with and without Kahan) for frac_bits 2..12;
- ``lns-matmul-parts``: the LNS-matmul network (float master weights) with one part
  changed — gradients with a wider exponent range, only the forward matmul in LNS, a
  finer accumulator, the forward and the input-gradient matmuls: which part of the
  LNS matmul costs accuracy (Kahan-compensated accumulation is the lns grid's row);
- ``eqprop``: equilibrium propagation 784-500-10 (reference settings) in float,
  backprop on the same network, EP at Fixed 16/12/8-bit states and weights and
  at LNS(5, 10);
- ``eqprop-sweep``: EP with Fixed(b, b-2) states and weights, b = 6..16, with
  plain, stochastic and Kahan-compensated weight updates;
- ``nodes``: communicating nodes (:mod:`lowbit.integrations.nodes.experiments`);
- ``teacher``: teacher-selected training data (:mod:`lowbit.integrations.teacher_grid`);
- ``language``: two agents' bit language (:mod:`lowbit.integrations.language_grid`).
"""

from __future__ import annotations

import itertools
import json
from dataclasses import asdict
from pathlib import Path

import numpy as np

from lowbit.integrations.run_files import finished
from lowbit.integrations.train_qnn import LNS_RECIPES, QNN_RECIPES, TrainConfig, train

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
# optimizer (lowbit.integrations.train_qnn.lns_network).
LNS_MATMUL_PARTS = {"wide-gradients": "w=lns5.10,a=lns5.10,gi=lns6.10,gw=lns6.10",
                    "forward-only": "w=lns5.10,a=lns5.10",
                    "acc-lns5.16": "lns5.10,acc=lns5.16",
                    "forward-and-grad-input": "w=lns5.10,a=lns5.10,gi=lns5.10"}
MATMUL_PART_LABELS = {
    "acc-lns5.16": "accumulator LNS(5, 16) (6 more fractional bits)",
    "forward-only": "only the forward matmul in LNS (both gradients in float32)",
    "forward-and-grad-input": "forward and input-gradient matmuls in LNS (weight gradient "
                              "in float32)",
    "wide-gradients": "gradients in LNS(6, 10) (magnitudes down to 2^-32 instead of 2^-16)"}
# Adam at a constant 1e-3 left the last-epoch Fashion-MNIST accuracy of one recipe
# 1-3 points apart between seeds (float32: 86.6 vs 89.2), more than the gaps under
# study; a per-epoch decay (1e-3 -> 1.3e-4 over 10 epochs) settles it, as in BinaryNet.
QNN_SCHEDULE = {"fashion-mnist": {"lr_decay": 0.8}}


def grid(name: str, data: str, seeds: int, epochs: int, root: Path) -> list[TrainConfig]:
    """The TrainConfigs of the ``qnn``, ``lns`` or ``lns-sweep`` grid on ``data``: every row x
    ``seeds`` seeds, ``epochs`` epochs, outputs under ``root/name/data``."""
    out = []
    for seed in range(seeds):
        if name == "qnn":
            for r in QNN_RECIPES:
                out.append(TrainConfig(recipe=r, data=data, epochs=epochs, seed=seed,
                                       **QNN_SCHEDULE.get(data, {}),
                                       out=str(root / name / data / r / f"seed{seed}")))
        elif name == "lns":
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
        elif name == "lns-sweep":
            for f in SWEEP_FRAC_BITS:
                for r in ("lns-everywhere", "lns-kahan"):
                    out.append(TrainConfig(recipe=r, data=data, epochs=epochs, seed=seed,
                                           lns=f"lns5.{f}", **lns_sgd(data),
                                           out=str(root / name / data / f"{r}-f{f}" / f"seed{seed}")))
        else:
            raise ValueError(f"unknown grid {name!r} (qnn, lns, lns-sweep, lns-matmul-parts)")
    return out


EP_FORMATS = ("float", "bp", "fixed16.14", "fixed12.10", "fixed8.6", "lns5.10")
# Runs of the eqprop grid besides the formats (reference settings otherwise): float EP
# with the symmetric +-beta estimate (a float run with a one-sided estimate lost an
# output unit for good on one digits seed: clipped at 0 under both signs of beta).
EP_VARIANTS = {"float-symmetric": {"format": "float", "symmetric": True}}
EP_SWEEP_BITS = (6, 8, 10, 12, 14, 16)


def ep_grid(name: str, data: str, seeds: int, epochs: int, root: Path) -> list:
    """The EPConfigs of the ``eqprop`` grid (formats and variants) or of the ``eqprop-sweep``
    grid (Fixed(b, b-2) x plain/stochastic/Kahan updates) on ``data``, outputs under
    ``root/name/data``."""
    from lowbit.integrations.eqprop import EPConfig

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


def run_grid(name: str, data: str, seeds: int, epochs: int, root: Path,
             rounds: int = 5000) -> None:
    """Train every unfinished run of grid ``name`` (``rounds``: the nodes grid's
    steps per node; ``epochs``: the others')."""
    if name in ("nodes", "nodes-cnn"):
        from lowbit.integrations.nodes.experiments import run_nodes_grid

        run_nodes_grid(data, seeds, root, rounds, "cnn" if name == "nodes-cnn" else "mlp")
        return
    if name == "teacher":
        from lowbit.integrations.teacher_grid import run_teacher_grid

        run_teacher_grid(data, seeds, root)
        return
    if name == "language":
        from lowbit.integrations.language_grid import run_language_grid

        run_language_grid(data, seeds, root)
        return
    if name == "eqprop-check":
        from lowbit.integrations.eqprop_check import run_check

        run_check(data, seeds, root)
        return
    if name.startswith("eqprop"):
        from lowbit.integrations.eqprop import train as ep_train

        for cfg in ep_grid(name, data, seeds, epochs, root):
            s = Path(cfg.out) / "summary.json"
            if s.exists() and json.loads(s.read_text())["epochs_done"] >= epochs:
                continue
            ep_train(cfg, progress=True)
        return
    for cfg in grid(name, data, seeds, epochs, root):
        if _finished(cfg, epochs):
            continue
        train(cfg, progress=True)


def _finished(cfg: TrainConfig, epochs: int) -> bool:
    """Whether ``cfg.out`` holds a finished run of ``cfg``; a run of another
    configuration there is an error (its results would be mislabelled)."""
    s = Path(cfg.out) / "summary.json"
    if not s.exists():
        return False
    done = json.loads(s.read_text())
    unset = {"out", "epochs"} | {k for k, v in (("hidden", cfg.hidden), ("lr", cfg.lr)) if not v}
    want = json.loads(json.dumps({k: v for k, v in asdict(cfg).items() if k not in unset}))
    default = json.loads(json.dumps(asdict(TrainConfig())))  # fields older runs lack
    have = {k: done["config"].get(k, default[k]) for k in want}
    if have != want:
        diff = {k: (have[k], want[k]) for k in want if have[k] != want[k]}
        raise ValueError(f"{s} is a run of another configuration ({diff}, stored vs grid); "
                         "move it away to rerun the grid")
    return done["epochs_done"] >= epochs


def collect(root: Path) -> list[dict]:
    """The summaries of the qnn/lns/eqprop grids (the nodes grid has its own tables) whose
    runs are finished: a run still training (epochs_done below its configured epochs)
    is left out, so that no table mixes final and intermediate accuracies."""
    out = []
    for p in sorted(root.rglob("summary.json")):
        if p.relative_to(root).parts[0] in ("nodes", "nodes-cnn", "teacher", "language",
                                            "eqprop-check"):
            continue
        run = json.loads(p.read_text())
        if not finished(run):
            continue
        run["_dir"] = str(p.parent)
        out.append(run)
    return out


def _losses(runs: list[dict]) -> list[float]:
    """The runs' last-epoch training losses (from their metrics.csv; runs without one
    are left out)."""
    from lowbit.integrations.run_files import read_metrics

    out = []
    for r in runs:
        try:
            out.append(read_metrics(Path(r["_dir"]))[-1]["train_loss"])
        except (OSError, KeyError, IndexError):
            pass
    return out


def _final_train_loss(runs: list[dict]) -> str:
    """Mean ± std of the runs' last-epoch training loss."""
    from lowbit.integrations.run_files import mean_std

    return mean_std(_losses(runs), 1, 4)


def _stats(runs: list[dict]) -> tuple[float, float, int]:
    acc = np.array([r["test_acc"] for r in runs]) * 100
    return float(acc.mean()), float(acc.std(ddof=1)) if len(acc) > 1 else 0.0, len(acc)


QNN_LABELS = {"float": "float32", "binaryconnect": "BinaryConnect (binary weights)",
              "binarynet": "BinaryNet (binary weights and activations)",
              "ternary": "ternary weights (TWN)", "fixed2": "2-bit weights and activations",
              "fixed4": "4-bit weights and activations", "fixed8": "8-bit weights and activations",
              "kbit-float": "k-bit recipe's network, not quantized (float32)"}
LNS_LABELS = {"lns-float": "normal DNN (float32)", "lns-matmul": "matrix multiply in LNS",
              "lns-everywhere": "LNS everywhere", "lns-kahan": "LNS everywhere with Kahan summation"}
TALK = {"lns-float": 2.14, "lns-matmul": 2.12, "lns-everywhere": 3.62, "lns-kahan": 2.29}


def _group(runs: list[dict], key) -> dict:
    out: dict = {}
    for r in runs:
        out.setdefault(key(r), []).append(r)
    return out


def _row(label: str, runs: list[dict]) -> str:
    mean, std, n = _stats(runs)
    err = 100 - mean
    c = runs[0]["config"]
    epochs = min(r["epochs_done"] for r in runs)
    wall = np.mean([r["seconds"] for r in runs])
    per_epoch = np.mean([r["seconds_per_epoch"] for r in runs])
    hidden = "-".join(str(h) for h in c["hidden"])
    return (f"| {label} | {mean:.2f} ± {std:.2f} (n={n}) | {err:.2f} | {epochs} | "
            f"{_duration(wall)} ({per_epoch:.2g} s/epoch) | {hidden} |")


def _present(runs: list[dict]) -> list[str]:
    """The datasets that have runs, digits first (one plot panel each)."""
    have = {r["config"]["data"] for r in runs}
    return [d for d in ("digits", "fashion-mnist") if d in have] + sorted(
        have - {"digits", "fashion-mnist"})


def _duration(seconds: float) -> str:
    return f"{seconds:.2g} s" if seconds < 100 else f"{seconds / 60:.1f} min"


def _lns_matmul_parts_table(runs: list[dict], docs: Path) -> None:
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
        rows = [(LNS_LABELS[k], g) for k, g in _group(ref, lambda r: r["config"]["recipe"]).items()]
        g = _group(var, lambda r: Path(r["config"]["out"]).parent.name)
        rows += [(f"matmuls in LNS(5, 10), {MATMUL_PART_LABELS[k]}", g[k])
                 for k in LNS_MATMUL_PARTS if k in g]
        lines += [f"### {data}", "",
                  "| configuration | test accuracy % (mean ± std) | test error % | epochs | "
                  "wall time per run | hidden | final train loss | seeds |",
                  "|---|---|---|---|---|---|---|---|"]
        lines += [_row(label, rs) + f" {_final_train_loss(rs)} | "
                  f"{', '.join(str(r['config']['seed']) for r in rs)} |" for label, rs in rows]
        lines.append("")
    if lines:
        (docs / "lns_matmul_parts_table.md").write_text("\n".join(lines))


def write_tables(root: Path, docs: Path) -> Path:
    """Write qnn/lns result tables (markdown) and the sweep plot into ``docs``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    docs.mkdir(parents=True, exist_ok=True)
    runs = collect(root)
    head = ("| configuration | test accuracy % (mean ± std) | test error % | epochs | "
            "wall time per run | hidden |\n|---|---|---|---|---|---|")
    lines = []
    for data in ("fashion-mnist", "digits"):
        sel = [r for r in runs if "/qnn/" in r["config"]["out"] and
               r["config"]["data"] == data and r["config"]["recipe"] in QNN_RECIPES]
        if not sel:
            continue
        g = _group(sel, lambda r: r["config"]["recipe"])
        lines += [f"### {data}", "", head]
        lines += [_row(QNN_LABELS[k], g[k]) for k in QNN_RECIPES if k in g]
        lines.append("")
    (docs / "qnn_table.md").write_text("\n".join(lines))

    lines = []
    for data, lns in itertools.product(("fashion-mnist", "digits"), LNS_FORMATS):
        sel = [r for r in runs if r["config"]["data"] == data and "/lns/" in r["config"]["out"]
               and (r["config"]["lns"] == lns or r["config"]["recipe"] == "lns-float")]
        if all(r["config"]["recipe"] == "lns-float" for r in sel):
            continue  # no run in this LNS format (the float row alone says nothing)
        g = _group(sel, lambda r: r["config"]["recipe"])
        lines += [f"### {data}, {lns}", "",
                  "| configuration | test accuracy % (mean ± std) | test error % | epochs | "
                  "wall time per run | hidden | final train loss | "
                  "the talk (MNIST, validation error %) |",
                  "|---|---|---|---|---|---|---|---|"]
        lines += [_row(LNS_LABELS[k], g[k]) + f" {_final_train_loss(g[k])} | {TALK[k]:.2f} |"
                  for k in LNS_RECIPES if k in g]
        lines.append("")
    (docs / "lns_table.md").write_text("\n".join(lines))
    _lns_matmul_parts_table(runs, docs)

    _ep_tables(runs, docs, plt)
    from lowbit.integrations.eqprop_check import write_check_table

    write_check_table(root, docs)
    from lowbit.integrations.nodes.experiments import write_nodes_tables

    for data in ("fashion-mnist", "digits"):
        write_nodes_tables(root, docs, data)
        write_nodes_tables(root, docs, data, "cnn")
    from lowbit.integrations.teacher_grid import write_teacher_tables

    write_teacher_tables(root, docs)
    from lowbit.integrations.language_grid import write_language_tables

    write_language_tables(root, docs)
    sweep = [r for r in runs if "/lns-sweep/" in r["config"]["out"]]
    if sweep:
        datasets = _present(sweep)
        fig, axes = plt.subplots(2, len(datasets), figsize=(5 * len(datasets), 7),
                                 squeeze=False, sharex=True)
        for col, data in enumerate(datasets):
            acc_ax, loss_ax = axes[0][col], axes[1][col]
            for recipe, style in (("lns-everywhere", "o-"), ("lns-kahan", "x--")):
                pts = _group([r for r in sweep if r["config"]["data"] == data and
                              r["config"]["recipe"] == recipe],
                             lambda r: int(r["config"]["lns"].split(".")[1]))
                fs = sorted(pts)
                if fs:
                    m = [_stats(pts[f])[0] for f in fs]
                    s = [_stats(pts[f])[1] for f in fs]
                    acc_ax.errorbar(fs, m, yerr=s, fmt=style, ms=4, capsize=2,
                                    label=LNS_LABELS[recipe])
                    loss = [np.mean(_losses(pts[f]) or [np.nan]) for f in fs]
                    loss_ax.plot(fs, loss, style, ms=4, label=LNS_LABELS[recipe])
            ref = [r for r in runs if "/lns/" in r["config"]["out"] and
                   r["config"]["data"] == data and r["config"]["recipe"] == "lns-float"]
            if ref:
                acc_ax.axhline(_stats(ref)[0], color="k", lw=0.8, ls=":", label="float32")
                if _losses(ref):
                    loss_ax.axhline(np.mean(_losses(ref)), color="k", lw=0.8, ls=":",
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
        fig.savefig(docs / "lns_frac_bits_sweep.png", dpi=110)
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
                    cells.append("-" if not sel else "%.2f ± %.2f (n=%d)" % _stats(sel))
                    losses.append(_final_train_loss(sel))
                if any(c != "-" for c in cells):
                    lines.append(f"| {data} | {f} | {cells[0]} | {cells[1]} | {losses[0]} | "
                                 f"{losses[1]} |")
        (docs / "lns_sweep_table.md").write_text("\n".join(lines) + "\n")
    return docs


EP_LABELS = {"float": "EP, float64", "float-symmetric": "EP, float64, symmetric ±β estimate",
             "bp": "backprop, float32 (same network)",
             "fixed16.14": "EP, Fixed(16, 14) states and weights",
             "fixed12.10": "EP, Fixed(12, 10) states and weights",
             "fixed8.6": "EP, Fixed(8, 6) states and weights", "lns5.10": "EP, LNS(5, 10)"}


def _ep_name(run: dict) -> str:
    """The eqprop grid's name of a run: its format, or its variant's name."""
    c = run["config"]
    for v, kw in EP_VARIANTS.items():
        if all(c.get(k) == val for k, val in kw.items()):
            return v
    return c["format"]


def _ep_row(label: str, runs: list[dict]) -> str:
    mean, std, n = _stats(runs)
    epochs = min(r["epochs_done"] for r in runs)
    per_epoch = np.mean([r["seconds_per_epoch"] for r in runs])
    return (f"| {label} | {mean:.2f} ± {std:.2f} (n={n}) | {100 - mean:.2f} | {epochs} | "
            f"{per_epoch:.1f} s |")


def _ep_tables(runs: list[dict], docs: Path, plt) -> None:
    lines = []
    for data in ("fashion-mnist", "digits"):
        sel = [r for r in runs if r["config"]["data"] == data and "/eqprop/" in r["config"]["out"]]
        if not sel:
            continue
        g = _group(sel, _ep_name)
        lines += [f"### {data}", "",
                  "| configuration | test accuracy % (mean ± std) | test error % | epochs | "
                  "time per epoch |", "|---|---|---|---|---|"]
        lines += [_ep_row(EP_LABELS.get(k, k), g[k]) for k in EP_FORMATS[:1] +
                  tuple(EP_VARIANTS) + EP_FORMATS[1:] if k in g]
        lines.append("")
    if lines:
        (docs / "eqprop_table.md").write_text("\n".join(lines))
    sweep = [r for r in runs if "/eqprop-sweep/" in r["config"]["out"]]
    if not sweep:
        return
    datasets = _present(sweep)
    fig, axes = plt.subplots(1, len(datasets), figsize=(5 * len(datasets), 3.8), squeeze=False)
    rows = ["| data | bits | plain | stochastic | Kahan |", "|---|---|---|---|---|"]
    for ax, data in zip(axes[0], datasets):
        for upd, style in ((None, "o-"), ("stochastic", "s--"), ("kahan", "x:")):
            pts = _group([r for r in sweep if r["config"]["data"] == data and
                          r["config"]["update"] == upd],
                         lambda r: int(r["config"]["format"].split(".")[0][len("fixed"):]))
            bits = sorted(pts)
            if bits:
                ax.errorbar(bits, [_stats(pts[b])[0] for b in bits],
                            yerr=[_stats(pts[b])[1] for b in bits], fmt=style, ms=4, capsize=2,
                            label=f"{upd or 'plain'} updates")
        ref = [r for r in runs if "/eqprop/" in r["config"]["out"] and
               r["config"]["data"] == data and r["config"]["format"] == "float"]
        if ref:
            ax.axhline(_stats(ref)[0], color="k", lw=0.8, ls=":", label="float EP")
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
                cells.append("-" if not sel else "%.2f ± %.2f (n=%d)" % _stats(sel))
            if any(c != "-" for c in cells):
                rows.append(f"| {data} | {b} | " + " | ".join(cells) + " |")
    fig.tight_layout()
    fig.savefig(docs / "eqprop_bits_sweep.png", dpi=110)
    plt.close(fig)
    (docs / "eqprop_sweep_table.md").write_text("\n".join(rows) + "\n")
