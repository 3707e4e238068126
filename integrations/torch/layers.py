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

import warnings

import torch
import torch.nn as nn
import torch.nn.functional as F

from lowbit.integrations.torch.carriers import from_carrier, to_carrier
from lowbit.integrations.torch.conv import emulated_conv, emulated_conv_transpose
from lowbit.integrations.torch.emulate import emulate
from lowbit.integrations.torch.functions import emulated_conv2d, emulated_linear, quantize
from lowbit.integrations.torch.spec import AMAX_HISTORY, EmulationSpec
from lowbit.numerics import Binary, Format, Ternary, parse_format, rng


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

    def _stored_into(self, m: nn.Module, w: torch.Tensor) -> nn.Module:
        """m (a plain torch layer) holding the stored weights ``w`` and the bias."""
        with torch.no_grad():
            m.weight.copy_(w)
            if self.bias is not None:
                m.bias.copy_(self.bias.to(w.dtype))
        return m

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
        return self._stored_into(m, w)


class _EmulatedConvNd(_Emulated):
    """What the emulated convolutions share: any stride, padding (ints, "same", "valid",
    and every ``padding_mode``: a non-zero mode pads with ``F.pad`` first, as torch does),
    dilation and groups, through :func:`lowbit.integrations.torch.conv.emulated_conv`
    (the input gradient one emulated dot product per element). Delayed scaling and
    binary/ternary weights with emulated gradients take the im2col path of
    :func:`emulated_conv2d` (2-d, groups = 1, zero padding)."""

    _conv_dims = 2
    _torch_type: type = nn.Conv2d

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0,
                 dilation=1, bias: bool = True, spec: EmulationSpec | str | None = None,
                 seed: int = 0, device=None, dtype=None, *, groups: int = 1,
                 padding_mode: str = "zeros"):
        self._torch_type.__init__(self, in_channels, out_channels, kernel_size, stride, padding,
                                  dilation, groups=groups, bias=bias, padding_mode=padding_mode,
                                  device=device, dtype=dtype)
        self._setup(spec, seed)
        self._check_old_path()

    def _old_path(self) -> bool:
        s = self.spec
        return s.delayed or (isinstance(s.weight, (Binary, Ternary)) and s.grad_input is not None)

    def _check_old_path(self) -> None:
        if self._old_path() and (self._conv_dims != 2 or self.groups != 1 or isinstance(self.padding, str)
                                 or self.padding_mode != "zeros"):
            raise ValueError(f"{type(self).__name__}: delayed scaling and binary/ternary weights "
                             "with emulated gradients need a 2-d convolution with groups=1 and "
                             f"integer zero padding; got {self}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        step = self._next_step()
        if self._old_path():
            return emulated_conv2d(x, self.weight, self.bias, self.spec, self.stride, self.padding,
                                   self.dilation, seed=self.seed, step=step,
                                   amax=getattr(self, "amax_history", None), record=self.training)
        padding = self.padding
        if self.padding_mode != "zeros":
            x = F.pad(x, self._reversed_padding_repeated_twice, mode=self.padding_mode)
            padding = 0
        return emulated_conv(x, self.weight, self.bias, self.spec, self.stride, padding,
                             self.dilation, self.groups, seed=self.seed, step=step)

    @classmethod
    def from_module(cls, m, spec: EmulationSpec | str, seed: int = 0, cast_weights: bool = True):
        """An emulated copy of the torch convolution ``m`` (its geometry, weights cast
        into the spec's weight format unless ``cast_weights=False``)."""
        new = cls(m.in_channels, m.out_channels, m.kernel_size, stride=m.stride, padding=m.padding,
                  dilation=m.dilation, bias=m.bias is not None, spec=spec, seed=seed,
                  device=m.weight.device, dtype=m.weight.dtype, groups=m.groups,
                  padding_mode=m.padding_mode)
        new._load_weights(m, cast_weights)
        return new

    def to_module(self):
        """The plain torch convolution holding the weights as the hardware stores them."""
        w = self.quantized_weight()
        m = self._torch_type(self.in_channels, self.out_channels, self.kernel_size, self.stride,
                             self.padding, self.dilation, groups=self.groups,
                             bias=self.bias is not None, padding_mode=self.padding_mode,
                             device=w.device, dtype=w.dtype)
        return self._stored_into(m, w)


class EmulatedConv1d(_EmulatedConvNd, nn.Conv1d):
    """``nn.Conv1d`` with every product emulated (see :class:`EmulatedConv2d`)."""

    _conv_dims, _torch_type = 1, nn.Conv1d


class EmulatedConv2d(_EmulatedConvNd, nn.Conv2d):
    """``nn.Conv2d`` whose forward and both backward products run in the emulator:
    any stride, padding (and padding mode), dilation and groups (depthwise included)."""

    _conv_dims, _torch_type = 2, nn.Conv2d


class EmulatedConv3d(_EmulatedConvNd, nn.Conv3d):
    """``nn.Conv3d`` with every product emulated (see :class:`EmulatedConv2d`)."""

    _conv_dims, _torch_type = 3, nn.Conv3d


class _EmulatedConvTransposeNd(_Emulated):
    """Transposed convolutions through
    :func:`lowbit.integrations.torch.conv.emulated_conv_transpose`."""

    def forward(self, x: torch.Tensor, output_size=None) -> torch.Tensor:
        d = self.weight.ndim - 2
        op = self._output_padding(x, output_size, self.stride, self.padding, self.kernel_size,
                                  d, self.dilation)
        return emulated_conv_transpose(x, self.weight, self.bias, self.spec, self.stride,
                                       self.padding, op, self.groups, self.dilation,
                                       seed=self.seed, step=self._next_step())

    @classmethod
    def from_module(cls, m, spec: EmulationSpec | str, seed: int = 0, cast_weights: bool = True):
        new = cls(m.in_channels, m.out_channels, m.kernel_size, m.stride, m.padding,
                  m.output_padding, m.groups, m.bias is not None, m.dilation, spec=spec, seed=seed,
                  device=m.weight.device, dtype=m.weight.dtype)
        new._load_weights(m, cast_weights)
        return new

    def to_module(self):
        w = self.quantized_weight()
        m = self._torch_type(self.in_channels, self.out_channels, self.kernel_size, self.stride,
                             self.padding, self.output_padding, self.groups, self.bias is not None,
                             self.dilation, device=w.device, dtype=w.dtype)
        return self._stored_into(m, w)


def _conv_transpose_type(torch_type):
    class Layer(_EmulatedConvTransposeNd, torch_type):
        _torch_type = torch_type

        def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0,
                     output_padding=0, groups=1, bias=True, dilation=1,
                     spec: EmulationSpec | str | None = None, seed: int = 0, device=None,
                     dtype=None):
            torch_type.__init__(self, in_channels, out_channels, kernel_size, stride, padding,
                                output_padding, groups, bias, dilation, device=device, dtype=dtype)
            self._setup(spec, seed)
            if self.spec.delayed:
                raise ValueError(f"{type(self).__name__}: scaling=delayed is not supported")

    Layer.__name__ = Layer.__qualname__ = "Emulated" + torch_type.__name__
    Layer.__doc__ = (f"``nn.{torch_type.__name__}`` with every product emulated (the "
                     "convolution of the stride-dilated input with the flipped weights).")
    return Layer


