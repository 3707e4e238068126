"""The files every training program writes into its ``--out`` folder.

``metrics.csv`` (one row per evaluation, columns in the order of the first
row), ``summary.json`` and ``curve.png`` (the chosen metric columns against the
step column).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np


def write_run(out: Path, metrics: list[dict], summary: dict, x: str, curves: dict[str, str],
              title: str, xlabel: str, ylabel: str = "accuracy") -> None:
    """Write metrics.csv, summary.json and curve.png (``curves``: legend -> column)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out)
    with open(out / "metrics.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(metrics[0]))
        w.writeheader()
        w.writerows(metrics)
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    fig, ax = plt.subplots(figsize=(6, 3.6))
    steps = [m[x] for m in metrics]
    for (label, column), marker in zip(curves.items(), "ox.s^v"):
        ax.plot(steps, [m[column] for m in metrics], marker=marker, ms=3, label=label)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "curve.png", dpi=100)
    plt.close(fig)


def finished(summary: dict) -> bool:
    """Whether a stored run is finished: its own ``done`` flag (nodes, language), else
    ``epochs_done`` against its configured epochs (qnn, lns, eqprop). Tables leave
    unfinished runs out, so that no row mixes final and intermediate numbers."""
    if "done" in summary:
        return bool(summary["done"])
    return summary.get("epochs_done", 0) >= summary.get("config", {}).get("epochs", 0)


def read_metrics(out: Path) -> list[dict]:
    """metrics.csv back as dicts of floats."""
    with open(Path(out) / "metrics.csv") as fh:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(fh)]


def mean_std(values, scale: float = 1.0, digits: int = 1) -> str:
    """"m ± s" (sample std) of the values that are not None, times ``scale``;
    the bare value for one, "-" for none."""
    v = np.array([x for x in values if x is not None], dtype=float) * scale
    if len(v) == 0:
        return "-"
    if len(v) == 1:
        return f"{v[0]:,.{digits}f}"
    return f"{v.mean():,.{digits}f} ± {v.std(ddof=1):,.{digits}f}"
