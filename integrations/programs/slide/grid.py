"""The grids behind docs/results/slide.md.

- ``lowbit experiment run slide-xmc --seeds S``: the synthetic extreme-classification task
  (:mod:`lowbit.integrations.synthetic_xmc`; ``--data`` is not used): every policy of
  :data:`XMC_RUNS` at N = 5,000 into ``ROOT/slide/xmc-5k/NAME/seedS``, then dense training,
  sampled softmax and SLIDE's union at N = 50,000 and 200,000 (:data:`SIZE_RUNS`) into
  ``ROOT/slide/xmc-50k`` and ``xmc-200k``;
- ``lowbit experiment run slide-wide --data fashion-mnist --seeds S``: the wide LSH-sampled
  hidden layer (:data:`WIDE_RUNS`) into ``ROOT/slide/DATA/NAME/seedS``.

The grids run seed by seed (every row of seed 0 first), so that a grid stopped early has a
complete first seed. ``lowbit experiment tables`` writes ``slide_xmc.md`` (N = 5,000, one row
per policy, mean ± std over seeds), ``slide_sizes.md`` (N = 5k / 50k / 200k),
``slide_xmc.png``, ``slide_wide.md`` and ``slide_wide.png``. A stored run of another configuration is an
error, as in every grid.
"""

from __future__ import annotations

import json
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np

from lowbit.integrations.programs.slide.report import active_cell
from lowbit.integrations.programs.slide.train import SlideConfig
from lowbit.integrations.runs import finished, mean_std, read_metrics

XMC_BASE = SlideConfig(labels=5000, policy="union", scope="sample", products="sparse",
                       bits=6, tables=20, beta=200, rebuild_every=5, lr=1e-2, epochs=3,
                       optimizer="adam_dense")
"""N = 5,000: K = 6 bits x L = 20 tables (~78 rows per bucket), Adam 1e-2 on every
parameter (the released code's dense Adam), 3 epochs, rebuilt every 5 batches."""
CHANGE_THRESHOLD = 0.05  # flipped fraction of the row sketch: ~13 rebuilds in 157 batches at 5k

# name: the fields that differ from XMC_BASE
XMC_RUNS: dict[str, dict] = {
    "dense": {"policy": "dense"},
    "sampled-softmax": {"policy": "random"},
    "oracle": {"policy": "oracle"},
    "topk": {"policy": "topk"},
    "vanilla": {"policy": "vanilla"},
    "union": {},
    "union-period50": {"rebuild_every": 50},
    "union-exponential": {"rebuild_growth": 1.5},
    "union-change": {"rebuild": "change", "change_threshold": CHANGE_THRESHOLD},
    "union-batch": {"scope": "batch"},
    "union-lazy": {"optimizer": "adam_lazy"},
    "dwta-k2": {"family": "dwta", "bits": 2},
    "dwta-shift2": {"family": "dwta", "bits": 6, "dwta_shift": 2},
    "dense-bf16": {"policy": "dense", "format": "bf16"},
    "sampled-softmax-bf16": {"policy": "random", "format": "bf16", "products": "masked"},
    "union-bf16": {"format": "bf16", "products": "masked"},
    "dense-bf16-master": {"policy": "dense", "format": "bf16", "master": "bf16"},
    "dense-bf16-master-sr": {"policy": "dense", "format": "bf16", "master": "bf16",
                             "update": "stochastic"},
    "union-bf16-master-sr": {"format": "bf16", "products": "masked", "master": "bf16",
                             "update": "stochastic"},
}
LABELS = {
    "dense": "dense output layer", "sampled-softmax": "sampled softmax (random, beta 200)",
    "oracle": "oracle top-200 (dense product)", "topk": "LSH top-200 by bucket count",
    "vanilla": "vanilla sampling (beta 200)", "union": "union of L buckets (SLIDE's code)",
    "union-period50": "union, rebuilt every 50 batches (the released period)",
    "union-exponential": "union, period 5 x 1.5 after each rebuild",
    "union-change": f"union, rebuilt when {CHANGE_THRESHOLD:.0%} of the row sketch flips",
    "union-batch": "union, softmax over the batch's union", "union-lazy": "union, lazy Adam",
    "dwta-k2": "union, DWTA K = 2", "dwta-shift2": "union, DWTA K = 6, the released 2-bit shift",
    "dense-bf16": "dense, bf16", "sampled-softmax-bf16": "sampled softmax, bf16",
    "union-bf16": "union, bf16",
    "dense-bf16-master": "dense, bf16, bf16 master weights (round to nearest)",
    "dense-bf16-master-sr": "dense, bf16, bf16 master weights, stochastic rounding",
    "union-bf16-master-sr": "union, bf16, bf16 master weights, stochastic rounding",
}
SIZES = {50_000: 9, 200_000: 11}  # N: K bits, ~98 rows per bucket as K = 6 at 5k
# the large-N rows: lazy Adam on the output layer for the sampled ones (where it pays);
# "extra_bits" adds to the N's K (union-fine: ~12 rows per bucket, bench_slide's setting)
SIZE_RUNS: dict[str, dict] = {
    "dense": {"policy": "dense"},
    "sampled-softmax": {"policy": "random", "optimizer": "adam_lazy"},
    "union": {"optimizer": "adam_lazy", "rebuild_every": 25},
    "union-fine": {"optimizer": "adam_lazy", "rebuild_every": 25, "extra_bits": 3},
}

