"""One training step of a SLIDE output layer against the dense layer, as ratios measured in
the same run, for N output neurons.

    python benchmarks/bench_slide.py [--out FILE] [--sizes 10000,50000,200000] [--repeat N]

The layer: 128 inputs (a batch of 128 hidden vectors, 5.4 labels per sample) -> N outputs;
a step is the forward, SLIDE's soft-target cross-entropy, the backward and an Adam step.

- ``dense float32``: torch, ``x @ W.T + b`` on every output, dense Adam (BLAS with torch's
  default threads: the strongest dense baseline here);
- ``dense bf16 (emulated)``: the same with lowbit's emulated bf16 products;
- ``SLIDE union, sample scope`` in float32 and in emulated bf16: SimHash K bits x 20 tables,
  K chosen so that a bucket holds about 16 rows (a query's 20 buckets: ~ 320 ids), with dense
  Adam (the released code) and lazy Adam (active rows only); the time split into hashing,
  bucket queries, products (forward + backward + loss), optimizer, and the amortised
  rebuild (every 50 steps). Products ``masked``: one gather and one BLAS product over the
  batch's union, other samples' entries masked; ``sparse``: the per-sample sparse kernels
  (only each sample's own pairs, forward and backward, and the loss over them:
  O(active pairs), not O(B x |S|); with lazy Adam the active rows' gradients go straight
  to the optimizer). bf16 runs masked (the sparse kernels are
  float32 and int64 only).
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import fmt_time, machine_line  # noqa: E402

B, D, LABELS = 128, 128, 5


def _batch(N, rs):
    import torch

    h = torch.relu(torch.randn(B, D, generator=torch.Generator().manual_seed(0)))
    labels = [rs.choice(N, LABELS, replace=False).tolist() for _ in range(B)]
    return h, labels


def dense_step(N, spec, repeat):
    import torch
    import torch.nn.functional as F

    from lowbit.integrations.torch import emulated_linear
    from lowbit.integrations.torch.slide import active_targets

    rs = np.random.default_rng(0)
    h, labels = _batch(N, rs)
    w = torch.nn.Parameter(torch.randn(N, D) * 0.01)
    b = torch.nn.Parameter(torch.zeros(N))
    opt = torch.optim.Adam([w, b], 1e-3)
    target = active_targets(labels, np.arange(N))
    times = []
    for _ in range(repeat + 1):
        t = time.perf_counter()
        y = h @ w.T + b if spec is None else emulated_linear(h, w, b, spec)
        loss = -(target * F.log_softmax(y, 1)).sum(1).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        times.append(time.perf_counter() - t)
    return min(times[1:])


def slide_step(N, spec, lazy, repeat, sparse=False):
    import torch
    import torch.nn.functional as F

    from lowbit.integrations.torch.slide import (
        LazyAdam,
        SlideLinear,
        active_targets,
        sparse_softmax_cross_entropy,
    )

    rs = np.random.default_rng(0)
    h, labels = _batch(N, rs)
    K = max(1, round(math.log2(N / 16)))
    layer = SlideLinear(D, N, spec=spec, bits=K, tables=20, policy="union", scope="sample",
                        rebuild_every=50, sparse_products=sparse)
    opt = LazyAdam(layer, 1e-3) if lazy else torch.optim.Adam(layer.parameters(), 1e-3)
    split = {"products": [], "optimizer": []}
    layer.train()
    for step in range(repeat + 1):
        t0 = time.perf_counter()
        y, active = layer(h, labels, sparse_output=sparse and spec is None)
        if sparse and spec is None:  # each sample's own logits and loss only
            loss = sparse_softmax_cross_entropy(y, labels)
        else:
            target = active_targets(labels, active)
            logp = F.log_softmax(y, 1).masked_fill(target == 0, 0.0)
            loss = -(target * logp).sum(1).mean()
        layer.weight.grad = layer.bias.grad = None
        loss.backward()
        t1 = time.perf_counter()
        opt.step(active) if lazy else opt.step()
        t2 = time.perf_counter()
        if step:
            split["products"].append(t1 - t0)
            split["optimizer"].append(t2 - t1)
    n = repeat
    hashing, query = layer.timing["hash"] / (n + 1), layer.timing["query"] / (n + 1)
    rebuild = sum(r.seconds for r in layer.rebuild_log[1:]) / max(n, 1) + \
        layer.rebuild_log[0].seconds / 50  # the initial build, amortised like the others
    prod = float(np.median(split["products"])) - hashing - query
    opt_t = float(np.median(split["optimizer"]))
    return {"hash": hashing, "query": query, "products": prod, "optimizer": opt_t,
            "rebuild": rebuild, "total": hashing + query + prod + opt_t + rebuild,
            "active": layer.last_stats["active"], "per_sample": layer.last_stats["per_sample_mean"], "K": K}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--sizes", default="10000,50000,200000")
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    rows = ["| N | implementation | time per step | vs dense float32 | hash | query | products | optimizer | rebuild (amortised) | active (batch union / per sample) |",
            "|---:|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    for N in (int(v) for v in args.sizes.split(",")):
        base = dense_step(N, None, args.repeat)
        emu = dense_step(N, "bf16", max(2, args.repeat // 2))
        rows.append(f"| {N:,} | dense float32 (torch) | {fmt_time(base)} | 1.00x | | | | | | {N:,} |")
        rows.append(f"| {N:,} | dense bf16, emulated | {fmt_time(emu)} | {emu / base:.2f}x | | | | | | {N:,} |")
        variants = ((None, False, False), (None, True, False), (None, False, True),
                    (None, True, True), ("bf16", False, False))
        for spec, lazy, sparse in variants:
            r = slide_step(N, spec, lazy, args.repeat, sparse)
            name = (f"SLIDE union K={r['K']} L=20, {'bf16' if spec else 'float32'}, "
                    f"{'sparse' if sparse else 'masked'} products, "
                    f"{'lazy' if lazy else 'dense'} Adam")
            rows.append(f"| {N:,} | {name} | {fmt_time(r['total'])} | {r['total'] / base:.2f}x | "
                        + " | ".join(fmt_time(r[k]) for k in ("hash", "query", "products", "optimizer", "rebuild"))
                        + f" | {r['active']:,} / {r['per_sample']:,.0f} |")
        print("\n".join(rows[-7:]), flush=True)
    text = ("### One training step of an N-output layer, batch 128, d = 128 (ratio to dense float32 in the same run)\n\n"
            + "\n".join(rows) + f"\n\n{machine_line()}\n")
    print(text)
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
