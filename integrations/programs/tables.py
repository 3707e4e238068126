"""Helpers the grids share to turn stored runs (their summary.json) into table rows."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from lowbit.integrations.runs import mean_std, read_metrics


def group(runs: list[dict], key) -> dict:
    """The runs grouped by ``key(run)``, in first-seen order."""
    out: dict = {}
    for r in runs:
        out.setdefault(key(r), []).append(r)
    return out


def stats(runs: list[dict]) -> tuple[float, float, int]:
    """(mean, sample std, n) of the runs' final test accuracy, in percent."""
    acc = np.array([r["test_acc"] for r in runs]) * 100
    return float(acc.mean()), float(acc.std(ddof=1)) if len(acc) > 1 else 0.0, len(acc)


def losses(runs: list[dict]) -> list[float]:
    """The runs' last-epoch training losses (from their metrics.csv; runs without one
    are left out)."""
    out = []
    for r in runs:
        try:
            out.append(read_metrics(Path(r["_dir"]))[-1]["train_loss"])
        except (OSError, KeyError, IndexError):
            pass
    return out


def final_train_loss(runs: list[dict]) -> str:
    """Mean ± std of the runs' last-epoch training loss."""
    return mean_std(losses(runs), 1, 4)


def duration(seconds: float) -> str:
    """Seconds below 100, minutes above."""
    return f"{seconds:.2g} s" if seconds < 100 else f"{seconds / 60:.1f} min"


def row(label: str, runs: list[dict]) -> str:
    """A table row of epoch-counting runs: accuracy, error, epochs, wall time, hidden sizes."""
    mean, std, n = stats(runs)
    err = 100 - mean
    c = runs[0]["config"]
    epochs = min(r["epochs_done"] for r in runs)
    wall = np.mean([r["seconds"] for r in runs])
    per_epoch = np.mean([r["seconds_per_epoch"] for r in runs])
    hidden = "-".join(str(h) for h in c["hidden"])
    return (f"| {label} | {mean:.2f} ± {std:.2f} (n={n}) | {err:.2f} | {epochs} | "
            f"{duration(wall)} ({per_epoch:.2g} s/epoch) | {hidden} |")


def present(runs: list[dict]) -> list[str]:
    """The datasets that have runs, digits first (one plot panel each)."""
    have = {r["config"]["data"] for r in runs}
    return [d for d in ("digits", "fashion-mnist") if d in have] + sorted(
        have - {"digits", "fashion-mnist"})
