"""Accumulation error against K: how far each accumulator (fp32, the matrix-unit models
with and without promotion, bf16) leaves a dot product of FP8 inputs from its exact value
as the contraction length grows — the arithmetic behind "where the Hopper model costs
accuracy and where promotion recovers it" (docs/results/mixed_precision.md).

    python -m lowbit.integrations.reports.accumulation [--out FILE] [--trials N] [--seed S]

For each K, ``trials`` pairs of vectors are drawn: N(0, 1) values (and, as DeepSeek-V3
measured, positive values: uniform [0, 1), where truncation errors do not cancel) cast to
E4M3; the exact dot product is the exact sum of the exact products (``acc=None``, rounded
once to fp32); each
accumulator's result is rounded to fp32. The table gives the mean and the largest relative
error |result - exact| / |exact| over the trials.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

import lowbit.emulators as E

KS = (128, 512, 2048, 4096, 8192, 16384)
ACCUMULATORS = (("fp32", "fp32, every addition rounded (RNE)"),
                ("hopper_fp8", "Hopper FP8 model (13 fraction bits, no promotion)"),
                ("hopper_fp8_promote128", "Hopper FP8 model, promoted to fp32 every 128"),
                ("blackwell", "Blackwell model"),
                ("bf16", "bf16, every addition rounded"))


def errors(K: int, acc: str, trials: int, positive: bool, rs: np.random.Generator):
    """(mean, max) relative error of ``trials`` E4M3 dot products of length K."""
    x = rs.random((trials, K)) if positive else rs.standard_normal((trials, K))
    y = rs.random((K, trials)) if positive else rs.standard_normal((K, trials))
    a, b = E.cast(x, "e4m3"), E.cast(y, "e4m3")
    exact = np.diag(E.matmul(a, b, "fp32", None).to_float())  # the exact sum, rounded once
    got = np.diag(E.matmul(a, b, "fp32", acc).to_float())
    rel = np.abs(got - exact) / np.maximum(np.abs(exact), 1e-300)
    return float(rel.mean()), float(rel.max())


def table(trials: int = 16, seed: int = 0, ks=KS) -> str:
    """The markdown table (both input distributions)."""
    lines = []
    for positive, what in ((False, "N(0, 1) inputs"), (True, "uniform [0, 1) inputs")):
        lines += [f"### {what}, E4M3, {trials} dot products per K", "",
                  "| accumulator | " + " | ".join(f"K={k}" for k in ks) + " |",
                  "|---|" + "---|" * len(ks)]
        for acc, label in ACCUMULATORS:
            cells = []
            for K in ks:
                mean, top = errors(K, acc, trials, positive, np.random.default_rng(seed + K))
                cells.append(f"{mean:.1e} (max {top:.1e})")
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, help="also write the table here")
    p.add_argument("--trials", type=int, default=16)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    text = table(args.trials, args.seed)
    print(text)
    if args.out:
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
