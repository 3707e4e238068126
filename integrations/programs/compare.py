"""A short training comparison on digits: float against emulated precision.

``lowbit compare --out DIR`` trains the same 64-64-10 tanh MLP (SGD with
momentum, batch 64, same seed and batch order) in float32 and under emulation
specs, every forward, backward and weight update at the emulated precision
(layers swapped with ``swap_layers``; master weights in the weight format with
:class:`EmulatedSGD`), and writes ``training.csv``, ``training.png`` and
``training.md`` (test accuracy per epoch).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from lowbit.integrations.runs import save_figure, write_csv, write_text

DEFAULT_SPECS = ("float",
                 "w=fixed16.10,a=fixed16.10,gi=fixed16.14,gw=fixed16.12",
                 "lns5.10")


def train(spec_text: str, epochs: int, seed: int = 0, lr: float = 0.1, batch: int = 64):
    """Test accuracies after each epoch, and the wall time, for one spec."""
    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    from lowbit.integrations.data import load_digits
    from lowbit.integrations.torch import EmulationSpec, swap_layers
    from lowbit.integrations.torch.optim import EmulatedSGD

    data = load_digits()
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(64, 64), nn.Tanh(), nn.Linear(64, 10))
    if spec_text == "float":
        opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    else:
        spec = EmulationSpec.parse(spec_text)
        swap_layers(model, spec, seed=seed)
        opt = EmulatedSGD(model.parameters(), lr, spec.weight, momentum=0.9,
                          compensation="stochastic", seed=seed)
    x, y = torch.from_numpy(data.x_train), torch.from_numpy(data.y_train)
    xt, yt = torch.from_numpy(data.x_test), data.y_test
    order = np.random.default_rng(seed)
    accs = []
    t0 = time.perf_counter()
    for _ in range(epochs):
        model.train()
        perm = torch.from_numpy(order.permutation(len(y)))
        for i in range(0, len(y), batch):
            idx = perm[i:i + batch]
            opt.zero_grad()
            F.cross_entropy(model(x[idx]), y[idx]).backward()
            opt.step()
        model.eval()
        with torch.no_grad():
            accs.append(float(np.mean(model(xt).argmax(1).numpy() == yt)))
    return accs, time.perf_counter() - t0


def run_compare(out_dir: Path, specs=DEFAULT_SPECS, epochs: int = 8, seed: int = 0) -> Path:
    """Train the demo MLP on digits once per spec in ``specs`` for ``epochs`` epochs; write the
    per-epoch accuracies (CSV), the curves (training.png) and the table (markdown) into
    ``out_dir``; return the table's path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from tqdm import tqdm

    out_dir.mkdir(parents=True, exist_ok=True)
    results = {}
    for s in tqdm(specs, desc="training", unit="spec"):
        results[s] = train(s, epochs, seed)
    write_csv(out_dir / "training.csv", [[s, e, a] for s, (accs, _) in results.items()
                                         for e, a in enumerate(accs, 1)],
              ["spec", "epoch", "test_accuracy"])
    fig, ax = plt.subplots(figsize=(7, 4))
    for s, (accs, _) in results.items():
        ax.plot(range(1, epochs + 1), accs, marker="o", ms=3, label=s)
    ax.set_xlabel("epoch")
    ax.set_ylabel("test accuracy (digits)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    save_figure(fig, out_dir / "training.png", dpi=110)
    plt.close(fig)
    lines = ["# Training on digits: float against emulated precision", "",
             f"64-64-10 tanh MLP, SGD (lr 0.1, momentum 0.9, batch 64), {epochs} epochs, seed "
             f"{seed}; emulated runs keep master weights in the weight format with stochastic "
             "rounding of the updates.", "",
             "| spec | final test accuracy | best | wall time |", "|---|---|---|---|"]
    for s, (accs, t) in results.items():
        lines.append(f"| {s} | {accs[-1]:.4f} | {max(accs):.4f} | {t:.1f} s |")
    lines += ["", "![training](training.png)", ""]
    path = out_dir / "training.md"
    write_text(path, "\n".join(lines))
    return path
