"""The ``lowbit`` command line (``lowbit --help``, ``lowbit COMMAND --help``)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _report(args) -> Path:
    from integrations.report import ALL_FORMATS, run_report

    formats = list(args.formats)
    if args.all or not formats:
        formats = list(ALL_FORMATS) + [f for f in formats if f not in ALL_FORMATS]
    return run_report(formats, args.out, args.seed)


def _lns_report(args) -> Path:
    from integrations.lns_report import run_report

    return run_report(args.out, args.seed)


def _compare(args) -> Path:
    from integrations.compare import DEFAULT_SPECS, run_compare

    return run_compare(args.out, args.specs or DEFAULT_SPECS, args.epochs, args.seed)


def _demo(args) -> Path:
    from integrations.compare import run_compare
    from integrations.report import ALL_FORMATS, run_report

    report = run_report(ALL_FORMATS, args.out / "report", args.seed)
    print(f"per-format report:   {report.resolve()}")
    training = run_compare(args.out / "training", epochs=args.epochs, seed=args.seed)
    print(f"training comparison: {training.resolve()}")
    print(training.read_text())
    return args.out


def _train_qnn(args) -> Path:
    from integrations.train_qnn import TrainConfig, train

    hidden = tuple(int(h) for h in args.hidden.split(",")) if args.hidden else ()
    data = args.data
    cfg = TrainConfig(recipe=args.format, data=data, data_dir=args.data_dir, arch=args.arch,
                      hidden=hidden, epochs=args.epochs, batch=args.batch, lr=args.lr,
                      lr_decay=args.lr_decay, seed=args.seed, lns=args.lns, out=str(args.out))
    train(cfg, progress=not args.quiet)
    return args.out / "summary.json"


def _experiment(args) -> Path:
    from integrations import experiments

    if args.action == "run":
        experiments.run_grid(args.grid, args.data, args.seeds, args.epochs, args.root)
        return args.root
    return experiments.write_tables(args.root, args.docs)


def _train_eqprop(args) -> Path:
    from integrations.eqprop import EPConfig, train

    cfg = EPConfig(arch=tuple(int(v) for v in args.arch.split("-")), free_steps=args.free_steps,
                   nudged_steps=args.nudged_steps, epsilon=args.epsilon, beta=args.beta,
                   batch=args.batch, lrs=tuple(float(v) for v in args.lrs.split(",")),
                   random_sign=not args.fixed_sign, symmetric=args.symmetric,
                   persistent=args.persistent, format=args.format,
                   update=None if args.update == "plain" else args.update, data=args.data,
                   data_dir=args.data_dir, epochs=args.epochs, seed=args.seed,
                   backend=args.backend, out=str(args.out))
    train(cfg, progress=not args.quiet)
    return args.out / "summary.json"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lowbit", description="Bit-exact emulation of low-precision deep-learning arithmetic.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("report", help="per-format error report (markdown + PNG)",
                       description="Cast, dot-product and MLP-accuracy error of each format.")
    p.add_argument("formats", nargs="*", help="format strings, e.g. fixed16.8 lns5.10:interp6")
    p.add_argument("--all", action="store_true", help="the default set of formats")
    p.add_argument("--out", type=Path, default=Path("results/report"), help="output folder")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(run=_report)

    p = sub.add_parser("lns-report", help="LNS adders and dot products in detail",
                       description="sb/db error per adder and K-term dot products, LNS(5,10)/(5,7).")
    p.add_argument("--out", type=Path, default=Path("results/lns"), help="output folder")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(run=_lns_report)

    p = sub.add_parser("compare", help="short digits training: float vs emulated specs",
                       description="Train one MLP per spec on digits and compare test accuracy.")
    p.add_argument("specs", nargs="*", help="emulation specs (see integrations.torch.SPEC_GRAMMAR)")
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--out", type=Path, default=Path("results/training"), help="output folder")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(run=_compare)

    train = sub.add_parser("train", help="training programs",
                           description="Training programs at emulated precision.")
    tsub = train.add_subparsers(dest="program", required=True)
    p = tsub.add_parser("qnn", help="quantized networks and the LNS table (integrations.train_qnn)",
                        description="Train a QNN recipe (float, binaryconnect, binarynet, ternary, "
                                    "fixed2/4/8, lns-float, lns-matmul, lns-everywhere, lns-kahan) "
                                    "or an emulation spec; resumes from OUT/checkpoint.pt.")
    p.add_argument("--format", default="float", help="recipe name or emulation spec")
    p.add_argument("--data", default="digits",
                   help="digits, fashion-mnist, or a folder of IDX files")
    p.add_argument("--data-dir", default=None, help="folder of the four IDX files")
    p.add_argument("--arch", default="mlp", choices=("mlp", "cnn"))
    p.add_argument("--hidden", default="", help="hidden sizes of the MLP, e.g. 1024,1024")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--batch", type=int, default=100)
    p.add_argument("--lr", type=float, default=0.0, help="0: the recipe's default")
    p.add_argument("--lr-decay", type=float, default=1.0, help="lr * decay**epoch")
    p.add_argument("--lns", default="lns5.10", help="the LNS format of the lns-* recipes")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=Path("results/qnn"), help="output folder")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(run=_train_qnn)

    p = tsub.add_parser("eqprop", help="equilibrium propagation (integrations.eqprop)",
                        description="Train a layered Hopfield network with equilibrium "
                                    "propagation, in float or at emulated precision; 'bp' trains "
                                    "the same network with backprop. Resumes from OUT.")
    p.add_argument("--format", default="float",
                   help="float, bp, or an emulation spec (w: weights, a: states, o: drives, "
                        "acc, gw: updates), e.g. fixed16.14 or lns5.10")
    p.add_argument("--arch", default="784-500-10", help="layer sizes (input and output adapt)")
    p.add_argument("--free-steps", type=int, default=20)
    p.add_argument("--nudged-steps", type=int, default=4)
    p.add_argument("--epsilon", type=float, default=0.5)
    p.add_argument("--beta", type=float, default=0.5)
    p.add_argument("--batch", type=int, default=20)
    p.add_argument("--lrs", default="0.1,0.05", help="one learning rate per layer")
    p.add_argument("--fixed-sign", action="store_true", help="no random sign of beta")
    p.add_argument("--symmetric", action="store_true", help="the +-beta estimate")
    p.add_argument("--persistent", action="store_true", help="persistent particles")
    p.add_argument("--update", default="plain", choices=("plain", "stochastic", "kahan"))
    p.add_argument("--data", default="digits")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--backend", default=None, choices=(None, "numba", "c"))
    p.add_argument("--out", type=Path, default=Path("results/eqprop"))
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(run=_train_eqprop)

    p = sub.add_parser("experiment", help="the result grids of docs/results (long runs)",
                       description="Run a grid of training runs (resumable) or write the tables.")
    p.add_argument("action", choices=("run", "tables"))
    p.add_argument("grid", nargs="?", default="qnn",
                   choices=("qnn", "lns", "lns-sweep", "eqprop", "eqprop-sweep"))
    p.add_argument("--data", default="digits")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--root", type=Path, default=Path("results/experiments"))
    p.add_argument("--docs", type=Path, default=Path("docs/results"))
    p.set_defaults(run=_experiment)

    p = sub.add_parser("demo", help="the main job: report --all and the training comparison",
                       description="Runs `lowbit report --all` and `lowbit compare`.")
    p.add_argument("--out", type=Path, default=Path("results"), help="output folder")
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(run=_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    path = args.run(args)
    if args.command not in ("demo", "train", "experiment"):
        print(path.read_text())
    print(f"results written to {Path(path if args.command == 'demo' else path.parent).resolve()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
