"""The files a run writes, written so that a kill at any moment loses nothing.

Every file (checkpoints, ``metrics.csv``, ``summary.json``, plots, tables) is written
to a temporary file in the same folder, flushed to disk and moved into place with
``os.replace``, which is atomic: a reader, or a run resumed after a kill, sees the
old file or the new one, never a torn one. A checkpoint also keeps its predecessor
(``checkpoint.prev.pt`` beside ``checkpoint.pt``) until the new one is complete, and
:func:`load_checkpoint` falls back to it, saying so in one line, when the newest
cannot be read.

A training program's ``--out`` folder holds ``metrics.csv`` (one row per
evaluation, columns in the order of the first row), ``summary.json`` and
``curve.png`` (the chosen metric columns against the step column), written by
:func:`write_run`, and its checkpoint.
"""

from __future__ import annotations

import csv
import io
import json
import os
import sys
from pathlib import Path
from typing import Callable

import numpy as np

TMP_MARK = ".tmp-"


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write(path: Path | str, write: Callable) -> Path:
    """Create or replace ``path`` atomically: ``write(fh)`` fills a temporary binary file
    in the same folder, which is flushed, fsynced and renamed over ``path``. On an error
    the temporary file is removed and ``path`` is left as it was. Returns ``path``."""
    path = Path(path)
    for stale in path.parent.glob(f".{path.name}{TMP_MARK}*"):  # left by a killed writer
        stale.unlink(missing_ok=True)
    tmp = path.with_name(f".{path.name}{TMP_MARK}{os.getpid()}")
    try:
        with open(tmp, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)
    return path


def write_bytes(path: Path | str, data: bytes) -> Path:
    """``path.write_bytes(data)``, atomically (:func:`atomic_write`)."""
    return atomic_write(path, lambda fh: fh.write(data))


def write_text(path: Path | str, text: str) -> Path:
    """``path.write_text(text)`` (UTF-8), atomically (:func:`atomic_write`)."""
    return write_bytes(path, text.encode("utf-8"))


def save_figure(fig, path: Path | str, **kwargs) -> Path:
    """``fig.savefig(path, **kwargs)``, atomically; the format comes from the suffix."""
    path = Path(path)
    kwargs.setdefault("format", path.suffix.lstrip("."))
    return atomic_write(path, lambda fh: fig.savefig(fh, **kwargs))


def write_csv(path: Path | str, rows: list, header: list[str] | None = None) -> Path:
    """Rows as CSV under a header line, atomically. Rows are dicts (columns: ``header``,
    default the first row's keys) or sequences (then ``header`` is required)."""
    buf = io.StringIO(newline="")
    if rows and isinstance(rows[0], dict):
        w = csv.DictWriter(buf, fieldnames=header or list(rows[0]))
        w.writeheader()
    else:
        if header is None:
            raise ValueError("write_csv: rows that are not dicts need a header")
        w = csv.writer(buf)
        w.writerow(header)
    w.writerows(rows)
    return write_text(path, buf.getvalue())


def previous(path: Path | str) -> Path:
    """Where :func:`save_checkpoint` keeps the checkpoint before ``path``:
    ``checkpoint.pt`` -> ``checkpoint.prev.pt``."""
    path = Path(path)
    return path.with_name(f"{path.stem}.prev{path.suffix}")


def save_checkpoint(path: Path | str, dump: Callable) -> Path:
    """Write a checkpoint with ``dump(fh)`` so that a kill at any moment leaves a readable
    one: the new checkpoint is completed in a temporary file first; then the current one
    becomes :func:`previous` and the new one takes its place (two atomic renames; a kill
    between them leaves the previous one, which :func:`load_checkpoint` finds)."""
    path = Path(path)
    new = path.with_name(f"{path.stem}.new{path.suffix}")
    atomic_write(new, dump)
    if path.exists():
        os.replace(path, previous(path))
    os.replace(new, path)
    _fsync_dir(path.parent)
    return path