WIDE_BASE = SlideConfig(hidden=4096, policy="union", scope="sample", products="sparse",
                        bits=6, tables=20, beta=64, lr=1e-3, batch=128, epochs=5,
                        optimizer="adam_lazy")
WIDE_RUNS: dict[str, dict] = {
    "dense": {"policy": "dense"},
    "union-k6-l5": {"tables": 5},
    "union-k6-l10": {"tables": 10},
    "union-k6-l20": {},
    "random-300": {"policy": "random", "beta": 300},
    "dense-bf16": {"policy": "dense", "format": "bf16"},
    "union-k6-l5-bf16": {"tables": 5, "format": "bf16", "products": "masked"},
}


def xmc_configs(seeds: int, root: Path) -> list[SlideConfig]:
    """Every run of the XMC grid, seed-major: the N = 5,000 policies, then the sizes."""
    out = []
    for seed in range(seeds):
        for name, fields in XMC_RUNS.items():
            out.append(replace(XMC_BASE, **fields, seed=seed,
                               out=str(root / "slide" / "xmc-5k" / name / f"seed{seed}")))
        for n, bits in SIZES.items():
            for name, fields in SIZE_RUNS.items():
                fields = dict(fields)
                k = bits + fields.pop("extra_bits", 0)
                out.append(replace(XMC_BASE, labels=n, bits=k, **fields, seed=seed,
                                   out=str(root / "slide" / f"xmc-{n // 1000}k" / name /
                                           f"seed{seed}")))
    return out


def wide_configs(data: str, seeds: int, root: Path) -> list[SlideConfig]:
    """Every run of the wide-hidden-layer grid on ``data``, seed-major."""
    return [replace(WIDE_BASE, data=data, **fields, seed=seed,
                    out=str(root / "slide" / data / name / f"seed{seed}"))
            for seed in range(seeds) for name, fields in WIDE_RUNS.items()]


def stored(cfg: SlideConfig) -> bool:
    """Whether ``cfg.out`` holds a finished run of ``cfg``; a run of another configuration
    there is an error naming the differing fields (its results would be mislabelled)."""
    s = Path(cfg.out) / "summary.json"
    if not s.exists():
        return False
    done = json.loads(s.read_text())
    default = asdict(SlideConfig())  # the fields older runs lack
    want = {k: v for k, v in asdict(cfg).items() if k != "out"}
    have = {k: done["config"].get(k, default[k]) for k in want}
    if have != want:
        diff = {k: (have[k], want[k]) for k in want if have[k] != want[k]}
        raise ValueError(f"{s} is a run of another configuration ({diff}, stored vs grid); "
                         "move it away to rerun the grid")
    return finished(done)


