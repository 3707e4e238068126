"""The grid behind docs/results/nodes.md: the thesis' Table 2.2 on our data.

``lowbit experiment run nodes --data fashion-mnist --seeds S`` trains every run
into ``ROOT/nodes/DATA/NAME/seedS`` (resuming); ``lowbit experiment tables``
writes ``nodes_table.md`` (accuracy after the same number of steps per node),
``nodes_speedup.md`` (steps to reach fixed accuracies), ``nodes_bytes.md`` and
``nodes_bytes.png`` (accuracy against bytes sent).

All runs: MLP nodes (two hidden layers of 256), Adam at 1e-3, minibatches of
32, 5000 steps per node, fully connected neighbourhoods, consumption
probability 1/2 and the broadcast probability that keeps the inboxes stable
(Q / K), as in the thesis (chapter 2.3).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from lowbit.integrations.programs.nodes.node import NodeConfig
from lowbit.integrations.runs import finished, mean_std, read_metrics, save_figure, write_text

ROUNDS = 5000
EVAL_EVERY = 100
# name: (nodes, share, extra config)
RUNS = {
    "1-all-data": (1, "none", {}),
    "10-none": (10, "none", {}),
    "10-logits": (10, "logits", {}),
    "10-labels": (10, "labels", {}),
    "10-features": (10, "features", {}),
    "20-labels": (20, "labels", {}),
    "10-logits-fixed8": (10, "logits", {"message_format": "fixed8.3"}),
    "10-logits-lns8": (10, "logits", {"message_format": "lns3.3"}),
    "10-sync": (10, "sync", {}),
    "10-qsgd": (10, "qsgd", {}),
    "10-qsgd-4bit": (10, "qsgd", {"qsgd_levels": 7}),
    "10-qsgd-2bit": (10, "qsgd", {"qsgd_levels": 1}),
    **{f"10-localsgd-h{h}": (10, "localsgd", {"local_steps": h}) for h in (2, 4, 8, 16, 32)},
    # async: a server step per 10 pushes ("mean"), so that staleness ~ the push delay
    "10-async-mean": (10, "async", {"async_apply": "mean"}),
    **{f"10-async-d{d}": (10, "async", {"async_apply": "mean", "async_delay": float(d)})
       for d in (1, 4, 16)},
    **{f"10-async-d{d}-slr": (10, "async", {"async_apply": "mean", "async_delay": float(d),
                                            "staleness_lr": True}) for d in (4, 16)},
    "10-async-each": (10, "async", {}),  # Downpour-like: every push is a step
    **{f"3-pipeline-{n}": (3, "pipeline", {"micro_batches": 4, "message_format": f})
       for n, f in (("float32", "float32"), ("fixed8", "fixed8.4"), ("e4m3", "e4m3"))},
    # the gradients on their own format: FP8's usual split, and Fixed(8, 4) activations with
    # float32 gradients (is the Fixed(8, 4) collapse the gradients' or the activations'?)
    "3-pipeline-e4m3-e5m2": (3, "pipeline", {"micro_batches": 4, "message_format": "e4m3",
                                             "grad_format": "e5m2"}),
    "3-pipeline-fixed8-f32grad": (3, "pipeline", {"micro_batches": 4,
                                                  "message_format": "fixed8.4",
                                                  "grad_format": "float32"}),
    # model averaging in an emulated format: the parameters travel (and are averaged) in it
    **{f"10-localsgd-h8-{f}": (10, "localsgd", {"local_steps": 8, "message_format": f})
       for f in ("bf16", "e4m3")},
    # ES: 2,500 rounds of 20 pairs = 4 forward passes per node and round, about the compute
    # of the others' 5,000 forward + backward steps; float and integer at equal evaluations
    "10-es": (10, "es", {"rounds": 2500, "lr": 3e-3}),
    "10-es-int": (10, "es", {"rounds": 2500, "es_format": "fixed8.5", "es_sigma": 0.03}),
}
THESIS = {  # CIFAR-10, 5000 steps per node (Lacaille 2018, Table 2.2)
    "1-all-data": ("84.5", "N.A."), "10-none": ("71.1", "72.9"), "10-logits": ("79.0", "84.8"),
    "10-labels": ("81.8", "86.8"), "10-features": ("72.0", "80.1"), "20-labels": ("–", "87.7"),
}
LABELS = {
    "1-all-data": "1 node – all data", "10-none": "10 nodes – no sharing",
    "10-logits": "10 nodes – sharing logits", "10-labels": "10 nodes – sharing true labels",
    "10-features": "10 nodes – sharing features", "20-labels": "20 nodes – sharing true labels",
    "10-logits-fixed8": "10 nodes – logits as Fixed(8, 3)",
    "10-logits-lns8": "10 nodes – logits as LNS(3, 3) (8 bits)",
    "10-sync": "10 nodes – sync SGD (float32 all-reduce)",
    "10-qsgd": "10 nodes – QSGD (8-bit, s = 127)",
    "10-qsgd-4bit": "10 nodes – QSGD (4-bit, s = 7)",
    "10-qsgd-2bit": "10 nodes – QSGD (2-bit, s = 1)",
    **{f"10-localsgd-h{h}": f"10 nodes – local SGD, average every {h} steps"
       for h in (2, 4, 8, 16, 32)},
    "10-async-mean": "10 nodes – async, no delay, mean of 10 pushes per step (= sync)",
    **{f"10-async-d{d}": f"10 nodes – async, push delay {d} steps (Poisson mean)"
       for d in (1, 4, 16)},
    **{f"10-async-d{d}-slr": f"10 nodes – async, push delay {d}, lr / staleness"
       for d in (4, 16)},
    "10-async-each": "10 nodes – async, no delay, a server step per push",
    "3-pipeline-float32": "3 stages – pipeline, activations in float32",
    "3-pipeline-fixed8": "3 stages – pipeline, activations in Fixed(8, 4)",
    "3-pipeline-e4m3": "3 stages – pipeline, activations in E4M3",
    "3-pipeline-e4m3-e5m2": "3 stages – pipeline, activations E4M3, gradients E5M2",
    "3-pipeline-fixed8-f32grad": "3 stages – pipeline, activations Fixed(8, 4), gradients float32",
    "10-localsgd-h8-bf16": "10 nodes – local SGD H = 8, parameters averaged in bf16",
    "10-localsgd-h8-e4m3": "10 nodes – local SGD H = 8, parameters averaged in E4M3",
    "10-es": "10 nodes – ES, float32 weights, Adam 3e-3 (20 pairs, sigma 0.02)",
    "10-es-int": "10 nodes – ES, integer: Fixed(8, 5) codes, +-1-code moves at z >= 0.5",
}
THRESHOLDS = (0.80, 0.85, 0.88)
CNN_RUNS = ("1-all-data", "10-none", "10-logits", "10-labels", "10-features", "20-labels")


def nodes_grid(data: str, seeds: int, root: Path, rounds: int = ROUNDS,
               model: str = "mlp") -> list[NodeConfig]:
    """The MLP grid (``RUNS``), or with ``model="cnn"`` the Table 2.2 rows with the
    thesis' kind of network, under ``ROOT/nodes-cnn``."""
    out = []
    names = RUNS if model == "mlp" else CNN_RUNS
    folder = "nodes" if model == "mlp" else "nodes-cnn"
    for seed in range(seeds):
        for name in names:
            n, share, extra = RUNS[name]
            kw = {"rounds": rounds, **extra}  # a run may set its own length (ES)
            if rounds != ROUNDS and "rounds" in extra:  # a shortened grid shortens it too
                kw["rounds"] = max(1, extra["rounds"] * rounds // ROUNDS)
            out.append(NodeConfig(nodes=n, neighbours=0 if share == "pipeline" else n - 1,
                                  share=share,
                                  eval_every=EVAL_EVERY if model == "mlp" else 2 * EVAL_EVERY,
                                  data=data, seed=seed, model=model,
                                  out=str(root / folder / data / name / f"seed{seed}"), **kw))
    return out


def run_nodes_grid(data: str, seeds: int, root: Path, rounds: int = ROUNDS,
                   model: str = "mlp") -> None:
    """Train every run of the nodes grid whose summary.json does not say done (a rerun resumes
    the grid)."""
    from lowbit.integrations.programs.nodes.train import train

    for cfg in nodes_grid(data, seeds, root, rounds, model):
        s = Path(cfg.out) / "summary.json"
        if s.exists() and json.loads(s.read_text()).get("done"):
            continue
        train(cfg, progress=True)


def steps_to(rows: list[dict], threshold: float, key: str = "coll_acc") -> int | None:
    """The first evaluated step count at which ``key`` reaches ``threshold``."""
    for r in rows:
        if r[key] >= threshold:
            return int(r["round"])
    return None


def _runs(root: Path, data: str, folder: str) -> dict[str, list[tuple[dict, list[dict]]]]:
    out: dict = {}
    for s in sorted((root / folder / data).glob("*/seed*/summary.json")):
        summ = json.loads(s.read_text())
        if not finished(summ):
            continue
        out.setdefault(s.parent.parent.name, []).append((summ, read_metrics(s.parent)))
    return out


def write_nodes_tables(root: Path, docs: Path, data: str = "fashion-mnist",
                       model: str = "mlp") -> None:
    """Write the nodes tables and the accuracy-vs-bytes plot (if any run exists);
    files are suffixed ``_cnn`` for the CNN grid."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder, sfx = ("nodes", "") if model == "mlp" else ("nodes-cnn", "_cnn")
    runs = _runs(root, data, folder)
    if not runs:
        return
    net = "MLP nodes (784-256-256-10)" if model == "mlp" else \
        "CNN nodes (strided 3x3 convolutions 32-64, 256 features)"
    lines = [f"Data: {data}; {net}, Adam 1e-3, batch 32; n = number of seeds.", "",
             "| configuration | steps per node | avg acc. % | coll. decision % | n | "
             "thesis CIFAR-10 avg / coll. % |", "|---|---|---|---|---|---|"]
    for name in RUNS:
        if name not in runs:
            continue
        sel = runs[name]
        steps = min(s["rounds_done"] for s, _ in sel)
        coll = "N.A." if RUNS[name][0] == 1 else mean_std((s["coll_acc"] for s, _ in sel), 100)
        th = " / ".join(THESIS.get(name, ("", ""))) if name in THESIS else ""
        lines.append(f"| {LABELS[name]} | {steps} | {mean_std((s['avg_acc'] for s, _ in sel), 100)} | "
                     f"{coll} | {len(sel)} | {th} |")
    write_text(docs / f"nodes_table{sfx}.md", "\n".join(lines) + "\n")

    head = " | ".join(f"{t:.0%} (avg) | {t:.0%} (coll.)" for t in THRESHOLDS)
    lines = [f"Steps per node until the accuracy first reaches the threshold ({data}, "
             f"evaluated every {int(runs[next(iter(runs))][0][1][0]['round'])} steps; "
             "mean over seeds that reached it; "
             "'-' = not reached).", "", f"| configuration | {head} |",
             "|---|" + "---|" * (2 * len(THRESHOLDS))]
    for name in RUNS:
        if name not in runs:
            continue
        cells = []
        for t in THRESHOLDS:
            for key in ("avg_acc", "coll_acc"):
                st = [steps_to(m, t, key) for _, m in runs[name]]
                st = [s for s in st if s is not None]
                cells.append(f"{np.mean(st):.0f}" if st else "-")
        lines.append(f"| {LABELS[name]} | " + " | ".join(cells) + " |")
    write_text(docs / f"nodes_speedup{sfx}.md", "\n".join(lines) + "\n")

    if model != "mlp":
        return
    fig, ax = plt.subplots(figsize=(7, 4.2))
    lines = ["| configuration | payload MB | image MB | total MB | coll. decision % |",
             "|---|---|---|---|---|"]
    for name in RUNS:
        if name not in runs or RUNS[name][0] == 1 or RUNS[name][1] == "none":
            continue
        _, m = runs[name][0]
        total = np.array([r["bytes_payload"] + r["bytes_images"] for r in m]) / 1e6
        ax.plot(total, [r["coll_acc"] * 100 for r in m], marker=".", ms=3, label=LABELS[name])
        s = runs[name][0][0]
        lines.append(f"| {LABELS[name]} | {s['bytes_payload'] / 1e6:.2f} | "
                     f"{s['bytes_images'] / 1e6:.2f} | "
                     f"{(s['bytes_payload'] + s['bytes_images']) / 1e6:.2f} | "
                     f"{mean_std((x['coll_acc'] for x, _ in runs[name]), 100)} |")
    ax.set_xscale("log")
    ax.set_xlabel("bytes sent by all nodes (MB, payload + images; log scale)")
    ax.set_ylabel("collective-decision test accuracy %")
    ax.set_title(f"accuracy against communication ({data}, seed 0)")
    ax.legend(fontsize=6)
    fig.tight_layout()
    save_figure(fig, docs / "nodes_bytes.png", dpi=110)
    plt.close(fig)
    write_text(docs / "nodes_bytes.md", "\n".join(lines) + "\n")
    write_parallel_table(runs, docs)


PARALLEL_FAMILIES = {  # share -> (family in the plot, marker)
    "sync": ("sync SGD / QSGD", "o"), "qsgd": ("sync SGD / QSGD", "o"),
    "localsgd": ("local SGD", "s"), "async": ("async (parameter server)", "^"),
    "es": ("evolution strategies", "*"), "pipeline": ("pipeline (model parallel)", "D"),
    "labels": ("sharing labels / logits / features", "v"),
    "logits": ("sharing labels / logits / features", "v"),
    "features": ("sharing labels / logits / features", "v"),
}


def _wire_bytes(s: dict) -> float:
    return s["bytes_payload"] + s.get("bytes_images", 0)


def write_parallel_table(runs: dict, docs: Path) -> None:
    """``parallel_table.md`` and ``parallel_bytes.png``: every way to train on the 10 nodes
    side by side (the data-parallel, asynchronous, model-averaging, ES and pipeline runs and
    the label/logit/feature sharing of the thesis): accuracy, bytes on the wire (payload +
    images; relative to sync SGD), steps to 85 %, server updates and mean staleness; the
    plot: final accuracy against bytes (mean and range over seeds) and accuracy against
    steps (seed 0)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sync = runs.get("10-sync")
    sync_bytes = _wire_bytes(sync[0][0]) if sync else None
    lines = ["| method | steps per node | test acc. % | n | GB on the wire | bytes / sync | "
             "steps to 85 % | pushes applied | mean staleness |",
             "|---|---|---|---|---|---|---|---|---|"]
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(12, 4.8))
    seen_families = set()
    for name in RUNS:
        if name not in runs or RUNS[name][1] not in PARALLEL_FAMILIES:
            continue
        sel = runs[name]
        s, m = sel[0]
        last = m[-1]
        ratio = f"{_wire_bytes(s) / sync_bytes:.3g}" if sync_bytes else ""
        upd = int(last["updates"]) if "updates" in last else ""
        tau = f"{last['staleness_sum'] / last['updates']:.2f}" if last.get("updates") else ""
        st = [steps_to(mm, 0.85, "avg_acc") for _, mm in sel]
        st = [x for x in st if x is not None]
        reach = f"{np.mean(st):.0f}" + (f" ({len(st)}/{len(sel)})" if len(st) < len(sel) else "") \
            if st else "-"
        lines.append(f"| {LABELS[name]} | {min(x['rounds_done'] for x, _ in sel)} | "
                     f"{mean_std((x['avg_acc'] for x, _ in sel), 100)} | {len(sel)} | "
                     f"{_wire_bytes(s) / 1e9:.3g} | {ratio} | {reach} | {upd} | {tau} |")
        family, marker = PARALLEL_FAMILIES[RUNS[name][1]]
        accs = np.array([x["avg_acc"] * 100 for x, _ in sel])
        gb = _wire_bytes(s) / 1e9
        label = family if family not in seen_families else None
        seen_families.add(family)
        color = f"C{list(dict.fromkeys(f for f, _ in PARALLEL_FAMILIES.values())).index(family)}"
        ax.errorbar([gb], [accs.mean()], yerr=[[accs.mean() - accs.min()],
                                                 [accs.max() - accs.mean()]],
                    fmt=marker, color=color, ms=6, capsize=2, label=label)
        ax.annotate(name, (gb, accs.mean()), fontsize=5, xytext=(3, 2),
                    textcoords="offset points")
        bx.plot([r["round"] for r in m], [r["avg_acc"] * 100 for r in m], color=color, lw=0.8,
                alpha=0.8)
    ax.set_xscale("log")
    ax.set_xlabel("bytes on the wire, all nodes, whole run (GB, log scale)")
    ax.set_ylabel("test accuracy % (mean over nodes; bars: range over seeds)")
    ax.set_title("accuracy against communication (Fashion-MNIST, 10 nodes)")
    ax.legend(fontsize=7, loc="lower left")
    bx.set_xlabel("steps per node")
    bx.set_ylabel("test accuracy % (seed 0)")
    bx.set_ylim(bottom=0)
    bx.set_title("accuracy against steps (colours as left)")
    fig.tight_layout()
    save_figure(fig, docs / "parallel_bytes.png", dpi=110)
    plt.close(fig)
    write_text(docs / "parallel_table.md", "\n".join(lines) + "\n")
