"""Swap-in layers that subclass their torch twins, and :func:`swap_layers`.

Every layer keeps float ("latent") parameters for the optimizer and casts them
on every forward; ``from_module`` copies a trained torch layer (weights cast
into the spec's weight format), ``to_module`` gives the plain torch layer
holding the values the emulated hardware would store.

Stochastic rounding: each layer has a ``seed`` and a ``rounding_step`` buffer
(saved with the state dict) that advances on every training forward, so that
every step rounds with fresh random bits and a resumed run repeats them.

>>> import torch.nn as nn
>>> model = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
>>> swap_layers(model, "fixed16.8")[0]
EmulatedLinear(in_features=4, out_features=3, bias=True, spec='w=fixed16.8,a=fixed16.8,gi=fixed16.8,gw=fixed16.8')
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import torch
import torch.nn as nn

from lowbit.integrations.torch.carriers import from_carrier, to_carrier
from lowbit.integrations.torch.functions import emulated_conv2d, emulated_linear, quantize
from lowbit.integrations.torch.spec import AMAX_HISTORY, EmulationSpec
from lowbit.numerics import Binary, Format, Ternary, parse_format


class _Emulated:
    """What the emulated layers share: spec, seed, step counter, weight casting."""

    spec: EmulationSpec
    seed: int

    def _setup(self, spec, seed: int) -> None:
        self.spec = EmulationSpec.parse(spec if spec is not None else EmulationSpec())
        self.seed = int(seed)
        self.register_buffer("rounding_step", torch.zeros((), dtype=torch.int64))
        if self.spec.delayed:  # delayed scaling's amax history: rows x, w, gradient
            self.register_buffer("amax_history", torch.zeros(3, AMAX_HISTORY, dtype=torch.float64))

    def _next_step(self) -> int:
        step = int(self.rounding_step)
        if self.training:
            self.rounding_step += 1
        return step

    def _load_weights(self, m: nn.Module, cast: bool = True) -> None:
        """Copy m's parameters, the weight cast into the spec's weight format (unless
        ``cast`` is False: latent float weights for training from scratch)."""
        with torch.no_grad():
            w = m.weight.detach()
            if cast and self.spec.weight is not None:
                w = to_carrier(from_carrier(w, self.spec.weight), like=w)
            self.weight = nn.Parameter(w.clone())
            if m.bias is not None:
                self.bias = nn.Parameter(m.bias.detach().clone())

    def quantized_weight(self) -> torch.Tensor:
        """The weight as the emulated hardware stores it (its carrier)."""
        w = self.weight.detach()
        return w if self.spec.weight is None else to_carrier(from_carrier(w, self.spec.weight), like=w)

    def clip_latent_(self, bound: float = 1.0) -> None:
        """Clip the latent float weights to [-bound, bound] (BinaryNet's recipe)."""
        with torch.no_grad():
            self.weight.clamp_(-bound, bound)

    def extra_repr(self) -> str:
        return super().extra_repr() + f", spec={str(self.spec)!r}"


class EmulatedLinear(_Emulated, nn.Linear):
    """``nn.Linear`` whose forward and backward matmuls run in the emulator
    (:func:`lowbit.integrations.torch.functions.emulated_linear`)."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True,
                 spec: EmulationSpec | str | None = None, seed: int = 0, device=None, dtype=None):
        nn.Linear.__init__(self, in_features, out_features, bias, device=device, dtype=dtype)
        self._setup(spec, seed)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return emulated_linear(x, self.weight, self.bias, self.spec, seed=self.seed,
                               step=self._next_step(), amax=getattr(self, "amax_history", None),
                               record=self.training)

    @classmethod
    def from_module(cls, m: nn.Linear, spec: EmulationSpec | str, seed: int = 0,
                    cast_weights: bool = True):
        """An emulated copy of ``m`` (weights cast into the spec's weight format, or kept
        as latent float weights with ``cast_weights=False``)."""
        new = cls(m.in_features, m.out_features, bias=m.bias is not None, spec=spec, seed=seed,
                  device=m.weight.device, dtype=m.weight.dtype)
        new._load_weights(m, cast_weights)
        return new

    def to_module(self) -> nn.Linear:
        """A plain ``nn.Linear`` holding the weights as the hardware stores them."""
        w = self.quantized_weight()
        m = nn.Linear(self.in_features, self.out_features, self.bias is not None,
                      device=w.device, dtype=w.dtype)
        with torch.no_grad():
            m.weight.copy_(w)
            if self.bias is not None:
                m.bias.copy_(self.bias.to(w.dtype))
        return m


class EmulatedConv2d(_Emulated, nn.Conv2d):
    """``nn.Conv2d`` lowered to im2col + emulated matmuls (groups = 1, zero padding)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0,
                 dilation=1, bias: bool = True, spec: EmulationSpec | str | None = None,
                 seed: int = 0, device=None, dtype=None):
        nn.Conv2d.__init__(self, in_channels, out_channels, kernel_size, stride, padding, dilation,
                           groups=1, bias=bias, device=device, dtype=dtype)
        if isinstance(self.padding, str):
            raise ValueError("EmulatedConv2d needs explicit integer padding")
        self._setup(spec, seed)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return emulated_conv2d(x, self.weight, self.bias, self.spec, self.stride, self.padding,
                               self.dilation, seed=self.seed, step=self._next_step(),
                               amax=getattr(self, "amax_history", None), record=self.training)

    @classmethod
    def from_module(cls, m: nn.Conv2d, spec: EmulationSpec | str, seed: int = 0,
                    cast_weights: bool = True):
        if m.groups != 1 or m.padding_mode != "zeros" or isinstance(m.padding, str):
            raise ValueError(f"EmulatedConv2d supports groups=1, zero integer padding; got {m}")
        new = cls(m.in_channels, m.out_channels, m.kernel_size, stride=m.stride, padding=m.padding,
                  dilation=m.dilation, bias=m.bias is not None, spec=spec, seed=seed,
                  device=m.weight.device, dtype=m.weight.dtype)
        new._load_weights(m, cast_weights)
        return new

    def to_module(self) -> nn.Conv2d:
        w = self.quantized_weight()
        m = nn.Conv2d(self.in_channels, self.out_channels, self.kernel_size, self.stride,
                      self.padding, self.dilation, bias=self.bias is not None, device=w.device,
                      dtype=w.dtype)
        with torch.no_grad():
            m.weight.copy_(w)
            if self.bias is not None:
                m.bias.copy_(self.bias.to(w.dtype))
        return m


