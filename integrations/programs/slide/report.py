"""The table of ``lowbit train slide`` runs under a folder (one row per run directory).

    python -m lowbit.integrations.programs.slide.report results/experiments/slide/xmc-5k
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from lowbit.integrations.runs import read_metrics


def runs_table(root: Path) -> str:
    rows = ["| run | policy / scope | format | P@1 | P@5 | active per sample (% of N) | batch union | "
            "labels / retrieved / fill | ms per step: hash + query + products + optimizer + rebuild |",
            "|---|---|---|---:|---:|---:|---:|---|---|"]
    for summary in sorted(Path(root).glob("*/seed*/summary.json")):
        s = json.loads(summary.read_text())
        c = s["config"]
        m = read_metrics(summary.parent)[-1]
        steps = -(-c["train"] // c["batch"])
        ms = lambda k: f"{1e3 * m[k] / steps:.1f}"  # noqa: E731
        rows.append(f"| {summary.parent.parent.name}/{summary.parent.name} | {c['policy']} / {c['scope']} | "
                    f"{c['format']} | {s['p_at_1']:.4f} | {s['p_at_5']:.4f} | "
                    f"{s['active_per_sample']:,.0f} ({100 * s['per_sample_fraction']:.1f} %) | "
                    f"{s['active_mean']:,.0f} | {m['active_labels']:.0f} / {m['active_retrieved']:.0f} / "
                    f"{m['active_fill']:.0f} | {ms('s_hash')} + {ms('s_query')} + {ms('s_products')} + "
                    f"{ms('s_optimizer')} + {ms('s_rebuild')} = {1e3 * s['s_step']:.1f} |")
    return "\n".join(rows) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("root", type=Path)
    print(runs_table(p.parse_args(argv).root))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
