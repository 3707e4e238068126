"""A user's mistake on the command line ends in one ``lowbit: error:`` line naming the
argument, exit status 2, and no traceback — for every subcommand and every kind of
mistake: a bad format or spec string, a missing data folder, a value out of range, an
unknown choice, an impossible combination."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from lowbit.integrations.cli import main

EMPTY = "EMPTY_DIR"  # replaced by an empty folder
MISTAKES = [
    # (argv, what the error line must name)
    (["train-everything"], "invalid choice: 'train-everything'"),
    (["train"], "the following arguments are required: PROGRAM"),
    (["report", "fixed99.3"], "argument formats: cannot parse format 'fixed99.3'"),
    (["report", "--seed", "-1"], "argument --seed: must be an integer >= 0, got -1"),
    (["report", "--frobnicate"], "unrecognized arguments: --frobnicate"),
    (["lns-report", "--seed", "x"], "argument --seed: must be an integer >= 0, got 'x'"),
    (["compare", "binary"], "argument specs: cannot parse emulation spec 'binary'"),
    (["compare", "--epochs", "0"], "argument --epochs: must be an integer >= 1, got 0"),
    (["demo", "--epochs", "-3"], "argument --epochs: must be an integer >= 1, got -3"),
    (["train", "qnn", "--format", "binary"], "gradients cannot be binary or ternary"),
    (["train", "qnn", "--format", "fixed8.x"], "argument --format: cannot parse"),
    (["train", "qnn", "--data", "/nonexistent"], "argument --data: must be digits, fashion-mnist"),
    (["train", "qnn", "--data", "fashion-mnist", "--data-dir", EMPTY],
     "argument --data: Fashion-MNIST is not in"),
    (["train", "qnn", "--data", EMPTY], "argument --data: dataset folder"),
    (["train", "qnn", "--data-dir", "/nonexistent"], "argument --data-dir: must be an existing"),
    (["train", "qnn", "--epochs", "-1"], "argument --epochs: must be an integer >= 1, got -1"),
    (["train", "qnn", "--arch", "rnn"], "argument --arch: invalid choice: 'rnn'"),
    (["train", "qnn", "--lns", "fixed8.4"], "argument --lns: must be an LNS format"),
    (["train", "qnn", "--lr-decay", "1.5"], "argument --lr-decay: must be a number in (0, 1]"),
    (["train", "qnn", "--hidden", "64,0"], "argument --hidden: must be at least 1 positive"),
    (["train", "qnn", "--lr", "nan"], "argument --lr: must be a number >= 0, got nan"),
    (["train", "eqprop", "--arch", "64-32-10", "--lrs", "0.1"],
     "argument --lrs: needs one learning rate per layer"),
    (["train", "eqprop", "--epsilon", "0"], "argument --epsilon: must be a number in (0, 1]"),
    (["train", "eqprop", "--arch", "64"], "argument --arch: must be at least 2 positive"),
    (["train", "eqprop", "--format", "lns5.x"], "argument --format: cannot parse"),
    (["train", "eqprop", "--update", "fancy"], "argument --update: invalid choice: 'fancy'"),
    (["train", "eqprop", "--epochs", "0"], "argument --epochs: must be an integer >= 1"),
    (["train", "nodes", "--nodes", "0"], "argument --nodes: must be an integer >= 1, got 0"),
    (["train", "nodes", "--nodes", "3", "--neighbours", "12"],
     "argument --neighbours: at most --nodes - 1 = 2"),
    (["train", "nodes", "--kill", "0:3"], "argument --kill/--restart: needs --runtime gloo"),
    (["train", "nodes", "--runtime", "gloo", "--nodes", "3", "--kill", "5:3"],
     "argument --kill: node 5 does not exist"),
    (["train", "nodes", "--consume-p", "1.5"], "argument --consume-p: must be a number in [0, 1]"),
    (["train", "nodes", "--broadcast-p", "-0.5"], "argument --broadcast-p: must be a number in"),
    (["train", "nodes", "--qsgd-levels", "200"], "argument --qsgd-levels: must be an integer in"),
    (["train", "nodes", "--message-format", "binary"], "argument --message-format: must be"),
    (["train", "nodes", "--steps", "0"], "argument --steps/--rounds: must be an integer >= 1"),
    (["train", "nodes", "--rounds", "-5"], "argument --steps/--rounds: must be an integer >= 1"),
    (["train", "teacher", "--stack", "0"], "argument --stack: must be an integer >= 1, got 0"),
    (["train", "teacher", "--max-backward", "0"], "argument --steps/--max-backward: must be"),
    (["train", "teacher", "--select", "best"], "argument --select: invalid choice: 'best'"),
    (["train", "teacher", "--format", "ternary"], "gradients cannot be binary or ternary"),
    (["train", "teacher", "--temperature", "0"], "argument --temperature: must be a number > 0"),
    (["train", "language", "--noise", "2"], "argument --noise: must be a number in [0, 1], got 2"),
    (["train", "language", "--tau-min", "2"], "argument --tau-min: must be <= --tau-start"),
    (["train", "language", "--steps", "0"], "argument --steps: must be an integer >= 1, got 0"),
    (["train", "language", "--level", "all"], "argument --level: invalid choice: 'all'"),
    (["train", "language", "--weight", "-2"], "argument --weight: must be a number >= 0 or -1"),
    (["experiment", "run", "bogus"], "argument grid: invalid choice: 'bogus'"),
    (["experiment", "run", "qnn", "--seeds", "0"], "argument --seeds: must be an integer >= 1"),
    (["experiment", "run", "qnn", "--data", "/nonexistent"], "argument --data: must be digits"),
    (["experiment", "run", "nodes", "--rounds", "0"], "argument --steps/--rounds: must be"),
    (["experiment", "sail"], "argument action: invalid choice: 'sail'"),
    (["energy"], "the following arguments are required: --format"),
    (["energy", "--format", "fixed8.x"], "argument --format: cannot parse"),
    (["energy", "--format", "bf16", "--memory", "hbm"], "argument --memory: memory policy must be"),
    (["energy", "--format", "bf16", "--node", "2"], "argument --node: must be an integer in 3..45"),
    (["energy", "--format", "bf16", "--sb", "rom"], "argument --sb: invalid choice: 'rom'"),
    (["energy", "--format", "bf16", "--model", "resnet"], "argument --model: must be mlp, cnn or"),
    (["energy", "--format", "bf16", "--model", "no_such_module:f"], "cannot load model"),
    (["inspect", "mlp", "--format", "w=binary,gi=binary"], "gradients cannot be binary"),
    (["inspect", "x:"], "argument model: must be mlp, cnn or module:callable"),
    (["train", "slide", "--policy", "greedy"], "argument --policy: invalid choice: 'greedy'"),
    (["train", "slide", "--bits", "30"], "argument --bits: must be an integer in 1..24"),
    (["train", "slide", "--change-threshold", "0"], "argument --change-threshold: must be a number in (0, 1]"),
    (["train", "slide", "--data", "cifar"], "argument --data: dataset folder cifar does not exist"),
    (["train", "slide", "--format", "w=binary,gi=binary"], "gradients cannot be binary"),
]


def _argv(argv, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir(exist_ok=True)
    return [str(empty) if a == EMPTY else a for a in argv] + (
        ["--out", str(tmp_path / "out")] if argv[:1] == ["train"] and len(argv) > 1 else [])


def _one_error_line(err: str, expected: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, f"expected one line, got:\n{err}"
    assert lines[0].startswith("lowbit: error: "), lines[0]
    assert expected in lines[0], lines[0]
    assert "Traceback" not in err
    return lines[0]


@pytest.mark.parametrize("argv, expected", MISTAKES, ids=[" ".join(a) for a, _ in MISTAKES])
def test_a_mistake_is_one_line_and_status_2(argv, expected, tmp_path, capsys):
    """The error names the argument and what it accepts; nothing runs, nothing is written."""
    assert main(_argv(argv, tmp_path)) == 2
    out, err = capsys.readouterr()
    _one_error_line(err, expected)
    assert out == ""
    assert not (tmp_path / "out").exists()


def test_a_mistake_found_past_parsing_is_one_line_too(tmp_path, capsys):
    """--out holding another run's checkpoint: the program's ValueError, as one line."""
    out = str(tmp_path / "run")
    assert main(["train", "qnn", "--hidden", "8", "--epochs", "1", "--quiet", "--out", out]) == 0
    capsys.readouterr()
    assert main(["train", "qnn", "--format", "fixed4", "--hidden", "8", "--epochs", "1",
                 "--quiet", "--out", out]) == 2
    _one_error_line(capsys.readouterr().err, "belongs to another run")


@pytest.mark.parametrize("argv", [["train", "qnn", "--epochs", "-1"],
                                  ["report", "fixed99.3"],
                                  ["train", "nodes", "--nodes", "0"]])
def test_the_installed_command_prints_no_traceback(argv, tmp_path):
    """Through `python -m lowbit` (a real process): status 2, one line, no traceback;
    with LOWBIT_DEBUG=1 the traceback is shown."""
    cmd = [sys.executable, "-m", "lowbit"] + argv
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 2
    _one_error_line(proc.stderr, "lowbit: error:")
    debug = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path,
                           env={**os.environ, "LOWBIT_DEBUG": "1"})
    assert debug.returncode != 0 and "Traceback" in debug.stderr


def test_version_and_module_entry_point(tmp_path):
    """`python -m lowbit --version` prints the package's version."""
    import lowbit

    proc = subprocess.run([sys.executable, "-m", "lowbit", "--version"], capture_output=True,
                          text=True, cwd=tmp_path, check=True)
    assert proc.stdout.strip() == f"lowbit {lowbit.__version__}"


def test_old_length_flags_still_work():
    """--rounds (nodes, experiment) and --max-backward (teacher) are the documented old
    spellings of --steps."""
    from lowbit.integrations.cli import build_parser

    p = build_parser()
    assert p.parse_args(["train", "nodes", "--rounds", "7"]).steps == 7
    assert p.parse_args(["train", "teacher", "--max-backward", "9"]).steps == 9
    assert p.parse_args(["experiment", "run", "nodes", "--rounds", "11"]).steps == 11
