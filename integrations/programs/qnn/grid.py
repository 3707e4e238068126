"""The ``qnn`` grid behind docs/results/qnn.md: float, BinaryConnect, BinaryNet, ternary,
fixed 2/4/8 bits and the k-bit recipe's network in float (MLP), every seed.

``lowbit experiment run qnn --data D --seeds N --epochs E`` trains every run into
``ROOT/qnn/DATA/RECIPE/seedS`` (resuming unfinished runs, skipping finished ones);
``lowbit experiment tables`` writes ``qnn_table.md``.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

from lowbit.integrations.programs import tables
from lowbit.integrations.programs.qnn.train import QNN_RECIPES, TrainConfig, train
from lowbit.integrations.runs import write_text

# Adam at a constant 1e-3 left the last-epoch Fashion-MNIST accuracy of one recipe
# 1-3 points apart between seeds (float32: 86.6 vs 89.2), more than the gaps under
# study; a per-epoch decay (1e-3 -> 1.3e-4 over 10 epochs) settles it, as in BinaryNet.
QNN_SCHEDULE = {"fashion-mnist": {"lr_decay": 0.8}}
QNN_LABELS = {"float": "float32", "binaryconnect": "BinaryConnect (binary weights)",
              "binarynet": "BinaryNet (binary weights and activations)",
              "ternary": "ternary weights (TWN)", "fixed2": "2-bit weights and activations",
              "fixed4": "4-bit weights and activations", "fixed8": "8-bit weights and activations",
              "kbit-float": "k-bit recipe's network, not quantized (float32)"}


def configs(data: str, seeds: int, epochs: int, root: Path) -> list[TrainConfig]:
    """The TrainConfigs of the qnn grid on ``data``: every recipe x ``seeds`` seeds,
    ``epochs`` epochs, outputs under ``root/qnn/data``."""
    return [TrainConfig(recipe=r, data=data, epochs=epochs, seed=seed,
                        **QNN_SCHEDULE.get(data, {}),
                        out=str(root / "qnn" / data / r / f"seed{seed}"))
            for seed in range(seeds) for r in QNN_RECIPES]


def finished(cfg: TrainConfig, epochs: int) -> bool:
    """Whether ``cfg.out`` holds a finished run of ``cfg``; a run of another
    configuration there is an error (its results would be mislabelled)."""
    s = Path(cfg.out) / "summary.json"
    if not s.exists():
        return False
    done = json.loads(s.read_text())
    unset = {"out", "epochs"} | {k for k, v in (("hidden", cfg.hidden), ("lr", cfg.lr),
                                                ("loss_scale", cfg.loss_scale)) if not v}
    want = json.loads(json.dumps({k: v for k, v in asdict(cfg).items() if k not in unset}))
    default = json.loads(json.dumps(asdict(TrainConfig())))  # fields older runs lack
    have = {k: done["config"].get(k, default[k]) for k in want}
    if have != want:
        diff = {k: (have[k], want[k]) for k in want if have[k] != want[k]}
        raise ValueError(f"{s} is a run of another configuration ({diff}, stored vs grid); "
                         "move it away to rerun the grid")
    return done["epochs_done"] >= epochs


def run(cfgs: list[TrainConfig], epochs: int) -> None:
    """Train every config of ``cfgs`` whose run is not finished (resuming it)."""
    for cfg in cfgs:
        if finished(cfg, epochs):
            continue
        train(cfg, progress=True)


def write_tables(runs: list[dict], docs: Path) -> None:
    """qnn_table.md: one section per dataset, one row per recipe (mean ± std over seeds)."""
    head = ("| configuration | test accuracy % (mean ± std) | test error % | epochs | "
            "wall time per run | hidden |\n|---|---|---|---|---|---|")
    lines = []
    for data in ("fashion-mnist", "digits"):
        sel = [r for r in runs if "/qnn/" in r["config"]["out"] and
               r["config"]["data"] == data and r["config"]["recipe"] in QNN_RECIPES]
        if not sel:
            continue
        g = tables.group(sel, lambda r: r["config"]["recipe"])
        lines += [f"### {data}", "", head]
        lines += [tables.row(QNN_LABELS[k], g[k]) for k in QNN_RECIPES if k in g]
        lines.append("")
    write_text(docs / "qnn_table.md", "\n".join(lines))
