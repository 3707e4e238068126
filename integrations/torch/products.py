"""Matrix products of any shape -- ``torch.matmul``'s rules, two-operand ``einsum``,
scaled dot-product attention -- with every product in the emulator.

Each product is one or more :func:`~lowbit.integrations.torch.functions.emulated_linear`
calls, so its forward and both backward products follow that function's semantics.
Roles: an operand that is a weight (an ``nn.Parameter``, or the caller says so) takes the
spec's weight format and its gradient the ``grad_weight`` format; a product of two
activations (attention's QK^T and PV) takes the activation format for both operands and
``grad_input`` for both gradients (:func:`activation_spec`; a block ``grad_input``: both
gradients leave as a Float, as a linear layer's input gradient does).
"""

from __future__ import annotations

import dataclasses
import math
import string

import numpy as np

import torch
import torch.nn.functional as F

import lowbit.emulators as E
from lowbit.integrations.torch import account
from lowbit.integrations.torch.carriers import from_carrier, to_carrier
from lowbit.integrations.torch.functions import (CAST_G, CAST_W, CAST_X, FORWARD, GRAD_W, GRAD_X,
                                                 _family_ok, _out_format, grad_x_format,
                                                 clip_bound, emulated_linear, op_seed)
from lowbit.integrations.torch.spec import EmulationSpec
from lowbit.numerics import LNS, Fixed, Float, rng


def activation_spec(spec: EmulationSpec) -> EmulationSpec:
    """The spec of a product of two activations: both operands in the activation
    format, both gradients in ``grad_input`` -- with a block ``grad_input`` both
    gradients leave as the input gradient does, rounded once into
    :func:`~lowbit.integrations.torch.functions.block_result` (their producers block-cast
    them), and the product's operands are each cast along the contraction axis of the
    backward product that reads them."""
    return dataclasses.replace(spec, weight=spec.activation, grad_weight=grad_x_format(spec))


def matmul_macs(a_shape, b_shape) -> int:
    """Multiply-accumulates of ``torch.matmul`` on operands of these shapes."""
    a = (1,) + tuple(a_shape) if len(a_shape) == 1 else tuple(a_shape)
    b = tuple(b_shape) + (1,) if len(b_shape) == 1 else tuple(b_shape)
    batch = torch.broadcast_shapes(a[:-2], b[:-2])
    return math.prod(batch) * a[-2] * a[-1] * b[-1]


def emulated_matmul(a: torch.Tensor, b: torch.Tensor, spec: EmulationSpec | str, *,
                    weight: str | None = None, seed: int = 0, step: int = 0) -> torch.Tensor:
    """``torch.matmul(a, b)`` (1-D, 2-D and broadcast batched operands) with every
    product emulated; ``weight`` is "a", "b" or None (which operand is a weight).

    Order: each output element is one dot product over the contraction index, ascending.
    A 2-D ``b`` (or a 2-D ``a``) serves every batch in one matmul (so its weight
    gradient is one emulated sum over the batch); other batched products run one matmul
    per batch element, and where one operand is broadcast along a batch dimension its
    gradient is the float sum of the per-batch gradients (torch's ``expand`` adjoint).
    """
    spec = EmulationSpec.parse(spec)
    if a.ndim == 0 or b.ndim == 0:
        raise ValueError("matmul: both operands need at least one dimension")
    if weight not in (None, "a", "b"):
        raise ValueError(f"emulated_matmul: weight must be 'a', 'b' or None, got {weight!r}")
    if weight == "a":  # (a @ b) = (b^T @ a^T)^T with a as the weight operand
        if a.ndim == 1 or b.ndim == 1:
            return emulated_matmul(b.mT if b.ndim > 1 else b, a.mT if a.ndim > 1 else a, spec,
                                   weight="b", seed=seed, step=step)
        return emulated_matmul(b.mT, a.mT, spec, weight="b", seed=seed, step=step).mT
    s = spec if weight == "b" else activation_spec(spec)
    squeeze = []
    if a.ndim == 1:
        a, squeeze = a.unsqueeze(0), squeeze + [-2]
    if b.ndim == 1:
        b, squeeze = b.unsqueeze(-1), squeeze + [-1]
    if a.shape[-1] != b.shape[-2]:
        raise ValueError(f"matmul: shapes {tuple(a.shape)} and {tuple(b.shape)} cannot be "
                         "multiplied")
    if b.ndim == 2:
        y = emulated_linear(a, b.mT, None, s, seed=seed, step=step)
    elif a.ndim == 2 and weight is None:
        y = emulated_linear(b.mT, a, None, s, seed=seed, step=step).mT
    else:
        batch = torch.broadcast_shapes(a.shape[:-2], b.shape[:-2])
        m, k, n = a.shape[-2], a.shape[-1], b.shape[-1]
        if math.prod(b.shape[:-2]) == 1:
            y = emulated_linear(a.expand(*batch, m, k), b.reshape(k, n).mT, None, s,
                                seed=seed, step=step)
        else:
            ae = a.expand(*batch, m, k).reshape(-1, m, k)
            be = b.expand(*batch, k, n).reshape(-1, k, n)
            if weight is None and _batched_ok(s):
                return _squeezed(_EmulatedBmm.apply(ae, be, s, seed, step).reshape(*batch, m, n),
                                 squeeze)
            y = torch.stack([emulated_linear(ae[i], be[i].mT, None, s,
                                             seed=rng.random_u64(seed, i) if i else seed,
                                             step=step) for i in range(ae.shape[0])])
            y = y.reshape(*batch, m, n)
    return _squeezed(y, squeeze)


