"""How well each sampling policy finds a trained layer's largest logits.

    python -m lowbit.integrations.programs.slide.recall RUN_DIR [--top 10] [--queries 500]

Loads a ``lowbit train slide`` run (its checkpoint), rebuilds the output layer's tables
from the trained rows, and for every policy measures, over test queries (one query at a
time, no labels added): the mean size of the retrieved set, the recall of the dense
layer's true top-``top`` logits in it, and the recall of a uniformly random set of the same
size (sampled softmax at equal cost). Also the bucket loads of the tables (mean, max, empty
fraction).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from lowbit.integrations.programs.slide.train import SlideConfig, XMCNet
from lowbit.integrations.runs import load_checkpoint, torch_load
from lowbit.integrations.synthetic_xmc import make_xmc

POLICIES = ("union", "vanilla", "threshold", "topk", "oracle")


def recall_table(run: Path, top: int = 10, queries: int = 500) -> str:
    saved = load_checkpoint(Path(run) / "checkpoint.pt", torch_load)
    if saved is None:
        raise FileNotFoundError(f"{run}: no checkpoint of a lowbit train slide run")
    known = SlideConfig.__dataclass_fields__
    cfg = SlideConfig(**{k: v for k, v in saved["config"].items() if k in known})
    task = make_xmc(cfg.labels, cfg.features, train=cfg.train, test=cfg.test, seed=cfg.seed)
    net = XMCNet(cfg)
    net.load_state_dict(saved["model"])
    net.eval()
    rows = np.arange(min(queries, task.test.n))
    with torch.no_grad():
        h = net.hidden(task.test, rows)
        logits = net.dense_logits(h).numpy()
    layer = net.out
    layer.rebuild_tables("recall")
    loads = layer.tables.loads()
    lines = [f"Run `{run}` ({cfg.policy}, {cfg.format}, N = {cfg.labels}, K = {cfg.bits}, "
             f"L = {cfg.tables}); {len(rows)} test queries; recall of the dense top-{top}.", "",
             "| policy | mean retrieved per query | fraction of N | recall of top-" f"{top} | random at the same size |",
             "|---|---:|---:|---:|---:|"]
    rs = np.random.default_rng(0)
    for pol in POLICIES:
        layer.policy = pol
        sizes, rec, rnd = [], [], []
        for r, i in enumerate(rows):
            ids, _ = layer.active_set(h[r:r + 1], None)
            truth = set(np.argpartition(-logits[r], top - 1)[:top].tolist())
            sizes.append(len(ids))
            rec.append(len(truth & set(ids.tolist())) / top)
            rnd.append(len(truth & set(rs.choice(cfg.labels, len(ids), replace=False).tolist())) / top)
        lines.append(f"| {pol}{f' (beta {cfg.beta})' if pol in ('vanilla', 'topk', 'oracle') else ''}"
                     f"{f' (>= {cfg.threshold} buckets)' if pol == 'threshold' else ''} | "
                     f"{np.mean(sizes):,.0f} | {np.mean(sizes) / cfg.labels:.3f} | {np.mean(rec):.3f} | "
                     f"{np.mean(rnd):.3f} |")
    lines += ["", f"Bucket loads (ids per bucket, {layer.lsh.buckets:,} buckets x {cfg.tables} tables): "
              f"mean {loads.mean():.1f}, max {loads.max()}, empty {100 * (loads == 0).mean():.1f} %."]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run", type=Path)
    p.add_argument("--top", type=int, default=10)
    p.add_argument("--queries", type=int, default=500)
    args = p.parse_args(argv)
    print(recall_table(args.run, args.top, args.queries))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