EmulatedConvTranspose1d = _conv_transpose_type(nn.ConvTranspose1d)
EmulatedConvTranspose2d = _conv_transpose_type(nn.ConvTranspose2d)
EmulatedConvTranspose3d = _conv_transpose_type(nn.ConvTranspose3d)


class EmulatedMultiheadAttention(_Emulated, nn.MultiheadAttention):
    """``nn.MultiheadAttention`` whose input and output projections and both attention
    products (QK^T, PV) run in the emulator: torch's own forward, run under
    :class:`lowbit.integrations.torch.emulate.emulate` with this layer's spec (softmax,
    masks and dropout in float)."""

    def __init__(self, embed_dim: int, num_heads: int, dropout: float = 0.0, bias: bool = True,
                 add_bias_kv: bool = False, add_zero_attn: bool = False, kdim=None, vdim=None,
                 batch_first: bool = False, spec: EmulationSpec | str | None = None,
                 seed: int = 0, device=None, dtype=None):
        nn.MultiheadAttention.__init__(self, embed_dim, num_heads, dropout, bias, add_bias_kv,
                                       add_zero_attn, kdim, vdim, batch_first, device=device,
                                       dtype=dtype)
        self._setup(spec, seed)
        if self.spec.delayed:
            raise ValueError("EmulatedMultiheadAttention: scaling=delayed is not supported")

    def forward(self, *args, **kwargs):
        step = self._next_step()
        with emulate(self.spec, seed=rng.random_u64(self.seed, step), warn=False):
            return nn.MultiheadAttention.forward(self, *args, **kwargs)

    @classmethod
    def from_module(cls, m: nn.MultiheadAttention, spec: EmulationSpec | str, seed: int = 0,
                    cast_weights: bool = True):
        p = m.in_proj_weight if m.in_proj_weight is not None else m.q_proj_weight
        new = cls(m.embed_dim, m.num_heads, m.dropout, m.in_proj_bias is not None,
                  m.bias_k is not None, m.add_zero_attn, m.kdim, m.vdim, m.batch_first,
                  spec=spec, seed=seed, device=p.device, dtype=p.dtype)
        new.load_state_dict(m.state_dict(), strict=False)
        if cast_weights and new.spec.weight is not None:
            with torch.no_grad():
                for name in ("in_proj_weight", "q_proj_weight", "k_proj_weight", "v_proj_weight"):
                    t = getattr(new, name)
                    if t is not None:
                        t.copy_(to_carrier(from_carrier(t, new.spec.weight), like=t))
                w = new.out_proj.weight
                w.copy_(to_carrier(from_carrier(w, new.spec.weight), like=w))
        return new

    def extra_repr(self) -> str:
        return f"embed_dim={self.embed_dim}, num_heads={self.num_heads}, spec={str(self.spec)!r}"


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
                 bias=True, spec=None, scale=None, seed=0, device=None, dtype=None, **kw):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, bias,
                         _with_weight(spec, Binary(scale)), seed, device, dtype, **kw)