def _squeezed(y: torch.Tensor, dims) -> torch.Tensor:
    for d in dims:
        y = y.squeeze(d)
    return y


class _EmulatedBmm(torch.autograd.Function):
    """(B, M, K) @ (B, K, N), both operands activations: each operand cast once, then one
    emulated matmul per batch element -- the numbers of ``emulated_linear`` per batch
    element (forward rounded into the output format, grad_a = g @ b^T and
    grad_b = a^T @ g rounded into ``grad_input``), without its per-call overhead."""

    @staticmethod
    def forward(ctx, a, b, spec, seed, step):
        n, m, k = a.shape
        account.count_cast("forward", spec.activation, a.numel())
        account.count_cast("forward", spec.activation, b.numel())
        account.count_matmul("forward", m, b.shape[-1], k, spec.activation, spec.activation,
                             spec.accumulator, _out_format(spec), a_tensor="activation",
                             b_tensor="activation", out_tensor="activation", batch=n)
        aq = from_carrier(a, spec.activation, op_seed(seed, step, CAST_X))
        bq = from_carrier(b, spec.activation, op_seed(seed, step, CAST_W))
        y = E.bmm(aq, bq, _out_format(spec), spec.accumulator, spec.order, spec.compensated,
                  seed=op_seed(seed, step, FORWARD))
        ctx.spec, ctx.seed, ctx.step, ctx.aq, ctx.bq = spec, seed, step, aq, bq
        ctx.save_for_backward(a, b)
        ctx.dtypes = (a.dtype, b.dtype)
        return to_carrier(y, like=a)

    @staticmethod
    def backward(ctx, g):
        with torch._C.DisableTorchFunction():
            spec, seed, step = ctx.spec, ctx.seed, ctx.step
            a, b = ctx.saved_tensors
            gi = spec.grad_input
            acc = spec.accumulator if _family_ok(gi, spec) else None
            gq = from_carrier(g, gi, op_seed(seed, step, CAST_G))
            ga = gb = None
            n, m, k = a.shape
            account.count_cast("grad_input", gi, g.numel(), "gradient")
            for i, need in enumerate(ctx.needs_input_grad[:2]):
                if need:  # g @ b^T (m x k, over n columns) and a^T @ g (k x n, over m rows)
                    cols = b.shape[-1]
                    account.count_matmul("grad_input", *((m, k, cols) if i == 0 else (k, cols, m)),
                                         gi, spec.activation, acc, gi, a_tensor="gradient",
                                         b_tensor="activation", out_tensor="gradient", batch=n)
            if ctx.needs_input_grad[0]:
                ga = to_carrier(E.bmm(gq, _swapped(ctx.bq), gi, acc, spec.order, spec.compensated,
                                      seed=op_seed(seed, step, GRAD_X)), like=g)
                if spec.ste == "clipped":
                    ga = ga * (a.abs() <= clip_bound(spec.activation)).to(ga.dtype)
                ga = ga.to(ctx.dtypes[0])
            if ctx.needs_input_grad[1]:
                gb = to_carrier(E.bmm(_swapped(ctx.aq), gq, gi, acc, spec.order, spec.compensated,
                                      seed=op_seed(seed, step, GRAD_W)), like=g)
                if spec.ste == "clipped":
                    gb = gb * (b.abs() <= clip_bound(spec.activation)).to(gb.dtype)
                gb = gb.to(ctx.dtypes[1])
            return ga, gb, None, None, None


