"""lowbit: bit-exact emulation of low-precision deep-learning arithmetic.

The names a user needs first, from the three layers of the package:

- :mod:`lowbit.numerics`: formats as frozen data (``Fixed``, ``Binary``, ``Ternary``,
  ``LNS`` with its ``Exact``/``Table``/``Interp`` adders, ``Float`` and its presets
  ``FLOAT_PRESETS``: e4m3, e5m2, fp16, bf16, the MX elements, ...), the ``Rounding`` and
  ``Overflow`` modes, and the exact reference arithmetic that defines every result;
- :mod:`lowbit.emulators`: the array API over integer codes (``cast``, ``from_codes``,
  ``add``, ``sub``, ``mul``, ``div``, ``matmul``, ``sum``) and the backends
  (``set_backend("numba" | "c")``);
- :mod:`lowbit.integrations`: the PyTorch library part (``EmulationSpec``,
  ``swap_layers``, the swap-in layers and emulated-precision optimizers), loaded on
  first use, so that ``import lowbit`` imports neither torch nor a compiled kernel.

>>> import numpy as np
>>> import lowbit as lb
>>> x = lb.cast(np.array([0.1, -3.7]), lb.Fixed(16, 8))
>>> x.codes
array([  26, -947])
>>> lb.matmul(x.reshape(1, 2), x.reshape(2, 1)).to_float()   # (26² + 947²)/2^16, to 2^-8
array([[13.6953125]])
"""

from __future__ import annotations

import importlib

from lowbit.emulators import (
    BACKENDS,
    ORDERS,
    EmuArray,
    add,
    block_cast,
    cast,
    default_backend,
    div,
    fma,
    from_codes,
    get_backend,
    matmul,
    mul,
    set_backend,
    sub,
    sum,  # noqa: A004
)
from lowbit.numerics import (
    ACCUMULATOR_MODELS,
    BLOCK_PRESETS,
    FLOAT_PRESETS,
    FORMAT_GRAMMAR,
    LNS,
    AccumulatorModel,
    Binary,
    Block,
    Exact,
    Fixed,
    Float,
    Format,
    Interp,
    Overflow,
    Rounding,
    Table,
    Ternary,
    parse_accumulator,
    parse_format,
)

__version__ = "0.2.0"

# The torch names, imported on first use (module __getattr__, PEP 562).
_LAZY = {
    "EmulationSpec": "lowbit.integrations.torch",
    "SPEC_GRAMMAR": "lowbit.integrations.torch",
    "swap_layers": "lowbit.integrations.torch",
    "quantize": "lowbit.integrations.torch",
    "emulated_linear": "lowbit.integrations.torch",
    "emulated_conv2d": "lowbit.integrations.torch",
    "EmulatedLinear": "lowbit.integrations.torch",
    "EmulatedConv2d": "lowbit.integrations.torch",
    "BinaryLinear": "lowbit.integrations.torch",
    "BinaryConv2d": "lowbit.integrations.torch",
    "TernaryLinear": "lowbit.integrations.torch",
    "TernaryConv2d": "lowbit.integrations.torch",
    "QuantAct": "lowbit.integrations.torch",
    "emulate": "lowbit.integrations.torch",
    "EmulationError": "lowbit.integrations.torch",
    "coverage": "lowbit.integrations.torch",
    "Coverage": "lowbit.integrations.torch",
    "emulated_conv": "lowbit.integrations.torch",
    "emulated_conv_transpose": "lowbit.integrations.torch",
    "emulated_matmul": "lowbit.integrations.torch",
    "emulated_einsum": "lowbit.integrations.torch",
    "emulated_attention": "lowbit.integrations.torch",
    "EmulatedConv1d": "lowbit.integrations.torch",
    "EmulatedConv3d": "lowbit.integrations.torch",
    "EmulatedConvTranspose1d": "lowbit.integrations.torch",
    "EmulatedConvTranspose2d": "lowbit.integrations.torch",
    "EmulatedConvTranspose3d": "lowbit.integrations.torch",
    "EmulatedMultiheadAttention": "lowbit.integrations.torch",
    "SlideLinear": "lowbit.integrations.torch",
    "EmulatedOptimizer": "lowbit.integrations.torch.optim",
    "EmulatedSGD": "lowbit.integrations.torch.optim",
}

__all__ = [
    "ACCUMULATOR_MODELS", "AccumulatorModel", "BACKENDS", "BLOCK_PRESETS", "Block", "FLOAT_PRESETS", "FORMAT_GRAMMAR", "LNS", "ORDERS", "Binary", "EmuArray",
    "Exact", "Fixed", "Float", "Format", "Interp", "Overflow", "Rounding", "Table", "Ternary", "add", "block_cast", "cast",
    "default_backend", "div", "fma", "from_codes", "get_backend", "matmul", "mul", "parse_accumulator", "parse_format",
    "set_backend", "sub", "sum", "__version__", *_LAZY,
]


def __getattr__(name: str):
    """The torch names of ``_LAZY``, imported from their module on first access."""
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value  # later lookups skip this hook
        return value
    raise AttributeError(f"module 'lowbit' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
