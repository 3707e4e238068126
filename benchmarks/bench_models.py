"""One training step of models lowbit did not write, under ``lowbit.emulate``, as a ratio
to the plain float32 step measured in the same run.

    python benchmarks/bench_models.py [--out FILE] [--repeat N]

- ``transformer``: a 2-layer ``nn.TransformerEncoder`` (d = 64, 4 heads, feed-forward
  128) on sequences of 16 tokens, batch 16, with a linear classifier on the mean token;
- ``mobilenet``: a MobileNetV2-style net (3x3 stem, two inverted residual blocks with
  depthwise 3x3 convolutions, pooling, linear) on 1x28x28 images, batch 16.

Each step is forward, cross-entropy, backward and an SGD step; the time is the best of
``--repeat`` steps. Specs: ``w=float`` (the interception alone: every op caught, nothing
emulated), fixed16.8, bf16, e4m3 and lns5.10. Targets (issue 16): pass-through <= 1.3x,
Fixed(16, 8) <= 10x, LNS(5, 10) <= 60x the float32 step.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import Row, machine_line, markdown, measure  # noqa: E402

SPECS = ("w=float", "fixed16.8", "bf16", "e4m3", "lns5.10")


def transformer():
    import torch
    import torch.nn as nn

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = nn.Linear(8, 64)
            self.enc = nn.TransformerEncoder(nn.TransformerEncoderLayer(64, 4, 128, dropout=0.0,
                                                                        batch_first=True), 2,
                                             enable_nested_tensor=False)
            self.head = nn.Linear(64, 10)

        def forward(self, x):
            return self.head(self.enc(self.embed(x)).mean(1))

    torch.manual_seed(0)
    return Net(), torch.randn(16, 16, 8), torch.randint(0, 10, (16,))


def mobilenet():
    import torch
    import torch.nn as nn

    class Block(nn.Module):
        def __init__(self, c, e=4, stride=1):
            super().__init__()
            h = c * e
            self.stride = stride
            self.f = nn.Sequential(nn.Conv2d(c, h, 1, bias=False), nn.BatchNorm2d(h), nn.ReLU6(),
                                   nn.Conv2d(h, h, 3, stride, 1, groups=h, bias=False),
                                   nn.BatchNorm2d(h), nn.ReLU6(), nn.Conv2d(h, c, 1, bias=False),
                                   nn.BatchNorm2d(c))

        def forward(self, x):
            return x + self.f(x) if self.stride == 1 else self.f(x)

    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 16, 3, 2, 1), nn.ReLU6(), Block(16), Block(16, stride=2),
                        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 10))
    return net, torch.randn(16, 1, 28, 28), torch.randint(0, 10, (16,))


def step_fn(model, x, y, spec):
    import torch
    import torch.nn.functional as F

    from lowbit.integrations.torch import emulate

    opt = torch.optim.SGD(model.parameters(), 1e-3)

    def step():
        if spec is None:
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
        else:
            with emulate(spec, model=model):
                loss = F.cross_entropy(model(x), y)
                opt.zero_grad()
                loss.backward()
        opt.step()
    return step


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--repeat", type=int, default=10)
    args = ap.parse_args()
    import torch

    torch.set_num_threads(1)
    rows = []
    for name, make in (("transformer", transformer), ("mobilenet", mobilenet)):
        model, x, y = make()
        base = measure(step_fn(model, x, y, None), repeat=args.repeat * 3)
        for spec in SPECS:
            t = measure(step_fn(model, x, y, spec), repeat=args.repeat if spec != "lns5.10" else max(3, args.repeat // 2))
            note = "interception only" if spec == "w=float" else ""
            rows.append(Row(name, f"emulate({spec})", t, "float32 step", base, note))
            print(f"{name:12s} {spec:10s} {t * 1e3:9.2f} ms  {t / base:6.1f}x float32", flush=True)
    text = (markdown(rows, "One training step under lowbit.emulate (ratio to the float32 step)")
            + f"\n{machine_line()} (torch.set_num_threads(1))\n")
    print(text)
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
