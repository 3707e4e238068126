"""The grid behind docs/results/language.md: the thesis' Table 4.1 on our data.

``lowbit experiment run language --data D --seeds S`` trains the four
communication levels with 32-bit messages in float32 and, on digits, at the
emulated precision ``EMULATED`` too, without and with loss scaling
(``EMULATED_SEEDS`` seeds) and, on Fashion-MNIST, the communicating levels with the
weight ``STRONG_WEIGHT``, into ``ROOT/language/D/VARIANT/LEVEL/seedS``;
``lowbit experiment tables`` writes ``language_table.md`` and
``language_curves.png``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from lowbit.integrations.programs.language.train import LEVELS, LanguageConfig
from lowbit.integrations.runs import finished, mean_std, read_metrics, save_figure, write_text

# Weights, activations and gradients in Fixed(16, 10), without and with static loss
# scaling (without it, the communication loss's gradients round to zero).
EMULATED = "fixed16.10"
LOSS_SCALES = (1.0, 256.0)
EMULATED_SEEDS = 3
STEPS = {"digits": 3000, "fashion-mnist": 10_000}
EVAL_EVERY = {"digits": 100, "fashion-mnist": 250}
THESIS = {"none": "64.4", "receive": "65.7", "feedback": "69.4", "both": "71.4"}
LABELS = {"none": "Baseline (no communication)", "receive": "Student receiving only",
          "feedback": "Student feedback to teacher", "both": "Both ways, with feedback",
          "untrained": "Control: untrained agents (probe on initial features)"}
ROWS = LEVELS + ("untrained",)  # the control, in float only
# The communication losses' weight of the Fashion-MNIST variant: 10x the default one-way
# weight (0.01; two-way 0.005) for every communicating level.
STRONG_WEIGHT = 0.1


def language_grid(data: str, seeds: int, root: Path) -> list[LanguageConfig]:
    """The LanguageConfigs of the language grid on ``data``: float agents at every level and the
    untrained control for ``seeds`` seeds; on digits also the emulated agents at each loss
    scale; on Fashion-MNIST also the communicating levels at ``STRONG_WEIGHT``."""
    # (variant folder, format, loss scale, communication weight, levels, seeds)
    variants = [("float", "float", 1.0, -1.0, ROWS, seeds)]
    if data == "digits":
        variants += [(EMULATED if ls == 1.0 else f"{EMULATED}-loss-scale{ls:g}", EMULATED, ls,
                      -1.0, LEVELS, min(seeds, EMULATED_SEEDS)) for ls in LOSS_SCALES]
    else:
        variants.append((f"float-weight{STRONG_WEIGHT:g}", "float", 1.0, STRONG_WEIGHT,
                         tuple(lv for lv in LEVELS if lv != "none"), seeds))
    out = []
    for name, fmt, ls, weight, levels, n_seeds in variants:
        for seed in range(n_seeds):
            for level in levels:
                out.append(LanguageConfig(level="none" if level == "untrained" else level,
                                          frozen=level == "untrained", format=fmt,
                                          loss_scale=ls, weight=weight, data=data,
                                          seed=seed, steps=STEPS.get(data, 10_000),
                                          eval_every=EVAL_EVERY.get(data, 250),
                                          out=str(root / "language" / data / name / level
                                                  / f"seed{seed}")))
    return out


def run_language_grid(data: str, seeds: int, root: Path) -> None:
    """Train every run of the grid whose summary.json does not say done (a rerun resumes the
    grid)."""
    from lowbit.integrations.programs.language.train import train

    for cfg in language_grid(data, seeds, root):
        s = Path(cfg.out) / "summary.json"
        if s.exists() and json.loads(s.read_text()).get("done"):
            continue
        train(cfg, progress=True)


def write_language_tables(root: Path, docs: Path) -> None:
    """Write language_table.md and language_curves.png into ``docs`` from the stored runs under
    ``root``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    lines, panels = [], []
    for data in ("fashion-mnist", "digits"):
        for fmt_dir in sorted((root / "language" / data).glob("*")):
            runs: dict = {}
            for s in sorted(fmt_dir.glob("*/seed*/summary.json")):
                summ = json.loads(s.read_text())
                if finished(summ):
                    runs.setdefault(s.parent.parent.name, []).append((summ, read_metrics(s.parent)))
            if not runs:
                continue
            lines += [f"### {data}, agents in {fmt_dir.name}", "",
                      "Linear probe on the student's feature layer; 32-bit messages; "
                      "n = number of seeds.", "",
                      "| communication level | probe test acc. % (at best val.) | step at best | "
                      "final probe test acc. % | final bit agreement % | n | thesis MNIST % |",
                      "|---|---|---|---|---|---|---|"]
            for level in ROWS:
                if level not in runs:
                    continue
                sel = runs[level]
                lines.append(
                    f"| {LABELS[level]} | {mean_std((s['test_acc'] for s, _ in sel), 100)} | "
                    f"{mean_std((s['step_at_best'] for s, _ in sel), 1, 0)} | "
                    f"{mean_std((s['final_test_acc'] for s, _ in sel), 100)} | "
                    f"{mean_std((s['final_bit_agreement'] for s, _ in sel), 100)} | {len(sel)} | "
                    f"{THESIS.get(level, '')} |")
            lines.append("")
            panels.append((f"{data}, {fmt_dir.name}", runs))
    if not panels:
        return
    docs.mkdir(parents=True, exist_ok=True)
    write_text(docs / "language_table.md", "\n".join(lines))
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 3.8), squeeze=False)
    for ax, (title, runs) in zip(axes[0], panels):
        for level in ROWS:
            if level in runs:
                ms = [m for _, m in runs[level]]
                k = min(len(m) for m in ms)
                steps = [ms[0][i]["step"] for i in range(k)]
                mean = np.mean([[m[i]["val_acc"] * 100 for i in range(k)] for m in ms], 0)
                ax.plot(steps, mean, lw=1.2, ls=":" if level == "untrained" else "-",
                        label=LABELS[level])
        ax.set_xlabel("training steps")
        ax.set_ylabel("probe validation accuracy % (mean of seeds)")
        ax.set_title(title)
        ax.legend(fontsize=7)
    fig.tight_layout()
    save_figure(fig, docs / "language_curves.png", dpi=110)
    plt.close(fig)
