"""Autograd functions whose arithmetic runs in the emulators.

- :func:`quantize`: a cast with a straight-through gradient;
- :func:`emulated_linear` / :func:`emulated_conv2d`: the forward matmul and both
  backward matmuls (gradient w.r.t. the input, w.r.t. the weight) in the
  emulator, each with the formats of an :class:`EmulationSpec`.

Stochastic rounding needs a fresh seed for every rounding: these functions take
``seed`` (fixed per layer) and ``step`` (incremented by the layers on every
training call) and derive one seed per operation from them with the counter RNG.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import torch
import torch.nn.functional as F

import lowbit.emulators as E
from lowbit.emulators import EmuArray, from_codes
from lowbit.integrations.torch import account
from lowbit.integrations.torch.carriers import from_carrier, to_carrier
from lowbit.integrations.torch.spec import AMAX_HISTORY, FP32_ACCUMULATOR, EmulationSpec
from lowbit.numerics import LNS, AccumulatorModel, Binary, Block, Fixed, Float, Format, Ternary, rng

# which operation a derived seed belongs to (at most 16: op_seed keeps 4 bits for it); the
# last five are the block formats' backward casts: W along N, x along M, the gradient along
# M, and the block casts of the weight and bias gradients
(CAST_X, CAST_W, FORWARD, BIAS, CAST_G, GRAD_X, GRAD_W, GRAD_B, QUANT, QUANT_G,
 CAST_WT, CAST_XT, CAST_GT, CAST_GW, CAST_GB) = range(15)


def op_seed(seed: int, step: int, op: int) -> int:
    """The seed of operation ``op`` at training ``step`` of a layer seeded ``seed``."""
    return rng.random_u64(seed, (step << 4) | op)


def clip_bound(fmt: Format) -> float:
    """Where the clipped STE stops the gradient: |x| beyond the format's range
    (1 for binary and ternary, as in BinaryNet's hardtanh)."""
    if isinstance(fmt, (Binary, Ternary)):
        return 1.0
    if isinstance(fmt, LNS):
        return float(2.0 ** (fmt.e_max / 2**fmt.frac_bits))
    if isinstance(fmt, Block):
        return math.inf  # a block scale follows the values: nothing is out of range
    return float(max(abs(fmt.min_value), fmt.max_value))


class _Quantize(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, fmt, grad_fmt, ste, seed, step):
        account.count_cast("forward", fmt, x.numel())
        q = from_carrier(x, fmt, op_seed(seed, step, QUANT))
        ctx.fmt, ctx.grad_fmt, ctx.ste, ctx.seed, ctx.step = fmt, grad_fmt, ste, seed, step
        ctx.x_dtype = x.dtype
        if ste == "clipped":
            ctx.save_for_backward(x)
        return to_carrier(q, like=x)

    @staticmethod
    def backward(ctx, g):
        if ctx.ste == "clipped":
            (x,) = ctx.saved_tensors
            g = g * (x.abs() <= clip_bound(ctx.fmt)).to(g.dtype)
        if ctx.grad_fmt is not None:
            account.count_cast("grad_input", ctx.grad_fmt, g.numel(), "gradient")
            g = to_carrier(from_carrier(g, ctx.grad_fmt, op_seed(ctx.seed, ctx.step, QUANT_G)), like=g)
        return g.to(ctx.x_dtype), None, None, None, None, None


def quantize(x: torch.Tensor, fmt: Format, *, grad_fmt: Format | None = None,
             ste: str = "identity", seed: int = 0, step: int = 0) -> torch.Tensor:
    """Cast ``x`` into ``fmt`` (its carrier), with a straight-through gradient.

    Gradient estimator: identity (``ste="identity"``), or zero where |x| exceeds
    the format's range (``"clipped"``; [-1, 1] for binary/ternary, BinaryNet's
    hardtanh STE). With ``grad_fmt`` the gradient itself is cast into that format.

    >>> quantize(torch.tensor([0.3, -2.0]), Fixed(4, 2))
    tensor([ 0.2500, -2.0000])
    """
    if ste not in ("identity", "clipped"):
        raise ValueError(f"ste must be 'identity' or 'clipped', got {ste!r}")
    return _Quantize.apply(x, fmt, grad_fmt, ste, seed, step)


# ----------------------------------------------------------------- linear ---

def _out_format(spec: EmulationSpec) -> Format | None:
    """The forward matmul rounds into ``spec.output``, else the activation format;
    with binary/ternary activations (and no output format) the exact integer dot
    products are kept."""
    if spec.output is not None:
        return spec.output
    act = spec.activation
    return act if isinstance(act, (Fixed, LNS, Float)) else None


def _unscaled(x: EmuArray) -> EmuArray:
    """Binary/ternary codes without their scale (a block array keeps its block scales:
    they are part of its values)."""
    return x if x.scale is None or isinstance(x.fmt, Block) else from_codes(x.codes, x.fmt)


def _weight_scale_rows(wq: EmuArray) -> np.ndarray | None:
    """A weight scale per output channel, as a row to multiply a gradient by (or None)."""
    if wq.scale is None or isinstance(wq.fmt, Block):
        return None
    return np.array(np.broadcast_to(wq.scale, wq.shape)[:, 0][None, :])


def scale_exponent(history: torch.Tensor, fmt: Float) -> int:
    """Delayed scaling's k: the largest integer with amax * 2**k <= max(fmt), amax the
    largest entry of ``history`` (0 before any step: k = 0)."""
    a = float(history.max())
    if a == 0.0 or not math.isfinite(a):
        return 0
    top = float(fmt.max_value)
    k = math.floor(math.log2(top / a))
    while math.ldexp(a, k) > top:
        k -= 1
    while math.ldexp(a, k + 1) <= top:
        k += 1
    return k


def _record(history: torch.Tensor, t: torch.Tensor) -> None:
    """Push the largest finite magnitude of ``t`` onto a history row (newest first)."""
    a = t.detach().abs()
    a = a[torch.isfinite(a)]
    history.copy_(torch.roll(history, 1))
    history[0] = float(a.max()) if a.numel() else 0.0


def _acc_format(spec: EmulationSpec) -> Float:
    acc = spec.accumulator
    return acc.result_format if isinstance(acc, AccumulatorModel) else acc


def along(fmt: Format | None, axis: int) -> Format | None:
    """``fmt`` blocked along ``axis`` when it is a 1-D block format; any other format (a
    tiled block format included: transposition maps its tiles onto themselves) as it is."""
    if isinstance(fmt, Block) and fmt.tile is None:
        return dataclasses.replace(fmt, axis=axis)
    return fmt


def recast(q: EmuArray | None, fmt: Format | None, ndim: int, axis: int) -> bool:
    """Whether a backward product that contracts over ``axis`` of an ``ndim``-D forward
    operand ``q`` (cast into ``fmt``) casts it afresh: a 1-D block format the forward
    blocked along another axis. Element formats and tiled block formats reuse the
    forward's codes (used transposed)."""
    return (q is not None and isinstance(fmt, Block) and fmt.tile is None
            and fmt.axis % ndim != axis % ndim)


def requantized(q: EmuArray | None, t: torch.Tensor, fmt: Format | None, axis: int,
                seed: int) -> EmuArray | None:
    """The forward operand ``q`` (``t`` cast into ``fmt``) as a backward product that
    contracts over ``axis`` of ``t`` reads it: cast afresh from the float ``t`` along that
    axis where :func:`recast` says so, else ``q`` itself."""
    if not recast(q, fmt, t.ndim, axis):
        return q
    return from_carrier(t, dataclasses.replace(fmt, axis=axis), seed)


def block_result(spec: EmulationSpec) -> Float:
    """Where the input gradient g @ W rounds when ``grad_input`` is a block format (a
    product writes no block format): ``spec.output`` if it is a Float, else the
    accumulator's result format (fp32 unless named); the previous layer block-casts it
    as its own incoming gradient. The weight and bias gradients round into the
    accumulator's result format before their block cast into a block ``grad_weight``."""
    if isinstance(spec.output, Float):
        return spec.output
    return _acc_format(spec) or FP32_ACCUMULATOR


def grad_x_format(spec: EmulationSpec) -> Format | None:
    """The format the input gradient g @ W rounds into: ``grad_input``, or
    :func:`block_result` for a block ``grad_input``."""
    gi = spec.grad_input
    return block_result(spec) if isinstance(gi, Block) else gi


def grad_w_format(spec: EmulationSpec) -> Format | None:
    """The format the weight and bias gradients round into first: ``grad_weight``, or for
    a block ``grad_weight`` the accumulator's result format (fp32 unless named), which is
    then block-cast into it."""
    gw = spec.grad_weight
    return (_acc_format(spec) or FP32_ACCUMULATOR) if isinstance(gw, Block) else gw


def _ones_row(m: int) -> EmuArray:
    """A row of m ones (bf16: every product 1 * g is exact), for a sum as a product."""
    return E.cast(np.ones((1, m)), "bf16")


def _unscaled_into(y: EmuArray, k: int, fmt: Format, seed: int) -> EmuArray:
    """y's values times 2**-k (exact in float64), rounded once into ``fmt``."""
    return from_carrier(torch.from_numpy(np.ldexp(y.to_float(), -k)), fmt, seed)


class _EmulatedLinear(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x2, w, b, spec, seed, step, amax=None, record=False):
        emu = spec.weight is not None and spec.activation is not None
        _count_forward(x2, w, b, spec, emu)
        ctx.amax, ctx.record, ctx.k = amax, record, (0, 0, 0)
        if spec.delayed:
            ctx.k = tuple(scale_exponent(amax[r], f) for r, f in
                          enumerate((spec.activation, spec.weight, spec.grad_input)))
        kx, kw, _ = ctx.k
        xq = from_carrier(x2 * 2.0 ** kx if kx else x2, spec.activation,
                          op_seed(seed, step, CAST_X)) if spec.activation is not None else None
        wq = from_carrier(w * 2.0 ** kw if kw else w, spec.weight, op_seed(seed, step, CAST_W)) \
            if spec.weight is not None else None
        if spec.delayed and record:
            _record(amax[0], x2)
            _record(amax[1], w)
        xc = x2 if xq is None else to_carrier(xq, like=x2)
        wc = w if wq is None else to_carrier(wq, like=w)  # (scaled by 2**k under delayed scaling)
        if emu and spec.delayed:
            out = _out_format(spec)
            y = E.matmul(xq, wq.T, _acc_format(spec), spec.accumulator, spec.order,
                         spec.compensated, seed=op_seed(seed, step, FORWARD))
            y = _unscaled_into(y, kx + kw, out, op_seed(seed, step, FORWARD))
            if b is not None:
                y = E.add(y, from_carrier(b, out)[None, :], out, seed=op_seed(seed, step, BIAS))
            yc = to_carrier(y, like=x2)
        elif emu:
            out = _out_format(spec)
            y = E.matmul(xq, wq.T, out, spec.accumulator, spec.order, spec.compensated,
                         seed=op_seed(seed, step, FORWARD))
            if out is not None and y.scale is None:
                if b is not None:
                    y = E.add(y, from_carrier(b, out)[None, :], out, seed=op_seed(seed, step, BIAS))
                yc = to_carrier(y, like=x2)
            else:  # binary/ternary scales (and the bias) in float64, then one rounding or none
                vals = torch.from_numpy(y.to_float())
                if b is not None:
                    vals = vals + b.detach().double()
                yc = vals.to(x2.dtype) if out is None else \
                    to_carrier(from_carrier(vals, out), like=x2)
        else:
            dtype = torch.promote_types(xc.dtype, wc.dtype)
            yc = xc.to(dtype) @ wc.to(dtype).T
            if b is not None:
                yc = yc + b.to(dtype)
        ctx.spec, ctx.seed, ctx.step = spec, seed, step
        ctx.xq, ctx.wq, ctx.has_bias = xq, wq, b is not None
        ctx.dtypes = (x2.dtype, w.dtype, None if b is None else b.dtype)
        ctx.save_for_backward(x2, w, xc, wc)
        return yc

    @staticmethod
    def backward(ctx, gy):
        with torch._C.DisableTorchFunction():  # lowbit's own arithmetic, not a model's
            return _EmulatedLinear._backward(ctx, gy)

    @staticmethod
    def _backward(ctx, gy):
        spec, seed, step = ctx.spec, ctx.seed, ctx.step
        x2, w, xc, wc = ctx.saved_tensors
        _count_backward(ctx, gy, x2, w)
        if spec.delayed:
            return _EmulatedLinear._delayed_backward(ctx, gy)
        xq, wq = ctx.xq, ctx.wq
        gi, gw = spec.grad_input, spec.grad_weight
        need_x, need_w = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        need_b = ctx.has_bias and ctx.needs_input_grad[2]
        grad_x = grad_w = grad_b = None
        if isinstance(gi, Block) or isinstance(gw, Block):
            grad_x, grad_w, grad_b = _EmulatedLinear._block_backward(ctx, gy)
            need_x = need_w = need_b = False  # done
        gq = from_carrier(gy, gi, op_seed(seed, step, CAST_G)) \
            if gi is not None and (need_x or need_w or need_b) else None
        # gradient w.r.t. the input: g @ W (a 1-D block weight cast along N)
        if need_x:
            wt = requantized(wq, w, spec.weight, 0, op_seed(seed, step, CAST_WT))
            if gi is not None and wq is not None:
                rows = _weight_scale_rows(wq)
                gqx = gq if rows is None else \
                    from_carrier(gy * torch.from_numpy(rows).to(gy.dtype), gi, op_seed(seed, step, CAST_G))
                gx = E.matmul(gqx, _unscaled(wt), gi, spec.accumulator if _family_ok(gi, spec) else None,
                              spec.order, spec.compensated, seed=op_seed(seed, step, GRAD_X))
                grad_x = to_carrier(gx, like=gy)
            else:
                wct = wc if wt is wq else to_carrier(wt, like=w)
                grad_x = gy.to(wct.dtype) @ wct
        # gradient w.r.t. the weight: g^T @ x (a 1-D block activation cast along M)
        if need_w:
            xt = requantized(xq, x2, spec.activation, 0, op_seed(seed, step, CAST_XT))
            if gw is not None and gq is not None and xq is not None:
                gwq = E.matmul(gq.T, xt, gw, spec.accumulator if _family_ok(gw, spec) else None,
                               spec.order, spec.compensated, seed=op_seed(seed, step, GRAD_W))
                grad_w = to_carrier(gwq, like=gy) if gwq.scale is None else \
                    torch.from_numpy(gwq.to_float()).to(gy.dtype)
            else:
                xct = xc if xt is xq else to_carrier(xt, like=x2)
                grad_w = gy.to(xct.dtype).T @ xct
        if need_b:
            if gw is not None and gq is not None:
                bias_acc = spec.accumulator if isinstance(gw, Float) else None
                grad_b = to_carrier(E.sum(gq, axis=0, out=gw, acc=bias_acc,
                                          seed=op_seed(seed, step, GRAD_B)), like=gy)
            else:
                grad_b = gy.sum(0)
        if grad_x is not None and spec.ste == "clipped" and spec.activation is not None:
            grad_x = grad_x * (x2.abs() <= clip_bound(spec.activation)).to(grad_x.dtype)
        if grad_w is not None and spec.ste == "clipped" and spec.weight is not None:
            grad_w = grad_w * (w.abs() <= clip_bound(spec.weight)).to(grad_w.dtype)
        dx, dw, db = ctx.dtypes
        return (None if grad_x is None else grad_x.to(dx), None if grad_w is None else grad_w.to(dw),
                None if grad_b is None else grad_b.to(db), None, None, None, None, None)

    @staticmethod
    def _block_backward(ctx, gy):
        """The backward products with a block ``grad_input`` or ``grad_weight`` (MX
        training): each product casts both its operands along its own contraction axis
        from their float values -- g along N and W along N for g @ W, g along M and x along
        M for g^T @ x (tiled formats: the forward's codes, transposed) -- and writes a
        Float: g @ W into :func:`block_result`, g^T @ x and sum(g) into the accumulator's
        result format, then block-cast into a block ``grad_weight`` (a Float
        ``grad_weight``: one rounding into it)."""
        spec, seed, step = ctx.spec, ctx.seed, ctx.step
        x2, w, xc, wc = ctx.saved_tensors
        xq, wq = ctx.xq, ctx.wq
        gi, gw, acc = spec.grad_input, spec.grad_weight, spec.accumulator
        need_x, need_w = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        need_b = ctx.has_bias and ctx.needs_input_grad[2]
        grad_x = grad_w = grad_b = None
        # the gradient cast along N (for g @ W) and along M (for g^T @ x and sum(g)): two
        # casts for a 1-D block format, one for a tiled or an element format
        want_n = gi is not None and need_x and wq is not None
        want_m = gi is not None and gw is not None and ((need_w and xq is not None) or need_b)
        g_n = g_m = None
        if isinstance(gi, Block) and gi.tile is None:
            if want_n:
                g_n = from_carrier(gy, along(gi, -1), op_seed(seed, step, CAST_G))
            if want_m:
                g_m = from_carrier(gy, along(gi, 0), op_seed(seed, step, CAST_GT))
        elif want_n or want_m:
            g = from_carrier(gy, gi, op_seed(seed, step, CAST_G))
            g_n, g_m = (g if want_n else None), (g if want_m else None)
        if need_x:
            wt = requantized(wq, w, spec.weight, 0, op_seed(seed, step, CAST_WT))
            if g_n is not None:
                grad_x = to_carrier(E.matmul(g_n, wt, grad_x_format(spec), acc, spec.order, spec.compensated,
                                             seed=op_seed(seed, step, GRAD_X)), like=gy)
            else:
                wct = wc if wt is wq else to_carrier(wt, like=w)
                grad_x = gy.to(wct.dtype) @ wct
        into = grad_w_format(spec)  # where g^T @ x and sum(g) round first
        if need_w:
            xt = requantized(xq, x2, spec.activation, 0, op_seed(seed, step, CAST_XT))
            if g_m is not None and xq is not None:
                r = E.matmul(g_m.T, xt, into, acc, spec.order, spec.compensated,
                             seed=op_seed(seed, step, GRAD_W))
                if isinstance(gw, Block):
                    r = from_carrier(to_carrier(r, like=gy), along(gw, -1),
                                     op_seed(seed, step, CAST_GW))
                grad_w = to_carrier(r, like=gy)
            else:
                xct = xc if xt is xq else to_carrier(xt, like=x2)
                grad_w = gy.to(xct.dtype).T @ xct
        if need_b:
            if g_m is not None:  # sum over M: a product with a row of ones
                r = E.matmul(_ones_row(gy.shape[0]), g_m, into, acc,
                             seed=op_seed(seed, step, GRAD_B))
                if isinstance(gw, Block):  # one row: the blocks (tiles) run along it
                    r = from_carrier(to_carrier(r, like=gy), along(gw, -1),
                                     op_seed(seed, step, CAST_GB))
                grad_b = to_carrier(r, like=gy)[0]
            else:
                grad_b = gy.sum(0)
        return grad_x, grad_w, grad_b

    @staticmethod
    def _delayed_backward(ctx, gy):
        """The backward matmuls under delayed scaling: the gradient cast at 2**kg, each
        product accumulated, unscaled exactly, then rounded once into its format."""
        spec, seed, step = ctx.spec, ctx.seed, ctx.step
        xq, wq = ctx.xq, ctx.wq
        kx, kw, kg = ctx.k
        gi, gw, acc_f = spec.grad_input, spec.grad_weight, _acc_format(spec)
        gq = from_carrier(gy * 2.0 ** kg if kg else gy, gi, op_seed(seed, step, CAST_G))
        if ctx.record:
            _record(ctx.amax[2], gy)
        grad_x = grad_w = grad_b = None
        if ctx.needs_input_grad[0]:
            gx = E.matmul(gq, wq, acc_f, spec.accumulator, spec.order, spec.compensated,
                          seed=op_seed(seed, step, GRAD_X))
            # the input gradient leaves in the output format (the previous layer casts it
            # into gi at its own scale), as FP8 training's dgrad does
            grad_x = to_carrier(_unscaled_into(gx, kg + kw, _out_format(spec) or acc_f,
                                               op_seed(seed, step, GRAD_X)), like=gy)
        if ctx.needs_input_grad[1]:
            out = gw if gw is not None else acc_f
            gwq = E.matmul(gq.T, xq, acc_f, spec.accumulator, spec.order, spec.compensated,
                           seed=op_seed(seed, step, GRAD_W))
            grad_w = to_carrier(_unscaled_into(gwq, kg + kx, out, op_seed(seed, step, GRAD_W)),
                                like=gy)
        if ctx.has_bias and ctx.needs_input_grad[2]:
            out = gw if gw is not None else acc_f
            s = E.sum(gq, axis=0, out=acc_f, acc=spec.accumulator, seed=op_seed(seed, step, GRAD_B))
            grad_b = to_carrier(_unscaled_into(s, kg, out, op_seed(seed, step, GRAD_B)), like=gy)
        dx, dw, db = ctx.dtypes
        return (None if grad_x is None else grad_x.to(dx), None if grad_w is None else grad_w.to(dw),
                None if grad_b is None else grad_b.to(db), None, None, None, None, None)


def _count_forward(x2, w, b, spec: EmulationSpec, emu: bool) -> None:
    """The forward product's entries in the operation account (if one is open)."""
    if account.active() is None:
        return
    (m, k), n = x2.shape, w.shape[0]
    out = _out_format(spec) if emu else None
    account.count_cast("forward", spec.activation, m * k)
    account.count_cast("forward", spec.weight, n * k, "weight")
    account.count_matmul("forward", m, n, k, spec.activation, spec.weight,
                         spec.accumulator if emu else None, out, a_tensor="activation",
                         b_tensor="weight", out_tensor="activation")
    if b is not None:
        account.count_add("forward", out, m * n, "activation")


def _count_backward(ctx, gy, x2, w) -> None:
    """The backward products' entries: the incoming gradient's cast (two for a 1-D block
    ``grad_input``: along N and along M), g @ W, g^T @ x, sum(g), the block formats'
    fresh casts of W (along N) and x (along M), and the block casts of the weight and
    bias gradients into a block ``grad_weight``."""
    if account.active() is None:
        return
    spec = ctx.spec
    (m, k), n = x2.shape, w.shape[0]
    gi, gw, acc = spec.grad_input, spec.grad_weight, spec.accumulator
    need_x, need_w = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
    need_b = ctx.has_bias and ctx.needs_input_grad[2]
    blocks = isinstance(gi, Block) or isinstance(gw, Block)
    if need_x and recast(ctx.wq, spec.weight, 2, 0):
        account.count_cast("grad_input", spec.weight, n * k, "weight")
    if need_w and recast(ctx.xq, spec.activation, 2, 0):
        account.count_cast("grad_weight", spec.activation, m * k)
    if not blocks:
        account.count_cast("grad_input", gi, m * n, "gradient")
        if need_x:
            emu = gi is not None and ctx.wq is not None
            account.count_matmul("grad_input", m, k, n, gi, spec.weight,
                                 acc if emu and _family_ok(gi, spec) else None,
                                 gi if emu else None, a_tensor="gradient", b_tensor="weight",
                                 out_tensor="gradient")
        if need_w:
            emu = gw is not None and gi is not None and ctx.xq is not None
            account.count_matmul("grad_weight", n, k, m, gi, spec.activation,
                                 acc if emu and _family_ok(gw, spec) else None,
                                 gw if emu else None, a_tensor="gradient", b_tensor="activation",
                                 out_tensor="gradient")
        if need_b:
            account.count_add("grad_weight", gw if gi is not None else None, m * n, "gradient")
        return
    emu_x = gi is not None and need_x and ctx.wq is not None
    want_m = gi is not None and gw is not None and ((need_w and ctx.xq is not None) or need_b)
    if isinstance(gi, Block) and gi.tile is None:
        if emu_x:
            account.count_cast("grad_input", gi, m * n, "gradient")
        if want_m:
            account.count_cast("grad_weight", gi, m * n, "gradient")
    elif emu_x or want_m:
        account.count_cast("grad_input", gi, m * n, "gradient")
    into = grad_w_format(spec)  # where g^T @ x and sum(g) round first
    if need_x:
        account.count_matmul("grad_input", m, k, n, gi, spec.weight, acc if emu_x else None,
                             grad_x_format(spec) if emu_x else None, a_tensor="gradient", b_tensor="weight",
                             out_tensor="gradient")
    if need_w:
        emu = want_m and ctx.xq is not None
        account.count_matmul("grad_weight", n, k, m, gi, spec.activation, acc if emu else None,
                             into if emu else None, a_tensor="gradient", b_tensor="activation",
                             out_tensor="gradient")
        if emu and isinstance(gw, Block):
            account.count_cast("grad_weight", gw, n * k, "gradient")
    if need_b:
        account.count_add("grad_weight", into if want_m else None, m * n, "gradient")
        if want_m and isinstance(gw, Block):
            account.count_cast("grad_weight", gw, n, "gradient")


def _family_ok(out: Format, spec: EmulationSpec) -> bool:
    """The spec's accumulator serves a backward matmul when it is of the gradient's family."""
    acc = spec.accumulator
    if acc is None:
        return False
    if isinstance(out, (Float, Block)):
        return isinstance(acc, (Float, AccumulatorModel))
    return not isinstance(acc, (Float, AccumulatorModel)) and isinstance(acc, LNS) == isinstance(out, LNS)


def emulated_linear(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None,
                    spec: EmulationSpec | str, *, seed: int = 0, step: int = 0,
                    amax: torch.Tensor | None = None, record: bool = False) -> torch.Tensor:
    """y = x @ w.T + b with every matmul in the emulator (see :class:`EmulationSpec`).

    Forward: x is cast into ``spec.activation``, w into ``spec.weight``, the product
    accumulates in ``spec.accumulator`` (``order``, ``compensated``) and rounds into
    ``spec.output`` (default: the activation format); the bias is added there (an
    emulated addition).
    Backward: the incoming gradient g is cast into ``spec.grad_input``;
    grad_x = g @ w_q rounds into ``grad_input``, grad_w = g.T @ x_q and
    grad_b = sum(g) into ``spec.grad_weight``, with the same accumulator settings.
    Block formats (MX, NVFP4): each backward product casts both its operands along its
    own contraction axis -- g along N and w (afresh from the float weights) along N for
    grad_x, g along M and x (afresh from the float input) along M for grad_w; a tiled
    format keeps the forward's codes -- and a product never writes a block format:
    with a block ``grad_input``, grad_x rounds into ``spec.output`` if it is a Float,
    else into the accumulator's result format; grad_w and grad_b round into the
    accumulator's result format and are then block-cast into a block ``grad_weight``
    (rules: :class:`EmulationSpec`).
    Gradient estimator: straight-through to the float x and w (identity, or clipped
    by ``spec.ste``). With ``spec.scaling == "delayed"``, ``amax`` is the layer's (3, 16)
    history of the largest |x|, |w| and |g| (updated in place when ``record``). Roles set to None run in float on the carriers. Binary and
    ternary scales (and, with them, the bias) are applied in float64 after the exact
    integer matmul, then rounded once; a per-channel weight scale is folded into
    the gradient before it is cast for grad_x.
    """
    spec = EmulationSpec.parse(spec)
    if spec.delayed and (amax is None or amax.shape != (3, AMAX_HISTORY)):
        raise ValueError(f"emulated_linear: scaling=delayed needs the amax history, a (3, "
                         f"{AMAX_HISTORY}) tensor (rows x, w, gradient): EmulatedLinear keeps one")
    shape = x.shape
    y = _EmulatedLinear.apply(x.reshape(-1, shape[-1]), w, b, spec, seed, step, amax, record)
    return y.reshape(*shape[:-1], w.shape[0])


def emulated_conv2d(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None,
                    spec: EmulationSpec | str, stride=1, padding=0, dilation=1, *,
                    seed: int = 0, step: int = 0, amax: torch.Tensor | None = None,
                    record: bool = False) -> torch.Tensor:
    """2-D convolution as im2col + :func:`emulated_linear` (groups = 1).

    The patches are copied exactly (``unfold``); in the backward pass ``unfold``'s
    adjoint adds the gradients of overlapping patches in float (not emulated).
    """
    n, c, h, wd = x.shape
    oc, ic, kh, kw = w.shape
    if ic != c:
        raise ValueError(f"emulated_conv2d: input has {c} channels, weight expects {ic} (groups=1)")
    cols = F.unfold(x, (kh, kw), dilation=dilation, padding=padding, stride=stride)  # N, C*k*k, L
    L = cols.shape[-1]
    y = emulated_linear(cols.transpose(1, 2), w.reshape(oc, -1), b, spec, seed=seed, step=step,
                        amax=amax, record=record)
    ho = (h + 2 * _pair(padding)[0] - _pair(dilation)[0] * (kh - 1) - 1) // _pair(stride)[0] + 1
    wo = (wd + 2 * _pair(padding)[1] - _pair(dilation)[1] * (kw - 1) - 1) // _pair(stride)[1] + 1
    assert ho * wo == L
    return y.transpose(1, 2).reshape(n, oc, ho, wo)


def _pair(v):
    return (v, v) if isinstance(v, int) else tuple(v)
