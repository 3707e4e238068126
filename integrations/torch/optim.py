"""Optimizers whose master weights live in an emulated format.

The parameters hold the format's values (their carriers). Each step computes a
float update and applies it with the format's own rounding:

- ``compensation=None``: w <- round(w + d). Updates below half an ulp are lost;
- ``"stochastic"``: w <- SR(w + d) with a fresh seed every step: unbiased;
- ``"kahan"``: a compensation register c keeps the bits the rounding dropped,
  y = d - c; t = round(w + y); c = (t - w) - y; w = t (Zamirai et al. 2020, the
  weight-update form of Kahan summation).

How d meets the format, exactly, is :mod:`lowbit.integrations.torch.updates`. Binary and
ternary weights cannot take small updates: train them with latent float
weights (``BinaryLinear``) instead.

:class:`EmulatedOptimizer` wraps any torch optimizer (d = its new value minus the
old one; the wrapped optimizer computes in float32, so updates below float32's
resolution of a weight are already lost there). :class:`EmulatedSGD` computes d
itself in float64.
"""

from __future__ import annotations

import numpy as np
import torch

from lowbit.integrations.torch.carriers import from_carrier, to_carrier
from lowbit.integrations.torch.updates import COMPENSATIONS, MasterWeights, update_format
from lowbit.numerics import parse_format, rng


def cast_to_master(p: torch.Tensor, fmt, compensation: str | None) -> MasterWeights:
    """``p``'s master weights in ``fmt`` (a Format or its name), rounded to nearest from
    ``p``; ``p`` is overwritten with their values. Raises ``ValueError`` for a format that
    takes no small updates (binary, ternary)."""
    f = parse_format(fmt)
    update_format(f)  # raises the explanation
    m = MasterWeights(from_carrier(p.detach(), f), compensation)
    with torch.no_grad():
        p.copy_(to_carrier(m.codes, like=p).to(p.dtype))
    return m


class EmulatedOptimizer:
    """Wrap a torch optimizer so that its parameters are master weights in ``fmt``.

    ``fmt``: one format for every parameter, or a dict mapping parameters to
    formats (parameters left out stay float). The parameters are cast into their
    format at construction. ``state_dict``/``load_state_dict`` include the wrapped
    optimizer's state, the Kahan registers and the step counter.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, fmt, compensation: str | None = None,
                 seed: int = 0):
        if compensation not in COMPENSATIONS:
            raise ValueError(f"compensation must be one of {COMPENSATIONS}, got {compensation!r}")
        self.inner = optimizer
        self.compensation = compensation
        self.seed = seed
        self.step_count = 0
        params = [p for g in optimizer.param_groups for p in g["params"]]
        fmts = fmt if isinstance(fmt, dict) else {p: fmt for p in params}
        self.masters: dict[torch.Tensor, MasterWeights] = {}
        for p in params:
            if fmts.get(p) is None:
                continue
            self.masters[p] = cast_to_master(p, fmts[p], compensation)

    @property
    def param_groups(self):
        return self.inner.param_groups

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.inner.zero_grad(set_to_none=set_to_none)

    def _deltas(self, closure):
        old = {p: p.detach().double().clone() for p in self.masters}
        loss = self.inner.step(closure)
        return loss, {p: (p.detach().double() - old[p]).cpu().numpy() for p in self.masters}

    @torch.no_grad()
    def step(self, closure=None):
        """One step of the wrapped optimizer, its update applied in each format."""
        loss, deltas = self._deltas(closure)
        for i, (p, m) in enumerate(self.masters.items()):
            seed = rng.random_u64(self.seed, (self.step_count << 20) | i)
            p.copy_(to_carrier(m.apply(deltas[p], seed), like=p).to(p.dtype))
        self.step_count += 1
        return loss

    def state_dict(self) -> dict:
        return {"inner": self.inner.state_dict(), "step_count": self.step_count,
                "masters": [m.state() for m in self.masters.values()]}

    def load_state_dict(self, state: dict) -> None:
        self.inner.load_state_dict(state["inner"])
        self.step_count = state["step_count"]
        for m, st in zip(self.masters.values(), state["masters"]):
            m.load(st)


class EmulatedSGD(EmulatedOptimizer):
    """SGD (momentum, weight decay) whose update d = -lr * (v) is computed in float64
    from the gradients and applied in each parameter's format (see module doc)."""

    def __init__(self, params, lr: float, fmt, momentum: float = 0.0, weight_decay: float = 0.0,
                 compensation: str | None = None, seed: int = 0):
        if lr <= 0:
            raise ValueError(f"lr must be > 0, got {lr}")
        holder = torch.optim.SGD(params, lr=lr)  # parameter groups and state_dict plumbing only
        self.momentum, self.weight_decay = momentum, weight_decay
        self.velocity: dict[torch.Tensor, np.ndarray] = {}
        super().__init__(holder, fmt, compensation, seed)

    def _deltas(self, closure):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        out = {}
        for group in self.inner.param_groups:
            for p in group["params"]:
                if p.grad is None or p not in self.masters:
                    continue
                g = p.grad.detach().double().cpu().numpy()
                if self.weight_decay:
                    g = g + self.weight_decay * p.detach().double().cpu().numpy()
                if self.momentum:
                    v = self.velocity.get(p)
                    v = g if v is None else self.momentum * v + g
                    self.velocity[p] = v
                    g = v
                out[p] = -group["lr"] * g
        return loss, {p: out.get(p, np.zeros(tuple(p.shape))) for p in self.masters}

    def state_dict(self) -> dict:
        state = super().state_dict()
        state["velocity"] = [self.velocity.get(p) for p in self.masters]
        return state

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.velocity = {p: v for p, v in zip(self.masters, state["velocity"]) if v is not None}
