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
  activations (E5M2 gradients, bf16 outputs).

Runs go to ``ROOT/mixed-precision/DATA/NAME/seedS``; the table is ``mixed_precision_table.md``
(test accuracy, final training loss, overflow-skipped steps, against float32).
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
}
SCHEDULE = {"digits": {"lr_decay": 1.0}, "fashion-mnist": {"lr_decay": 0.8}}


def configs(data: str, seeds: int, epochs: int, root: Path) -> list[TrainConfig]:
    """Every row x ``seeds`` seeds, ``epochs`` epochs, outputs under ROOT/mixed-precision."""
    return [TrainConfig(recipe=recipe, loss_scale=ls, data=data, hidden=HIDDEN, epochs=epochs,
                        seed=seed, **SCHEDULE.get(data, SCHEDULE["fashion-mnist"]),
                        out=str(root / "mixed-precision" / data / name / f"seed{seed}"))
            for seed in range(seeds) for name, (recipe, ls, _) in ROWS.items()]


def write_tables(runs: list[dict], docs: Path) -> None:
    """mixed_precision_table.md, one section per dataset (runs of the grid only)."""
    lines = []
    for data in ("fashion-mnist", "digits"):
        sel = [r for r in runs if "/mixed-precision/" in r["config"]["out"]
               and r["config"]["data"] == data]
        if not sel:
            continue
        g = tables.group(sel, lambda r: Path(r["config"]["out"]).parent.name)
        lines += [f"### {data}", "",
                  "| configuration | test accuracy % (mean ± std) | test error % | epochs | "
                  "wall time per run | hidden | final train loss | overflow-skipped steps | "
                  "seeds |", "|---|---|---|---|---|---|---|---|---|"]
        for name, (_, _, label) in ROWS.items():
            if name not in g:
                continue
            rs = g[name]
            skips = []
            for r in rs:
                m = read_metrics(Path(r["_dir"]))[-1]
                skips.append(int(m.get("skipped", 0)))
            lines.append(tables.row(label, rs) + f" {tables.final_train_loss(rs)} | "
                         f"{', '.join(str(s) for s in skips)} | "
                         f"{', '.join(str(r['config']['seed']) for r in rs)} |")
        lines.append("")
    if lines:
        write_text(docs / "mixed_precision_table.md", "\n".join(lines))
