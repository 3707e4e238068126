"""The ``mixed-precision`` grid behind docs/results/mixed_precision.md: the float recipe's
network (two hidden layers of 128, batch norm, Adam on fp32 master weights) trained with
every matmul in a low-precision float format, beside float32:

- fp16 with dynamic loss scaling (Micikevicius et al. 2018), and without;
- bf16 (no loss scaling);
- FP8: E4M3 weights and activations, E5M2 gradients, bf16 matmul outputs, with fp32
  accumulation (with and without dynamic loss scaling, and with per-tensor delayed
  scaling), on the Hopper FP8 accumulator
  model without promotion (cuBLAS fast accumulation) and with promotion to fp32 every 128
  products (DeepSeek-V3);
- block formats: MXFP8 weights and activations (fp32 accumulation, and on the Hopper model
  with and without promotion), MXFP4 weights with MXFP8 activations, NVFP4 weights and
  activations (E5M2 gradients, bf16 outputs); and block formats in all three matmuls, as
  MX training runs: MXFP8 with MXFP8 E5M2 gradients, NVFP4 with 16x16 weight tiles and
  NVFP4 gradients (bf16 outputs and weight gradients).

Runs go to ``ROOT/mixed-precision/DATA/NAME/seedS``; the table is ``mixed_precision_table.md``
(test accuracy, final training loss, overflow-skipped steps, against float32).

The ``mp-large-batch`` grid trains the same network with batches of 4096 (Adam, lr 3e-3): the
weight gradient g^T x then sums K = 4096 products per element, the long contraction where the
Hopper FP8 model without promotion is predicted to lose (docs/results/accumulator_error.md);
FP8 with fp32 accumulation, and the Hopper model without and with promotion, each with and
without dynamic loss scaling (a mean over 4096 samples makes the gradients small enough for
E5M2 to flush). Runs go to ``ROOT/mp-large-batch/DATA/NAME/seedS``; the table is
``mp_large_batch_table.md``.
"""

from __future__ import annotations

from pathlib import Path

from lowbit.integrations.programs import tables
from lowbit.integrations.programs.qnn.train import TrainConfig
from lowbit.integrations.runs import read_metrics, write_text

HIDDEN = (128, 128)
# name: (recipe, loss scaling, label)
ROWS = {
    "float32": ("float", "none", "float32 (the same network)"),
    "fp16-dynamic": ("mp-fp16", "dynamic", "fp16, dynamic loss scaling"),
    "fp16-none": ("mp-fp16", "none", "fp16, no loss scaling"),
    "bf16": ("mp-bf16", "none", "bf16"),
    "fp8": ("mp-fp8", "none", "FP8 (E4M3 / E5M2 gradients), fp32 accumulation"),
    "fp8-dynamic": ("mp-fp8", "dynamic", "FP8, fp32 accumulation, dynamic loss scaling"),
    "fp8-delayed": ("mp-fp8-delayed", "none",
                    "FP8, per-tensor delayed scaling, bf16 outputs and weight gradients"),
    "fp8-hopper": ("mp-fp8-hopper", "none", "FP8 on the Hopper model, no promotion"),
    "fp8-hopper-promote": ("mp-fp8-hopper-promote", "none",
                           "FP8 on the Hopper model, promotion every 128"),
    "mxfp8": ("mp-mxfp8", "none", "MXFP8 weights and activations, fp32 accumulation"),
    "mxfp8-hopper": ("mp-mxfp8-hopper", "none", "MXFP8 on the Hopper model, no promotion"),
    "mxfp8-hopper-promote": ("mp-mxfp8-hopper-promote", "none",
                             "MXFP8 on the Hopper model, promotion every 128"),
    "mxfp4": ("mp-mxfp4", "none", "MXFP4 weights, MXFP8 activations, fp32 accumulation"),
    "nvfp4": ("mp-nvfp4", "none", "NVFP4 weights and activations, fp32 accumulation"),
    "mxfp8-train": ("mp-mxfp8-train", "none",
                    "MXFP8 in all three matmuls (MXFP8 E5M2 gradients), fp32 accumulation"),
    "nvfp4-train": ("mp-nvfp4-train", "none",
                    "NVFP4 in all three matmuls (16x16 weight tiles), fp32 accumulation"),
    "nvfp4-train-sr": ("mp-nvfp4-train-sr", "none",
                       "NVFP4 in all three matmuls, gradients rounded stochastically (8 bits)"),
}
SCHEDULE = {"digits": {"lr_decay": 1.0}, "fashion-mnist": {"lr_decay": 0.8}}

