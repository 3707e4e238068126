"""A fork server that runs one ``lowbit`` command line again and again, each time in a
child process that SIGKILLs itself at a chosen moment of writing its files (used by
test_kill_resume.py; forking from a warm process saves the imports of every run).

``python kill_driver.py ARGV...`` reads one JSON request per line on stdin,
``{"plan": PLAN, "kill_after": SECONDS or null}``, runs ``lowbit ARGV`` in a fresh child
and answers one JSON line, ``{"status": exit code or -signal, "stderr": text}``. PLAN:

- ``{}``: no planned kill (``kill_after`` may still SIGKILL the child from outside);
- ``{"write": NAME, "occurrence": n, "call": m}``: at the m-th ``write`` call into the
  temporary file of the n-th file named NAME the child writes (``checkpoint.new.pt`` is a
  checkpoint being written), after writing half of that call's bytes;
- ``{"rename_to": NAME, "occurrence": n}``: just before the n-th ``os.replace`` onto NAME
  (``checkpoint.pt``: between the two renames of a checkpoint save).

The kill is real (SIGKILL: no cleanup, no flush); the real writing code runs, with
``open`` and ``os`` wrapped inside ``lowbit.integrations.runs`` only.
"""

from __future__ import annotations

import builtins
import json
import os
import signal
import sys
import tempfile
import time
from pathlib import Path

import matplotlib.pyplot  # noqa: F401 - what the runs import, imported once before forking
import sklearn.datasets  # noqa: F401
import torch._dynamo  # noqa: F401 - torch.optim's first optimizer imports it (2 s)
import tqdm  # noqa: F401

import lowbit.integrations.programs.eqprop.train  # noqa: F401
import lowbit.integrations.programs.nodes.train  # noqa: F401
import lowbit.integrations.programs.qnn.train  # noqa: F401
from lowbit.integrations import cli, runs


def die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def install(plan: dict) -> None:
    """Wrap ``open`` and ``os`` inside lowbit.integrations.runs to kill at ``plan``."""
    seen: dict[str, int] = {}

    def hit(kind: str, name: str) -> bool:
        if plan.get(kind) != name:
            return False
        seen[name] = seen.get(name, 0) + 1
        return seen[name] == plan["occurrence"]

    class Tripwire:
        """A file whose m-th write writes half its bytes and kills the process."""

        def __init__(self, fh, calls: int):
            self._fh, self._left = fh, calls

        def write(self, data):
            self._left -= 1
            if self._left <= 0:
                self._fh.write(bytes(data)[:len(data) // 2])
                self._fh.flush()
                die()
            return self._fh.write(data)

        def __getattr__(self, name):
            return getattr(self._fh, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return self._fh.__exit__(*exc)

    def tripwire_open(file, mode="r", *args, **kwargs):
        fh = builtins.open(file, mode, *args, **kwargs)
        name = Path(file).name
        if "w" in mode and name.startswith(".") and runs.TMP_MARK in name:
            if hit("write", name[1:].split(runs.TMP_MARK)[0]):
                return Tripwire(fh, plan["call"])
        return fh

    class TripwireOs:
        def __getattr__(self, name):
            return getattr(os, name)

        def replace(self, src, dst):
            if hit("rename_to", Path(dst).name):
                die()
            return os.replace(src, dst)

    runs.open = tripwire_open  # module globals shadow the builtins inside runs only
    runs.os = TripwireOs()


def serve(argv: list[str]) -> None:
    for line in sys.stdin:
        req = json.loads(line)
        err = tempfile.TemporaryFile(mode="w+")
        pid = os.fork()
        if pid == 0:  # the child: run the command under the plan
            os.dup2(err.fileno(), 2)
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, 1)
            install(req["plan"])
            try:
                code = cli.main(argv)
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else 1
            except BaseException:  # noqa: BLE001 - reported as the child's failure
                import traceback

                traceback.print_exc()
                code = 1
            sys.stderr.flush()
            os._exit(code)
        deadline = None if req.get("kill_after") is None else time.monotonic() + req["kill_after"]
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            if deadline is not None and time.monotonic() >= deadline:
                os.kill(pid, signal.SIGKILL)
                deadline = None
            time.sleep(0.01)
        err.seek(0)
        code = -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
        print(json.dumps({"status": code, "stderr": err.read()}), flush=True)
        err.close()


if __name__ == "__main__":
    serve(sys.argv[1:])