def _swapped(x: E.EmuArray) -> E.EmuArray:
    """The batch of transposes of a (B, M, K) array (unscaled formats)."""
    return E.from_codes(np.ascontiguousarray(np.swapaxes(x.codes, 1, 2)), x.fmt)


def _batched_ok(spec: EmulationSpec) -> bool:
    """The batched product serves element formats with emulated gradients (binary /
    ternary scales and block formats go through emulated_linear per batch element)."""
    return (isinstance(spec.activation, (Fixed, Float, LNS))
            and isinstance(spec.grad_input, (Fixed, Float, LNS)) and not spec.delayed)


def _expand_ellipsis(term: str, ndim: int, letters: str, name: str) -> str:
    if "..." not in term:
        if len(term) != ndim:
            raise ValueError(f"einsum: subscripts {term!r} do not match the {ndim} dimensions of {name}")
        return term
    n = ndim - (len(term) - 3)
    if n < 0:
        raise ValueError(f"einsum: subscripts {term!r} have more letters than {name} has dimensions")
    return term.replace("...", letters[len(letters) - n:] if n else "")


def einsum_plan(equation: str, a_ndim: int, b_ndim: int):
    """The two-operand einsum as a batched matmul: (a term, b term, out term, batch,
    rows of a, contraction, columns of b) letters. Raises ValueError for what is not a
    product of two operands (repeated letters in one operand, a letter summed within one
    operand)."""
    eq = equation.replace(" ", "")
    lhs, arrow, out = eq.partition("->")
    terms = lhs.split(",")
    if len(terms) != 2:
        raise ValueError(f"einsum {equation!r}: lowbit emulates two-operand einsums "
                         f"(got {len(terms)} operands)")
    used = set(eq) - set(".,->")
    if not all(c in string.ascii_letters for c in used):
        raise ValueError(f"einsum {equation!r}: subscripts must be letters")
    free = [c for c in string.ascii_letters if c not in used]
    n_ell = max(a_ndim - (len(terms[0]) - 3) if "..." in terms[0] else 0,
                b_ndim - (len(terms[1]) - 3) if "..." in terms[1] else 0)
    ell = "".join(free[:n_ell])
    ta = _expand_ellipsis(terms[0], a_ndim, ell, "the first operand")
    tb = _expand_ellipsis(terms[1], b_ndim, ell, "the second operand")
    if arrow:
        to = out.replace("...", ell)
    else:
        counts = {c: (ta + tb).count(c) for c in set(ta + tb)}
        to = ell + "".join(sorted(c for c, n in counts.items() if n == 1 and c not in ell))
    for t in (ta, tb, to):
        if len(set(t)) != len(t):
            raise ValueError(f"einsum {equation!r}: a letter repeated within one term (a "
                             "diagonal) is not a matrix product")
    if set(to) - set(ta + tb):
        raise ValueError(f"einsum {equation!r}: output letters that no operand has")
    alone = [c for c in ta + tb if c not in to and ((c in ta) != (c in tb))]
    if alone:
        raise ValueError(f"einsum {equation!r}: letters {''.join(alone)!r} are summed within "
                         "one operand (an addition, not a product; sum that operand first)")
    batch = [c for c in to if c in ta and c in tb]
    rows = [c for c in ta if c in to and c not in tb]
    contr = [c for c in ta if c in tb and c not in to]
    cols = [c for c in tb if c in to and c not in ta]
    return ta, tb, to, batch, rows, contr, cols