LARGE_BATCH = 4096
LARGE_BATCH_LR = 3e-3
LARGE_BATCH_ROWS = {
    "float32": ("float", "none", "float32 (the same network)"),
    "fp8": ("mp-fp8", "none", "FP8, fp32 accumulation"),
    "fp8-dynamic": ("mp-fp8", "dynamic", "FP8, fp32 accumulation, dynamic loss scaling"),
    "fp8-hopper": ("mp-fp8-hopper", "none", "FP8 on the Hopper model, no promotion"),
    "fp8-hopper-dynamic": ("mp-fp8-hopper", "dynamic",
                           "FP8 on the Hopper model, no promotion, dynamic loss scaling"),
    "fp8-hopper-promote": ("mp-fp8-hopper-promote", "none",
                           "FP8 on the Hopper model, promotion every 128"),
    "fp8-hopper-promote-dynamic": ("mp-fp8-hopper-promote", "dynamic",
                                   "FP8 on the Hopper model, promotion every 128, dynamic loss "
                                   "scaling"),
}


def _grid(grid: str, rows: dict, data: str, seeds: int, epochs: int, root: Path,
          **train) -> list[TrainConfig]:
    """Every row x ``seeds`` seeds, ``epochs`` epochs, outputs under ROOT/GRID; ``train``:
    the grid's other TrainConfig fields."""
    return [TrainConfig(recipe=recipe, loss_scale=ls, data=data, hidden=HIDDEN, epochs=epochs,
                        seed=seed, out=str(root / grid / data / name / f"seed{seed}"), **train)
            for seed in range(seeds) for name, (recipe, ls, _) in rows.items()]


def configs(data: str, seeds: int, epochs: int, root: Path) -> list[TrainConfig]:
    """Every row x ``seeds`` seeds, ``epochs`` epochs, outputs under ROOT/mixed-precision."""
    return _grid("mixed-precision", ROWS, data, seeds, epochs, root,
                 **SCHEDULE.get(data, SCHEDULE["fashion-mnist"]))


def large_batch_configs(data: str, seeds: int, epochs: int, root: Path) -> list[TrainConfig]:
    """The ``mp-large-batch`` grid: every row of LARGE_BATCH_ROWS x ``seeds`` seeds,
    batches of LARGE_BATCH, ``epochs`` epochs, outputs under ROOT/mp-large-batch."""
    return _grid("mp-large-batch", LARGE_BATCH_ROWS, data, seeds, epochs, root,
                 batch=LARGE_BATCH, lr=LARGE_BATCH_LR)


def write_tables(runs: list[dict], docs: Path) -> None:
    """mixed_precision_table.md and mp_large_batch_table.md, one section per dataset
    (runs of each grid only)."""
    _write_table(runs, docs, "mixed-precision", ROWS, "mixed_precision_table.md")
    _write_table(runs, docs, "mp-large-batch", LARGE_BATCH_ROWS, "mp_large_batch_table.md")


def _write_table(runs: list[dict], docs: Path, grid: str, rows: dict, name: str) -> None:
    lines = []
    for data in ("fashion-mnist", "digits"):
        sel = [r for r in runs if f"/{grid}/" in r["config"]["out"]
               and r["config"]["data"] == data]
        if not sel:
            continue
        g = tables.group(sel, lambda r: Path(r["config"]["out"]).parent.name)
        lines += [f"### {data}", "",
                  "| configuration | test accuracy % (mean ± std) | test error % | epochs | "
                  "wall time per run | hidden | final train loss | overflow-skipped steps | "
                  "seeds |", "|---|---|---|---|---|---|---|---|---|"]
        for row, (_, _, label) in rows.items():
            if row not in g:
                continue
            rs = g[row]
            skips = []
            for r in rs:
                m = read_metrics(Path(r["_dir"]))[-1]
                skips.append(int(m.get("skipped", 0)))
            lines.append(tables.row(label, rs) + f" {tables.final_train_loss(rs)} | "
                         f"{', '.join(str(s) for s in skips)} | "
                         f"{', '.join(str(r['config']['seed']) for r in rs)} |")
        lines.append("")
    if lines:
        write_text(docs / name, "\n".join(lines))
