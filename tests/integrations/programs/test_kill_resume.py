"""A run SIGKILLed at any moment — in the middle of writing its checkpoint, between the
two renames that install it, while writing its metrics, summary or plot, at a random
time — and resumed each time with the same command line ends with exactly the state
and metrics of an uninterrupted run; a damaged checkpoint is reported in one line and
the run continues from the previous one."""

from __future__ import annotations

import dataclasses
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from lowbit.integrations import cli
from lowbit.integrations.runs import load_checkpoint, previous, torch_load

DRIVER = Path(__file__).with_name("kill_driver.py")

# program: (argv without --out, checkpoint name, epochs or evaluations, progress of a state)
PROGRAMS = {
    "qnn": (["train", "qnn", "--format", "lns-kahan", "--data", "digits", "--hidden", "32",
             "--epochs", "3", "--quiet"], "checkpoint.pt", 3, lambda st: st["epoch"]),
    "eqprop": (["train", "eqprop", "--format", "fixed12.10", "--arch", "64-32-10",
                "--epochs", "3", "--data", "digits", "--quiet"], "checkpoint.pt", 3,
               lambda st: st["epoch"]),
    "nodes": (["train", "nodes", "--nodes", "3", "--share", "logits", "--rounds", "60",
               "--eval-every", "20", "--hidden", "16", "--data", "digits", "--quiet"],
              "checkpoint.pt", 3, lambda st: st["round"] // 20),
}


def _load(path: Path):
    def read(fh):
        return torch_load(fh)
    return load_checkpoint(path, read)


def _same(a, b, where="state"):
    """a and b are equal to the bit, apart from wall-clock times and output paths."""
    if isinstance(a, dict):
        keys = {k for k in a if "seconds" not in str(k) and k != "out"}
        assert keys == {k for k in b if "seconds" not in str(k) and k != "out"}, where
        for k in keys:
            _same(a[k], b[k], f"{where}[{k!r}]")
    elif isinstance(a, (list, tuple)):
        assert type(a) is type(b) and len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            _same(x, y, f"{where}[{i}]")
    elif dataclasses.is_dataclass(a):
        assert type(a) is type(b), where
        for f in dataclasses.fields(a):
            _same(getattr(a, f.name), getattr(b, f.name), f"{where}.{f.name}")
    elif isinstance(a, torch.Tensor):
        assert a.dtype == b.dtype and torch.equal(a, b), where
    elif isinstance(a, np.ndarray):
        assert a.dtype == b.dtype and np.array_equal(a, b, equal_nan=a.dtype.kind == "f"), where
    else:
        assert a == b or (a != a and b != b), f"{where}: {a!r} != {b!r}"


def _table(path: Path) -> list[dict]:
    import csv

    with open(path) as fh:
        return [{k: v for k, v in row.items() if "seconds" not in k} for row in csv.DictReader(fh)]


class Driver:
    """kill_driver.py as a fork server for one command line: each run is a child process."""

    def __init__(self, argv: list[str]):
        self.proc = subprocess.Popen([sys.executable, str(DRIVER)] + argv, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True)

    def run(self, plan: dict, kill_after: float | None = None) -> tuple[int, str]:
        """(exit status or -signal, stderr) of one run under ``plan``."""
        self.proc.stdin.write(json.dumps({"plan": plan, "kill_after": kill_after}) + "\n")
        self.proc.stdin.flush()
        answer = json.loads(self.proc.stdout.readline())
        return answer["status"], answer["stderr"]

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(60)


@pytest.mark.parametrize("program", sorted(PROGRAMS))
def test_killed_and_resumed_run_ends_as_an_uninterrupted_one(program, tmp_path):
    """Every kill moment is reached (the process dies of SIGKILL), every resume continues,
    and the final checkpoint, metrics and summary equal the uninterrupted run's."""
    argv, ckpt_name, evals, progress = PROGRAMS[program]
    ref, run = tmp_path / "uninterrupted", tmp_path / "killed"
    t0 = time.perf_counter()
    assert cli.main(argv + ["--out", str(ref)]) == 0
    duration = time.perf_counter() - t0
    driver = Driver(argv + ["--out", str(run)])
    ckpt = run / ckpt_name
    new = ckpt.with_name(f"{ckpt.stem}.new{ckpt.suffix}").name
    plans = [
        {"write": new, "occurrence": 1, "call": 1},      # torn first checkpoint, none before
        {"write": new, "occurrence": 2, "call": 1},      # torn checkpoint, a good one on disk
        {"rename_to": ckpt.name, "occurrence": 1},       # between the two renames of a save
        {"write": "metrics.csv", "occurrence": 1, "call": 1},
        {"write": "curve.png", "occurrence": 1, "call": 1},
    ]
    messages = []
    for plan in plans:
        code, err = driver.run(plan)
        assert code == -signal.SIGKILL, f"{plan}: not killed (exit {code}): {err[-2000:]}"
        messages.append(err)
    assert "checkpoint" in messages[3] and "missing; resuming from" in messages[3]
    # a damaged newest checkpoint (say, a disk error): reported, and the previous one used
    assert previous(ckpt).exists()
    ckpt.write_bytes(ckpt.read_bytes()[: ckpt.stat().st_size // 2])
    left = evals - progress(_load(previous(ckpt)))
    code, err = driver.run({"write": "summary.json", "occurrence": left, "call": 1})
    assert code == -signal.SIGKILL
    damaged = [line for line in err.splitlines() if "damaged" in line]
    assert len(damaged) == 1 and f"resuming from {previous(ckpt).name}" in damaged[0], err
    # the checkpoint of the last evaluation is on disk, the summary lags: a resume rewrites it
    assert progress(_load(ckpt)) == evals
    assert json.loads((run / "summary.json").read_text()) != json.loads(
        (ref / "summary.json").read_text())
    code, err = driver.run({}, kill_after=0.5 * duration)  # a kill from outside, mid-run
    assert code in (0, -signal.SIGKILL), err
    code, err = driver.run({})
    assert code == 0, err
    driver.close()
    _same(_load(ckpt), _load(ref / ckpt_name))
    assert _table(run / "metrics.csv") == _table(ref / "metrics.csv")
    _same(json.loads((run / "summary.json").read_text()),
          json.loads((ref / "summary.json").read_text()), "summary")
    assert not list(run.glob(".*.tmp-*")), "a temporary file was left behind"
