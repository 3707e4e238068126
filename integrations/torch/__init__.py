"""lowbit's PyTorch integration: autograd functions, swap-in layers, optimizers.

See ``docs/guide_swap.md`` for a walk-through.
"""

from lowbit.integrations.torch.carriers import carrier_dtype, from_carrier, to_carrier
from lowbit.integrations.torch.functions import emulated_conv2d, emulated_linear, quantize
from lowbit.integrations.torch.layers import (
    BinaryConv2d,
    BinaryLinear,
    EmulatedConv2d,
    EmulatedLinear,
    QuantAct,
    TernaryConv2d,
    TernaryLinear,
    swap_layers,
)
from lowbit.integrations.torch.spec import SPEC_GRAMMAR, EmulationSpec

__all__ = [
    "SPEC_GRAMMAR",
    "BinaryConv2d",
    "BinaryLinear",
    "EmulatedConv2d",
    "EmulatedLinear",
    "EmulationSpec",
    "QuantAct",
    "TernaryConv2d",
    "TernaryLinear",
    "carrier_dtype",
    "emulated_conv2d",
    "emulated_linear",
    "from_carrier",
    "quantize",
    "swap_layers",
    "to_carrier",
]
