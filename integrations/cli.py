"""The ``lowbit`` command line."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="lowbit", description="Bit-exact low-precision arithmetic.")
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="per-format error report on scikit-learn digits")
    demo.add_argument("--out", type=Path, default=Path("results"), help="output folder")
    demo.add_argument("--formats", nargs="+", default=None,
                      help="format strings (see numerics.FORMAT_GRAMMAR)")
    lns = sub.add_parser("lns-report", help="LNS adder and dot-product error report")
    lns.add_argument("--out", type=Path, default=Path("results/lns"), help="output folder")
    lns.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.command == "lns-report":
        from integrations.lns_report import run_report

        path = run_report(args.out, args.seed)
        print(path.read_text())
        print(f"results written to {path.parent.resolve()}")
    if args.command == "demo":
        from integrations.demo import DEFAULT_FORMATS, run_demo

        path = run_demo(args.out, args.formats or DEFAULT_FORMATS)
        print(f"results written to {path.parent.resolve()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