class TernaryLinear(EmulatedLinear):
    """Ternary weights (TWN threshold and scale by default)."""

    def __init__(self, in_features, out_features, bias=True, spec=None, ternary=None, seed=0,
                 device=None, dtype=None):
        super().__init__(in_features, out_features, bias,
                         _with_weight(spec, ternary or Ternary()), seed, device, dtype)


class TernaryConv2d(EmulatedConv2d):
    """Ternary-weight convolution (see :class:`TernaryLinear`)."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1,
                 bias=True, spec=None, ternary=None, seed=0, device=None, dtype=None, **kw):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, bias,
                         _with_weight(spec, ternary or Ternary()), seed, device, dtype, **kw)


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


SWAPS: dict[type, type] = {
    nn.Linear: EmulatedLinear,
    nn.Conv1d: EmulatedConv1d, nn.Conv2d: EmulatedConv2d, nn.Conv3d: EmulatedConv3d,
    nn.ConvTranspose1d: EmulatedConvTranspose1d, nn.ConvTranspose2d: EmulatedConvTranspose2d,
    nn.ConvTranspose3d: EmulatedConvTranspose3d,
    nn.MultiheadAttention: EmulatedMultiheadAttention,
}
"""The torch layers :func:`swap_layers` replaces, and their emulated twins."""

FAST_PATH_LAYERS = (nn.TransformerEncoder, nn.TransformerEncoderLayer)
"""Layers whose eval-mode fast path runs a fused float kernel with their children's
weights (bypassing the children's forward): :func:`swap_layers` turns the fast path off
around their forward when it swaps a child."""


def _fastpath_off(module, args):
    module._lowbit_fastpath = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)


def _fastpath_restore(module, args, out):
    torch.backends.mha.set_fastpath_enabled(getattr(module, "_lowbit_fastpath", True))


FLOAT_LAYERS = (nn.RNNBase, nn.RNNCellBase, nn.Bilinear, nn.EmbeddingBag)
"""Layers with multiply-accumulates that no emulated twin replaces (their products run
in fused kernels): :func:`swap_layers` warns when it leaves one in float."""


def swap_layers(model: nn.Module, spec: EmulationSpec | str,
                filter_fn: Callable[[str, nn.Module], bool] | None = None,
                seed: int = 0, cast_weights: bool = True) -> nn.Module:
    """Replace every layer of ``model`` listed in :data:`SWAPS` (``nn.Linear``, the 1/2/3-d
    convolutions and transposed convolutions with any stride, padding mode, dilation and
    groups, ``nn.MultiheadAttention``), in place, at any depth, by its emulated twin,
    keeping the trained weights (cast into the spec's weight format); returns ``model``.

    ``filter_fn(qualified_name, module)`` chooses which layers to replace (default:
    all). Layers that are already emulated are left alone. Each replaced layer gets
    seed ``seed + i`` (i its position in ``model.named_modules()`` order). With
    ``cast_weights=False`` the float weights are kept as latent weights (training
    a quantized network from scratch: casting small initial weights to binary
    or 2-bit values would freeze or zero them).

    Warns once, naming them, about layers with multiply-accumulates that stay in float
    (:data:`FLOAT_LAYERS`: RNNs, bilinear, embedding bags). Products written in a
    model's ``forward`` (``torch.matmul``, ``einsum``) are not layers:
    :class:`lowbit.integrations.torch.emulate.emulate` catches those.
    """
    spec = EmulationSpec.parse(spec)
    targets, left = [], []
    skip = ()
    for name, m in model.named_modules():
        if skip and name.startswith(skip):
            continue
        if type(m) in SWAPS and (filter_fn is None or filter_fn(name, m)):
            targets.append((name, m))
            skip = (name + ".",)  # a replaced layer's own children go with it
        elif isinstance(m, FLOAT_LAYERS) and (filter_fn is None or filter_fn(name, m)):
            left.append(f"{name or '<model>'} ({type(m).__name__})")
    for i, (name, m) in enumerate(targets):
        new = SWAPS[type(m)].from_module(m, spec, seed + i, cast_weights=cast_weights)
        new.train(m.training)
        parent_name, _, child = name.rpartition(".")
        if parent_name:
            setattr(model.get_submodule(parent_name), child, new)
        elif name:
            setattr(model, child, new)
        else:
            raise ValueError("swap_layers: the model is itself a layer; wrap it (e.g. in "
                             "nn.Sequential) or use the emulated layer's from_module")
    for name, m in model.named_modules():
        if isinstance(m, FAST_PATH_LAYERS) and not getattr(m, "_lowbit_no_fastpath", False) and \
                any(isinstance(c, _Emulated) for c in m.modules()):
            m.register_forward_pre_hook(_fastpath_off)
            m.register_forward_hook(_fastpath_restore)
            m._lowbit_no_fastpath = True
    if left:
        warnings.warn("swap_layers: left in float (not emulated, no emulated twin): "
                      + ", ".join(left) + "; see lowbit.emulate and lowbit inspect", stacklevel=2)
    return model