def einsum_macs(equation: str, a: torch.Tensor, b: torch.Tensor) -> int:
    ta, tb, _, batch, rows, contr, cols = einsum_plan(equation, a.ndim, b.ndim)
    size = {}
    for t, x in ((ta, a), (tb, b)):
        for c, n in zip(t, x.shape):
            size[c] = max(size.get(c, 1), n)
    return math.prod(size[c] for c in batch + rows + contr + cols)


def emulated_einsum(equation: str, a: torch.Tensor, b: torch.Tensor, spec: EmulationSpec | str,
                    *, weight: str | None = None, seed: int = 0, step: int = 0) -> torch.Tensor:
    """Two-operand ``torch.einsum`` as one batched :func:`emulated_matmul` (operands
    permuted to (batch, rows, contraction) x (batch, contraction, columns); the
    contraction runs over the contracted letters in the first operand's order)."""
    ta, tb, to, batch, rows, contr, cols = einsum_plan(equation, a.ndim, b.ndim)
    size = {}
    for t, x in ((ta, a), (tb, b)):
        for c, n in zip(t, x.shape):
            if size.get(c, 1) not in (1, n) and n != 1:
                raise ValueError(f"einsum {equation!r}: letter {c!r} has sizes {size[c]} and {n}")
            size[c] = max(size.get(c, 1), n)

    def arrange(x, t, order):
        x = x.permute([t.index(c) for c in order])
        return x.expand(*[size[c] for c in order])

    sb = [size[c] for c in batch]
    A = arrange(a, ta, batch + rows + contr).reshape(*sb, math.prod(size[c] for c in rows),
                                                      math.prod(size[c] for c in contr))
    B = arrange(b, tb, batch + contr + cols).reshape(*sb, math.prod(size[c] for c in contr),
                                                      math.prod(size[c] for c in cols))
    y = emulated_matmul(A, B, spec, weight=weight, seed=seed, step=step)
    y = y.reshape(tuple(sb + [size[c] for c in rows] + [size[c] for c in cols]))
    have = batch + rows + cols
    return y.permute([have.index(c) for c in to])


def emulated_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                       spec: EmulationSpec | str, attn_mask=None, dropout_p: float = 0.0,
                       is_causal: bool = False, scale: float | None = None,
                       enable_gqa: bool = False, *, seed: int = 0, step: int = 0) -> torch.Tensor:
    """``F.scaled_dot_product_attention`` as its two emulated products around a float
    softmax: q is multiplied by the scale (default 1/sqrt(E), float) and cast with k
    into the activation format, S = q k^T rounds into the output format, the mask (a
    boolean mask fills -inf, a float mask is added) and the softmax run in float (as
    float32 hardware softmax units do), dropout (p > 0) in float, then P (cast into the
    activation format) times v is the second emulated product."""
    spec = EmulationSpec.parse(spec)
    e = q.shape[-1]
    sc = 1.0 / math.sqrt(e) if scale is None else float(scale)
    if enable_gqa and k.shape[-3] != q.shape[-3]:
        rep = q.shape[-3] // k.shape[-3]
        k, v = k.repeat_interleave(rep, -3), v.repeat_interleave(rep, -3)
    s = emulated_matmul(q * sc, k.mT, spec, seed=seed, step=step)
    if is_causal:
        if attn_mask is not None:
            raise ValueError("scaled_dot_product_attention: attn_mask and is_causal together")
        L, S = q.shape[-2], k.shape[-2]
        attn_mask = torch.ones(L, S, dtype=torch.bool, device=q.device).tril()
    if attn_mask is not None:
        if attn_mask.dtype == torch.bool:
            s = s.masked_fill(~attn_mask, float("-inf"))
        else:
            s = s + attn_mask.to(s.dtype)
    p = torch.softmax(s, dim=-1)
    if dropout_p > 0.0:
        p = F.dropout(p, dropout_p, training=True)
    return emulated_matmul(p, v, spec, seed=rng.random_u64(seed, 1 << 32), step=step)
