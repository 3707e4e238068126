"""How many of a network's gradients a number format flushes to zero.

A format with a narrow exponent range (LNS(5, 10): magnitudes 2^-16 .. 2^16) or a
coarse grid (fixed point) rounds small non-zero gradients to 0. This module measures
that on a float network and a minibatch: for every Linear layer, the gradient
w.r.t. its output (what the backward matmuls read, cast into ``grad_input``) and the
gradients w.r.t. its weight and bias (``grad_weight``), cast into the format by the
emulators; a value counts as flushed when it is non-zero and its cast is zero.

``python -m lowbit.integrations.reports.gradient_range RUN_DIR --format lns5.10`` loads the model of
a stored ``train qnn`` run (its checkpoint.pt), and also measures the same network
at its initialization, on the first ``--batch`` training images.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

import lowbit.emulators as E
from lowbit.numerics import Format, parse_format


@dataclass
class Flushed:
    """Of one gradient tensor: its name, its size, the fraction of its non-zero entries
    the format rounds to zero, and the median of |value| over the non-zero entries."""

    name: str
    size: int
    flushed: float
    median_abs: float


def flushed_fraction(t: torch.Tensor, fmt: Format) -> float:
    """Fraction of the non-zero entries of ``t`` whose cast into ``fmt`` is zero
    (round to nearest or the format's rounding; NaN when ``t`` has no non-zero entry)."""
    v = t.detach().double().numpy().ravel()
    nz = v != 0
    if not nz.any():
        return float("nan")
    zero = E.cast(v[nz], fmt).to_float() == 0
    return float(zero.mean())


def gradient_flush(model: nn.Module, x: torch.Tensor, y: torch.Tensor,
                   fmt: Format) -> list[Flushed]:
    """Backpropagate the mean cross-entropy of (x, y) through the float ``model`` and
    measure, per Linear layer in order, the output gradient, weight and bias gradients."""
    outputs: list[tuple[str, torch.Tensor]] = []
    linears = [(n, m) for n, m in model.named_modules() if isinstance(m, nn.Linear)]
    hooks = []
    for name, m in linears:
        def keep(mod, inp, out, name=name):
            out.register_hook(lambda g: outputs.append((name, g.detach())))
        hooks.append(m.register_forward_hook(keep))
    model.zero_grad()
    try:
        F.cross_entropy(model(x), y).backward()
    finally:
        for h in hooks:
            h.remove()
    grads = dict(outputs)
    rows = []
    for name, m in linears:
        for label, t in ((f"{name}: dL/d(output)", grads[name]), (f"{name}.weight", m.weight.grad),
                         (f"{name}.bias", None if m.bias is None else m.bias.grad)):
            if t is None:
                continue
            nz = t[t != 0].abs()
            rows.append(Flushed(label, t.numel(), flushed_fraction(t, fmt),
                                float(nz.median()) if nz.numel() else float("nan")))
    return rows


def _table(title: str, rows: list[Flushed]) -> list[str]:
    return [f"### {title}", "", "| gradient | entries | flushed to zero % | median of non-zero |",
            "|---|---|---|---|"] + [f"| {r.name} | {r.size:,} | {100 * r.flushed:.1f} | "
                                    f"{r.median_abs:.2e} |" for r in rows] + [""]


def main(argv: list[str] | None = None) -> str:
    """Measure a stored run's model (trained and at initialization); print and return the
    markdown tables."""
    from lowbit.integrations.data import load_dataset
    from lowbit.integrations.programs.qnn.train import TrainConfig, build
    from lowbit.integrations.runs import load_checkpoint, torch_load

    p = argparse.ArgumentParser(prog="python -m lowbit.integrations.reports.gradient_range",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("run", type=Path, help="a train qnn --out folder with checkpoint.pt")
    p.add_argument("--format", default="lns5.10", help="the gradient format (default lns5.10)")
    p.add_argument("--batch", type=int, default=100)
    args = p.parse_args(argv)
    fmt = parse_format(args.format)
    ck = load_checkpoint(args.run / "checkpoint.pt", torch_load)
    if ck is None:
        p.error(f"RUN: {args.run} holds no readable checkpoint.pt (a `lowbit train qnn --out` "
                "folder is expected)")
    cfg = TrainConfig(**{**ck["config"], "hidden": tuple(ck["config"]["hidden"]),
                         "out": str(args.run)})
    ds = load_dataset(cfg.data, cfg.data_dir)
    x = torch.from_numpy(ds.x_train[:args.batch]).float()
    y = torch.from_numpy(ds.y_train[:args.batch].astype(np.int64))
    lines = [f"Gradients of the mean cross-entropy over the first {args.batch} training images "
             f"of {cfg.data}, cast into {fmt!r}; run {args.run}.", ""]
    model, _, _ = build(cfg, ds)
    lines += _table("at initialization", gradient_flush(model, x, y, fmt))
    model.load_state_dict(ck["model"])
    lines += _table(f"after {ck['epoch']} epochs", gradient_flush(model, x, y, fmt))
    text = "\n".join(lines)
    print(text)
    return text


if __name__ == "__main__":
    main()
