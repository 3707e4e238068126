"""The ``lowbit`` command line (``lowbit --help``, ``lowbit COMMAND --help``).

A front door to the reports, programs and grids of :mod:`lowbit.integrations`, and a
boundary: every value is checked where it is parsed (counts are positive, probabilities
in [0, 1], formats and specs parse, data folders exist, choices are known), and a
user's mistake ends in one line, ``lowbit: error: …``, naming the argument and what it
accepts, with exit status 2 — never a traceback (``--debug`` or ``LOWBIT_DEBUG=1``
shows one). The same meaning has the same flag everywhere: ``--format`` (an emulation
spec or a program's recipe), ``--data``, ``--seed``, ``--out``, ``--quiet``, and one way
to say how long to train: ``--epochs`` where a program counts epochs, ``--steps`` where
its natural unit is one minibatch step (each program's help says how they convert).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path


class CliError(Exception):
    """A user's mistake on the command line: reported in one line, exit status 2."""


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are :class:`CliError` (one line, no usage dump)."""

    def error(self, message: str):
        command = self.prog.removeprefix("lowbit").strip()
        hint = f" (see `{self.prog} --help`)"
        raise CliError(f"{command}: {message}{hint}" if command else message + hint)


# ------------------------------------------------------------ value types ---
# argparse calls these on the raw strings; an ArgumentTypeError becomes
# "argument --flag: <message>".

def count(minimum: int = 1):
    """An int >= ``minimum``."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be an integer >= {minimum}, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be an integer >= {minimum}, got {value}")
        return value
    parse.__name__ = "count"
    return parse


def real(low: float | None = None, high: float | None = None, low_open: bool = False,
         allow: tuple[float, ...] = ()):
    """A finite float in [low, high] ((low, high] with ``low_open``), or one of ``allow``."""
    if low is None:
        what = "a number"
    elif high is None:
        what = f"a number {'>' if low_open else '>='} {low:g}"
    else:
        what = f"a number in {'(' if low_open else '['}{low:g}, {high:g}]"
    if allow:
        what += " or " + " or ".join(f"{a:g}" for a in allow)

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {what}, got {text!r}") from None
        if value in allow:
            return value
        ok = value == value and abs(value) != float("inf")
        if ok and low is not None:
            ok = value > low if low_open else value >= low
        if ok and high is not None:
            ok = value <= high
        if not ok:
            raise argparse.ArgumentTypeError(f"must be {what}, got {text}")
        return value
    parse.__name__ = "real"
    return parse


def int_list(sep: str, minimum_length: int = 1):
    """Positive ints joined by ``sep`` (e.g. 784-500-10)."""
    def parse(text: str) -> tuple[int, ...]:
        try:
            values = tuple(int(v) for v in text.split(sep))
        except ValueError:
            values = ()
        if len(values) < minimum_length or any(v < 1 for v in values):
            raise argparse.ArgumentTypeError(
                f"must be at least {minimum_length} positive integers joined by {sep!r}, "
                f"got {text!r}")
        return values
    parse.__name__ = "list"
    return parse


def real_list(text: str) -> tuple[float, ...]:
    """Positive floats joined by commas (one learning rate per layer)."""
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        values = ()
    if not values or any(not 0 < v < float("inf") for v in values):
        raise argparse.ArgumentTypeError(f"must be positive numbers joined by ',', got {text!r}")
    return values


def fmt(text: str) -> str:
    """A number format string (lowbit.numerics.FORMAT_GRAMMAR); returned as given."""
    from lowbit.numerics import parse_format

    try:
        parse_format(text)
    except (ValueError, TypeError) as exc:
        raise argparse.ArgumentTypeError(f"{_one_line(exc)} (grammar: lowbit.FORMAT_GRAMMAR)") from None
    return text


def lns_format(text: str) -> str:
    """An LNS format string, e.g. lns5.10."""
    from lowbit.numerics import LNS, parse_format

    fmt(text)
    if not isinstance(parse_format(text), LNS):
        raise argparse.ArgumentTypeError(f"must be an LNS format (e.g. lns5.10), got {text!r}")
    return text


def spec(*names: str):
    """An emulation spec (lowbit.integrations.torch.SPEC_GRAMMAR), "float", or one of the
    program's recipe ``names``; returned as given."""
    def parse(text: str) -> str:
        if text == "float" or text in names:
            return text
        from lowbit.integrations.torch.spec import EmulationSpec

        try:
            EmulationSpec.parse(text)
        except (ValueError, TypeError, NotImplementedError) as exc:
            accepted = ", ".join(dict.fromkeys(("float",) + names))
            raise argparse.ArgumentTypeError(
                f"{_one_line(exc)}; accepted: {accepted}, or an emulation spec such as fixed16.8 "
                "or w=fixed8.6,a=fixed8.4,acc=fixed16.8 (grammar: lowbit.SPEC_GRAMMAR)") from None
        return text
    parse.__name__ = "spec"
    return parse


def master_format(text: str) -> str:
    """A format master weights can live in ("float": float32): fixed point, LNS or a float."""
    if text == "float":
        return text
    from lowbit.integrations.torch.updates import update_format
    from lowbit.numerics import parse_format

    try:
        update_format(parse_format(text))
    except (ValueError, TypeError) as exc:
        raise argparse.ArgumentTypeError(f"{_one_line(exc)}; accepted: float, or a format "
                                         "such as bf16, fixed16.12 or lns5.10") from None
    return text


