"""Convolutions of any dimension, stride, padding, dilation and groups, and their
transposes, as emulated matmuls.

Semantics (one rule for every variant, so that a hardware architect can read off
what each output element is):

- **forward**: the input is cut into patches (im2col, an exact copy: zero padding,
  ``"same"`` and ``"valid"``, any stride and dilation); each group's patches times its
  weights is one :func:`~lowbit.integrations.torch.functions.emulated_linear` (the
  contraction runs over (input channel, kernel position) in that order, the bias is
  added in the output format);
- **gradient w.r.t. the weight and bias**: that linear's own emulated backward
  (g^T @ patches, contraction over batch x output positions);
- **gradient w.r.t. the input**: the transposed convolution, computed as a
  convolution of the stride-dilated gradient with the flipped, channel-swapped weights:
  every input gradient is **one** emulated dot product over (output channel, kernel
  position), rounded once into ``spec.grad_input`` -- not patch gradients added in
  float;
- **block formats** (MX, NVFP4), as for a linear layer, every product blocks both its
  operands along its own contraction: the forward the input's patches and the weights
  along (input channel, kernel position); the weight gradient the gradient and the
  patches along (batch, output position); the input gradient the gradient's patches and
  the flipped, channel-swapped weights -- cast afresh from the float weights, tiles
  included (they tile that rearranged matrix) -- along (output channel, kernel
  position). With a block ``grad_input`` the input gradient rounds once into the output
  format (if a Float) or the accumulator's result format, not into ``grad_input``;
- **transposed convolution** (``conv_transpose``): the convolution of the
  stride-dilated input with the flipped, channel-swapped weights (so its gradients
  follow from the rules above).

Padding modes other than zeros are applied by the caller (``nn.Conv*d`` pads with
``F.pad`` before calling the convolution): that copy is exact, and its adjoint adds
the gradients of mirrored positions in float (at most 2**d terms per element).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Sequence

import torch
import torch.nn.functional as F

from lowbit.integrations.torch import account
from lowbit.integrations.torch.carriers import from_carrier, to_carrier
import lowbit.emulators as E
from lowbit.integrations.torch.functions import (BIAS, CAST_G, CAST_W, CAST_X, FORWARD, GRAD_B,
                                                 GRAD_W, GRAD_X, _family_ok, _out_format,
                                                 clip_bound, emulated_linear, grad_x_format,
                                                 op_seed)
from lowbit.integrations.torch.products import _swapped
from lowbit.integrations.torch.spec import EmulationSpec
from lowbit.numerics import LNS, Binary, Block, Fixed, Float, Ternary, rng


def _tuple(v, d: int, name: str) -> tuple[int, ...]:
    t = (v,) * d if isinstance(v, int) else tuple(int(e) for e in v)
    if len(t) == 1 and d > 1:
        t = t * d
    if len(t) != d:
        raise ValueError(f"conv: {name} {v!r} does not match {d} spatial dimensions")
    return t


def conv_pads(padding, kernel: Sequence[int], dilation: Sequence[int],
              stride: Sequence[int]) -> list[tuple[int, int]]:
    """(low, high) zero padding per spatial dimension for ``padding`` (ints, "valid",
    or "same": total dilation*(k-1), the low side taking the floor half, as torch)."""
    d = len(kernel)
    if padding == "valid":
        return [(0, 0)] * d
    if padding == "same":
        if any(s != 1 for s in stride):
            raise ValueError("conv: padding='same' needs stride 1 (as in torch)")
        tot = [dl * (k - 1) for k, dl in zip(kernel, dilation)]
        return [(t // 2, t - t // 2) for t in tot]
    if isinstance(padding, str):
        raise ValueError(f"conv: padding must be ints, 'same' or 'valid', got {padding!r}")
    p = _tuple(padding, d, "padding")
    if any(e < 0 for e in p):
        raise ValueError(f"conv: negative padding {padding!r}")
    return [(e, e) for e in p]


def _pad_or_crop(x: torch.Tensor, pads: Sequence[tuple[int, int]]) -> torch.Tensor:
    """Zero-pad (positive) or crop (negative) the trailing len(pads) dimensions."""
    flat = []
    for lo, hi in reversed(pads):
        flat += [max(lo, 0), max(hi, 0)]
    if any(flat):
        x = F.pad(x, flat)
    d0 = x.ndim - len(pads)
    index = [slice(None)] * d0
    for i, (lo, hi) in enumerate(pads):
        n = x.shape[d0 + i]
        index.append(slice(max(-lo, 0), n - max(-hi, 0)))
    return x[tuple(index)]


def im2col(x: torch.Tensor, kernel: Sequence[int], stride: Sequence[int],
           dilation: Sequence[int], pads: Sequence[tuple[int, int]]) -> tuple[torch.Tensor, tuple]:
    """Patches of x (N, C, *S) as (N * prod(O), C * prod(kernel)), columns ordered
    (channel, kernel position) like ``weight.reshape(out_channels, -1)``; returns the
    patches and the output spatial shape O. An exact copy."""
    d = len(kernel)
    x = _pad_or_crop(x, pads)
    for i in range(d):
        span = dilation[i] * (kernel[i] - 1) + 1
        if x.shape[2 + i] < span:
            raise ValueError(f"conv: padded input size {x.shape[2 + i]} is smaller than the "
                             f"dilated kernel {span} in spatial dimension {i}")
        x = x.unfold(2 + i, span, stride[i])[..., ::dilation[i]]
    n, c = x.shape[:2]
    out = tuple(x.shape[2:2 + d])
    perm = [0, *range(2, 2 + d), 1, *range(2 + d, 2 + 2 * d)]
    cols = x.permute(perm).reshape(n * math.prod(out), c * math.prod(kernel))
    return cols, out


def dilate(x: torch.Tensor, stride: Sequence[int]) -> torch.Tensor:
    """Insert stride-1 zeros between the elements of the trailing len(stride) dims."""
    if all(s == 1 for s in stride):
        return x
    d = len(stride)
    lead = x.shape[:x.ndim - d]
    size = [(n - 1) * s + 1 for n, s in zip(x.shape[x.ndim - d:], stride)]
    out = x.new_zeros(*lead, *size)
    out[(...,) + tuple(slice(None, None, s) for s in stride)] = x
    return out


def transposed_weight(w: torch.Tensor, groups: int) -> torch.Tensor:
    """(O, I/g, *k) -> (I, O/g, *k) with the kernel flipped: the weight of the
    convolution that is the adjoint of ``w``'s (and the forward weight of a
    transposed convolution given in torch's (I, O/g, *k) layout)."""
    o, ig = w.shape[:2]
    d = w.ndim - 2
    wg = w.reshape(groups, o // groups, ig, *w.shape[2:]).transpose(1, 2)
    return wg.reshape(groups * ig, o // groups, *w.shape[2:]).flip(list(range(2, 2 + d)))


def _dgrad_spec(spec: EmulationSpec) -> EmulationSpec:
    """The input-gradient product as a forward one: the gradient (in gi) times the
    weights, rounded into gi, with the spec's accumulator where it serves gi. A block gi
    casts the gradient's patches along their contraction axis (output channel, kernel
    position) and the product rounds into :func:`block_result` (a product writes no
    block format)."""
    gi = spec.grad_input
    return dataclasses.replace(spec, activation=gi, output=grad_x_format(spec), grad_weight=None,
                               accumulator=spec.accumulator if _family_ok(gi, spec) else None)


def _conv_values(x: torch.Tensor, w: torch.Tensor, b, spec: EmulationSpec, stride, pads,
                 dilation, groups: int, seed: int, step: int):
    """The forward products (no autograd of x): returns y (N, O, *S_out) and the
    per-group linears' graphs (outputs, weight leaf, bias leaf) for the weight gradient."""
    n, c = x.shape[:2]
    oc = w.shape[0]
    kernel = tuple(w.shape[2:])
    cols, out = im2col(x.detach(), kernel, stride, dilation, pads)
    cg, ocg = c // groups, oc // groups
    cols = cols.reshape(cols.shape[0], groups, cg * math.prod(kernel))
    with torch.enable_grad():
        w_ = w.detach().requires_grad_(w.requires_grad)
        b_ = None if b is None else b.detach().requires_grad_(b.requires_grad)
        with account.input_of_patches(x.numel() // groups):
            if _grouped(spec, groups):  # all groups in one batched product
                b3 = None if b_ is None else b_.reshape(groups, ocg)
                y3 = _EmulatedGroupedLinear.apply(cols.transpose(0, 1), w_.reshape(groups, ocg, -1),
                                                  b3, spec, seed, step)
                ys = [y3]
                y = y3.detach().transpose(0, 1).reshape(n, *out, oc)
                return y.movedim(-1, 1), (ys, w_, b_, lambda g2: [
                    g2.reshape(-1, groups, ocg).transpose(0, 1)])
            ys = []
            for g in range(groups):
                wg = w_[g * ocg:(g + 1) * ocg].reshape(ocg, -1)
                bg = None if b_ is None else b_[g * ocg:(g + 1) * ocg]
                ys.append(emulated_linear(cols[:, g], wg, bg, spec, seed=_group_seed(seed, g),
                                          step=step))
    y = torch.cat([t.detach() for t in ys], dim=1).reshape(n, *out, oc)
    return y.movedim(-1, 1), (ys, w_, b_, lambda g2: [g2[:, g * ocg:(g + 1) * ocg]
                                                       for g in range(groups)])


def _grouped(spec: EmulationSpec, groups: int) -> bool:
    """Whether a grouped convolution's groups run as one batched product (element formats
    for weights, activations and gradients; binary/ternary scales and block formats go
    per group)."""
    elem = (Fixed, Float, LNS)
    return (groups > 1 and isinstance(spec.weight, elem) and isinstance(spec.activation, elem)
            and not isinstance(spec.grad_input, Block)
            and not isinstance(spec.grad_weight, Block) and not spec.delayed)


class _EmulatedGroupedLinear(torch.autograd.Function):
    """y[g] = x[g] @ w[g]^T + b[g] for every group g, x (G, R, K), w (G, O, K): the numbers
    of ``emulated_linear`` per group (forward rounded into the output format, the bias
    added there; weight gradient g^T x and bias gradient into ``grad_weight``), with each
    operand cast once and one batched product per matmul (:func:`lowbit.emulators.bmm`).
    The input (patches) needs no gradient: a convolution computes it as a convolution."""

    @staticmethod
    def forward(ctx, x, w, b, spec, seed, step):
        G, R, K = x.shape
        O = w.shape[1]
        out = _out_format(spec)
        account.count_cast("forward", spec.activation, x.numel())
        account.count_cast("forward", spec.weight, w.numel(), "weight")
        account.count_matmul("forward", R, O, K, spec.activation, spec.weight, spec.accumulator,
                             out, a_tensor="activation", b_tensor="weight", out_tensor="activation",
                             batch=G)
        xq = from_carrier(x, spec.activation, op_seed(seed, step, CAST_X))
        wq = from_carrier(w, spec.weight, op_seed(seed, step, CAST_W))
        y = E.bmm(xq, _swapped(wq), out, spec.accumulator, spec.order, spec.compensated,
                  seed=op_seed(seed, step, FORWARD))
        if b is not None:
            account.count_add("forward", out, G * R * O, "activation")
            y = E.add(y, from_carrier(b, out)[:, None, :], out, seed=op_seed(seed, step, BIAS))
        ctx.spec, ctx.seed, ctx.step, ctx.xq, ctx.has_bias = spec, seed, step, xq, b is not None
        ctx.save_for_backward(w)
        return to_carrier(y, like=x)

    @staticmethod
    def backward(ctx, gy):
        with torch._C.DisableTorchFunction():
            spec, seed, step = ctx.spec, ctx.seed, ctx.step
            (w,) = ctx.saved_tensors
            gi, gw = spec.grad_input, spec.grad_weight
            G, R, O = gy.shape
            K = w.shape[2]
            grad_w = grad_b = None
            if gi is None or gw is None:  # float gradients, as emulated_linear's float roles
                xc = to_carrier(ctx.xq, like=gy).to(gy.dtype)
                if ctx.needs_input_grad[1]:
                    account.count_matmul("grad_weight", O, K, R, None, spec.activation, None, None,
                                         a_tensor="gradient", b_tensor="activation",
                                         out_tensor="gradient", batch=G)
                    grad_w = gy.transpose(1, 2) @ xc
                if ctx.has_bias and ctx.needs_input_grad[2]:
                    account.count_add("grad_weight", None, G * R * O, "gradient")
                    grad_b = gy.sum(1)
            else:
                account.count_cast("grad_input", gi, gy.numel(), "gradient")
                gq = from_carrier(gy, gi, op_seed(seed, step, CAST_G))
                if ctx.needs_input_grad[1]:
                    acc = spec.accumulator if _family_ok(gw, spec) else None
                    account.count_matmul("grad_weight", O, K, R, gi, spec.activation, acc, gw,
                                         a_tensor="gradient", b_tensor="activation",
                                         out_tensor="gradient", batch=G)
                    grad_w = to_carrier(E.bmm(_swapped(gq), ctx.xq, gw, acc, spec.order,
                                              spec.compensated, seed=op_seed(seed, step, GRAD_W)),
                                        like=gy)
                if ctx.has_bias and ctx.needs_input_grad[2]:
                    account.count_add("grad_weight", gw, G * R * O, "gradient")
                    bias_acc = spec.accumulator if isinstance(gw, Float) else None
                    grad_b = to_carrier(E.sum(gq, axis=1, out=gw, acc=bias_acc,
                                              seed=op_seed(seed, step, GRAD_B)), like=gy)
            if grad_w is not None and spec.ste == "clipped":
                grad_w = grad_w * (w.abs() <= clip_bound(spec.weight)).to(grad_w.dtype)
            return (None, None if grad_w is None else grad_w.to(w.dtype),
                    None if grad_b is None else grad_b.to(w.dtype), None, None, None)


def _group_seed(seed: int, g: int) -> int:
    return seed if g == 0 else rng.random_u64(seed, g)


class _EmulatedConv(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, w, b, spec, stride, pads, dilation, groups, seed, step):
        y, graph = _conv_values(x, w, b, spec, stride, pads, dilation, groups, seed, step)
        ctx.graph, ctx.geom = graph, (stride, pads, dilation, groups)
        ctx.spec, ctx.seed, ctx.step = spec, seed, step
        ctx.x_shape = x.shape
        ctx.save_for_backward(x, w)
        return y

    @staticmethod
    def backward(ctx, gy):
        with torch._C.DisableTorchFunction():
            return _EmulatedConv._backward(ctx, gy)

    @staticmethod
    def _backward(ctx, gy):
        x, w = ctx.saved_tensors
        spec, (stride, pads, dilation, groups) = ctx.spec, ctx.geom
        ys, w_, b_, split = ctx.graph
        grad_x = grad_w = grad_b = None
        oc = w.shape[0]
        ocg = oc // groups
        g2 = gy.movedim(1, -1).reshape(-1, oc)
        leaves = [t for t, need in ((w_, ctx.needs_input_grad[1]), (b_, ctx.needs_input_grad[2]))
                  if t is not None and need]
        if leaves:
            with account.input_of_patches(math.prod(ctx.x_shape) // groups):
                grads = torch.autograd.grad(ys, leaves, split(g2))
            it = iter(grads)
            if ctx.needs_input_grad[1]:
                grad_w = next(it)
            if b_ is not None and ctx.needs_input_grad[2]:
                grad_b = next(it)
        if ctx.needs_input_grad[0]:
            _count_dgrad_casts(spec, gy, w)
            with account.as_role("grad_input"):
                grad_x = _input_gradient(gy, w, spec, ctx.x_shape, stride, pads, dilation, groups,
                                         ctx.seed, ctx.step)
            if spec.ste == "clipped" and spec.activation is not None:
                grad_x = grad_x * (x.abs() <= clip_bound(spec.activation)).to(grad_x.dtype)
            grad_x = grad_x.to(x.dtype)
        ctx.graph = None
        return grad_x, grad_w, grad_b, None, None, None, None, None, None, None


def _count_dgrad_casts(spec: EmulationSpec, gy, w) -> None:
    """The casts of a convolution's input gradient that reuse nothing of the forward: a
    block weight format (the flipped, channel-swapped weights cast afresh along the new
    contraction, tiled or not) and a block ``grad_input`` (the gradient's patches cast
    along theirs; counted once per gradient element, as a forward's patches are). An
    element-format gradient is the weight-gradient product's one cast, already counted."""
    if spec.grad_input is None or spec.weight is None:
        return
    if isinstance(spec.weight, Block):
        account.count_cast("grad_input", spec.weight, w.numel(), "weight")
    if isinstance(spec.grad_input, Block):
        account.count_cast("grad_input", spec.grad_input, gy.numel(), "gradient")


def _input_gradient(gy, w, spec: EmulationSpec, x_shape, stride, pads, dilation, groups,
                    seed, step):
    """grad_x of a convolution: one emulated dot product per input element (the
    transposed convolution as a convolution of the dilated gradient)."""
    kernel = w.shape[2:]
    d = len(kernel)
    if spec.weight is not None and not isinstance(spec.weight, Block):
        # the weights exactly as the forward used them (stochastic casts: the same seeds);
        # a block format is cast from the float weights along the new contraction axis
        ocg = w.shape[0] // groups
        if _grouped(spec, groups):  # one cast of every group's weights, as the forward did
            w = to_carrier(from_carrier(w.reshape(groups, ocg, -1), spec.weight,
                                        op_seed(seed, step, CAST_W)), like=w).reshape(w.shape)
        else:
            w = torch.cat([to_carrier(from_carrier(w[g * ocg:(g + 1) * ocg].reshape(ocg, -1),
                                                   spec.weight,
                                                   op_seed(_group_seed(seed, g), step, CAST_W)),
                                      like=w).reshape(ocg, *w.shape[1:]) for g in range(groups)])
    if spec.grad_input is None or spec.weight is None:  # float gradients: in float
        c, ocg = x_shape[1], w.shape[0] // groups
        with account.input_of_patches(gy.numel()):  # the gradient read once
            account.count_matmul("grad_input", x_shape[0] * math.prod(x_shape[2:]), c, ocg * math.prod(kernel),
                                 None, spec.weight, None, None, a_tensor="gradient",
                                 b_tensor="weight", out_tensor="gradient")
        return _float_input_grad(gy, w, x_shape, stride, pads, dilation, groups)
    wq = w
    gz = dilate(gy, stride)
    lo = [dl * (k - 1) - p for (p, _), k, dl in zip(pads, kernel, dilation)]
    hi = [x_shape[2 + i] - gz.shape[2 + i] - lo[i] + dilation[i] * (kernel[i] - 1) for i in range(d)]
    with account.input_of_patches(gy.numel() // groups):
        y, _ = _conv_values(gz, transposed_weight(wq, groups), None, _dgrad_spec(spec), (1,) * d,
                            list(zip(lo, hi)), dilation, groups, op_seed(seed, step, GRAD_X), 0)
    return y


def _float_input_grad(gy, w, x_shape, stride, pads, dilation, groups):
    d = w.ndim - 2
    gz = dilate(gy, stride)
    kernel = w.shape[2:]
    lo = [dl * (k - 1) - p for (p, _), k, dl in zip(pads, kernel, dilation)]
    hi = [x_shape[2 + i] - gz.shape[2 + i] - lo[i] + dilation[i] * (kernel[i] - 1) for i in range(d)]
    conv = (F.conv1d, F.conv2d, F.conv3d)[d - 1]
    return conv(_pad_or_crop(gz, list(zip(lo, hi))), transposed_weight(w, groups).to(gy.dtype),
                None, 1, 0, dilation, groups)


def check_conv(x: torch.Tensor, w: torch.Tensor, groups: int, spec: EmulationSpec, name: str) -> None:
    d = w.ndim - 2
    if x.ndim != d + 2:
        raise ValueError(f"{name}: input of shape {tuple(x.shape)} for a {d}-d convolution "
                         f"(weight {tuple(w.shape)})")
    if groups < 1 or x.shape[1] % groups or w.shape[0] % groups:
        raise ValueError(f"{name}: groups={groups} must divide the {x.shape[1]} input and "
                         f"{w.shape[0]} output channels")
    if x.shape[1] // groups != w.shape[1]:
        raise ValueError(f"{name}: input has {x.shape[1]} channels, weight expects "
                         f"{w.shape[1] * groups} (groups={groups})")
    if spec.delayed:
        raise ValueError(f"{name}: scaling=delayed keeps per-layer amax histories: use "
                         "swap_layers (EmulatedConv2d) for delayed-scaled convolutions")
    if isinstance(spec.weight, (Binary, Ternary)) and spec.grad_input is not None:
        raise ValueError(f"{name}: binary/ternary weights with emulated input gradients run "
                         "through EmulatedConv2d (groups=1), which folds their scales into the "
                         "gradient; the general convolution does not yet")


def _batched(x: torch.Tensor, w: torch.Tensor, name: str):
    """(x with a batch dimension, spatial dimensions d, whether x had none)."""
    d = w.ndim - 2
    if d not in (1, 2, 3):
        raise ValueError(f"{name}: weight of shape {tuple(w.shape)} is not a 1-, 2- or 3-d kernel")
    unbatched = x.ndim == d + 1
    return (x.unsqueeze(0) if unbatched else x), d, unbatched


def emulated_conv(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None,
                  spec: EmulationSpec | str, stride=1, padding=0, dilation=1, groups: int = 1,
                  *, seed: int = 0, step: int = 0) -> torch.Tensor:
    """N-d convolution (N = w.ndim - 2: 1, 2 or 3) with every product emulated (see the
    module docstring for the order of each sum). ``padding``: ints, "same" or
    "valid" (zeros; other modes are the caller's ``F.pad``). Unbatched inputs
    (C, *S) are accepted as in torch."""
    spec = EmulationSpec.parse(spec)
    x, d, unbatched = _batched(x, w, "emulated_conv")
    check_conv(x, w, groups, spec, "emulated_conv")
    st, dl = _tuple(stride, d, "stride"), _tuple(dilation, d, "dilation")
    pads = conv_pads(padding, w.shape[2:], dl, st)
    y = _EmulatedConv.apply(x, w, b, spec, st, pads, dl, groups, seed, step)
    return y.squeeze(0) if unbatched else y


def emulated_conv_transpose(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None,
                            spec: EmulationSpec | str, stride=1, padding=0, output_padding=0,
                            groups: int = 1, dilation=1, *, seed: int = 0,
                            step: int = 0) -> torch.Tensor:
    """Transposed N-d convolution (torch's argument order and weight layout
    (in, out/groups, *k)): the convolution of the stride-dilated input, padded by
    dilation*(k-1) - padding (+ output_padding on the high side), with the flipped,
    channel-swapped weights; every product emulated."""
    spec = EmulationSpec.parse(spec)
    x, d, unbatched = _batched(x, w, "emulated_conv_transpose")
    if x.ndim != d + 2 or x.shape[1] != w.shape[0] or x.shape[1] % groups:
        raise ValueError(f"emulated_conv_transpose: input {tuple(x.shape)} does not match weight "
                         f"{tuple(w.shape)} with groups={groups}")
    st, dl = _tuple(stride, d, "stride"), _tuple(dilation, d, "dilation")
    p, op = _tuple(padding, d, "padding"), _tuple(output_padding, d, "output_padding")
    if any(o >= max(s, e) for o, s, e in zip(op, st, dl)):
        raise ValueError(f"emulated_conv_transpose: output_padding {op} must be smaller than "
                         f"stride {st} or dilation {dl}")
    kernel = w.shape[2:]
    pads = [(e * (k - 1) - pi, e * (k - 1) - pi + o) for k, e, pi, o in zip(kernel, dl, p, op)]
    wt = transposed_weight(w, groups)
    check_conv(x, wt, groups, spec, "emulated_conv_transpose")
    xz = dilate(x, st)
    y = _EmulatedConv.apply(xz, wt, b, spec, (1,) * d, pads, dl, groups, seed, step)
    return y.squeeze(0) if unbatched else y
