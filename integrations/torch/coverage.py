"""``coverage(model, example_inputs, spec)``: which ops of a model run in the emulator.

One forward pass under :class:`~lowbit.integrations.torch.emulate.emulate` (with
``strict=False``) records every op that carries multiply-accumulates -- op, module
path, shapes, MACs, formats, emulated or float and why -- and counts the other
arithmetic (normalisations, softmax, activations, additions) that runs in float.
The backward products of an emulated op are emulated with it.
"""

from __future__ import annotations

import dataclasses

import torch
import torch.nn as nn

from lowbit.integrations.torch.emulate import OpRecord, emulate
from lowbit.integrations.torch.spec import EmulationSpec


@dataclasses.dataclass
class Coverage:
    """The ops of one forward pass; ``fraction`` is the emulated share of MACs."""

    spec: EmulationSpec
    records: list[OpRecord]
    float_ops: dict[str, int]

    @property
    def macs(self) -> int:
        return sum(r.macs for r in self.records)

    @property
    def emulated_macs(self) -> int:
        return sum(r.macs for r in self.records if r.emulated)

    @property
    def fraction(self) -> float:
        """Emulated MACs / all MACs (1.0 for a model without products)."""
        return self.emulated_macs / self.macs if self.macs else 1.0

    @property
    def float_modules(self) -> list[str]:
        return sorted({r.module for r in self.records if not r.emulated and r.macs})

    def table(self) -> str:
        """The per-op table as markdown."""
        rows = ["| op | module | shapes | MACs | formats | emulated | note |",
                "|---|---|---|---:|---|---|---|"]
        for r in self.records:
            shapes = " x ".join("(" + ",".join(map(str, s)) + ")" for s in r.shapes)
            rows.append(f"| {r.op} | {r.module} | {shapes} | {r.macs:,} | {r.formats} | "
                        f"{'yes' if r.emulated else '**float**'} | {r.note} |")
        return "\n".join(rows)

    def __str__(self) -> str:
        others = ", ".join(f"{k} x{v}" for k, v in sorted(self.float_ops.items()))
        return (f"coverage of {self.spec}: {self.emulated_macs:,} of {self.macs:,} MACs emulated "
                f"({100 * self.fraction:.1f} %)\n\n{self.table()}\n\n"
                f"other arithmetic, in float (no MACs): {others or 'none'}")


def coverage(model: nn.Module, example_inputs, spec: EmulationSpec | str, **kwargs) -> Coverage:
    """Run ``model(*example_inputs, **kwargs)`` once (no gradients) under
    ``emulate(spec, strict=False)`` and return its :class:`Coverage`.
    ``example_inputs``: a tensor or a tuple of positional arguments."""
    args = example_inputs if isinstance(example_inputs, tuple) else (example_inputs,)
    mode = emulate(spec, strict=False, model=model, warn=False)
    with torch.no_grad(), mode:
        model(*args, **kwargs)
    return Coverage(mode.spec, mode.records, mode.float_ops)
