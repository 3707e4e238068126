"""The experiment grids behind docs/results/qnn.md and docs/results/lns.md.

``lowbit experiment run GRID --data D --seeds N --epochs E`` trains every run of
a grid into ``--root/GRID/DATA/RECIPE/seedS`` (resuming unfinished runs, skipping
finished ones); ``lowbit experiment tables`` reads every summary.json under the
root and writes the result pages. Grids:

- ``qnn``: float, BinaryConnect, BinaryNet, ternary, fixed 2/4/8 bits (MLP);
- ``lns``: the seed talk's four configurations (float, LNS matmuls, LNS
  everywhere, LNS everywhere + Kahan) with LNS(5, 10);
- ``lns-sweep``: LNS everywhere (with and without Kahan) for frac_bits 2..12.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from integrations.train_qnn import LNS_RECIPES, QNN_RECIPES, TrainConfig, train

SWEEP_FRAC_BITS = (2, 4, 6, 8, 10, 12)
LNS_LR_DECAY = 0.75  # updates shrink epoch after epoch: the regime where LNS rounding stalls them


def grid(name: str, data: str, seeds: int, epochs: int, root: Path) -> list[TrainConfig]:
    out = []
    for seed in range(seeds):
        if name == "qnn":
            for r in QNN_RECIPES:
                out.append(TrainConfig(recipe=r, data=data, epochs=epochs, seed=seed,
                                       out=str(root / name / data / r / f"seed{seed}")))
        elif name == "lns":
            for r in LNS_RECIPES:
                out.append(TrainConfig(recipe=r, data=data, epochs=epochs, seed=seed,
                                       lr_decay=LNS_LR_DECAY,
                                       out=str(root / name / data / r / f"seed{seed}")))
        elif name == "lns-sweep":
            for f in SWEEP_FRAC_BITS:
                for r in ("lns-everywhere", "lns-kahan"):
                    out.append(TrainConfig(recipe=r, data=data, epochs=epochs, seed=seed,
                                           lns=f"lns5.{f}", lr_decay=LNS_LR_DECAY,
                                           out=str(root / name / data / f"{r}-f{f}" / f"seed{seed}")))
        else:
            raise ValueError(f"unknown grid {name!r} (qnn, lns, lns-sweep)")
    return out


def run_grid(name: str, data: str, seeds: int, epochs: int, root: Path) -> None:
    for cfg in grid(name, data, seeds, epochs, root):
        s = Path(cfg.out) / "summary.json"
        if s.exists() and json.loads(s.read_text())["epochs_done"] >= epochs:
            continue
        train(cfg, progress=True)


def collect(root: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(root.rglob("summary.json"))]


def _stats(runs: list[dict]) -> tuple[float, float, int]:
    acc = np.array([r["test_acc"] for r in runs]) * 100
    return float(acc.mean()), float(acc.std(ddof=1)) if len(acc) > 1 else 0.0, len(acc)
