"""``emulate(spec)``: run any PyTorch model with every matrix product in the emulator.

A :class:`torch.overrides.TorchFunctionMode` sees every call of a torch function, at the
level where a linear layer is still ``F.linear`` and an attention product still
``torch.matmul``, before autograd: so each product is replaced by an autograd function
whose forward **and both backward products** are emulated, with their roles (weight,
activation, gradient) known. (A ``TorchDispatchMode`` at the aten level would also see
the backward's ``mm`` calls, but no longer which operand is a weight and which a
gradient, and sees attention as one fused CPU kernel.)

What is emulated (forward, grad-input and grad-weight products):

- ``F.linear``; ``torch.matmul`` / ``@`` / ``mm`` / ``bmm`` / ``mv`` / ``dot`` /
  ``addmm`` / ``baddbmm`` (the added term: a bias vector with alpha = beta = 1 is
  added in the output format, anything else in float); two-operand ``einsum``;
- ``F.conv1d/2d/3d`` and ``F.conv_transpose1d/2d/3d``, any stride, padding (ints,
  "same", "valid"; ``nn.Conv*d``'s reflect / replicate / circular modes pad with
  ``F.pad`` first), dilation and groups (depthwise included): see
  :mod:`lowbit.integrations.torch.conv`;
- ``F.scaled_dot_product_attention`` (its two products around a float softmax) and
  ``F.multi_head_attention_forward`` (run op by op, so its projections and both
  attention products are emulated);
- ``F.embedding``: the weights are cast into the weight format (a table read, no MACs).

Every other op runs in float on the carriers and is counted in the coverage
(:func:`lowbit.integrations.torch.coverage.coverage`). A MAC-bearing op that lowbit does
not emulate (LSTM/GRU kernels, ``bilinear``, ``tensordot``, ...) raises
:class:`EmulationError` naming the op and module, or with ``strict=False`` runs in float,
is listed, and ``emulate`` warns once on exit.

Operand roles: an ``nn.Parameter`` operand of a product is a weight (the spec's weight
format, its gradient in ``grad_weight``); other operands are activations.
Stochastic rounding: each intercepted product gets its own seed from the mode's
``seed`` and a call counter, so a replayed sequence of calls repeats its random bits.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from typing import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

from lowbit.integrations.torch import account
from lowbit.integrations.torch.conv import conv_pads, emulated_conv, emulated_conv_transpose, _tuple
from lowbit.integrations.torch.functions import emulated_linear, quantize
from lowbit.integrations.torch.products import (activation_spec, einsum_macs, einsum_plan,
                                                 emulated_attention, emulated_einsum,
                                                 emulated_matmul, matmul_macs)
from lowbit.integrations.torch.spec import EmulationSpec
from lowbit.numerics import rng


class EmulationError(ValueError):
    """An op of the model cannot run in the emulator under this spec."""


@dataclasses.dataclass
class OpRecord:
    """One intercepted op: what it was, where, how big, and whether it was emulated."""

    op: str
    module: str
    shapes: tuple
    macs: int
    formats: str
    emulated: bool
    note: str = ""


# MAC-bearing torch functions lowbit does not emulate (by name): why, for the coverage.
NOT_EMULATED = {
    "lstm": "fused LSTM kernel (torch._VF): its gate matmuls never reach F.linear",
    "gru": "fused GRU kernel (torch._VF)",
    "rnn_tanh": "fused RNN kernel (torch._VF)",
    "rnn_relu": "fused RNN kernel (torch._VF)",
    "lstm_cell": "fused LSTM cell (torch._VF)",
    "gru_cell": "fused GRU cell (torch._VF)",
    "rnn_tanh_cell": "fused RNN cell (torch._VF)",
    "rnn_relu_cell": "fused RNN cell (torch._VF)",
    "bilinear": "bilinear form (x1^T A x2): not a two-operand product",
    "tensordot": "tensordot: not intercepted as a product (write it as einsum or matmul)",
    "addbmm": "addbmm sums over the batch: not lowered",
    "addmv": "addmv: not lowered",
    "addr": "outer-product update: not lowered",
    "chain_matmul": "chain of products: write it as successive matmuls",
    "multi_dot": "chain of products: write it as successive matmuls",
    "conv_tbc": "time-batch-channel convolution: not lowered",
    "embedding_bag": "embedding bag sums rows in float",
    "cdist": "pairwise distances: not lowered",
    "vdot": "complex dot product",
    "inner": "inner: write it as matmul",
    "kron": "Kronecker product: not lowered",
    "_native_multi_head_attention": "fused attention fast path",
    "_transformer_encoder_layer_fwd": "fused encoder fast path",
}

# ops with no arithmetic (views, shapes, metadata): not listed among the float ops
_NO_ARITHMETIC = {
    "__get__", "__getitem__", "__setitem__", "__len__", "__iter__", "__bool__", "__format__",
    "__repr__", "__hash__", "__eq__", "dim", "size", "view", "reshape", "permute", "transpose",
    "contiguous", "unsqueeze", "squeeze", "expand", "expand_as", "flatten", "unflatten",
    "chunk", "split", "narrow", "select", "t", "mT", "T", "to", "type", "float", "double",
    "detach", "clone", "cat", "stack", "numel", "is_floating_point", "is_complex", "requires_grad_",
    "new_zeros", "new_ones", "new_empty", "zeros", "ones", "empty", "full", "arange", "tensor",
    "zeros_like", "ones_like", "empty_like", "full_like", "repeat", "repeat_interleave",
    "movedim", "flip", "roll", "index_select", "gather", "masked_fill", "where", "tril", "triu",
    "is_nested", "is_contiguous", "stride", "storage_offset", "data_ptr", "device", "dtype",
    "shape", "ndim", "item", "tolist", "cpu", "long", "int", "bool", "__index__", "backward",
    "register_hook", "retain_grad", "unbind", "pad", "dropout", "embedding", "broadcast_to",
}


def _name(func) -> str:
    return getattr(func, "__name__", None) or str(func)


class emulate(TorchFunctionMode):
    """Context manager: inside it, every matrix product of any model runs in the
    emulator with the formats of ``spec`` (an :class:`EmulationSpec` or its string),
    forward and backward (see the module docstring for the list).

    - ``strict`` (default True): an op that carries MACs and cannot be emulated raises
      :class:`EmulationError`; with ``strict=False`` it runs in float, is recorded, and a
      warning naming the modules is given once when the context exits;
    - ``model``: optional, to name ops by their module's qualified name (else by the
      module's class path);
    - ``seed``: the stochastic-rounding seed of the whole run.

    After the context, ``records`` lists every op seen (:class:`OpRecord`) and
    ``float_ops`` counts the other arithmetic that ran in float.

    >>> import torch.nn as nn
    >>> layer = nn.TransformerEncoderLayer(8, 2, 16, dropout=0.0, batch_first=True)
    >>> with emulate("fixed16.8", model=layer) as emu:
    ...     y = layer(torch.randn(2, 3, 8))
    >>> sorted({r.op for r in emu.records})
    ['linear', 'multi_head_attention_forward', 'scaled_dot_product_attention']
    >>> all(r.emulated for r in emu.records)
    True
    """

    def __init__(self, spec: EmulationSpec | str, *, strict: bool = True, model: nn.Module | None = None,
                 seed: int = 0, warn: bool = True):
        super().__init__()
        self.spec = EmulationSpec.parse(spec)
        if self.spec.delayed:
            raise EmulationError("emulate: scaling=delayed keeps per-layer amax histories; "
                                 "use swap_layers for delayed-scaled layers")
        self.strict, self.seed, self.warn = bool(strict), rng.check_seed(seed), warn
        self.names = {} if model is None else {id(m): n or type(m).__name__
                                               for n, m in model.named_modules()}
        self.records: list[OpRecord] = []
        self.float_ops: dict[str, int] = {}
        self._calls = 0
        self._stack: list[str] = []
        self._hooks: list = []

    # --- module paths -------------------------------------------------------------
    def _pre(self, module, args):
        name = self.names.get(id(module))
        if name is None:
            parent = self._stack[-1] if self._stack else ""
            name = f"{parent}/{type(module).__name__}" if parent else type(module).__name__
        self._stack.append(name)

    def _post(self, module, args, out):
        if self._stack:
            self._stack.pop()

    @property
    def module(self) -> str:
        return self._stack[-1] if self._stack else "<top level>"

    def __enter__(self):
        self._stack.clear()
        self._hooks = [nn.modules.module.register_module_forward_pre_hook(self._pre),
                       nn.modules.module.register_module_forward_hook(self._post)]
        return super().__enter__()

    def __exit__(self, *exc):
        for h in self._hooks:
            h.remove()
        self._hooks = []
        out = super().__exit__(*exc)
        if self.warn and exc[0] is None:
            left = sorted({f"{r.op} in {r.module}" for r in self.records if not r.emulated and r.macs})
            if left:
                macs = sum(r.macs for r in self.records if not r.emulated)
                total = sum(r.macs for r in self.records)
                warnings.warn(f"lowbit.emulate: {macs} of {total} MACs ran in float (not "
                              f"emulated): {'; '.join(left)}", stacklevel=2)
        return out

    # --- dispatch -----------------------------------------------------------------
    @property
    def passthrough(self) -> bool:
        """Nothing to emulate and nothing to count: products run as torch's own (recorded)."""
        return not self.spec.emulated and account.active() is None

    def _next_seed(self) -> int:
        self._calls += 1
        return rng.random_u64(self.seed, self._calls)

    def _record(self, op, shapes, macs, formats, emulated=True, note=""):
        self.records.append(OpRecord(op, self.module, tuple(tuple(s) for s in shapes), int(macs),
                                     formats, emulated, note))

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        kind = _KINDS.get(func)
        if kind is None:
            kind = _KINDS[func] = _kind(func)
        what, value = kind
        if what == "skip":  # the common case: views, shapes, metadata
            return func(*args, **kwargs)
        if what == "count":
            self.float_ops[value] = self.float_ops.get(value, 0) + 1
            return func(*args, **kwargs)
        if what == "float":
            name, why = value
            return self._float_product(func, name, args, kwargs, why)
        n = len(self.records)
        try:
            return value(self, func, args, kwargs)
        except EmulationError:
            raise
        except (ValueError, TypeError, NotImplementedError) as exc:  # the spec cannot apply here
            del self.records[n:]
            return self._float_product(func, _name(func), args, kwargs, str(exc))

    def _float_product(self, func, name, args, kwargs, why):
        shapes = [tuple(a.shape) for a in args if isinstance(a, torch.Tensor)]
        if self.strict:
            raise EmulationError(f"{name} in {self.module}: not emulated ({why}); "
                                 "emulate(..., strict=False) runs it in float and lists it in "
                                 "the coverage")
        self._record(name, shapes, _guess_macs(name, args), "float", False, why)
        return func(*args, **kwargs)