def loss_scale(text: str) -> str:
    """none, dynamic, or a power of two ("" : the recipe's default)."""
    from lowbit.integrations.torch.loss_scaling import LossScaler

    if text == "":
        return text
    try:
        LossScaler.parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(_one_line(exc)) from None
    return text


def message_format(text: str) -> str:
    """float32 (or float64), or a fixed, float (e4m3, ...) or LNS format for values on the wire."""
    from lowbit.numerics import LNS, Fixed, Float, parse_format

    if text in ("float32", "float64"):
        return text
    fmt(text)
    if not isinstance(parse_format(text), (Fixed, LNS, Float)):
        raise argparse.ArgumentTypeError(f"must be float32, a fixed, float or LNS format, "
                                         f"got {text!r}")
    return text


def dataset_name(text: str) -> str:
    """digits, fashion-mnist, or an existing folder (its files are checked with --data-dir)."""
    if text in ("digits", "fashion-mnist") or Path(text).is_dir():
        return text
    raise argparse.ArgumentTypeError(
        f"must be digits, fashion-mnist or a folder of the four IDX files; {text!r} is "
        "neither a known name nor a folder")


def folder(text: str) -> str:
    """An existing folder."""
    if not Path(text).is_dir():
        raise argparse.ArgumentTypeError(f"must be an existing folder, got {text!r}")
    return text


