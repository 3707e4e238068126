"""The gradient check of equilibrium propagation, float and emulated.

For a small layered network on a digits minibatch, EP's update estimate (one-sided,
nudged with +beta, or symmetric with +-beta) is compared with the gradient of the
loss at the end of the free phase, obtained by backpropagation through the free
relaxation in float64 (:func:`lowbit.integrations.programs.eqprop.train.bptt_gradient`), on the *same*
weights (those of the emulated network, read as floats). The score is the cosine
similarity of the two, all layers concatenated: 1 means EP computes the gradient's
direction exactly. In float it tends to 1 as beta -> 0 (the theorem); at low
precision the two nudged fixed points differ by less than a state ulp for small
beta, and the estimate drowns in rounding.

``lowbit experiment run eqprop-check --data digits --seeds S`` writes
``ROOT/eqprop-check/digits/cosines.json``; ``lowbit experiment tables`` turns it
into ``eqprop_check.md``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from lowbit.integrations.data import load_dataset
from lowbit.integrations.programs.eqprop.train import (
    EmuArith,
    EPConfig,
    EPNet,
    FloatArith,
    bptt_gradient,
    cosine,
    ep_estimate,
)
from lowbit.integrations.runs import write_text
from lowbit.integrations.torch.spec import EmulationSpec

CHECK_FORMATS = ("float", "fixed16.14", "fixed12.10", "fixed8.6", "lns5.10")
CHECK_BETAS = (0.5, 0.1, 0.01, 0.001)
CHECK_ARCH = (64, 32, 10)
CHECK_STEPS = 1000  # per phase; 200 leaves slow modes unconverged for some seeds
CHECK_BATCH = 32


def gradient_cosines(fmt: str, data: str, seed: int, betas=CHECK_BETAS,
                     arch=CHECK_ARCH, steps: int = CHECK_STEPS,
                     batch: int = CHECK_BATCH) -> dict[str, list[float]]:
    """Cosine(EP estimate, BPTT gradient) per beta for one network and minibatch.

    ``fmt``: "float" or an emulation spec (states and weights); ``seed`` draws the
    weights and the minibatch (the first ``batch`` examples of a seeded permutation
    of the training set). Returns {"one-sided": [...], "symmetric": [...]}, one
    cosine per beta, in ``betas`` order; an estimate that is exactly zero (the
    nudge moved no state by an ulp) scores 0."""
    ds = load_dataset(data)
    if ds.n_features != arch[0]:
        arch = (ds.n_features,) + tuple(arch[1:])
    idx = np.random.default_rng([seed, 71]).permutation(len(ds.y_train))[:batch]
    x = ds.x_train[idx].astype(np.float64)
    t = np.eye(ds.n_classes)[ds.y_train[idx]]
    cfg = EPConfig(arch=tuple(arch), free_steps=steps, nudged_steps=steps, seed=seed,
                   format=fmt)
    if fmt == "float":
        A = FloatArith()
        net = EPNet(cfg, A)
        xs, ts = x, t
    else:
        A = EmuArith(EmulationSpec.parse(fmt), None, seed, None)
        net = EPNet(cfg, A)
        xs, ts = A.state(x), A.state(t)
    g = bptt_gradient(net, A.value(xs), A.value(ts), steps)
    out: dict[str, list[float]] = {"one-sided": [], "symmetric": []}
    for beta in betas:
        for key, sym in (("one-sided", False), ("symmetric", True)):
            est = ep_estimate(net, xs, ts, beta, symmetric=sym)
            zero = not any(np.any(e) for e in est)  # the nudge moved no state by an ulp
            out[key].append(0.0 if zero else cosine(est, g))
    return out


def run_check(data: str, seeds: int, root: Path, formats=CHECK_FORMATS) -> Path:
    """Every format x seed (resumable: finished entries are kept); returns the JSON path."""
    from tqdm import tqdm

    path = root / "eqprop-check" / data / "cosines.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    done = json.loads(path.read_text()) if path.exists() else {}
    if done.get("betas", list(CHECK_BETAS)) != list(CHECK_BETAS):
        done = {}
    done["betas"] = list(CHECK_BETAS)
    done["arch"] = list(CHECK_ARCH)
    done["steps"] = CHECK_STEPS
    done["batch"] = CHECK_BATCH
    results = done.setdefault("results", {})
    jobs = [(f, s) for f in formats for s in range(seeds) if f"{f}/seed{s}" not in results]
    for fmt, seed in tqdm(jobs, desc="EP gradient check", unit="net"):
        results[f"{fmt}/seed{seed}"] = gradient_cosines(fmt, data, seed)
        write_text(path, json.dumps(done, indent=1))
    write_text(path, json.dumps(done, indent=1))
    return path


def write_check_table(root: Path, docs: Path) -> None:
    """``eqprop_check.md``: mean ± std of the cosines over seeds, per format and beta."""
    lines = []
    for path in sorted((root / "eqprop-check").glob("*/cosines.json")):
        d = json.loads(path.read_text())
        betas = d["betas"]
        lines += [f"### {path.parent.name}: network {'-'.join(map(str, d['arch']))}, "
                  f"{d['steps']} relaxation steps per phase, minibatch {d['batch']}", "",
                  "| states and weights | estimate | " + " | ".join(f"β = {b:g}" for b in betas)
                  + " |", "|---|---|" + "---|" * len(betas)]
        formats = sorted({k.split("/")[0] for k in d["results"]},
                         key=lambda f: CHECK_FORMATS.index(f) if f in CHECK_FORMATS else 99)
        for fmt in formats:
            runs = [v for k, v in d["results"].items() if k.split("/")[0] == fmt]
            for key in ("one-sided", "symmetric"):
                c = np.array([r[key] for r in runs])
                cells = [f"{m:.4f} ± {s:.4f}" if len(runs) > 1 else f"{m:.4f}"
                         for m, s in zip(c.mean(0), c.std(0, ddof=1) if len(runs) > 1
                                         else np.zeros(len(betas)))]
                lines.append(f"| {fmt} | {key} | " + " | ".join(cells) + " |")
        lines += ["", f"n = {len({k.split('/')[1] for k in d['results']})} seed(s) (weights "
                  "and minibatch); cosine similarity between EP's update and -dL/dW from "
                  "backprop through the free relaxation (float64, same weights).", ""]
    if lines:
        docs.mkdir(parents=True, exist_ok=True)
        write_text(docs / "eqprop_check.md", "\n".join(lines))
