"""How a hardware matrix unit really adds: ``AccumulatorModel``, as data, with presets.

The model is MMA-Sim's ``fused_dot_add`` (Xie et al., arXiv 2511.10909;
microsoft/MMA-Sim ``mmasim/simulator/arithmetic.py``), parametrised as that code is:

1. the products a_i * b_i are exact;
2. in each group of ``group`` products (the fused adder's width), the largest exponent
   is taken over the group's products **and the running accumulator** c;
3. every term (c included) is cut to a multiple of 2**(emax - frac_bits): toward zero
   (``align="truncate"``, NVIDIA) or toward -inf (``"floor"``, AMD CDNA3), and the cut
   terms are summed exactly;
4. the sum is rounded once into the ``register`` format with its rounding (NVIDIA FP8:
   e8m13, toward zero), which becomes c;
5. with ``promote_every`` = N_C, after every N_C products c is added to the ``outer``
   accumulator (fp32, round to nearest even) and restarts from 0 — the promotion of
   partial sums to CUDA-core registers DeepSeek-V3 describes (N_C = 128); at the end
   the result is outer + c.

A preset names the published model it follows and says whether this project has checked
it on hardware (none has been: ``verified=False``). ``parse_accumulator`` reads a preset
name (optionally ``:promoteN``) or a number format (then the accumulation is the plain
one of that format: every addition rounded).

>>> str(ACCUMULATOR_MODELS["hopper_fp8"]), ACCUMULATOR_MODELS["hopper_fp8"].frac_bits
('hopper_fp8', 13)
>>> parse_accumulator("hopper_fp8:promote128").promote_every
128
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from lowbit.numerics.formats import Float, Format, _check_int, parse_format
from lowbit.numerics.modes import Rounding

ALIGNMENTS = ("truncate", "floor")
MAX_GROUP = 64
"""Widest fused group the kernels sum in one int64 (with frac_bits <= MAX_FRAC_BITS)."""
MAX_FRAC_BITS = 48
"""Most bits a model keeps below the group's largest exponent."""

FP32 = Float(8, 23)
E8M13_RZ = Float(8, 13, rounding=Rounding.TOWARD_ZERO)
FP32_RZ = Float(8, 23, rounding=Rounding.TOWARD_ZERO)


@dataclass(frozen=True)
class AccumulatorModel:
    """A fused multi-term adder (see the module docstring for the algorithm).

    ``group`` (1..64) products per fused addition; ``frac_bits`` (1..48) bits kept below
    the group's largest exponent; ``align`` "truncate" or "floor"; ``register`` the Float
    format (and rounding) of the running accumulator; ``promote_every`` None or a
    multiple of ``group``: products between promotions to ``outer`` (a Float format,
    default fp32 with round to nearest even). ``name``, ``source`` and ``verified``
    label a preset.
    """

    group: int
    frac_bits: int
    register: Float = FP32_RZ
    align: str = "truncate"
    promote_every: int | None = None
    outer: Float | None = None
    name: str = ""
    source: str = ""
    verified: bool = False

    def __post_init__(self) -> None:
        _check_int("AccumulatorModel.group", self.group, 1, MAX_GROUP)
        _check_int("AccumulatorModel.frac_bits", self.frac_bits, 1, MAX_FRAC_BITS)
        if not isinstance(self.register, Float):
            raise TypeError(f"AccumulatorModel.register must be a Float format, "
                            f"got {self.register!r}")
        if self.align not in ALIGNMENTS:
            raise ValueError(f"AccumulatorModel.align must be one of {ALIGNMENTS}, "
                             f"got {self.align!r}")
        if self.promote_every is not None:
            _check_int("AccumulatorModel.promote_every", self.promote_every, self.group,
                       1 << 30)
            if self.promote_every % self.group:
                raise ValueError(f"AccumulatorModel.promote_every ({self.promote_every}) must "
                                 f"be a multiple of group ({self.group})")
            if self.outer is None:
                object.__setattr__(self, "outer", FP32)
        if self.outer is not None and not isinstance(self.outer, Float):
            raise TypeError(f"AccumulatorModel.outer must be a Float format, got {self.outer!r}")
        if self.outer is not None and self.promote_every is None:
            raise ValueError("AccumulatorModel.outer needs promote_every")
        for role in ("register", "outer"):
            f = getattr(self, role)
            if f is not None and f.rounding is Rounding.STOCHASTIC:
                raise ValueError(f"AccumulatorModel.{role} cannot round stochastically (no "
                                 "matrix unit modelled here does)")

    @property
    def result_format(self) -> Float:
        """The format the accumulation ends in (outer with promotion, else the register)."""
        return self.outer if self.promote_every is not None else self.register

    def __str__(self) -> str:
        preset = ACCUMULATOR_MODELS.get(self.name)
        if preset is not None and dataclasses.replace(
                preset, promote_every=self.promote_every, outer=self.outer) == self:
            if self.promote_every == preset.promote_every:
                return self.name
            if self.promote_every is None:
                return f"{self.name}:nopromote"
            return f"{self.name}:promote{self.promote_every}"
        return repr(self)

    def __repr__(self) -> str:
        parts = [f"group={self.group}", f"frac_bits={self.frac_bits}",
                 f"register={self.register!r}"]
        if self.align != "truncate":
            parts.append(f"align={self.align!r}")
        if self.promote_every is not None:
            parts.append(f"promote_every={self.promote_every}, outer={self.outer!r}")
        if self.name:
            parts.append(f"name={self.name!r}")
        return f"AccumulatorModel({', '.join(parts)})"