def _kill_spec(text: str) -> tuple[int, int]:
    try:
        node, rnd = (int(v) for v in text.split(":"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"takes NODE:ROUND (two integers), got {text!r}") from None
    if node < 0 or rnd < 0:
        raise argparse.ArgumentTypeError(f"takes NODE:ROUND >= 0, got {text!r}")
    return node, rnd


def _one_line(exc: BaseException) -> str:
    """The first line of an exception's message (a grammar may follow it), whitespace
    collapsed; the exception's type if it has no message."""
    lines = str(exc).strip().splitlines()
    return " ".join(lines[0].split()) if lines else type(exc).__name__


def _check_data(args) -> None:
    """--data (and --data-dir) name a dataset that is on this machine."""
    from lowbit.integrations.data import check_dataset

    try:
        check_dataset(args.data, args.data_dir)
    except (FileNotFoundError, ValueError) as exc:
        raise CliError(f"{args.command_name}: argument --data: {_one_line(exc)}") from None


# ---------------------------------------------------------------- commands ---

def _report(args) -> Path:
    from lowbit.integrations.reports.formats import ALL_FORMATS, run_report

    formats = list(args.formats)
    if args.all or not formats:
        formats = list(ALL_FORMATS) + [f for f in formats if f not in ALL_FORMATS]
    return run_report(formats, args.out, args.seed)


def _lns_report(args) -> Path:
    from lowbit.integrations.reports.lns import run_report

    return run_report(args.out, args.seed)


def _costs(args):
    from lowbit.integrations.reports.energy import Costs

    return Costs(node=args.node, vdd=args.vdd, sb=args.sb, memory=args.memory)


def _energy(args) -> Path:
    from lowbit.integrations.reports.energy import run_energy

    run_energy(list(args.formats), args.model, args.batch, _costs(args), args.out)
    return args.out / ("energy.json" if args.json else "energy.md")


def _inspect(args) -> Path:
    from lowbit.integrations.reports.energy import load_model
    from lowbit.integrations.torch import coverage

    model, inputs = load_model(args.model, args.batch)
    cov = coverage(model.eval(), inputs, "w=float" if args.format == "float" else args.format)
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "coverage.md"
    path.write_text(f"# Coverage of {args.model}\n\n{cov}\n")
    return path


def memory_policy(text: str) -> str:
    """none, dram, or sram:SIZE (e.g. sram:32KB)."""
    from lowbit.integrations.reports.energy import memory_per_bit

    try:
        memory_per_bit(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(_one_line(exc)) from None
    return text


def model_name(text: str) -> str:
    """mlp, cnn or module:callable."""
    if text in ("mlp", "cnn") or (":" in text and all(text.partition(":")[::2])):
        return text
    raise argparse.ArgumentTypeError(f"must be mlp, cnn or module:callable (returning (model, "
                                     f"example_inputs)), got {text!r}")


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

    _check_data(args)
    cfg = TrainConfig(recipe=args.format, data=args.data, data_dir=args.data_dir, arch=args.arch,
                      hidden=args.hidden, epochs=args.epochs, batch=args.batch, lr=args.lr,
                      lr_decay=args.lr_decay, seed=args.seed, lns=args.lns, out=str(args.out),
                      loss_scale=args.loss_scale)
    train(cfg, progress=not args.quiet)
    return args.out / "summary.json"


def _experiment(args) -> Path:
    from lowbit.integrations.programs import experiments

    if args.action == "run":
        _check_data(args)
        experiments.run_grid(args.grid, args.data, args.seeds, args.epochs, args.root,
                             rounds=args.steps)
        return args.root
    return experiments.write_tables(args.root, args.docs)


def _train_eqprop(args) -> Path:
    from lowbit.integrations.programs.eqprop.train import EPConfig, train

    _check_data(args)
    if len(args.lrs) != len(args.arch) - 1:
        raise CliError(f"train eqprop: argument --lrs: needs one learning rate per layer of "
                       f"--arch {'-'.join(map(str, args.arch))} ({len(args.arch) - 1}), got "
                       f"{len(args.lrs)}")
    cfg = EPConfig(arch=args.arch, free_steps=args.free_steps,
                   nudged_steps=args.nudged_steps, epsilon=args.epsilon, beta=args.beta,
                   batch=args.batch, lrs=args.lrs,
                   random_sign=not args.fixed_sign, symmetric=args.symmetric,
                   persistent=args.persistent, format=args.format,
                   update=None if args.update == "plain" else args.update, data=args.data,
                   data_dir=args.data_dir, epochs=args.epochs, seed=args.seed,
                   backend=args.backend, out=str(args.out))
    train(cfg, progress=not args.quiet)
    return args.out / "summary.json"


def _train_nodes(args) -> Path:
    from lowbit.integrations.programs.nodes.node import NodeConfig
    from lowbit.integrations.programs.nodes.train import train

    _check_data(args)
    neighbours = args.nodes - 1 if args.neighbours < 0 else args.neighbours
    if neighbours > args.nodes - 1:
        raise CliError(f"train nodes: argument --neighbours: at most --nodes - 1 = "
                       f"{args.nodes - 1} (or -1 for all), got {args.neighbours}")
    if args.runtime != "gloo" and (args.kill or args.restart):
        raise CliError("train nodes: argument --kill/--restart: needs --runtime gloo")
    # (under torchrun --kill crashes that rank's process; torchrun then stops its host)
    for node, _ in args.kill:
        if node >= args.nodes:
            raise CliError(f"train nodes: argument --kill: node {node} does not exist "
                           f"(--nodes {args.nodes}: 0..{args.nodes - 1})")
    cfg = NodeConfig(nodes=args.nodes, neighbours=neighbours, share=args.share,
                     temperature=args.temperature, broadcast_p=args.broadcast_p,
                     consume_p=args.consume_p, format=args.format,
                     message_format=args.message_format, model=args.model, hidden=args.hidden,
                     batch=args.batch, lr=args.lr, rounds=args.steps, eval_every=args.eval_every,
                     inbox_cap=args.inbox_cap, qsgd_levels=args.qsgd_levels,
                     local_steps=args.local_steps, local_from=args.local_from,
                     async_delay=args.async_delay, n_push=args.n_push, n_fetch=args.n_fetch,
                     async_apply=args.async_apply, staleness_lr=args.staleness_lr,
                     es_pairs=args.es_pairs, es_sigma=args.es_sigma, es_l2=args.es_l2,
                     es_format=args.es_format, es_z=args.es_z,
                     micro_batches=args.micro_batches, grad_format=args.grad_format or "", optimizer=args.optimizer, data=args.data,
                     data_dir=args.data_dir, seed=args.seed, out=str(args.out))
    from lowbit.integrations.programs.nodes.distributed import RendezvousError

    try:
        s = train(cfg, progress=not args.quiet, runtime=args.runtime, timeout=args.timeout,
                  kill=dict(args.kill), restart=args.restart)
    except RendezvousError as e:
        raise CliError(f"train nodes: {e}") from None
    if s is None:  # a torchrun node other than rank 0: node 0 writes the run's results
        who = ("the parameter server" if os.environ.get("RANK") == str(cfg.nodes)
               else f"node {os.environ.get('RANK')}")
        print(f"{who} finished; node 0 writes the results")
        return args.out / "summary.json"
    print(f"after {int(s['rounds_done'])} steps per node: mean accuracy {s['avg_acc']:.4f}, "
          f"collective decision {s['coll_acc']:.4f} ({int(s['alive'])} nodes), "
          f"{int(s['bytes_payload'])} payload bytes + {int(s['bytes_images'])} image bytes sent")
    return args.out / "summary.json"


def _train_teacher(args) -> Path:
    from lowbit.integrations.programs.teacher.train import TeacherConfig, train

    _check_data(args)
    cfg = TeacherConfig(select=args.select, stack=args.stack, targets=args.targets,
                        temperature=args.temperature, format=args.format, batch=args.batch,
                        max_backward=args.steps, eval_every=args.eval_every,
                        patience=args.patience, data=args.data, data_dir=args.data_dir,
                        seed=args.seed, teacher_dir=str(args.teacher_dir), out=str(args.out),
                        teacher_hidden=args.teacher_hidden,
                        teacher_max_epochs=args.teacher_max_epochs,
                        teacher_lr_drops=args.teacher_lr_drops)
    s = train(cfg, progress=not args.quiet)
    print(f"best validation {s['best_val_acc']:.4f} after {s['backward_at_best']} backward passes"
          f" ({s['forward_at_best']} student forward passes): test accuracy {s['test_acc']:.4f}")
    return args.out / "summary.json"


def _train_slide(args) -> Path:
    from lowbit.integrations.programs.slide.train import SlideConfig, train

    wide = args.data != "xmc"
    if wide:
        _check_data(args)
    hidden = args.hidden if args.hidden is not None else (4096 if wide else 128)
    cfg = SlideConfig(data=args.data, data_dir=args.data_dir, labels=args.labels,
                      features=args.features, train=args.train_samples,
                      test=args.test_samples, hidden=hidden, policy=args.policy,
                      scope=args.scope, products=args.products, family=args.hash,
                      dwta_shift=args.dwta_shift,
                      bits=args.bits, tables=args.tables, beta=args.beta,
                      min_active=args.min_active, fill=args.fill, threshold=args.threshold,
                      rebuild=args.rebuild, rebuild_every=args.rebuild_every,
                      rebuild_growth=args.rebuild_growth,
                      change_threshold=args.change_threshold, format=args.format,
                      master=args.master, update=args.update,
                      optimizer=args.optimizer, lr=args.lr, batch=args.batch,
                      epochs=args.epochs, seed=args.seed, out=str(args.out))
    s = train(cfg, progress=not args.quiet)
    if wide:
        print(f"test accuracy {s['accuracy']:.4f} (dense inference), "
              f"{s['accuracy_lsh']:.4f} (LSH inference)  active units per sample "
              f"{s['active_per_sample']:.0f} of {hidden} ({100 * s['per_sample_fraction']:.1f} %), "
              f"batch union {s['active_mean']:.0f}, {s['s_step'] * 1e3:.1f} ms/step")
        return args.out / "summary.json"
    print(f"P@1 {s['p_at_1']:.4f}  P@5 {s['p_at_5']:.4f}  active per sample "
          f"{s['active_per_sample']:.0f} of {cfg.labels} ({100 * s['per_sample_fraction']:.2f} %), "
          f"batch union {s['active_mean']:.0f}, {s['s_step'] * 1e3:.1f} ms/step")
    return args.out / "summary.json"


def _train_language(args) -> Path:
    from lowbit.integrations.programs.language.train import LanguageConfig, train

    _check_data(args)
    if args.tau_min > args.tau_start:
        raise CliError(f"train language: argument --tau-min: must be <= --tau-start "
                       f"({args.tau_start:g}), got {args.tau_min:g}")
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


# ------------------------------------------------------------------ parser ---

def _common(p, out: str, with_data: bool = True, quiet: bool = True) -> None:
    """The flags every program has: --data/--data-dir, --seed, --out, --quiet."""
    if with_data:
        p.add_argument("--data", type=dataset_name, default="digits",
                       help="digits (bundled with scikit-learn), fashion-mnist (Debian's "
                            "dataset-fashion-mnist) or a folder of the four IDX files")
        p.add_argument("--data-dir", type=folder, default=None,
                       help="the folder of the four IDX files of --data fashion-mnist")
    p.add_argument("--seed", type=count(0), default=0, help="random seed (an integer >= 0)")
    p.add_argument("--out", type=Path, default=Path(out), help=f"output folder (default {out})")
    if quiet:
        p.add_argument("--quiet", action="store_true", help="no progress bars")



def build_parser() -> argparse.ArgumentParser:
    """The ``lowbit`` argument parser: report, lns-report, compare, train {qnn, eqprop, nodes,
    teacher, language}, experiment and demo, with their options."""
    from lowbit import __version__

    parser = Parser(prog="lowbit",
                    description="Bit-exact emulation of low-precision deep-learning arithmetic.")
    parser.add_argument("--version", action="version", version=f"lowbit {__version__}")
    parser.add_argument("--debug", action="store_true",
                        help="show the traceback of an error (also: LOWBIT_DEBUG=1)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("report", help="per-format error report (markdown + PNG)",
                       description="Cast, dot-product and MLP-accuracy error of each format.")
    p.add_argument("formats", nargs="*", type=fmt,
                   help="format strings, e.g. fixed16.8 lns5.10:interp6 (lowbit.FORMAT_GRAMMAR)")
    p.add_argument("--all", action="store_true", help="the default set of formats")
    _common(p, "results/report", with_data=False, quiet=False)
    p.set_defaults(run=_report)

    p = sub.add_parser("lns-report", help="LNS adders and dot products in detail",
                       description="sb/db error per adder and K-term dot products, LNS(5,10)/(5,7).")
    _common(p, "results/lns", with_data=False, quiet=False)
    p.set_defaults(run=_lns_report)

    p = sub.add_parser("compare", help="short digits training: float vs emulated specs",
                       description="Train one MLP per spec on digits and compare test accuracy.")
    p.add_argument("specs", nargs="*", type=spec(),
                   help="emulation specs (see lowbit.SPEC_GRAMMAR), e.g. float fixed16.12")
    p.add_argument("--epochs", type=count(1), default=8, help="epochs of digits per spec")
    _common(p, "results/training", with_data=False, quiet=False)
    p.set_defaults(run=_compare)

    train = sub.add_parser("train", help="training programs",
                           description="Training programs at emulated precision.")
    tsub = train.add_subparsers(dest="program", required=True, metavar="PROGRAM")
    from lowbit.integrations.programs.qnn import RECIPES

    p = tsub.add_parser("qnn", help="quantized networks and the LNS table",
                        description="Train a QNN recipe (float, binaryconnect, binarynet, ternary, "
                                    "fixed2/4/8, kbit-float), the LNS table's (lns-float, "
                                    "lns-matmul, lns-everywhere, lns-kahan), a mixed-precision "
                                    "one (mp-fp16, mp-bf16, mp-fp8, mp-fp8-hopper, "
                                    "mp-fp8-hopper-promote, mp-mxfp8, mp-mxfp8-train, "
                                    "mp-nvfp4-train, ...) or an emulation spec; resumes from "
                                    "OUT/checkpoint.pt.")
    p.add_argument("--format", type=spec(*RECIPES), default="float",
                   help="a recipe name or an emulation spec")
    p.add_argument("--arch", default="mlp", choices=("mlp", "cnn"))
    p.add_argument("--hidden", type=int_list(","), default=(),
                   help="hidden sizes of the MLP, e.g. 1024,1024 (default: the recipe's)")
    p.add_argument("--epochs", type=count(1), default=10,
                   help="passes over the training set (one step per --batch images)")
    p.add_argument("--batch", type=count(1), default=100)
    p.add_argument("--lr", type=real(0.0), default=0.0, help="learning rate; 0: the recipe's")
    p.add_argument("--lr-decay", type=real(0.0, 1.0, low_open=True), default=1.0,
                   help="lr * decay**epoch, decay in (0, 1]")
    p.add_argument("--lns", type=lns_format, default="lns5.10",
                   help="the LNS format of the lns-* recipes")
    p.add_argument("--loss-scale", type=loss_scale, default="",
                   help="none, dynamic (2^16, halved on overflow, doubled after 2000 clean "
                        "steps) or a static power of two; default: dynamic for mp-fp16, else none")
    _common(p, "results/qnn")
    p.set_defaults(run=_train_qnn)

    p = tsub.add_parser("eqprop", help="equilibrium propagation",
                        description="Train a layered Hopfield network with equilibrium "
                                    "propagation, in float or at emulated precision; 'bp' trains "
                                    "the same network with backprop. Resumes from OUT.")
    p.add_argument("--format", type=spec("bp"), default="float",
                   help="float, bp, or an emulation spec (w: weights, a: states, o: drives, "
                        "acc, gw: updates), e.g. fixed16.14 or lns5.10")
    p.add_argument("--arch", type=int_list("-", 2), default=(784, 500, 10),
                   help="layer sizes (input and output adapt to the data)")
    p.add_argument("--free-steps", type=count(1), default=20)
    p.add_argument("--nudged-steps", type=count(1), default=4)
    p.add_argument("--epsilon", type=real(0.0, 1.0, low_open=True), default=0.5,
                   help="relaxation step, in (0, 1]")
    p.add_argument("--beta", type=real(0.0, low_open=True), default=0.5, help="nudging, > 0")
    p.add_argument("--batch", type=count(1), default=20)
    p.add_argument("--lrs", type=real_list, default=(0.1, 0.05), help="one learning rate per layer")
    p.add_argument("--fixed-sign", action="store_true", help="no random sign of beta")
    p.add_argument("--symmetric", action="store_true", help="the +-beta estimate")
    p.add_argument("--persistent", action="store_true", help="persistent particles")
    p.add_argument("--update", default="plain", choices=("plain", "stochastic", "kahan"))
    p.add_argument("--epochs", type=count(1), default=5,
                   help="passes over the training set (one step per --batch images)")
    p.add_argument("--backend", default=None, choices=("numba", "c"))
    _common(p, "results/eqprop")
    p.set_defaults(run=_train_eqprop)

    p = tsub.add_parser("nodes", help="communicating nodes",
                        description="N nodes train on private shards and share labels, logits "
                        "or features with their ring neighbours (Lacaille 2018); or the "
                        "data-parallel baselines: sync (float32 all-reduce), qsgd and localsgd (model "
                        "averaging every H steps).")
    p.add_argument("--nodes", type=count(1), default=10)
    p.add_argument("--neighbours", type=count(-1), default=-1,
                   help="K nearest on the ring (0..nodes-1); -1: all others")
    p.add_argument("--share", default="labels",
                   choices=("none", "labels", "logits", "features", "sync", "qsgd", "localsgd",
                                                        "async", "es", "pipeline"))
    p.add_argument("--temperature", type=real(0.0, low_open=True), default=1.0,
                   help="softens received logits (> 0)")
    p.add_argument("--broadcast-p", type=real(0.0, 1.0, allow=(-1.0,)), default=-1.0,
                   help="per-minibatch broadcast probability in [0, 1]; -1: consume-p / neighbours")
    p.add_argument("--consume-p", type=real(0.0, 1.0), default=0.5,
                   help="probability of training on the inbox rather than the shard, in [0, 1]")
    p.add_argument("--format", type=spec(), default="float", help="the node models' emulation spec")
    p.add_argument("--message-format", type=message_format, default="float32",
                   help="logits/features (localsgd: parameters) on the wire: float32, float64, "
                        "fixedB.F, a float format (e4m3, ...) or lnsI.F")
    p.add_argument("--model", default="mlp", choices=("mlp", "cnn"))
    p.add_argument("--hidden", type=count(1), default=256, help="units of the feature layer(s)")
    p.add_argument("--batch", type=count(1), default=32)
    p.add_argument("--lr", type=real(0.0, low_open=True), default=1e-3, help="Adam's learning rate")
    p.add_argument("--steps", "--rounds", dest="steps", type=count(1), default=1000,
                   help="training steps per node, one minibatch of --batch each (an epoch of a "
                        "node's shard is shard size / batch steps); --rounds is the old name")
    p.add_argument("--eval-every", type=count(1), default=250, help="in steps")
    p.add_argument("--inbox-cap", type=count(1), default=64, help="messages an inbox holds")
    p.add_argument("--qsgd-levels", type=int_range(1, 127), default=127,
                   help="QSGD levels s (1..127)")
    p.add_argument("--local-steps", type=count(1), default=1, metavar="H",
                   help="localsgd: steps between model averages (H >= 1; 1 = sync SGD)")
    p.add_argument("--local-from", type=count(0), default=0, metavar="STEP",
                   help="localsgd: average every step until STEP, then every H (post-local SGD)")
    p.add_argument("--async-delay", type=real(0.0), default=0.0, metavar="TICKS",
                   help="async: mean push delay (Poisson), in steps")
    p.add_argument("--n-push", type=count(1), default=1, help="async: gradients per push")
    p.add_argument("--n-fetch", type=count(1), default=1, help="async: steps between fetches")
    p.add_argument("--async-apply", default="each", choices=("each", "mean"),
                   help="async: every push is a server step, or the mean of N pushes")
    p.add_argument("--staleness-lr", action="store_true",
                   help="async: learning rate / max(1, staleness) (Zhang et al. 2016)")
    p.add_argument("--es-pairs", type=count(1), default=20,
                   help="es: antithetic pairs per step, over all nodes")
    p.add_argument("--es-sigma", type=real(0.0, low_open=True), default=0.02,
                   help="es: perturbation standard deviation")
    p.add_argument("--es-l2", type=real(0.0), default=0.005, help="es: weight decay")
    p.add_argument("--es-format", default="float",
                   help="es: 'float' (Adam on the estimate) or a signed Fixed format, e.g. "
                        "fixed8.7: integer ES, weights move by whole codes")
    p.add_argument("--es-z", type=real(0.0, low_open=True), default=0.5,
                   help="es, integer: z-score at which a weight moves one code")
    p.add_argument("--micro-batches", type=count(1), default=1,
                   help="pipeline: micro-batches per minibatch (GPipe); stages = --nodes")
    p.add_argument("--grad-format", type=message_format, default=None,
                   help="pipeline: the activation gradients' format on the wire (default: "
                        "--message-format), e.g. e5m2 beside --message-format e4m3")
    p.add_argument("--optimizer", default="adam", choices=("adam", "sgd"),
                   help="every node's optimizer (sgd: plain, no momentum)")
    p.add_argument("--runtime", default="simulated", choices=("simulated", "gloo"))
    p.add_argument("--timeout", type=real(0.0, low_open=True), default=60.0,
                   help="gloo: seconds before a silent neighbour is declared dead")
    p.add_argument("--kill", type=_kill_spec, action="append", default=[],
                   metavar="NODE:ROUND", help="gloo: crash NODE's process at ROUND")
    p.add_argument("--restart", action="store_true", help="gloo: restart crashed nodes")
    _common(p, "results/nodes")
    p.set_defaults(run=_train_nodes)

    p = tsub.add_parser("teacher", help="a teacher selects the student's data",
                        description="A trained 1200-1200 teacher picks the hardest samples of a "
                        "stack of the student's minibatches (Lacaille 2018, chapter 3).")
    p.add_argument("--select", default="ce", choices=("none", "ce", "euclidean", "random"),
                   help="none: the student alone; ce/euclidean: difficulty measure; random")
    p.add_argument("--stack", type=count(1), default=2, help="minibatches on the teacher's stack")
    p.add_argument("--targets", default="soft", choices=("soft", "true"))
    p.add_argument("--temperature", type=real(0.0, low_open=True), default=1.0,
                   help="of the teacher's soft labels (> 0)")
    p.add_argument("--format", type=spec(), default="float", help="the student's emulation spec")
    p.add_argument("--batch", type=count(1), default=32)
    p.add_argument("--steps", "--max-backward", dest="steps", type=count(1), default=40_000,
                   help="student training steps (backward passes, one minibatch of --batch "
                        "each) at most, before early stopping; --max-backward is the old name")
    p.add_argument("--eval-every", type=count(1), default=250, help="in steps")
    p.add_argument("--patience", type=count(1), default=40, help="evaluations without improvement")
    p.add_argument("--teacher-hidden", type=count(1), default=1200, help="units per teacher layer")
    p.add_argument("--teacher-max-epochs", type=count(1), default=60,
                   help="teacher epochs at most (early stopping on validation)")
    p.add_argument("--teacher-lr-drops", type=count(0), default=2,
                   help="times the teacher's learning rate is divided by 10 on a plateau")
    p.add_argument("--teacher-dir", type=Path, default=Path("results/teacher-models"),
                   help="where trained teachers are cached")
    _common(p, "results/teacher")
    p.set_defaults(run=_train_teacher)

    from lowbit.integrations.programs.slide.train import OPTIMIZERS
    from lowbit.integrations.torch.slide import POLICIES

    p = tsub.add_parser("slide", help="LSH-sampled sparse training (SLIDE) against dense",
                        description="A sparse-input MLP V -> 128 -> N on the synthetic "
                        "extreme-classification task, its output layer LSH-sampled; or, on "
                        "images, a wide LSH-sampled hidden layer (784 -> 4096 -> 10).")
    p.add_argument("--data", default="xmc",
                   help="xmc: the synthetic Amazon-670K-like task; fashion-mnist or digits (or "
                        "an IDX folder): the wide-hidden-layer setting")
    p.add_argument("--data-dir", default=None, help="where the image data set is")
    p.add_argument("--labels", type=count(2), default=5000, help="N, output labels")
    p.add_argument("--features", type=count(2), default=20000, help="V, input features")
    p.add_argument("--train-samples", type=count(1), default=20000)
    p.add_argument("--test-samples", type=count(1), default=2000)
    p.add_argument("--hidden", type=count(1), default=None,
                   help="hidden units (default 128 for xmc, 4096 for images)")
    p.add_argument("--policy", choices=POLICIES + ("dense",), default="union",
                   help="sampling policy, or dense (the baseline)")
    p.add_argument("--scope", choices=("sample", "batch"), default="sample",
                   help="sample: each sample's softmax over its own active set (SLIDE); batch: "
                        "over the batch's union (MONGOOSE)")
    p.add_argument("--products", choices=("sparse", "masked"), default="sparse",
                   help="scope sample in float32: per-sample sparse kernels (only each sample's "
                        "active pairs), or the batch union's product with a mask")
    p.add_argument("--hash", choices=("simhash", "dwta"), default="simhash", help="hash family")
    p.add_argument("--dwta-shift", type=int_range(1, 8), default=3,
                   help="DWTA packing shift: 3 concatenates 3-bit codes, 2 is the released code's")
    p.add_argument("--bits", type=int_range(1, 24), default=6, help="K, bits per table")
    p.add_argument("--tables", type=count(1), default=20, help="L, hash tables")
    p.add_argument("--beta", type=count(1), default=64, help="active ids per query (vanilla, topk, "
                                                             "random, oracle)")
    p.add_argument("--min-active", type=count(0), default=0, help="random fill up to this many")
    p.add_argument("--fill", choices=("batch", "sample"), default="batch",
                   help="random fill up to --min-active: the batch's set, or every sample's own "
                        "(the released SLIDE code)")
    p.add_argument("--threshold", type=count(1), default=2, help="threshold policy: buckets")
    p.add_argument("--rebuild", choices=("period", "change"), default="period")
    p.add_argument("--rebuild-every", type=count(1), default=50, help="batches between rebuilds")
    p.add_argument("--rebuild-growth", type=real(1.0), default=1.0,
                   help="factor of the period after each rebuild (1: fixed)")
    p.add_argument("--change-threshold", type=real(0.0, 1.0, low_open=True), default=0.1,
                   help="--rebuild change: rebuild when more than this fraction of the rows' "
                        "1-bit sketch has flipped since the last rebuild (MONGOOSE)")
    p.add_argument("--format", type=spec(), default="float", help="the output layer's spec")
    p.add_argument("--optimizer", choices=OPTIMIZERS, default="adam_dense")
    p.add_argument("--master", type=master_format, default="float",
                   help="the SLIDE (or dense) layer's master weights: float (float32) or a "
                        "format such as bf16; every Adam update is applied in it")
    p.add_argument("--update", default="plain", choices=("plain", "stochastic", "kahan"),
                   help="--master: how an update meets the weights (plain: round to nearest)")
    p.add_argument("--lr", type=real(0.0, low_open=True), default=1e-2, help="Adam's")
    p.add_argument("--batch", type=count(1), default=128)
    p.add_argument("--epochs", type=count(1), default=2)
    _common(p, "results/slide", with_data=False)
    p.set_defaults(run=_train_slide)

    p = tsub.add_parser("language", help="two agents learn a bit language",
                        description="Two agents see an image through different inverting masks "
                        "and exchange L-bit Gumbel-softmax messages (Lacaille 2018, chapter 4).")
    p.add_argument("--level", default="none", choices=("none", "receive", "feedback", "both"),
                   help="communication level")
    p.add_argument("--length", type=count(1), default=32, help="message length L in bits")
    p.add_argument("--frozen", action="store_true",
                   help="control: keep the agents at their initial weights (only the probe trains)")
    p.add_argument("--weight", type=real(0.0, allow=(-1.0,)), default=-1.0,
                   help="weight of the message cross-entropy (>= 0); -1: 0.01 one-way, "
                        "0.005 two-way")
    p.add_argument("--noise", type=real(0.0, 1.0), default=0.2,
                   help="probability of inverting a pixel, in [0, 1]")
    p.add_argument("--hidden", type=count(1), default=256)
    p.add_argument("--tau-start", type=real(0.0, low_open=True), default=1.0)
    p.add_argument("--tau-decay", type=real(0.0, 1.0, low_open=True), default=0.9,
                   help="in (0, 1]")
    p.add_argument("--tau-every", type=count(1), default=500, help="in steps")
    p.add_argument("--tau-min", type=real(0.0, low_open=True), default=0.5)
    p.add_argument("--batch", type=count(1), default=64)
    p.add_argument("--lr", type=real(0.0, low_open=True), default=1e-3)
    p.add_argument("--steps", type=count(1), default=10_000,
                   help="training steps, one minibatch of --batch images each (an epoch is "
                        "training-set size / batch steps)")
    p.add_argument("--eval-every", type=count(1), default=250, help="in steps")
    p.add_argument("--format", type=spec(), default="float", help="the agents' emulation spec")
    p.add_argument("--loss-scale", type=real(0.0, low_open=True), default=1.0,
                   help="static loss scale (emulated gradients; gradients are divided by it "
                        "before the optimizer step)")
    _common(p, "results/language")
    p.set_defaults(run=_train_language)

    p = sub.add_parser("energy", help="estimated pJ per training step by format (markdown + PNG)",
                       description="Count one training step's operations under each spec and "
                                   "cost them from Horowitz's 45 nm table: an estimate from "
                                   "published tables, not a measurement.")
    p.add_argument("--format", dest="formats", nargs="+", type=spec(), required=True,
                   help="emulation specs (fp32 is always the first column), e.g. bf16 e4m3 "
                        "fixed16.8 w=binary lns5.10:interp6")
    p.add_argument("--model", type=model_name, default="mlp",
                   help="mlp (784-256-256-10), cnn, or module:callable returning "
                        "(model, example_inputs)")
    p.add_argument("--batch", type=count(1), default=32, help="batch of the built-in models")
    p.add_argument("--node", type=int_range(3, 45), default=45, help="process node in nm")
    p.add_argument("--vdd", type=float, choices=(0.8, 0.9), default=0.9)
    p.add_argument("--sb", choices=("free", "logic", "sram"), default="logic",
                   help="cost model of an LNS sb/db table read (all three are shown as a range)")
    p.add_argument("--memory", type=memory_policy, default="none",
                   help="none (arithmetic only), dram, or sram:SIZE such as sram:32KB")
    p.add_argument("--json", action="store_true", help="print the JSON form")
    _common(p, "results/energy", with_data=False, quiet=False)
    p.set_defaults(run=_energy)

    p = sub.add_parser("inspect", help="which ops of a model run in the emulator (coverage)",
                       description="One forward pass under lowbit.emulate: a per-op table "
                                   "with MACs, formats, emulated or float and why.")
    p.add_argument("model", type=model_name, help="mlp, cnn, or module:callable returning "
                                                  "(model, example_inputs)")
    p.add_argument("--format", type=spec(), default="bf16", help="the emulation spec")
    p.add_argument("--batch", type=count(1), default=2, help="batch of the built-in models")
    _common(p, "results/inspect", with_data=False, quiet=False)
    p.set_defaults(run=_inspect)

    from lowbit.integrations.programs import GRIDS

    p = sub.add_parser("experiment", help="the result grids of docs/results (long runs)",
                       description="Run a grid of training runs (resumable) or write the tables.")
    p.add_argument("action", choices=("run", "tables"))
    p.add_argument("grid", nargs="?", default="qnn", choices=GRIDS)
    p.add_argument("--data", type=dataset_name, default="digits",
                   help="digits, fashion-mnist or a folder of the four IDX files")
    p.add_argument("--data-dir", type=folder, default=None, help=argparse.SUPPRESS)
    p.add_argument("--seeds", type=count(1), default=3, help="seeds 0..N-1")
    p.add_argument("--epochs", type=count(1), default=10,
                   help="the qnn, lns* and eqprop* grids: epochs per run")
    p.add_argument("--steps", "--rounds", dest="steps", type=count(1), default=5000,
                   help="the nodes grids: training steps per node (--rounds: the old name)")
    p.add_argument("--root", type=Path, default=Path("results/experiments"))
    p.add_argument("--docs", type=Path, default=Path("docs/results"))
    p.set_defaults(run=_experiment)

    p = sub.add_parser("demo", help="the main job: report --all and the training comparison",
                       description="Runs `lowbit report --all` and `lowbit compare`.")
    p.add_argument("--epochs", type=count(1), default=8)
    _common(p, "results", with_data=False, quiet=False)
    p.set_defaults(run=_demo)
    return parser


def int_range(low: int, high: int):
    """An int in low..high."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be an integer in {low}..{high}, got {text!r}")
        return value
    parse.__name__ = "int_range"
    return parse


# the exceptions that mean "bad input", found once the values reach the library
USER_ERRORS = (ValueError, TypeError, FileNotFoundError, NotADirectoryError, IsADirectoryError,
               PermissionError, NotImplementedError)


def main(argv: list[str] | None = None) -> int:
    """Run the ``lowbit`` command line ``argv`` (default: sys.argv); print where results went.

    Returns the exit status: 0, or 2 after one ``lowbit: error: …`` line on stderr for a
    user's mistake (1 for another failure of the system, 130 when interrupted); with
    ``--debug`` or ``LOWBIT_DEBUG=1`` errors propagate with their traceback.
    """
    argv = sys.argv[1:] if argv is None else list(argv)
    debug = "--debug" in argv or os.environ.get("LOWBIT_DEBUG", "") not in ("", "0")
    try:
        args = build_parser().parse_args(argv)
        args.command_name = " ".join(x for x in (args.command, getattr(args, "program", None))
                                     if x)
        path = args.run(args)
    except CliError as exc:
        if debug:
            raise
        print(f"lowbit: error: {exc}", file=sys.stderr)
        return 2
    except USER_ERRORS as exc:
        if debug:
            raise
        print(f"lowbit: error: {_one_line(exc)} (LOWBIT_DEBUG=1 shows where)", file=sys.stderr)
        return 2
    except OSError as exc:
        if debug:
            raise
        print(f"lowbit: error: {_one_line(exc)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        if debug:
            raise
        print("lowbit: interrupted", file=sys.stderr)
        return 130
    if args.command not in ("demo", "train", "experiment"):
        print(path.read_text())
    print(f"results written to {Path(path if args.command in ('demo', 'experiment') else path.parent).resolve()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
