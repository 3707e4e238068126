"""Loss scaling: gradients computed at emulated precision, kept out of its underflow.

Micikevicius et al., "Mixed precision training" (ICLR 2018): multiply the loss by S
before the backward pass, so that small gradients stay above the format's smallest value,
and divide the gradients by S before the (float32 master-weight) optimizer step.

- ``static``: S fixed;
- ``dynamic`` (the paper's and ``torch.amp.GradScaler``'s schedule): S starts at 2**16;
  a step whose gradients overflowed is skipped and S halves; after ``interval`` (2000)
  clean steps in a row S doubles.

Overflow is any non-finite gradient (fp16, bf16, FP8 formats overflow to inf) or, for
gradient formats that saturate instead (Fixed, LNS, saturating floats), any gradient at
that format's largest magnitude. Scales are powers of two, so scaling and unscaling are
exact in float32.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from lowbit.numerics import LNS, Fixed, Float, Format, Overflow

MODES = ("none", "static", "dynamic")


def saturation_bound(fmt: Format | None) -> float | None:
    """The magnitude at which ``fmt`` saturates (None if it overflows to inf, or is float)."""
    if isinstance(fmt, Float):
        return None if fmt.overflow is Overflow.INFINITY else float(fmt.max_value)
    if isinstance(fmt, Fixed):
        return float(max(abs(fmt.min_value), fmt.max_value))
    if isinstance(fmt, LNS):
        return 2.0 ** (fmt.e_max / 2**fmt.frac_bits)
    return None


@dataclass
class LossScaler:
    """A loss scale and its update rule (``mode`` in MODES); ``skipped`` counts the steps
    skipped for overflow. ``grad_format`` is the format gradients saturate in (if any)."""

    mode: str = "dynamic"
    scale: float = 2.0**16
    growth: float = 2.0
    backoff: float = 0.5
    interval: int = 2000
    grad_format: Format | None = None
    clean: int = 0
    skipped: int = 0

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"loss scaling must be one of {MODES}, got {self.mode!r}")
        if self.mode == "none":
            self.scale = 1.0
        if not (self.scale > 0 and math.isfinite(self.scale)):
            raise ValueError(f"the loss scale must be a positive number, got {self.scale}")
        if math.log2(self.scale) != int(math.log2(self.scale)):
            raise ValueError(f"the loss scale must be a power of two (exact scaling), got "
                             f"{self.scale}")

    @classmethod
    def parse(cls, text: str, grad_format: Format | None = None) -> "LossScaler":
        """"none", "dynamic", or a number (a static scale, a power of two)."""
        if text in ("none", "dynamic"):
            return cls(text, grad_format=grad_format)
        try:
            value = float(text)
        except ValueError:
            raise ValueError(f"loss scaling must be none, dynamic or a power of two, "
                             f"got {text!r}") from None
        return cls("static", value, grad_format=grad_format)

    def scale_loss(self, loss: torch.Tensor) -> torch.Tensor:
        return loss if self.mode == "none" else loss * self.scale

    def _overflowed(self, grads: list[torch.Tensor]) -> bool:
        bound = saturation_bound(self.grad_format)
        for g in grads:
            if not torch.isfinite(g).all():
                return True
            # carriers hold the nearest float: within 2^-20 of the bound counts as at it
            if bound is not None and self.mode != "none" and g.numel() and \
                    float(g.abs().max()) >= bound * (1 - 2.0**-20):
                return True
        return False

    def unscale_and_check(self, params) -> bool:
        """Whether the step may proceed: False if a gradient overflowed (the step is then
        skipped and, if dynamic, the scale backs off); else the gradients are divided by the
        scale and the dynamic scale grows after ``interval`` clean steps."""
        grads = [p.grad for p in params if p.grad is not None]
        if self.mode == "none":
            return True
        if self._overflowed(grads):
            self.skipped += 1
            self.clean = 0
            if self.mode == "dynamic":
                self.scale *= self.backoff
            return False
        with torch.no_grad():
            for g in grads:
                g.div_(self.scale)
        if self.mode == "dynamic":
            self.clean += 1
            if self.clean >= self.interval:
                self.scale *= self.growth
                self.clean = 0
        return True

    def state_dict(self) -> dict:
        return {"scale": self.scale, "clean": self.clean, "skipped": self.skipped}

    def load_state_dict(self, state: dict) -> None:
        self.scale, self.clean, self.skipped = state["scale"], state["clean"], state["skipped"]