def _numpy_globals() -> list:
    """The numpy names a checkpoint's arrays and scalars pickle to: constructors of arrays,
    dtypes and scalars from their bytes, which run no other code."""
    import numpy.dtypes

    from numpy._core.multiarray import _reconstruct, scalar

    dtypes = [getattr(numpy.dtypes, n) for n in numpy.dtypes.__all__]
    return [_reconstruct, scalar, np.ndarray, np.dtype, *dtypes]


def torch_load(fh):
    """A checkpoint written by ``torch.save``, read with ``weights_only=True``: tensors,
    numbers, strings, bytes, containers and numpy arrays/scalars, never arbitrary objects
    (a crafted checkpoint cannot run code)."""
    import torch

    with torch.serialization.safe_globals(_numpy_globals()):
        return torch.load(fh, weights_only=True)


def load_checkpoint(path: Path | str, load: Callable, log=None):
    """The newest readable checkpoint at ``path`` (``load(fh)`` of it), else of
    :func:`previous` (``path`` damaged or missing), else None (no checkpoint: start
    afresh). A checkpoint that cannot be read is reported in one line on ``log``
    (default stderr), naming the file, the error and what the run does instead."""
    path = Path(path)
    log = sys.stderr if log is None else log
    problems = []
    for candidate in (path, previous(path)):
        if not candidate.exists():
            continue
        try:
            with open(candidate, "rb") as fh:
                state = load(fh)
        except Exception as exc:  # a torn or corrupt file: any reader error
            problems.append(f"{candidate.name} is damaged ({type(exc).__name__}: "
                            f"{str(exc).splitlines()[0] if str(exc) else 'no detail'})")
            continue
        if problems or candidate != path:
            why = "; ".join(problems) or f"{path.name} is missing"
            print(f"lowbit: {path.parent}: {why}; resuming from {candidate.name}", file=log)
        return state
    if problems:
        print(f"lowbit: {path.parent}: {'; '.join(problems)}; no readable checkpoint, "
              "starting from scratch", file=log)
    return None


def write_run(out: Path, metrics: list[dict], summary: dict, x: str, curves: dict[str, str],
              title: str, xlabel: str, ylabel: str = "accuracy") -> None:
    """Write metrics.csv, summary.json and curve.png (``curves``: legend -> column), each
    atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out)
    write_csv(out / "metrics.csv", metrics)
    write_text(out / "summary.json", json.dumps(summary, indent=1))
    fig, ax = plt.subplots(figsize=(6, 3.6))
    steps = [m[x] for m in metrics]
    for (label, column), marker in zip(curves.items(), "ox.s^v"):
        ax.plot(steps, [m[column] for m in metrics], marker=marker, ms=3, label=label)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, out / "curve.png", dpi=100)
    plt.close(fig)


def finished(summary: dict) -> bool:
    """Whether a stored run is finished: its own ``done`` flag (nodes, language), else
    ``epochs_done`` against its configured epochs (qnn, lns, eqprop). Tables leave
    unfinished runs out, so that no row mixes final and intermediate numbers."""
    if "done" in summary:
        return bool(summary["done"])
    return summary.get("epochs_done", 0) >= summary.get("config", {}).get("epochs", 0)


def read_metrics(out: Path) -> list[dict]:
    """metrics.csv back as dicts of floats."""
    with open(Path(out) / "metrics.csv") as fh:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(fh)]


def mean_std(values, scale: float = 1.0, digits: int = 1) -> str:
    """"m ± s" (sample std) of the values that are not None, times ``scale``;
    the bare value for one, "-" for none."""
    v = np.array([x for x in values if x is not None], dtype=float) * scale
    if len(v) == 0:
        return "-"
    if len(v) == 1:
        return f"{v[0]:,.{digits}f}"
    return f"{v.mean():,.{digits}f} ± {v.std(ddof=1):,.{digits}f}"