def run(name: str, data: str, seeds: int, root: Path) -> None:
    """Train every unfinished run of grid ``name`` (``slide-xmc`` or ``slide-wide``)."""
    from lowbit.integrations.programs.slide.train import train

    cfgs = xmc_configs(seeds, root) if name == "slide-xmc" else wide_configs(data, seeds, root)
    for cfg in cfgs:
        if not stored(cfg):
            train(cfg, progress=True)


def _runs(folder: Path) -> dict[str, list[tuple[dict, list[dict]]]]:
    """The finished runs under ``folder``, by row name: (summary, metrics) per seed."""
    runs: dict = {}
    for p in sorted(folder.glob("*/seed*/summary.json")):
        s = json.loads(p.read_text())
        if finished(s):
            runs.setdefault(p.parent.parent.name, []).append((s, read_metrics(p.parent)))
    return runs


def _step_ms(sel: list[tuple[dict, list[dict]]]) -> float:
    """ms per step, mean over seeds and epochs."""
    return float(np.mean([1e3 * m["s_step"] for _, metrics in sel for m in metrics]))


def _time_split(sel: list[tuple[dict, list[dict]]]) -> str:
    """ms per step, mean over seeds and epochs: hash + query + products + optimizer + rebuild."""
    parts = ("s_hash", "s_query", "s_products", "s_optimizer", "s_rebuild")
    ms = {k: [] for k in parts + ("s_step",)}
    for s, metrics in sel:
        c = s["config"]
        steps = -(-c["train"] // c["batch"])
        for m in metrics:
            for k in parts:
                ms[k].append(1e3 * m[k] / steps)
            ms["s_step"].append(1e3 * m["s_step"])
    return " + ".join(f"{np.mean(ms[k]):.1f}" for k in parts) + f" = {np.mean(ms['s_step']):.1f}"


def xmc_table(root: Path) -> str:
    """slide_xmc.md: the N = 5,000 rows, mean ± std over seeds."""
    runs = _runs(root / "slide" / "xmc-5k")
    lines = ["| run | what | format | n | P@1 | P@5 | active per sample (% of N) | "
             "labels / retrieved / fill per batch | batch union | rebuilds | ms per step: hash + "
             "query + products + optimizer + rebuild = step |",
             "|---|---|---|---:|---:|---:|---:|---|---:|---:|---|"]
    for name in XMC_RUNS:
        sel = runs.get(name)
        if not sel:
            continue
        c = sel[0][0]["config"]
        last = [m[-1] for _, m in sel]
        lines.append(
            f"| {name} | {LABELS[name]} | {c['format']} | {len(sel)} | "
            f"{mean_std((s['p_at_1'] for s, _ in sel), 1, 4)} | "
            f"{mean_std((s['p_at_5'] for s, _ in sel), 1, 4)} | "
            f"{active_cell(s for s, _ in sel)} | "
            + " / ".join(f"{np.mean([m[k] for m in last]):,.0f}" for k in
                         ("active_labels", "active_retrieved", "active_fill"))
            + f" | {np.mean([s['active_mean'] for s, _ in sel]):,.0f} | "
            f"{np.mean([s['rebuilds'] for s, _ in sel]):.0f} | {_time_split(sel)} |")
    return "\n".join(lines) + "\n"


def sizes_table(root: Path) -> str:
    """slide_sizes.md: dense, sampled softmax and union at every N, with the step time
    against the dense run of the same N and seed set."""
    lines = ["| N | run | output layer: optimizer, rebuilt every | n | P@1 | P@5 | active per sample (% of N) | "
             "ms per step | vs dense | of which: hash + query + products + optimizer + "
             "rebuild |", "|---:|---|---|---:|---:|---:|---:|---:|---:|---|"]
    for n in (5000, *SIZES):
        runs = _runs(root / "slide" / f"xmc-{n // 1000}k")
        if "dense" not in runs:
            continue
        dense_ms = _step_ms(runs["dense"])
        for name in SIZE_RUNS:
            sel = runs.get(name)
            if not sel:
                continue
            c = sel[0][0]["config"]
            reads_tables = c["policy"] not in ("dense", "random", "oracle")
            how = ("adam_dense" if name == "dense" else c["optimizer"]) + \
                f", {c['rebuild_every'] if reads_tables else '-'}"
            step = _step_ms(sel)
            lines.append(
                f"| {n:,} | {name} | {how} | "
                f"{len(sel)} | {mean_std((s['p_at_1'] for s, _ in sel), 1, 4)} | "
                f"{mean_std((s['p_at_5'] for s, _ in sel), 1, 4)} | "
                f"{active_cell(s for s, _ in sel)} | "
                f"{step:.1f} | {step / dense_ms:.2f}x | {_time_split(sel)} |")
    return "\n".join(lines) + "\n"


def xmc_plot(root: Path, path: Path) -> None:
    """slide_xmc.png: left, P@1 (mean, range over seeds) against the active fraction per
    sample at N = 5,000, one labelled point per row (bf16 rows hollow); right, ms per
    step against N for dense training, sampled softmax and the union (log-log)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from lowbit.integrations.runs import save_figure

    fig, (ax, bx) = plt.subplots(1, 2, figsize=(11, 4.4))
    runs = _runs(root / "slide" / "xmc-5k")
    for i, name in enumerate(n for n in XMC_RUNS if n in runs):
        sel = runs[name]
        frac = 100 * np.mean([s["per_sample_fraction"] for s, _ in sel])
        p1 = np.array([s["p_at_1"] for s, _ in sel])
        col = f"C{i % 10}"
        ax.errorbar([frac], [p1.mean()], yerr=[[p1.mean() - p1.min()], [p1.max() - p1.mean()]],
                    fmt="o", color=col, capsize=2,
                    mfc="none" if sel[0][0]["config"]["format"] != "float" else col)
        ax.annotate(name, (frac, p1.mean()), fontsize=6, xytext=(3, 2), textcoords="offset points")
    ax.set_xscale("log")
    ax.set_xlabel("active labels per training sample (% of N = 5,000, log scale)")
    ax.set_ylabel("P@1 (dense evaluation)")
    ax.set_title("synthetic XMC, N = 5,000 (hollow: bf16)")
    for name, marker in zip(SIZE_RUNS, "os^D"):
        ns, ms = [], []
        for n in (5000, *SIZES):
            sel = _runs(root / "slide" / f"xmc-{n // 1000}k").get(name)
            if sel:
                ns.append(n)
                ms.append(_step_ms(sel))
        if ns:
            bx.plot(ns, ms, marker=marker, label=name)
    bx.set_xscale("log")
    bx.set_yscale("log")
    bx.set_xlabel("output labels N")
    bx.set_ylabel("ms per training step (batch 128)")
    bx.set_title("step time against N (2 cores, runs sharing them)")
    bx.legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, path, dpi=110)
    plt.close(fig)


def write_tables(root: Path, docs: Path) -> None:
    """slide_xmc.md, slide_sizes.md, slide_xmc.png, slide_wide.md and slide_wide.png (the image data sets
    that have runs) from the stored runs under ``root``; nothing for a grid with no run."""
    from lowbit.integrations.programs.slide.report import wide_plot, wide_table

    if (root / "slide" / "xmc-5k").is_dir():
        (docs / "slide_xmc.md").write_text(xmc_table(root))
        (docs / "slide_sizes.md").write_text(sizes_table(root))
        xmc_plot(root, docs / "slide_xmc.png")
    text = []
    for data in ("fashion-mnist", "digits"):
        folder = root / "slide" / data
        if folder.is_dir() and any(folder.glob("*/seed*/summary.json")):
            text += [f"### {data}", "", wide_table(folder)]
            if data == "fashion-mnist":
                wide_plot(folder, docs / "slide_wide.png")
    if text:
        (docs / "slide_wide.md").write_text("\n".join(text))
