"""The ``lowbit`` command line (``lowbit --help``, ``lowbit COMMAND --help``)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _report(args) -> Path:
    from lowbit.integrations.reports.formats import ALL_FORMATS, run_report

    formats = list(args.formats)
    if args.all or not formats:
        formats = list(ALL_FORMATS) + [f for f in formats if f not in ALL_FORMATS]
    return run_report(formats, args.out, args.seed)


def _lns_report(args) -> Path:
    from lowbit.integrations.reports.lns import run_report

    return run_report(args.out, args.seed)


def _compare(args) -> Path:
    from lowbit.integrations.programs.compare import DEFAULT_SPECS, run_compare

    return run_compare(args.out, args.specs or DEFAULT_SPECS, args.epochs, args.seed)


def _demo(args) -> Path:
    from lowbit.integrations.programs.compare import run_compare
    from lowbit.integrations.reports.formats import ALL_FORMATS, run_report

    report = run_report(ALL_FORMATS, args.out / "report", args.seed)
    print(f"per-format report:   {report.resolve()}")
    training = run_compare(args.out / "training", epochs=args.epochs, seed=args.seed)
    print(f"training comparison: {training.resolve()}")
    print(training.read_text())
    return args.out


def _train_qnn(args) -> Path:
    from lowbit.integrations.programs.qnn.train import TrainConfig, train

    hidden = tuple(int(h) for h in args.hidden.split(",")) if args.hidden else ()
    data = args.data
    cfg = TrainConfig(recipe=args.format, data=data, data_dir=args.data_dir, arch=args.arch,
                      hidden=hidden, epochs=args.epochs, batch=args.batch, lr=args.lr,
                      lr_decay=args.lr_decay, seed=args.seed, lns=args.lns, out=str(args.out))
    train(cfg, progress=not args.quiet)
    return args.out / "summary.json"


def _experiment(args) -> Path:
    from lowbit.integrations.programs import experiments

    if args.action == "run":
        experiments.run_grid(args.grid, args.data, args.seeds, args.epochs, args.root,
                             rounds=args.rounds)
        return args.root
    return experiments.write_tables(args.root, args.docs)


def _train_eqprop(args) -> Path:
    from lowbit.integrations.programs.eqprop.train import EPConfig, train

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


def _kill_spec(text: str) -> tuple[int, int]:
    try:
        node, rnd = (int(v) for v in text.split(":"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--kill takes NODE:ROUND, got {text!r}") from None
    return node, rnd


def _train_nodes(args) -> Path:
    from lowbit.integrations.programs.nodes.node import NodeConfig
    from lowbit.integrations.programs.nodes.train import train

    neighbours = args.nodes - 1 if args.neighbours < 0 else args.neighbours
    cfg = NodeConfig(nodes=args.nodes, neighbours=neighbours, share=args.share,
                     temperature=args.temperature, broadcast_p=args.broadcast_p,
                     consume_p=args.consume_p, format=args.format,
                     message_format=args.message_format, model=args.model, hidden=args.hidden,
                     batch=args.batch, lr=args.lr, rounds=args.rounds, eval_every=args.eval_every,
                     inbox_cap=args.inbox_cap, qsgd_levels=args.qsgd_levels, data=args.data,
                     data_dir=args.data_dir, seed=args.seed, out=str(args.out))
    if args.runtime != "gloo" and (args.kill or args.restart):
        raise SystemExit("--kill and --restart need --runtime gloo")
    s = train(cfg, progress=not args.quiet, runtime=args.runtime, timeout=args.timeout,
              kill=dict(args.kill), restart=args.restart)
    print(f"after {s['rounds_done']} steps per node: mean accuracy {s['avg_acc']:.4f}, "
          f"collective decision {s['coll_acc']:.4f} ({s['alive']} nodes), "
          f"{s['bytes_payload']} payload bytes + {s['bytes_images']} image bytes sent")
    return args.out / "summary.json"


def _train_teacher(args) -> Path:
    from lowbit.integrations.programs.teacher.train import TeacherConfig, train

    cfg = TeacherConfig(select=args.select, stack=args.stack, targets=args.targets,
                        temperature=args.temperature, format=args.format, batch=args.batch,
                        max_backward=args.max_backward, eval_every=args.eval_every,
                        patience=args.patience, data=args.data, data_dir=args.data_dir,
                        seed=args.seed, teacher_dir=str(args.teacher_dir), out=str(args.out),
                        teacher_hidden=args.teacher_hidden,
                        teacher_max_epochs=args.teacher_max_epochs,
                        teacher_lr_drops=args.teacher_lr_drops)
    s = train(cfg, progress=not args.quiet)
    print(f"best validation {s['best_val_acc']:.4f} after {s['backward_at_best']} backward passes"
          f" ({s['forward_at_best']} student forward passes): test accuracy {s['test_acc']:.4f}")
    return args.out / "summary.json"


def _train_language(args) -> Path:
    from lowbit.integrations.programs.language.train import LanguageConfig, train

    cfg = LanguageConfig(level=args.level, length=args.length, weight=args.weight,
                         noise=args.noise, hidden=args.hidden, tau_start=args.tau_start,
                         tau_decay=args.tau_decay, tau_every=args.tau_every,
                         tau_min=args.tau_min, batch=args.batch, lr=args.lr, steps=args.steps,
                         eval_every=args.eval_every, format=args.format,
                         loss_scale=args.loss_scale, frozen=args.frozen, data=args.data,
                         data_dir=args.data_dir, seed=args.seed, out=str(args.out))
    s = train(cfg, progress=not args.quiet)
    print(f"probe on the student's features: best validation {s['best_val_acc']:.4f} at step "
          f"{s['step_at_best']}, test {s['test_acc']:.4f}; bits agreeing with the teacher's "
          f"message at the end: {s['final_bit_agreement']:.3f}")
    return args.out / "summary.json"


def build_parser() -> argparse.ArgumentParser:
    """The ``lowbit`` argument parser: report, lns-report, compare, train {qnn, eqprop, nodes,
    teacher, language}, experiment and demo, with their options."""
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
    p.add_argument("specs", nargs="*", help="emulation specs (see lowbit.integrations.torch.SPEC_GRAMMAR)")
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--out", type=Path, default=Path("results/training"), help="output folder")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(run=_compare)

    train = sub.add_parser("train", help="training programs",
                           description="Training programs at emulated precision.")
    tsub = train.add_subparsers(dest="program", required=True)
    p = tsub.add_parser("qnn", help="quantized networks and the LNS table (lowbit.integrations.programs.qnn.train)",
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

    p = tsub.add_parser("eqprop", help="equilibrium propagation (lowbit.integrations.programs.eqprop.train)",
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

    p = tsub.add_parser("nodes", help="communicating nodes (lowbit.integrations.programs.nodes)",
                        description="N nodes train on private shards and share labels, logits "
                        "or features with their ring neighbours (Lacaille 2018); or the "
                        "data-parallel baselines: sync (float32 all-reduce) and qsgd.")
    p.add_argument("--nodes", type=int, default=10)
    p.add_argument("--neighbours", type=int, default=-1, help="K nearest on the ring; -1: N-1")
    p.add_argument("--share", default="labels",
                   choices=("none", "labels", "logits", "features", "sync", "qsgd"))
    p.add_argument("--temperature", type=float, default=1.0, help="softens received logits")
    p.add_argument("--broadcast-p", type=float, default=-1.0,
                   help="per-minibatch broadcast probability; -1: consume-p / neighbours")
    p.add_argument("--consume-p", type=float, default=0.5,
                   help="probability of training on the inbox rather than the shard")
    p.add_argument("--format", default="float", help="the node models' emulation spec")
    p.add_argument("--message-format", default="float32",
                   help="logits/features on the wire: float32, fixedB.F or lnsI.F")
    p.add_argument("--model", default="mlp", choices=("mlp", "cnn"))
    p.add_argument("--hidden", type=int, default=256, help="units of the feature layer(s)")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--lr", type=float, default=1e-3, help="Adam's learning rate")
    p.add_argument("--rounds", type=int, default=1000, help="training steps per node")
    p.add_argument("--eval-every", type=int, default=250)
    p.add_argument("--inbox-cap", type=int, default=64, help="messages an inbox holds")
    p.add_argument("--qsgd-levels", type=int, default=127, help="QSGD levels s (1..127)")
    p.add_argument("--data", default="digits")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--runtime", default="simulated", choices=("simulated", "gloo"))
    p.add_argument("--timeout", type=float, default=60.0,
                   help="gloo: seconds before a silent neighbour is declared dead")
    p.add_argument("--kill", type=_kill_spec, action="append", default=[],
                   metavar="NODE:ROUND", help="gloo: crash NODE's process at ROUND")
    p.add_argument("--restart", action="store_true", help="gloo: restart crashed nodes")
    p.add_argument("--out", type=Path, default=Path("results/nodes"))
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(run=_train_nodes)

    p = tsub.add_parser("teacher", help="a teacher selects the student's data (lowbit.integrations.programs.teacher.train)",
                        description="A trained 1200-1200 teacher picks the hardest samples of a "
                        "stack of the student's minibatches (Lacaille 2018, chapter 3).")
    p.add_argument("--select", default="ce", choices=("none", "ce", "euclidean", "random"),
                   help="none: the student alone; ce/euclidean: difficulty measure; random")
    p.add_argument("--stack", type=int, default=2, help="minibatches on the teacher's stack")
    p.add_argument("--targets", default="soft", choices=("soft", "true"))
    p.add_argument("--temperature", type=float, default=1.0, help="of the teacher's soft labels")
    p.add_argument("--format", default="float", help="the student's emulation spec")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--max-backward", type=int, default=40_000)
    p.add_argument("--eval-every", type=int, default=250, help="in backward passes")
    p.add_argument("--patience", type=int, default=40, help="evaluations without improvement")
    p.add_argument("--data", default="digits")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--teacher-hidden", type=int, default=1200, help="units per teacher layer")
    p.add_argument("--teacher-max-epochs", type=int, default=60,
                   help="teacher epochs at most (early stopping on validation)")
    p.add_argument("--teacher-lr-drops", type=int, default=2,
                   help="times the teacher's learning rate is divided by 10 on a plateau")
    p.add_argument("--teacher-dir", type=Path, default=Path("results/teacher-models"),
                   help="where trained teachers are cached")
    p.add_argument("--out", type=Path, default=Path("results/teacher"))
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(run=_train_teacher)

    p = tsub.add_parser("language", help="two agents learn a bit language (lowbit.integrations.programs.language.train)",
                        description="Two agents see an image through different inverting masks "
                        "and exchange L-bit Gumbel-softmax messages (Lacaille 2018, chapter 4).")
    p.add_argument("--level", default="none", choices=("none", "receive", "feedback", "both"),
                   help="communication level")
    p.add_argument("--length", type=int, default=32, help="message length L in bits")
    p.add_argument("--frozen", action="store_true",
                   help="control: keep the agents at their initial weights (only the probe trains)")
    p.add_argument("--weight", type=float, default=-1.0,
                   help="weight of the message cross-entropy; -1: 0.01 one-way, 0.005 two-way")
    p.add_argument("--noise", type=float, default=0.2, help="probability of inverting a pixel")
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--tau-start", type=float, default=1.0)
    p.add_argument("--tau-decay", type=float, default=0.9)
    p.add_argument("--tau-every", type=int, default=500)
    p.add_argument("--tau-min", type=float, default=0.5)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--steps", type=int, default=10_000)
    p.add_argument("--eval-every", type=int, default=250)
    p.add_argument("--format", default="float", help="the agents' emulation spec")
    p.add_argument("--loss-scale", type=float, default=1.0,
                   help="static loss scale (emulated gradients; gradients are divided by it "
                        "before the optimizer step)")
    p.add_argument("--data", default="digits")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=Path("results/language"))
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(run=_train_language)

    p = sub.add_parser("experiment", help="the result grids of docs/results (long runs)",
                       description="Run a grid of training runs (resumable) or write the tables.")
    p.add_argument("action", choices=("run", "tables"))
    p.add_argument("grid", nargs="?", default="qnn",
                   choices=("qnn", "lns", "lns-sweep", "lns-matmul-parts", "eqprop", "eqprop-sweep", "eqprop-check",
                            "nodes", "nodes-cnn", "teacher", "language"))
    p.add_argument("--data", default="digits")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--rounds", type=int, default=5000, help="nodes grid: steps per node")
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
    """Run the ``lowbit`` command line ``argv`` (default: sys.argv); print where results went;
    return the exit status 0 (errors raise SystemExit)."""
    args = build_parser().parse_args(argv)
    path = args.run(args)
    if args.command not in ("demo", "train", "experiment"):
        print(path.read_text())
    print(f"results written to {Path(path if args.command in ('demo', 'experiment') else path.parent).resolve()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