def _guess_macs(name: str, args) -> int:
    """MACs of a product lowbit leaves in float, where the shapes tell them."""
    t = [a for a in args if isinstance(a, torch.Tensor)]
    try:
        if name in ("lstm", "gru", "rnn_tanh", "rnn_relu"):
            x, params = args[0], args[2] if isinstance(args[2], (list, tuple)) else args[3]
            steps = x.shape[0] * x.shape[1] if x.ndim == 3 else x.shape[0]
            return steps * sum(p.numel() for p in params if p.ndim == 2)
        if name.endswith("_cell"):
            return t[0].shape[0] * sum(p.numel() for p in t[2:4])
        if name == "bilinear":
            return t[0].numel() // t[0].shape[-1] * t[2].numel()
        if name == "tensordot" and len(t) == 2:
            return int(math.sqrt(t[0].numel() * t[1].numel()))
    except (IndexError, AttributeError, TypeError):
        pass
    return sum(x.numel() for x in t[:2]) if len(t) >= 2 else 0


def _is_weight(t) -> bool:
    return isinstance(t, nn.Parameter)


def _weight_role(a, b) -> str | None:
    return "b" if _is_weight(b) else ("a" if _is_weight(a) else None)


def _formats(spec: EmulationSpec, weight: str | None) -> str:
    return str(spec if weight else activation_spec(spec))


