"""One training step of a 784-256-256-10 MLP (batch 128) per emulation spec, as a
ratio to the float32 step measured in the same run.

    python benchmarks/bench_torch.py [--out FILE] [--repeat N]

A step is forward, backward and the optimizer update. Fixed(16, 8) and LNS(5, 10)
"everywhere": weights, activations and both gradients in the format, master
weights in the format (EmulatedSGD, stochastic rounding; Kahan-compensated
matmuls and updates for the "+ Kahan" row). Binary weights: BinaryConnect, float
activations, latent float weights updated by torch SGD.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import Row, measure, run_benchmark  # noqa: E402

CASES = [
    ("float32", None, None),
    ("Fixed(16,8) everywhere", "fixed16.8", "stochastic"),
    ("Binary weights (BinaryConnect)", "w=binary", None),
    ("LNS(5,10) everywhere", "lns5.10", "stochastic"),
    ("LNS(5,10) everywhere + Kahan", "lns5.10,kahan", "kahan"),
]


def make_step(spec_text, compensation):
    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    from lowbit.integrations.torch import EmulationSpec, swap_layers
    from lowbit.integrations.torch.optim import EmulatedSGD

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(),
                          nn.Linear(256, 10))
    if spec_text is None or spec_text.startswith("w=binary"):
        if spec_text:
            swap_layers(model, spec_text)
        opt = torch.optim.SGD(model.parameters(), lr=0.01)
    else:
        spec = EmulationSpec.parse(spec_text)
        swap_layers(model, spec)
        opt = EmulatedSGD(model.parameters(), 0.01, spec.weight, compensation=compensation)
    x = torch.rand(128, 784)
    y = torch.randint(0, 10, (128,))

    def step():
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()
    return step


def bench(repeat: int) -> list[Row]:
    rows = []
    t_float = measure(make_step(None, None), repeat * 4)
    for name, spec, comp in CASES:
        t = t_float if spec is None else measure(make_step(spec, comp), repeat)
        rows.append(Row("MLP 784-256-256-10, batch 128, one step", name, t, "float32 step", t_float))
    return rows


def main() -> None:
    run_benchmark(bench, "Training step (bench_torch.py)", __doc__, repeat=5)


if __name__ == "__main__":
    main()
