"""The table of ``lowbit train slide`` runs under a folder: one row per run directory for
the XMC task; for the wide-hidden-layer runs on images one row per run (mean ± std over
its seeds) and, with ``--plot FILE``, test accuracy against the active fraction.

    python -m lowbit.integrations.programs.slide.report results/experiments/slide/xmc-5k
    python -m lowbit.integrations.programs.slide.report results/experiments/slide/fashion-wide \
        --plot docs/results/slide_wide.png
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from lowbit.integrations.runs import finished, mean_std, read_metrics, save_figure


def runs_table(root: Path) -> str:
    rows = ["| run | policy / scope | format | P@1 | P@5 | active per sample (% of N) | batch union | "
            "labels / retrieved / fill | ms per step: hash + query + products + optimizer + rebuild |",
            "|---|---|---|---:|---:|---:|---:|---|---|"]
    for summary in sorted(Path(root).glob("*/seed*/summary.json")):
        s = json.loads(summary.read_text())
        c = s["config"]
        m = read_metrics(summary.parent)[-1]
        steps = -(-c["train"] // c["batch"])
        ms = lambda k: f"{1e3 * m[k] / steps:.1f}"  # noqa: E731
        rows.append(f"| {summary.parent.parent.name}/{summary.parent.name} | {c['policy']} / {c['scope']} | "
                    f"{c['format']} | {s['p_at_1']:.4f} | {s['p_at_5']:.4f} | "
                    f"{s['active_per_sample']:,.0f} ({100 * s['per_sample_fraction']:.1f} %) | "
                    f"{s['active_mean']:,.0f} | {m['active_labels']:.0f} / {m['active_retrieved']:.0f} / "
                    f"{m['active_fill']:.0f} | {ms('s_hash')} + {ms('s_query')} + {ms('s_products')} + "
                    f"{ms('s_optimizer')} + {ms('s_rebuild')} = {1e3 * s['s_step']:.1f} |")
    return "\n".join(rows) + "\n"


def active_cell(summaries) -> str:
    """"mean active ids per sample (their % of the layer)" over the runs' summaries."""
    summaries = list(summaries)
    return (f"{np.mean([s['active_per_sample'] for s in summaries]):,.0f} "
            f"({100 * np.mean([s['per_sample_fraction'] for s in summaries]):.1f} %)")


def _wide_runs(root: Path) -> dict[str, list[tuple[dict, dict]]]:
    """The finished runs under ``root`` by row name: (summary, last epoch's metrics), the
    summary holding every epoch's metrics under ``_epochs``."""
    runs: dict = {}
    for summary in sorted(Path(root).glob("*/seed*/summary.json")):
        s = json.loads(summary.read_text())
        if not finished(s):
            continue
        metrics = read_metrics(summary.parent)
        s["_epochs"] = metrics
        runs.setdefault(summary.parent.parent.name, []).append((s, metrics[-1]))
    return runs


def at_epoch(sel, epoch: int, lsh: bool) -> str:
    """"dense / LSH" test accuracy % after ``epoch`` (mean over the runs; "-" if they
    stopped before it): runs of different lengths compared at the same point."""
    got = [s["_epochs"][epoch - 1] for s, _ in sel if len(s["_epochs"]) >= epoch]
    if not got:
        return "-"
    dense = f"{100 * np.mean([m['accuracy'] for m in got]):.1f}"
    return dense + (f" / {100 * np.mean([m['accuracy_lsh'] for m in got]):.1f}" if lsh else "")


def wide_table(root: Path) -> str:
    """The wide-hidden-layer runs: one row per run over its seeds."""
    rows = ["| run | policy (K bits x L tables) | format | epochs | n | test acc. %, dense "
            "inference | test acc. %, LSH inference | the same after epoch 2 (dense / LSH) | "
            "active units per sample (% of H) | batch union (% of H) | ms per step: hash + "
            "query + products + optimizer + rebuild |",
            "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    for name, sel in _wide_runs(root).items():
        s, m = sel[0]
        c = s["config"]
        H = c["hidden"]
        parts = ("s_hash", "s_query", "s_products", "s_optimizer", "s_rebuild")
        # the last epoch's seconds per part; its steps = their sum / seconds per step
        n_steps = sum(m[k] for k in parts) / m["s_step"]
        ms = lambda k: f"{1e3 * np.mean([mm[k] for _, mm in sel]) / n_steps:.1f}"  # noqa: E731
        split = " + ".join(ms(k) for k in parts) + \
            f" = {1e3 * np.mean([x['s_step'] for x, _ in sel]):.1f}"
        pol = "dense" if c["policy"] == "dense" else f"random (beta {c['beta']})" \
            if c["policy"] == "random" else f"{c['policy']} ({c['bits']} x {c['tables']})"
        rows.append(f"| {name} | {pol} | {c['format']} | {s['epochs_done']} | {len(sel)} | "
                    f"{mean_std((x['accuracy'] for x, _ in sel), 100)} | "
                    f"{mean_std((x.get('accuracy_lsh') for x, _ in sel), 100) if c['policy'] != 'dense' else '–'} | "
                    f"{at_epoch(sel, 2, c['policy'] != 'dense')} | "
                    f"{active_cell(x for x, _ in sel)} | "
                    f"{100 * np.mean([x['active_fraction'] for x, _ in sel]):.1f} % | {split} |")
    return "\n".join(rows) + "\n"


def wide_plot(root: Path, path: Path) -> None:
    """Test accuracy (mean, range over seeds) against the active fraction per sample, one
    marker per format; dense inference hollow, LSH inference filled."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    colours = {}
    for name, sel in _wide_runs(root).items():
        c = sel[0][0]["config"]
        col = colours.setdefault(c["format"], f"C{len(colours)}")
        frac = 100 * np.mean([x["per_sample_fraction"] for x, _ in sel])
        for key, filled in (("accuracy", False), ("accuracy_lsh", True)):
            if c["policy"] == "dense" and key == "accuracy_lsh":
                continue
            a = np.array([x.get(key, np.nan) for x, _ in sel], dtype=float) * 100
            ax.errorbar([frac], [a.mean()], yerr=[[a.mean() - a.min()], [a.max() - a.mean()]],
                        fmt="o", color=col, mfc=col if filled else "none", capsize=2,
                        label=f"{c['format']}, {'LSH' if filled else 'dense'} inference")
    handles, labels = ax.get_legend_handles_labels()
    keep = dict(zip(labels, handles))
    ax.legend(keep.values(), keep.keys(), fontsize=7)
    ax.set_xscale("log")
    ax.set_xlabel("active hidden units per training sample (% of 4096, log scale)")
    ax.set_ylabel("test accuracy %")
    ax.set_title("Fashion-MNIST, wide LSH-sampled hidden layer")
    fig.tight_layout()
    save_figure(fig, path, dpi=110)
    plt.close(fig)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("root", type=Path)
    p.add_argument("--plot", type=Path, default=None, help="wide runs: the accuracy plot")
    args = p.parse_args(argv)
    first = next(iter(sorted(args.root.glob("*/seed*/summary.json"))), None)
    wide = first is not None and json.loads(first.read_text())["config"].get("data",
                                                                             "xmc") != "xmc"
    print(wide_table(args.root) if wide else runs_table(args.root))
    if wide and args.plot:
        wide_plot(args.root, args.plot)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