def _same_dtype(y: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """The result in the caller's dtype where that is exact (a float32 carrier)."""
    if y.dtype != like.dtype and y.dtype == torch.float64 and like.dtype == torch.float32:
        return y.to(like.dtype) if _exact_in_f32(y) else y
    return y


def _exact_in_f32(y: torch.Tensor) -> bool:
    d = y.detach()
    return bool(torch.equal(d.to(torch.float32).to(d.dtype), d) | torch.isnan(d).all())


# --- handlers ---------------------------------------------------------------------------

def _linear(mode: emulate, func, args, kwargs):
    x, w = args[0], args[1] if len(args) > 1 else kwargs["weight"]
    b = args[2] if len(args) > 2 else kwargs.get("bias")
    mode._record("linear", [x.shape, w.shape], x.numel() // x.shape[-1] * w.shape[0] * w.shape[1],
                 str(mode.spec))
    if mode.passthrough:
        return func(*args, **kwargs)
    y = emulated_linear(x, w, b, mode.spec, seed=mode._next_seed())
    return _same_dtype(y, x)


def _matmul_like(op: str, a, b, mode: emulate, like):
    role = _weight_role(a, b)
    mode._record(op, [a.shape, b.shape], matmul_macs(a.shape, b.shape), _formats(mode.spec, role))
    if mode.passthrough:
        return torch.matmul(a, b)
    return _same_dtype(emulated_matmul(a, b, mode.spec, weight=role, seed=mode._next_seed()), like)


def _check_out(op, kwargs):
    if kwargs.get("out") is not None:
        raise EmulationError(f"{op}: out= is not supported under lowbit.emulate")


def _matmul(mode, func, args, kwargs):
    name = _name(func)
    _check_out(name, kwargs)
    a, b = args[0], args[1] if len(args) > 1 else kwargs.get("other", kwargs.get("mat2", kwargs.get("vec")))
    if name == "__rmatmul__":
        a, b = b, a
    if name in ("mm", "bmm", "mv", "dot") and (a.ndim, b.ndim) != {"mm": (2, 2), "bmm": (3, 3),
                                                                 "mv": (2, 1), "dot": (1, 1)}[name]:
        raise EmulationError(f"{name}: operands of shapes {tuple(a.shape)} and {tuple(b.shape)}")
    return _matmul_like(name.strip("_").replace("rmatmul", "matmul"), a, b, mode, a)


def _addmm(mode, func, args, kwargs):
    """addmm / baddbmm: beta * input + alpha * (m1 @ m2)."""
    name = _name(func)
    _check_out(name, kwargs)
    inp, m1, m2 = (list(args) + [kwargs.get(k) for k in ("input", "mat1", "mat2")][len(args):])[:3]
    if m1 is None:
        m1, m2 = kwargs.get("batch1"), kwargs.get("batch2")
    beta, alpha = kwargs.get("beta", 1), kwargs.get("alpha", 1)
    role = _weight_role(m1, m2)
    bias_like = (name == "addmm" and inp.ndim == 1 and inp.shape[0] == m2.shape[-1]
                 and beta == 1 and alpha == 1)
    mode._record(name, [inp.shape, m1.shape, m2.shape], matmul_macs(m1.shape, m2.shape),
                 _formats(mode.spec, role), True, "" if bias_like else "added term in float")
    if mode.passthrough:
        return func(*args, **kwargs)
    if bias_like:  # GPT-2's Conv1D: addmm(bias, x, W) is a linear layer
        s = mode.spec if role else activation_spec(mode.spec)
        return _same_dtype(emulated_linear(m1, m2.mT, inp, s, seed=mode._next_seed()), m1)
    y = emulated_matmul(m1, m2, mode.spec, weight=role, seed=mode._next_seed())
    if alpha != 1:
        y = y * alpha
    return _same_dtype(y if beta == 0 else beta * inp + y, m1)


def _einsum(mode, func, args, kwargs):
    eq, ops = args[0], args[1:]
    if len(ops) == 1 and isinstance(ops[0], (list, tuple)):
        ops = tuple(ops[0])
    if not isinstance(eq, str):
        raise EmulationError("einsum: only the equation-string form is emulated")
    if len(ops) != 2:
        if len(ops) == 1:  # one operand: a sum or permutation, no products
            mode.float_ops["einsum"] = mode.float_ops.get("einsum", 0) + 1
            return func(*args, **kwargs)
        return mode._float_product(func, "einsum", ops, {}, f"{len(ops)}-operand einsum "
                                   "(split it into two-operand products)") if not mode.strict \
            else _raise(f"einsum {eq!r} in {mode.module}: {len(ops)} operands (lowbit emulates "
                        "two-operand einsums; split it)")
    a, b = ops
    try:
        einsum_plan(eq, a.ndim, b.ndim)
    except ValueError as exc:
        if mode.strict:
            raise EmulationError(f"{exc} (in {mode.module})") from None
        mode._record("einsum", [a.shape, b.shape], a.numel(), "float", False, str(exc))
        return func(*args, **kwargs)
    role = _weight_role(a, b)
    mode._record("einsum", [a.shape, b.shape], einsum_macs(eq, a, b), _formats(mode.spec, role))
    if mode.passthrough:
        return func(*args, **kwargs)
    return _same_dtype(emulated_einsum(eq, a, b, mode.spec, weight=role, seed=mode._next_seed()), a)


def _raise(msg):
    raise EmulationError(msg)


def _conv(mode, func, args, kwargs):
    name = _name(func)
    d = int(name[-2])
    names = ("input", "weight", "bias", "stride", "padding", "dilation", "groups")
    v = dict(zip(names, args)) | kwargs
    x, w, b = v["input"], v["weight"], v.get("bias")
    st, dl = _tuple(v.get("stride", 1), d, "stride"), _tuple(v.get("dilation", 1), d, "dilation")
    g = int(v.get("groups", 1))
    pads = conv_pads(v.get("padding", 0), w.shape[2:], dl, st)
    out = [(n + lo + hi - e * (k - 1) - 1) // s + 1
           for n, (lo, hi), k, e, s in zip(x.shape[-d:], pads, w.shape[2:], dl, st)]
    macs = x.shape[0] * w.shape[0] * math.prod(out) * w.shape[1] * math.prod(w.shape[2:]) \
        if x.ndim == d + 2 else w.shape[0] * math.prod(out) * w.shape[1] * math.prod(w.shape[2:])
    mode._record(name, [x.shape, w.shape], macs, str(mode.spec), True,
                 f"groups={g}" if g > 1 else "")
    if mode.passthrough:
        return func(*args, **kwargs)
    y = emulated_conv(x, w, b, mode.spec, st, v.get("padding", 0), dl, g, seed=mode._next_seed())
    return _same_dtype(y, x)


def _conv_transpose(mode, func, args, kwargs):
    name = _name(func)
    d = int(name[-2])
    names = ("input", "weight", "bias", "stride", "padding", "output_padding", "groups", "dilation")
    v = dict(zip(names, args)) | kwargs
    x, w = v["input"], v["weight"]
    g = int(v.get("groups", 1))
    macs = x.numel() * (w.shape[1]) * math.prod(w.shape[2:])
    mode._record(name, [x.shape, w.shape], macs, str(mode.spec), True,
                 "as a convolution of the stride-dilated input")
    if mode.passthrough:
        return func(*args, **kwargs)
    y = emulated_conv_transpose(x, w, v.get("bias"), mode.spec, v.get("stride", 1),
                                v.get("padding", 0), v.get("output_padding", 0), g,
                                v.get("dilation", 1), seed=mode._next_seed())
    return _same_dtype(y, x)


def _sdpa(mode, func, args, kwargs):
    names = ("query", "key", "value", "attn_mask", "dropout_p", "is_causal")
    v = dict(zip(names, args)) | kwargs
    q, k, val = v["query"], v["key"], v["value"]
    macs = matmul_macs(q.shape, k.mT.shape) + matmul_macs(q.shape[:-1] + (k.shape[-2],), val.shape)
    mode._record("scaled_dot_product_attention", [q.shape, k.shape, val.shape], macs,
                 str(activation_spec(mode.spec)), True, "softmax in float")
    if mode.passthrough:
        return func(*args, **kwargs)
    y = emulated_attention(q, k, val, mode.spec, v.get("attn_mask"), v.get("dropout_p", 0.0),
                           v.get("is_causal", False), v.get("scale"), v.get("enable_gqa", False),
                           seed=mode._next_seed())
    return _same_dtype(y, q)


def _mha(mode, func, args, kwargs):
    """F.multi_head_attention_forward, a Python composite whose first statement hands
    the call back to the mode: run its body with that one check off (the module-level
    ``has_torch_function`` of torch.nn.functional, for this call) and the mode on, so its
    projections and attention products reach the handlers above."""
    mode._record("multi_head_attention_forward", [a.shape for a in args[:3]], 0, "",
                 True, "run op by op")
    saved = F.has_torch_function
    F.has_torch_function = lambda *a: False
    TorchFunctionMode.__enter__(mode)  # the mode again, without emulate's own setup
    try:
        return func(*args, **kwargs)
    finally:
        TorchFunctionMode.__exit__(mode, None, None, None)
        F.has_torch_function = saved


def _embedding(mode, func, args, kwargs):
    names = ("input", "weight", "padding_idx", "max_norm", "norm_type", "scale_grad_by_freq", "sparse")
    v = dict(zip(names, args)) | kwargs
    w = v["weight"]
    mode._record("embedding", [v["input"].shape, w.shape], 0, f"w={mode.spec.weight}",
                 mode.spec.weight is not None, "weights cast; row gradients added in float")
    if mode.spec.weight is not None:
        w = quantize(w, mode.spec.weight, grad_fmt=mode.spec.grad_weight, seed=mode._next_seed())
    rest = {k: v[k] for k in names[2:] if k in v}
    return func(v["input"], w, **rest)


_COUNTED_DUNDERS = {"__add__", "__mul__", "__sub__", "__truediv__", "__radd__", "__rmul__",
                    "__rsub__", "__iadd__", "__imul__", "__neg__", "__pow__"}
_KINDS: dict = {}  # func -> what the mode does with it (decided once per function)


def _kind(func) -> tuple[str, object]:
    """("handler", fn), ("float", (name, why)), ("count", name) or ("skip", None)."""
    name = _name(func)
    handler = _HANDLERS.get(func) or _NAMED_HANDLERS.get(name)
    if handler is not None:
        return "handler", handler
    if name in NOT_EMULATED:
        return "float", (name, NOT_EMULATED[name])
    if (name not in _NO_ARITHMETIC and not name.startswith("__")) or name in _COUNTED_DUNDERS:
        return "count", name
    return "skip", None


_HANDLERS: dict[object, Callable] = {
    F.linear: _linear,
    F.scaled_dot_product_attention: _sdpa,
    F.multi_head_attention_forward: _mha,
    F.embedding: _embedding,
}
_NAMED_HANDLERS: dict[str, Callable] = {
    **{n: _matmul for n in ("matmul", "__matmul__", "__rmatmul__", "mm", "bmm", "mv", "dot")},
    "addmm": _addmm, "baddbmm": _addmm, "einsum": _einsum,
    **{f"conv{d}d": _conv for d in (1, 2, 3)},
    **{f"conv_transpose{d}d": _conv_transpose for d in (1, 2, 3)},
}
