"""Timing helpers shared by the benchmarks: every number is the best of several
repeats (the least disturbed by the other core's work and by OpenMP threads
of a previous call still spinning), and every ratio is against a baseline
measured in the same run."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable


def measure(fn: Callable[[], object], repeat: int = 15, warmup: int = 2) -> float:
    """Best wall time of ``fn()`` over ``repeat`` calls, in seconds, after ``warmup`` calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


@dataclass
class Row:
    workload: str
    impl: str
    seconds: float
    baseline: str
    baseline_seconds: float
    note: str = ""

    @property
    def ratio(self) -> float:
        """How many baseline runs fit in one run of this implementation (time / baseline)."""
        return self.seconds / self.baseline_seconds


def markdown(rows: list[Row], title: str) -> str:
    out = [f"### {title}", "",
           "| workload | implementation | time | baseline (same run) | time / baseline | note |",
           "|---|---|---|---|---|---|"]
    for r in rows:
        out.append(f"| {r.workload} | {r.impl} | {fmt_time(r.seconds)} | {r.baseline} "
                   f"{fmt_time(r.baseline_seconds)} | {r.ratio:.2f}x | {r.note} |")
    return "\n".join(out) + "\n"


def fmt_time(s: float) -> str:
    return f"{s * 1e3:.3f} ms" if s < 1 else f"{s:.2f} s"


def machine_line() -> str:
    """The machine, core count and library versions a table was measured with."""
    import os
    import platform

    import numpy as np
    import torch

    return (f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; "
            f"numpy {np.__version__}, torch {torch.__version__} "
            f"({torch.get_num_threads()} threads); lowbit backend: default (c).")


def run_benchmark(bench: Callable[[int], list[Row]], title: str, description: str,
                  repeat: int = 15) -> None:
    """The command line of a benchmark: ``--repeat`` (best of), ``--out`` (also write
    the markdown table there); prints the table and the machine line."""
    import argparse
    from pathlib import Path

    parser = argparse.ArgumentParser(description=description.splitlines()[0])
    parser.add_argument("--out", type=Path, help="also write the markdown table here")
    parser.add_argument("--repeat", type=int, default=repeat)
    args = parser.parse_args()
    text = markdown(bench(args.repeat), title) + "\n" + machine_line() + "\n"
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