def _with_weight(spec, fmt: Format) -> EmulationSpec:
    base = EmulationSpec.parse(spec) if spec is not None else EmulationSpec(ste="clipped")
    return dataclasses.replace(base, weight=fmt)


class BinaryLinear(EmulatedLinear):
    """Binary weights (BinaryConnect; add binary activations for BinaryNet). The
    spec's other roles are kept; the default gradient estimator is clipped."""

    def __init__(self, in_features, out_features, bias=True, spec=None, scale=None, seed=0,
                 device=None, dtype=None):
        super().__init__(in_features, out_features, bias, _with_weight(spec, Binary(scale)), seed,
                         device, dtype)


class BinaryConv2d(EmulatedConv2d):
    """Binary-weight convolution (see :class:`BinaryLinear`)."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1,
                 bias=True, spec=None, scale=None, seed=0, device=None, dtype=None):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, bias,
                         _with_weight(spec, Binary(scale)), seed, device, dtype)


class TernaryLinear(EmulatedLinear):
    """Ternary weights (TWN threshold and scale by default)."""

    def __init__(self, in_features, out_features, bias=True, spec=None, ternary=None, seed=0,
                 device=None, dtype=None):
        super().__init__(in_features, out_features, bias,
                         _with_weight(spec, ternary or Ternary()), seed, device, dtype)


class TernaryConv2d(EmulatedConv2d):
    """Ternary-weight convolution (see :class:`TernaryLinear`)."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1,
                 bias=True, spec=None, ternary=None, seed=0, device=None, dtype=None):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, bias,
                         _with_weight(spec, ternary or Ternary()), seed, device, dtype)


class QuantAct(nn.Module):
    """Quantize activations into ``fmt`` with a straight-through gradient
    (``ste="clipped"``: BinaryNet's hardtanh estimator), optionally casting the
    gradient into ``grad_fmt``."""

    def __init__(self, fmt: Format | str, grad_fmt: Format | str | None = None,
                 ste: str = "identity", seed: int = 0):
        super().__init__()
        self.fmt = parse_format(fmt)
        self.grad_fmt = None if grad_fmt is None else parse_format(grad_fmt)
        if ste not in ("identity", "clipped"):
            raise ValueError(f"QuantAct.ste must be 'identity' or 'clipped', got {ste!r}")
        self.ste = ste
        self.seed = seed
        self.register_buffer("rounding_step", torch.zeros((), dtype=torch.int64))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        step = int(self.rounding_step)
        if self.training:
            self.rounding_step += 1
        return quantize(x, self.fmt, grad_fmt=self.grad_fmt, ste=self.ste, seed=self.seed, step=step)

    def extra_repr(self) -> str:
        g = "" if self.grad_fmt is None else f", grad_fmt={str(self.grad_fmt)!r}"
        return f"fmt={str(self.fmt)!r}{g}, ste={self.ste!r}"


def swap_layers(model: nn.Module, spec: EmulationSpec | str,
                filter_fn: Callable[[str, nn.Module], bool] | None = None,
                seed: int = 0, cast_weights: bool = True) -> nn.Module:
    """Replace every ``nn.Linear`` and ``nn.Conv2d`` of ``model`` (in place, at any
    depth) by its emulated twin, keeping the trained weights (cast into the spec's
    weight format); returns ``model``.

    ``filter_fn(qualified_name, module)`` chooses which layers to replace (default:
    all). Layers that are already emulated are left alone. Each replaced layer gets
    seed ``seed + i`` (i its position in ``model.named_modules()`` order). With
    ``cast_weights=False`` the float weights are kept as latent weights (training
    a quantized network from scratch: casting small initial weights to binary
    or 2-bit values would freeze or zero them).
    """
    spec = EmulationSpec.parse(spec)
    targets = [(name, m) for name, m in model.named_modules()
               if type(m) in (nn.Linear, nn.Conv2d) and (filter_fn is None or filter_fn(name, m))]
    for i, (name, m) in enumerate(targets):
        cls = EmulatedLinear if isinstance(m, nn.Linear) else EmulatedConv2d
        new = cls.from_module(m, spec, seed + i, cast_weights=cast_weights)
        new.train(m.training)
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, child, new)
    return model
