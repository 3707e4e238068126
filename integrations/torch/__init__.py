"""lowbit's PyTorch integration: autograd functions, swap-in layers, the ``emulate``
mode that runs any model's products in the emulator, coverage, optimizers.

See ``docs/guide_swap.md`` and ``docs/guide_emulate.md`` for walk-throughs.
"""

from lowbit.integrations.torch.carriers import carrier_dtype, from_carrier, to_carrier
from lowbit.integrations.torch.conv import emulated_conv, emulated_conv_transpose
from lowbit.integrations.torch.coverage import Coverage, coverage
from lowbit.integrations.torch.emulate import EmulationError, emulate
from lowbit.integrations.torch.functions import emulated_conv2d, emulated_linear, quantize
from lowbit.integrations.torch.layers import (
    BinaryConv2d,
    BinaryLinear,
    EmulatedConv1d,
    EmulatedConv2d,
    EmulatedConv3d,
    EmulatedConvTranspose1d,
    EmulatedConvTranspose2d,
    EmulatedConvTranspose3d,
    EmulatedLinear,
    EmulatedMultiheadAttention,
    QuantAct,
    TernaryConv2d,
    TernaryLinear,
    swap_layers,
)
from lowbit.integrations.torch.products import emulated_attention, emulated_einsum, emulated_matmul
from lowbit.integrations.torch.slide import SlideLinear
from lowbit.integrations.torch.spec import SPEC_GRAMMAR, EmulationSpec

__all__ = [
    "SPEC_GRAMMAR",
    "BinaryConv2d",
    "BinaryLinear",
    "Coverage",
    "EmulatedConv1d",
    "EmulatedConv2d",
    "EmulatedConv3d",
    "EmulatedConvTranspose1d",
    "EmulatedConvTranspose2d",
    "EmulatedConvTranspose3d",
    "EmulatedLinear",
    "EmulatedMultiheadAttention",
    "EmulationError",
    "EmulationSpec",
    "QuantAct",
    "SlideLinear",
    "TernaryConv2d",
    "TernaryLinear",
    "carrier_dtype",
    "coverage",
    "emulate",
    "emulated_attention",
    "emulated_conv",
    "emulated_conv2d",
    "emulated_conv_transpose",
    "emulated_einsum",
    "emulated_linear",
    "emulated_matmul",
    "from_carrier",
    "quantize",
    "swap_layers",
    "to_carrier",
]
