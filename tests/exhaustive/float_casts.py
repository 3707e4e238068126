"""Every float32 bit pattern (2^32) cast into the MX and FP8 element formats under every
rounding mode and both overflow modes: Numba == C == an independent oracle.

    python -m tests.exhaustive.float_casts [--stride 1] [--out docs/results/float_casts.md]

Each (format, rounding, overflow) sweeps the patterns in chunks of 2^24, casting them as
float32 with both backends and with the value-space oracle of float_oracle.py (itself
checked against the exact reference in tests/emulators/test_float_oracle.py); NaN
patterns are skipped for the formats without NaN (there a NaN is an error, tested
apart). Results are kept in OUT.json as each combination finishes (a rerun resumes)
and written as a markdown table to OUT. CI runs the same code on a stride of the
patterns (tests/emulators/test_float_oracle.py).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

import lowbit.emulators as E
from lowbit.integrations.runs import write_text
from lowbit.numerics import parse_format
from tests.exhaustive.float_oracle import Oracle

FORMATS = ("e4m3", "e5m2", "e2m1", "e3m2", "e2m3")
ROUNDINGS = ("rne", "rna", "rtz", "floor", "ceil", "odd", "sr", "sr8")
CHUNK = 1 << 24


def combinations() -> list[str]:
    """Format strings of every (format, rounding, overflow) of the sweep."""
    out = []
    for name in FORMATS:
        overflows = ("sat", "inf") if parse_format(name).has_nan else ("sat",)
        for r in ROUNDINGS:
            for o in overflows:
                out.append(str(parse_format(f"{name}:{o}:{r}")))
    return out


def sweep(fmt_text: str, stride: int = 1, seed: int = 3, start: int = 0,
          stop: int = 1 << 32) -> dict:
    """Counts of patterns checked and of disagreements (Numba vs C, kernels vs oracle),
    with the first disagreeing pattern, over patterns start, start+stride, ... < stop."""
    fmt = parse_format(fmt_text)
    oracle = Oracle(fmt)
    checked = nb_c = vs_oracle = 0
    first = None
    t0 = time.perf_counter()
    step = CHUNK * stride
    for lo in range(start, stop, step):
        bits = np.arange(lo, min(lo + step, stop), stride, dtype=np.uint64).astype(np.uint32)
        x = bits.view(np.float32)
        if fmt.nan_code is None:
            x = x[~np.isnan(x)]
        nb = E.cast(x, fmt, seed=seed, backend="numba").codes
        c = E.cast(x, fmt, seed=seed, backend="c").codes
        # counters: the kernels number the elements of this call from 0
        want = oracle.cast(x, seed, 0)
        checked += x.size
        bad_nc = nb != c
        bad_o = nb != want
        nb_c += int(bad_nc.sum())
        vs_oracle += int(bad_o.sum())
        if first is None and (bad_nc.any() or bad_o.any()):
            i = int(np.argmax(bad_nc | bad_o))
            first = {"pattern": hex(int(x[i:i + 1].view(np.uint32)[0])), "value": float(x[i]),
                     "numba": int(nb[i]), "c": int(c[i]), "oracle": int(want[i])}
    return {"format": fmt_text, "checked": checked, "numba_vs_c": nb_c,
            "kernels_vs_oracle": vs_oracle, "first_disagreement": first,
            "seconds": round(time.perf_counter() - t0, 1), "stride": stride}


def table(results: list[dict]) -> str:
    lines = ["| format | float32 patterns checked | Numba ≠ C | kernels ≠ oracle | "
             "first disagreement | seconds |", "|---|---|---|---|---|---|"]
    for r in results:
        first = "-" if r["first_disagreement"] is None else json.dumps(r["first_disagreement"])
        lines.append(f"| `{r['format']}` | {r['checked']:,} | {r['numba_vs_c']} | "
                     f"{r['kernels_vs_oracle']} | {first} | {r['seconds']} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--stride", type=int, default=1, help="check every STRIDE-th pattern")
    p.add_argument("--out", type=Path, default=Path("docs/results/float_casts.md"))
    p.add_argument("--only", default="", help="comma-separated combinations to sweep now "
                                              "(e.g. e4m3,e4m3:inf); the table shows all done")
    args = p.parse_args(argv)
    from tqdm import tqdm

    store = args.out.with_suffix(".json")
    done = json.loads(store.read_text()) if store.exists() else {}
    wanted = set(filter(None, args.only.split(",")))
    todo = [f for f in combinations() if not wanted or f in wanted]
    bad = 0
    for fmt in tqdm(todo, desc="format x rounding x overflow", unit="combination"):
        key = f"{fmt}/stride{args.stride}"
        if key not in done:
            done[key] = sweep(fmt, args.stride)
            write_text(store, json.dumps(done, indent=1))
        bad = _write_page(done, args)  # after each combination: a stopped sweep still reports
    if not todo:
        bad = _write_page(done, args)
    return 1 if bad else 0


def _write_page(done: dict, args) -> int:
    results = [done[k] for f in combinations() for k in [f"{f}/stride{args.stride}"] if k in done]
    total = sum(r["checked"] for r in results)
    bad = sum(r["numba_vs_c"] + r["kernels_vs_oracle"] for r in results)
    n = len(combinations())
    progress = (f"All {n} combinations swept; CI reruns every one on a stride of 2^20 + 7."
                if len(results) == n else
                f"Combinations swept so far: {len(results)} of {n} (the sweep resumes where "
                "it stopped; the others run in CI on a stride of 2^20 + 7).")
    head = ("# Every float32 bit pattern cast into the FP8 and MX element formats\n\n"
            "Generated by `python -m tests.exhaustive.float_casts"
            f"{'' if args.stride == 1 else f' --stride {args.stride}'}` "
            "(see its docstring): each row casts the float32 patterns with the Numba and the "
            "C kernel and with an independent value-space oracle (itself checked against "
            "the exact reference in CI). NaN patterns are skipped where the format has no "
            f"NaN. **{total:,} casts, {bad} disagreements.** " + progress + "\n\n")
    write_text(args.out, head + table(results))
    print(f"{total:,} casts checked, {bad} disagreements -> {args.out}")
    return bad


if __name__ == "__main__":
    raise SystemExit(main())
