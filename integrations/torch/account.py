"""The operation account: what the emulated arithmetic of a training step executes.

Inside ``with counting() as acct:``, every emulated product (``emulated_linear`` and
everything built on it: convolutions, attention, ``emulate``), every cast of
:func:`~lowbit.integrations.torch.functions.quantize`, and every optimizer step adds to
``acct``, keyed by (role, op, format):

- roles: ``forward``, ``grad_input`` (the incoming gradient's cast and grad = g @ W),
  ``grad_weight`` (g^T @ x and the bias gradient), ``update`` (optimizer steps);
- ``mac``: one multiply and one accumulate (format "a x b -> acc"; a dot product of
  length K is K MACs); ``add``: additions outside a dot product (bias, bias
  gradient); ``cast``: elements rounded into a format (from a float carrier);
  ``table_read``: Gaussian-log (sb/db) lookups of LNS additions, one per MAC and per
  add in an LNS accumulator; ``update_mul`` / ``update_add``: the optimizer's float32
  operations per parameter element;
- bytes: ``read`` / ``write`` of tensors by class (weight, activation, gradient,
  state), at their format's width, each tensor read once per use and written once
  (no dataflow model; a convolution reads its input once, not its patches).

Float roles (``None`` in the spec) are counted as fp32. Counts are exact for what the
emulator executes (a strided convolution's input gradient includes the zeros of its
stride-dilated gradient).
"""

from __future__ import annotations

import contextlib
import math
import threading
from collections import Counter
from dataclasses import dataclass, field

import torch
from torch.optim.optimizer import register_optimizer_step_post_hook

from lowbit.numerics import LNS, AccumulatorModel, Binary, Block, Fixed, Float, Ternary

ROLES = ("forward", "grad_input", "grad_weight", "update")

_state = threading.local()


def fmt_name(fmt) -> str:
    """A format's name in the account ("fp32" for a float role)."""
    return "fp32" if fmt is None else str(fmt)


def fmt_bits(fmt) -> float:
    """Storage bits per value (block formats: element + the block scale's share)."""
    if fmt is None:
        return 32
    if isinstance(fmt, Fixed):
        return fmt.bits
    if isinstance(fmt, Float):
        return fmt.width
    if isinstance(fmt, LNS):
        return 1 + fmt.int_bits + fmt.frac_bits
    if isinstance(fmt, Binary):
        return 1
    if isinstance(fmt, Ternary):
        return 2
    if isinstance(fmt, Block):
        return fmt.bits_per_value
    raise TypeError(f"no width for {fmt!r}")


def exact_acc_bits(a, b, k: int) -> int:
    """Width of an exact fixed-point accumulator: both operands' bits plus log2(K)."""
    return int(fmt_bits(a) + fmt_bits(b)) + max(1, math.ceil(math.log2(max(k, 2))))


@dataclass
class OpAccount:
    """Counts of one run: ``ops[(role, op, fmt)]`` and ``bytes[(role, "read"|"write",
    tensor class, fmt)]``; ``steps``: optimizer steps seen."""

    ops: Counter = field(default_factory=Counter)
    bytes: Counter = field(default_factory=Counter)
    steps: int = 0

    def add(self, role: str, op: str, fmt: str, n: int) -> None:
        if n:
            self.ops[(role, op, fmt)] += int(n)

    def move(self, role: str, direction: str, tensor: str, fmt, n_values: int) -> None:
        if n_values:
            self.bytes[(role, direction, tensor, fmt_name(fmt))] += n_values * fmt_bits(fmt) / 8

    def total(self, op: str, role: str | None = None) -> int:
        return sum(n for (r, o, _), n in self.ops.items() if o == op and role in (None, r))

    def table(self) -> str:
        """The counts as markdown (one row per key)."""
        rows = ["| role | op | format | count |", "|---|---|---|---:|"]
        rows += [f"| {r} | {o} | {f} | {n:,} |" for (r, o, f), n in sorted(self.ops.items())]
        rows += ["", "| role | direction | tensor | format | bytes |", "|---|---|---|---|---:|"]
        rows += [f"| {r} | {d} | {t} | {f} | {n:,.0f} |" for (r, d, t, f), n in sorted(self.bytes.items())]
        return "\n".join(rows)


def active() -> OpAccount | None:
    """The innermost account being filled (None: nothing is counted)."""
    stack = getattr(_state, "stack", None)
    return stack[-1] if stack else None


def _patches() -> int | None:
    return getattr(_state, "patches", None)


def _role(role: str) -> str:
    return getattr(_state, "role", None) or role


@contextlib.contextmanager
def as_role(role: str):
    """Within: products count under ``role`` (a convolution's input gradient, computed
    as a forward-type convolution), and no casts are counted (it reuses the forward's
    cast weights and the incoming gradient's one cast)."""
    saved = getattr(_state, "role", None)
    _state.role = role
    try:
        yield
    finally:
        _state.role = saved


@contextlib.contextmanager
def input_of_patches(n_values: int):
    """Within: the products' activation operand is the im2col of a tensor of
    ``n_values`` elements -- count its cast and read once, not once per patch."""
    saved = _patches()
    _state.patches = saved if saved is not None else n_values  # the outermost tensor counts
    try:
        yield
    finally:
        _state.patches = saved


