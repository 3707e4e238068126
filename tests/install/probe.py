"""Prints, as JSON, the codes of a cast, a matmul in each format family and an
``EmulatedLinear`` forward, after checking that ``import lowbit`` left torch out.
check_wheel.py runs it in the development install and in a fresh venv holding only
the wheel, and compares the two outputs."""

import json
import sys

import numpy as np

import lowbit as lb

out = {"torch_after_import": "torch" in sys.modules, "file": lb.__file__,
       "version": lb.__version__}
rng = np.random.default_rng(0)
a, b = rng.normal(size=(4, 16)), rng.normal(size=(16, 3))
for backend in lb.BACKENDS:
    fx = lb.Fixed(12, 8, rounding=lb.Rounding.STOCHASTIC)
    out[f"{backend}/cast"] = lb.cast(a, fx, seed=3, backend=backend).codes.tolist()
    for name, fa, fb, kw in (
            ("fixed", lb.Fixed(16, 8), lb.Fixed(16, 8), {"acc": lb.Fixed(24, 12)}),
            ("binary", lb.Binary(), lb.Binary(), {}),
            ("ternary", lb.Ternary(threshold=0.5), lb.Ternary(threshold=0.5), {}),
            ("lns", lb.parse_format("lns5.10:table6"), lb.parse_format("lns5.10:table6"),
             {"compensated": True})):
        x, y = lb.cast(a, fa, backend=backend), lb.cast(b, fb, backend=backend)
        out[f"{backend}/matmul/{name}"] = lb.matmul(x, y, backend=backend, **kw).codes.tolist()

import torch  # noqa: E402

torch.manual_seed(0)
layer = lb.EmulatedLinear(16, 3, spec="fixed16.8,acc=fixed32.16", seed=1)
y = layer(torch.from_numpy(a).float())
out["emulated_linear"] = lb.cast(y.detach().double().numpy(), lb.Fixed(16, 8)).codes.tolist()
print(json.dumps(out))