_MMA_SIM = "MMA-Sim (Xie et al., arXiv 2511.10909; microsoft/MMA-Sim mmasim/simulator)"


def _presets() -> dict[str, AccumulatorModel]:
    p = [
        AccumulatorModel(4, 23, FP32_RZ, name="volta",
                         source=f"{_MMA_SIM}: Volta f16 MMA, 23 fraction bits, fp32 toward zero; "
                                "4 products + c per fused step (Fasi et al., PeerJ CS 2021)"),
        AccumulatorModel(8, 24, FP32_RZ, name="ampere",
                         source=f"{_MMA_SIM}: Turing/Ampere/Ada f16/bf16 MMA, 24 fraction bits, "
                                "split-k halves of 8 products, fp32 toward zero"),
        AccumulatorModel(16, 13, E8M13_RZ, name="ada_fp8",
                         source=f"{_MMA_SIM}: Ada FP8 mma, 13 fraction bits, e8m13 toward zero, "
                                "halves of 16 products"),
        AccumulatorModel(16, 25, FP32_RZ, name="hopper",
                         source=f"{_MMA_SIM}: Hopper wgmma f16/bf16, 25 fraction bits, k = 16, "
                                "fp32 toward zero"),
        AccumulatorModel(32, 13, E8M13_RZ, name="hopper_fp8",
                         source=f"{_MMA_SIM}: Hopper wgmma e4m3/e5m2, k = 32, 13 fraction bits, "
                                "e8m13 toward zero; no promotion (cuBLAS fast accumulation)"),
        AccumulatorModel(32, 13, E8M13_RZ, promote_every=128, outer=FP32,
                         name="hopper_fp8_promote128",
                         source=f"{_MMA_SIM} with DeepSeek-V3's promotion every N_C = 128 "
                                "products to fp32 (arXiv 2412.19437, section 3.3.2)"),
        AccumulatorModel(32, 25, FP32_RZ, name="blackwell",
                         source=f"{_MMA_SIM}: Blackwell tcgen05.mma, 25 fraction bits for "
                                "f16/bf16 and FP8, fp32 toward zero"),
        AccumulatorModel(8, 24, Float(8, 23), align="floor", name="cdna3",
                         source=f"{_MMA_SIM}: AMD CDNA3 f16/bf16, groups of 8, floor alignment, "
                                "24 fraction bits, each group rounded to nearest into fp32 "
                                "(its two-stage split of fp8 even/odd products is not modelled)"),
    ]
    return {m.name: m for m in p}


ACCUMULATOR_MODELS = _presets()
"""The named models: volta, ampere, ada_fp8, hopper, hopper_fp8, hopper_fp8_promote128,
blackwell, cdna3 — each a published model, not verified on hardware by this project."""


def parse_accumulator(text: "str | AccumulatorModel | Format") -> "AccumulatorModel | Format":
    """A model preset (``hopper_fp8``, ``hopper_fp8:promote128``, ``...:nopromote``) or
    any number format (``fp32``, ``fixed32.16``, ...); objects pass through."""
    if not isinstance(text, str):
        return text
    head, _, opt = text.strip().lower().partition(":")
    if head in ACCUMULATOR_MODELS:
        m = ACCUMULATOR_MODELS[head]
        if not opt:
            return m
        if opt == "nopromote":
            return dataclasses.replace(m, promote_every=None, outer=None)
        if opt.startswith("promote") and opt[len("promote"):].isdigit():
            return dataclasses.replace(m, promote_every=int(opt[len("promote"):]),
                                       outer=m.outer or FP32)
        raise ValueError(f"cannot parse accumulator {text!r}: option {opt!r} (promoteN or "
                         "nopromote)")
    return parse_format(text)