def _mac_fmt(a, b, acc, out, k: int) -> str:
    if isinstance(acc, AccumulatorModel):
        acc_name = acc.name if getattr(acc, "name", None) else str(acc)
    elif acc is not None:
        acc_name = str(acc)
    elif isinstance(a, (Fixed, Binary, Ternary)) and isinstance(b, (Fixed, Binary, Ternary)):
        acc_name = f"exact{exact_acc_bits(a, b, k)}"
    else:
        acc_name = fmt_name(out)
    return f"{fmt_name(a)} x {fmt_name(b)} -> {acc_name}"


def _lns_acc(acc, out):
    """The LNS format whose adder accumulates (None: not an LNS sum)."""
    for f in (acc, out):
        if isinstance(f, LNS):
            return f
    return None


def count_matmul(role: str, m: int, n: int, k: int, a, b, acc, out, *, a_tensor: str,
                 b_tensor: str, out_tensor: str, batch: int = 1) -> None:
    """``batch`` products (m x k) @ (k x n) of operands in formats a, b accumulated in acc
    and rounded into out; tensors named by class (an "activation" operand inside
    :func:`input_of_patches` is read once, at its tensor's size)."""
    acct = active()
    if acct is None:
        return
    override = getattr(_state, "role", None)
    role = _role(role)
    if override and a_tensor == "activation":  # the dilated gradient of a convolution
        a_tensor = "gradient"
    acct.add(role, "mac", _mac_fmt(a, b, acc, out, k), batch * m * n * k)
    lns = _lns_acc(acc, out)
    if lns is not None:
        acct.add(role, "table_read", str(lns), batch * m * n * k)
    patches = _patches()
    for i, (tensor, fmt, size) in enumerate(((a_tensor, a, m * k), (b_tensor, b, k * n))):
        of_patches = patches is not None and (tensor == "activation" or (override and i == 0))
        acct.move(role, "read", tensor, fmt, patches if of_patches else batch * size)
    acct.move(role, "write", out_tensor, out, batch * m * n)


def count_add(role: str, fmt, n: int, tensor: str) -> None:
    """n additions in fmt outside a dot product (bias), result written as ``tensor``."""
    acct = active()
    if acct is None:
        return
    role = _role(role)
    acct.add(role, "add", fmt_name(fmt), n)
    if isinstance(fmt, LNS):
        acct.add(role, "table_read", str(fmt), n)


def count_cast(role: str, fmt, n: int, tensor: str = "activation") -> None:
    """n values rounded into fmt (nothing for a float role); an activation cast inside a
    convolution counts the input tensor's elements once."""
    acct = active()
    if acct is None or fmt is None or getattr(_state, "role", None):
        return
    if tensor == "activation" and _patches() is not None:
        n = _patches()
    acct.add(role, "cast", fmt_name(fmt), n)


# ops per parameter element of the torch optimizers' float32 steps: (mul, add)
OPTIMIZER_OPS = {
    "SGD": (1, 1), "SGD+momentum": (2, 2), "Adam": (7, 5), "AdamW": (8, 5), "RMSprop": (4, 3),
    "Adagrad": (3, 3),
}
"""(multiplications, additions) per parameter element of one step (division and square
root counted as multiplications); weight decay adds one of each."""


def _optimizer_ops(opt: torch.optim.Optimizer, group: dict) -> tuple[int, int]:
    name = type(opt).__name__
    if name == "SGD" and group.get("momentum", 0):
        name = "SGD+momentum"
    mul, add = OPTIMIZER_OPS.get(name, (None, None))
    if mul is None:
        raise ValueError(f"the operation account has no op count for the optimizer {type(opt).__name__} "
                         f"(known: {', '.join(OPTIMIZER_OPS)})")
    if group.get("weight_decay", 0) and name != "AdamW":
        mul, add = mul + 1, add + 1
    return mul, add


def _on_step(opt, args, kwargs) -> None:
    acct = active()
    if acct is None:
        return
    acct.steps += 1
    for group in opt.param_groups:
        n = sum(p.numel() for p in group["params"] if p.grad is not None)
        if not n:
            continue
        mul, add = _optimizer_ops(opt, group)
        acct.add("update", "update_mul", "fp32", mul * n)
        acct.add("update", "update_add", "fp32", add * n)
        state = sum(t.numel() for p in group["params"] if p.grad is not None
                    for t in opt.state.get(p, {}).values() if isinstance(t, torch.Tensor) and t.ndim)
        acct.move("update", "read", "weight", None, n)
        acct.move("update", "read", "gradient", None, n)
        acct.move("update", "write", "weight", None, n)
        acct.move("update", "read", "state", None, state)
        acct.move("update", "write", "state", None, state)


@contextlib.contextmanager
def counting(account: OpAccount | None = None):
    """Fill an :class:`OpAccount` (a new one unless given) with what runs inside."""
    acct = account if account is not None else OpAccount()
    stack = getattr(_state, "stack", None)
    if stack is None:
        stack = _state.stack = []
    stack.append(acct)
    hook = register_optimizer_step_post_hook(_on_step)
    try:
        yield acct
    finally:
        hook.remove()
        stack.pop()
