"""Training throughput of the programs behind docs/results, per Fashion-MNIST
epoch (60,000 images), as a ratio to float32 measured in the same run.

    python benchmarks/bench_training.py [--out FILE] [--steps N] [--only qnn,lns,eqprop,nodes]

- ``qnn`` / ``lns``: one optimizer step of each recipe of ``lowbit train qnn``
  (MLP, its grid's batch size: 100), best of ``--steps`` steps, times the
  600 steps of an epoch; baseline: the ``float`` recipe (Adam) / ``lns-float``
  (SGD).
- ``eqprop``: one EP step (free phase, nudged phase, update) of 784-500-10 at
  batch 20, per format, times 3,000 steps; baseline: backprop on the same
  network (float32), same batch.
- ``nodes``: one round of the simulated runtime (every node one step on its
  minibatch of 32, sharing true labels) for 1, 10 and 20 nodes; "epoch" = the
  rounds in which the network as a whole sees 60,000 images; baseline: 1 node.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from common import fmt_time, measure  # noqa: E402

N_TRAIN = 60_000


def best_step(step, n: int, warmup: int = 2) -> float:
    return measure(step, repeat=n, warmup=warmup)


def qnn_rows(ds, recipes, baseline: str, steps: int) -> list[tuple]:
    import torch
    import torch.nn.functional as F

    from lowbit.integrations.programs.qnn.lns_grid import lns_sgd
    from lowbit.integrations.programs.qnn.train import TrainConfig, build

    rows = []
    x, y = torch.from_numpy(ds.x_train[:100]), torch.from_numpy(ds.y_train[:100])
    for r in (baseline,) + tuple(x_ for x_ in recipes if x_ != baseline):
        extra = lns_sgd("fashion-mnist") if r.startswith("lns") else {}
        cfg = TrainConfig(recipe=r, data="fashion-mnist", **extra).resolved(ds)
        model, opt, after = build(cfg, ds)
        model.train()

        def step():
            opt.zero_grad()
            F.cross_entropy(model(x), y).backward()
            opt.step()
            after()
        n = steps if r not in ("lns-kahan",) else max(3, steps // 4)
        t = best_step(step, n)
        rows.append((r, t, t * N_TRAIN / cfg.batch))
    return rows


def eqprop_rows(ds, steps: int) -> list[tuple]:
    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    from lowbit.integrations.programs.eqprop.train import EPConfig, EPNet, _onehot, make_arith

    xb, yb = ds.x_train[:20].astype(np.float64), ds.y_train[:20]
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(784, 500), nn.Sigmoid(), nn.Linear(500, 10))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    xt, yt = torch.from_numpy(xb).float(), torch.from_numpy(yb)

    def bp_step():
        opt.zero_grad()
        F.mse_loss(torch.sigmoid(model(xt)), F.one_hot(yt, 10).float()).backward()
        opt.step()
    t_bp = best_step(bp_step, steps)
    rows = [("backprop (float32)", t_bp, t_bp * N_TRAIN / 20)]
    for fmt in ("float", "fixed16.14", "fixed8.6", "lns5.10"):
        cfg = EPConfig(format=fmt, arch=(784, 500, 10))
        arith = make_arith(cfg)
        net = EPNet(cfg, arith)
        t = _onehot(yb, 10)

        def ep_step():
            net.step(arith.state(xb), arith.state(t), 1.0, None)
        n = steps if fmt in ("float", "fixed16.14", "fixed8.6") else max(3, steps // 4)
        t_ep = best_step(ep_step, n, warmup=1)
        rows.append((f"EP {fmt}", t_ep, t_ep * N_TRAIN / 20))
    return rows


def nodes_rows(ds, steps: int) -> list[tuple]:
    import torch

    from lowbit.integrations.programs.nodes.node import NodeConfig
    from lowbit.integrations.programs.nodes.simulated import build_nodes, run_rounds

    rows = []
    for n in (1, 10, 20):
        cfg = NodeConfig(nodes=n, neighbours=n - 1, share="labels" if n > 1 else "none",
                         data="fashion-mnist")
        nodes = build_nodes(cfg, ds)
        sent: list = []
        state = {"r": 0, "sent": sent}

        def one_round():
            state["sent"] = run_rounds(nodes, state["r"], state["r"] + 1, state["sent"])
            state["r"] += 1
        t = best_step(one_round, max(3, steps // 2))
        rows.append((f"{n} node(s), sharing labels" if n > 1 else "1 node", t,
                     t * N_TRAIN / (32 * n)))
    torch.set_num_threads(torch.get_num_threads())
    return rows


def table(title: str, rows: list[tuple], unit: str) -> str:
    base = rows[0]
    out = [f"### {title}", "", f"| program | time per step | time per epoch ({unit}) | "
           f"ratio to {base[0]} |", "|---|---|---|---|"]
    for name, t, epoch in rows:
        out.append(f"| {name} | {fmt_time(t)} | {fmt_time(epoch)} | {t / base[1]:.1f}x |")
    return "\n".join(out) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--only", default="qnn,lns,eqprop,nodes")
    args = ap.parse_args()
    from lowbit.integrations.data import load_fashion_mnist
    from lowbit.integrations.programs.qnn.train import LNS_RECIPES, QNN_RECIPES

    ds = load_fashion_mnist()
    parts = [f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; "
             f"torch threads {__import__('torch').get_num_threads()}.", ""]
    only = args.only.split(",")
    if "qnn" in only:
        rows = qnn_rows(ds, QNN_RECIPES, "float", args.steps)
        parts.append(table("lowbit train qnn recipes (MLP 784-1024-1024-10, batch 100)", rows, "600 steps"))
    if "lns" in only:
        rows = qnn_rows(ds, LNS_RECIPES, "lns-float", args.steps)
        parts.append(table("the LNS table's recipes (MLP 784-256-256-10, batch 100, LNS(5, 10))", rows,
                           "600 steps"))
    if "eqprop" in only:
        parts.append(table("equilibrium propagation, 784-500-10, batch 20",
                           eqprop_rows(ds, args.steps), "3,000 steps"))
    if "nodes" in only:
        parts.append(table("communicating nodes, simulated runtime (MLP nodes, batch 32)",
                           nodes_rows(ds, args.steps), "60,000 images in all"))
    text = "\n".join(parts)
    print(text)
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
