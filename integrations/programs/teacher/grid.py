"""The grid behind docs/results/teacher.md: the thesis' Table 3.1 on our data.

``lowbit experiment run teacher --data D --seeds S`` trains every configuration
into ``ROOT/teacher/D/NAME/seedS``; ``lowbit experiment tables`` writes
``teacher_table.md`` and ``teacher_curves.png``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from lowbit.integrations.programs.teacher.train import TeacherConfig
from lowbit.integrations.runs import mean_std, read_metrics, save_figure, write_text

EMULATED = "fixed16.10"  # the student's weights, activations and gradients
# name: (select, stack, targets, student format)
RUNS = {
    "baseline": ("none", 1, "true", "float"),
    "s2-ce-soft": ("ce", 2, "soft", "float"),
    "s2-ce-true": ("ce", 2, "true", "float"),
    "s2-euclidean-soft": ("euclidean", 2, "soft", "float"),
    "s2-random-soft": ("random", 2, "soft", "float"),
    "s5-ce-soft": ("ce", 5, "soft", "float"),
    "s5-ce-true": ("ce", 5, "true", "float"),
    "baseline-emulated": ("none", 1, "true", EMULATED),
    "s5-ce-soft-emulated": ("ce", 5, "soft", EMULATED),
    "s5-ce-true-emulated": ("ce", 5, "true", EMULATED),
}
LABELS = {
    "baseline": "Baseline (student alone)",
    "s2-ce-soft": "stack 2 – cross-entropy – soft labels",
    "s2-ce-true": "stack 2 – cross-entropy – true labels",
    "s2-euclidean-soft": "stack 2 – Euclidean – soft labels",
    "s2-random-soft": "stack 2 – random selection – soft labels",
    "s5-ce-soft": "stack 5 – cross-entropy – soft labels",
    "s5-ce-true": "stack 5 – cross-entropy – true labels",
    "baseline-emulated": f"Baseline, student in {EMULATED}",
    "s5-ce-soft-emulated": f"stack 5 – cross-entropy – soft labels, student in {EMULATED}",
    "s5-ce-true-emulated": f"stack 5 – cross-entropy – true labels, student in {EMULATED}",
}
THESIS = {  # MNIST (Lacaille 2018, Table 3.1): test accuracy %, backward passes
    "baseline": ("96.4", "39,000"), "s2-ce-soft": ("96.9", "25,000"),
    "s2-ce-true": ("96.5", "18,700"), "s2-euclidean-soft": ("96.8", "18,700"),
    "s2-random-soft": ("96.7", "32,800"), "s5-ce-soft": ("96.8", "13,700"),
    "s5-ce-true": ("96.8", "9,100"),
}
MAX_BACKWARD = {"digits": 8000, "fashion-mnist": 40_000}
EVAL_EVERY = {"digits": 50, "fashion-mnist": 250}


def teacher_grid(data: str, seeds: int, root: Path) -> list[TeacherConfig]:
    """The TeacherConfigs of the teacher grid on ``data``: every row of RUNS x ``seeds`` seeds,
    teachers stored under ``root/teacher-models``."""
    out = []
    for seed in range(seeds):
        for name, (select, stack, targets, fmt) in RUNS.items():
            out.append(TeacherConfig(select=select, stack=stack, targets=targets, data=data,
                                     format=fmt,
                                     seed=seed, max_backward=MAX_BACKWARD.get(data, 40_000),
                                     eval_every=EVAL_EVERY.get(data, 250),
                                     teacher_dir=str(root / "teacher-models"),
                                     out=str(root / "teacher" / data / name / f"seed{seed}")))
    return out


def run_teacher_grid(data: str, seeds: int, root: Path) -> None:
    """Train every student run of the grid that has no summary.json yet (a rerun resumes the
    grid; teachers are trained once per seed and reused)."""
    from lowbit.integrations.programs.teacher.train import train

    for cfg in teacher_grid(data, seeds, root):
        if (Path(cfg.out) / "summary.json").exists():
            continue
        train(cfg, progress=True)


def reach(metrics: list[dict], level: float) -> int | None:
    """Backward passes at the first evaluation with validation accuracy >= level."""
    for m in metrics:
        if m["val_acc"] >= level:
            return int(m["backward"])
    return None


def reached(values: list) -> str:
    """mean ± std of the runs that reached the level, with "(k of n)" when some did not
    ("-" when none did): a mean over the runs that got there must say how many did."""
    k = sum(v is not None for v in values)
    return mean_std(values, 1, 0) + (f" ({k} of {len(values)})" if 0 < k < len(values) else "")


def write_teacher_tables(root: Path, docs: Path) -> None:
    """Write teacher_table.md and teacher_curves.png into ``docs`` from the stored runs under
    ``root``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    lines, panels = [], []
    for data in ("fashion-mnist", "digits"):
        runs: dict = {}
        for s in sorted((root / "teacher" / data).glob("*/seed*/summary.json")):
            runs.setdefault(s.parent.parent.name, []).append(
                (json.loads(s.read_text()), read_metrics(s.parent)))
        if "baseline" not in runs:
            continue
        # the level every configuration is timed to: the baseline's mean best
        # validation accuracy, minus 0.5 points
        level = np.mean([s["best_val_acc"] for s, _ in runs["baseline"]]) - 0.005
        teachers = [json.loads(p.read_text())["test_acc"]
                    for p in (root / "teacher-models").glob(f"{data}-seed*/teacher.json")]
        lines += [f"### {data}", "",
                  f"Teacher test accuracy: {mean_std(teachers, 100, 2)} %. Student 32-32, "
                  f"Adam, batch 32; n = seeds per row. 'to reach' = "
                  f"backward passes until the validation accuracy first reaches "
                  f"{level * 100:.2f} % (the baseline's best minus 0.5 points).", "",
                  "| configuration | test acc. % (at best val.) | backward passes at best val. | "
                  "backward passes to reach | student forward passes to reach | "
                  "n | thesis MNIST acc. % / backward |", "|---|---|---|---|---|---|---|"]
        for name in RUNS:
            if name not in runs:
                continue
            sel = runs[name]
            to = [reach(m, level) for _, m in sel]
            fw = []
            for (_, m), b in zip(sel, to):
                fw.append(None if b is None else int(next(r["student_forward"] for r in m
                                                           if r["backward"] == b)))
            th = " / ".join(THESIS[name]) if name in THESIS else ""
            lines.append(f"| {LABELS[name]} | {mean_std([s['test_acc'] for s, _ in sel], 100, 2)} | "
                         f"{mean_std([s['backward_at_best'] for s, _ in sel], 1, 0)} | "
                         f"{reached(to)} | {reached(fw)} | {len(sel)} | {th} |")
        lines.append("")
        panels.append((data, runs))
    if not panels:
        return
    write_text(docs / "teacher_table.md", "\n".join(lines))
    fig, axes = plt.subplots(1, len(panels), figsize=(6 * len(panels), 4), squeeze=False)
    for ax, (data, runs) in zip(axes[0], panels):
        for name in RUNS:
            if name in runs and RUNS[name][3] == "float":
                m = runs[name][0][1]
                ax.plot([r["backward"] for r in m], [r["val_acc"] * 100 for r in m],
                        lw=1, label=LABELS[name])
        ax.set_xlabel("student backward passes (parameter updates)")
        ax.set_ylabel("validation accuracy % (seed 0)")
        ax.set_title(f"student 32-32 on {data}")
        lo = min(min(r["val_acc"] for r in runs[n][0][1]) for n in runs) * 100
        ax.set_ylim(max(lo, 70), None)
        ax.legend(fontsize=7)
    fig.tight_layout()
    save_figure(fig, docs / "teacher_curves.png", dpi=110)
    plt.close(fig)
