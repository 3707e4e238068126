"""``lowbit experiment``: the result grids behind docs/results, by name.

``lowbit experiment run GRID --data D --seeds N --epochs E`` trains every run of a grid
into ``--root/GRID/DATA/NAME/seedS`` (resuming unfinished runs, skipping finished ones);
``lowbit experiment tables`` reads every summary.json under the root and writes the
result pages. Each grid lives beside its program:

- ``qnn``: :mod:`lowbit.integrations.programs.qnn.grid`;
- ``mixed-precision``, ``mp-large-batch``: :mod:`lowbit.integrations.programs.qnn.mp_grid`;
- ``lns``, ``lns-sweep``, ``lns-matmul-parts``: :mod:`lowbit.integrations.programs.qnn.lns_grid`;
- ``eqprop``, ``eqprop-sweep``: :mod:`lowbit.integrations.programs.eqprop.grid`;
- ``eqprop-check``: :mod:`lowbit.integrations.reports.eqprop_check`;
- ``nodes``, ``nodes-cnn``: :mod:`lowbit.integrations.programs.nodes.grid`;
- ``teacher``: :mod:`lowbit.integrations.programs.teacher.grid`;
- ``language``: :mod:`lowbit.integrations.programs.language.grid`;
- ``slide-xmc``, ``slide-wide``: :mod:`lowbit.integrations.programs.slide.grid`.
"""

from __future__ import annotations

import json
from pathlib import Path

from lowbit.integrations.programs import GRIDS  # noqa: F401 - the names, for callers
from lowbit.integrations.programs.qnn import grid as qnn_grid
from lowbit.integrations.programs.qnn import lns_grid, mp_grid
from lowbit.integrations.programs.qnn.train import TrainConfig
from lowbit.integrations.runs import finished


def grid(name: str, data: str, seeds: int, epochs: int, root: Path) -> list[TrainConfig]:
    """The TrainConfigs of the ``qnn`` grid or of an LNS grid (``lns``, ``lns-sweep``,
    ``lns-matmul-parts``) on ``data``: every row x ``seeds`` seeds, ``epochs`` epochs,
    outputs under ``root/name/data``."""
    if name == "qnn":
        return qnn_grid.configs(data, seeds, epochs, root)
    if name == "mixed-precision":
        return mp_grid.configs(data, seeds, epochs, root)
    if name == "mp-large-batch":
        return mp_grid.large_batch_configs(data, seeds, epochs, root)
    if name in lns_grid.GRIDS:
        return lns_grid.configs(name, data, seeds, epochs, root)
    raise ValueError(f"unknown grid {name!r} (qnn, mixed-precision, mp-large-batch, lns, "
                     "lns-sweep, lns-matmul-parts)")


def run_grid(name: str, data: str, seeds: int, epochs: int, root: Path,
             rounds: int = 5000) -> None:
    """Train every unfinished run of grid ``name`` (``rounds``: the nodes grids' steps
    per node; ``epochs``: the qnn, LNS and eqprop grids')."""
    if name in ("nodes", "nodes-cnn"):
        from lowbit.integrations.programs.nodes.grid import run_nodes_grid

        run_nodes_grid(data, seeds, root, rounds, "cnn" if name == "nodes-cnn" else "mlp")
    elif name == "teacher":
        from lowbit.integrations.programs.teacher.grid import run_teacher_grid

        run_teacher_grid(data, seeds, root)
    elif name == "language":
        from lowbit.integrations.programs.language.grid import run_language_grid

        run_language_grid(data, seeds, root)
    elif name == "eqprop-check":
        from lowbit.integrations.reports.eqprop_check import run_check

        run_check(data, seeds, root)
    elif name in ("slide-xmc", "slide-wide"):
        from lowbit.integrations.programs.slide import grid as slide_grid

        slide_grid.run(name, data, seeds, root)
    elif name in ("eqprop", "eqprop-sweep"):
        from lowbit.integrations.programs.eqprop import grid as ep_grid

        ep_grid.run(name, data, seeds, epochs, root)
    else:
        qnn_grid.run(grid(name, data, seeds, epochs, root), epochs)


def collect(root: Path) -> list[dict]:
    """The summaries of the qnn/lns/eqprop grids (the nodes grid has its own tables) whose
    runs are finished: a run still training (epochs_done below its configured epochs)
    is left out, so that no table mixes final and intermediate accuracies."""
    out = []
    for p in sorted(root.rglob("summary.json")):
        if p.relative_to(root).parts[0] in ("nodes", "nodes-cnn", "teacher", "language",
                                            "eqprop-check", "slide"):
            continue
        run = json.loads(p.read_text())
        if not finished(run):
            continue
        run["_dir"] = str(p.parent)
        out.append(run)
    return out


def write_tables(root: Path, docs: Path) -> Path:
    """Write every grid's result tables (markdown) and plots into ``docs``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from lowbit.integrations.programs.eqprop import grid as ep_grid
    from lowbit.integrations.programs.language.grid import write_language_tables
    from lowbit.integrations.programs.nodes.grid import write_nodes_tables
    from lowbit.integrations.programs.slide import grid as slide_grid
    from lowbit.integrations.programs.teacher.grid import write_teacher_tables
    from lowbit.integrations.reports.eqprop_check import write_check_table

    docs.mkdir(parents=True, exist_ok=True)
    runs = collect(root)
    qnn_grid.write_tables(runs, docs)
    mp_grid.write_tables(runs, docs)
    lns_grid.write_tables(runs, docs, plt)
    ep_grid.write_tables(runs, docs, plt)
    write_check_table(root, docs)
    for data in ("fashion-mnist", "digits"):
        write_nodes_tables(root, docs, data)
        write_nodes_tables(root, docs, data, "cnn")
    write_teacher_tables(root, docs)
    write_language_tables(root, docs)
    slide_grid.write_tables(root, docs)
    return docs
