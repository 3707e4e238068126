"""``EmulationSpec``: which format each role of a layer's arithmetic uses.

>>> EmulationSpec.parse("lns5.10,kahan")
EmulationSpec('w=lns5.10,a=lns5.10,gi=lns5.10,gw=lns5.10,kahan')
>>> str(EmulationSpec.parse("w=binary,a=float"))
'w=binary'
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from lowbit.numerics import (LNS, AccumulatorModel, Binary, Block, Fixed, Float, Format,
                             Ternary, parse_accumulator, parse_format)

ROLES = {"w": "weight", "a": "activation", "o": "output", "acc": "accumulator",
         "gi": "grad_input", "gw": "grad_weight"}
ORDERS = ("sequential", "pairwise")
STES = ("identity", "clipped")
SCALINGS = ("delayed",)
BLOCK_ROLES = ("weight", "activation", "grad_input", "grad_weight")
"""The roles a block format (MX, NVFP4) may take: a product's operands, never its result."""
AMAX_HISTORY = 16
"""Steps of amax history behind a delayed per-tensor scale."""

SPEC_GRAMMAR = """\
spec  := FORMAT ("," flag)*                  one format for w, a, gi and gw
       | item ("," item)*
item  := role "=" (FORMAT | "float") | flag
role  := "w" (weights) | "a" (activations) | "o" (forward outputs; default: as "a")
       | "acc" (accumulator: a format, or a matrix-unit model such as hopper_fp8;
                 Float operands default to acc=fp32)
       | "gi" (gradients w.r.t. inputs, and the incoming gradient)
       | "gw" (gradients w.r.t. weights and bias)
       w, a, gi, gw may be block formats (mxfp8, nvfp4, ...): every product casts its
       operands along its own contraction axis and writes a Float (EmulationSpec's
       docstring); o and acc are Float formats (or a model)
flag  := "kahan" | "order=" ("sequential" | "pairwise") | "ste=" ("identity" | "clipped")
       | "scaling=delayed"   (per-tensor power-of-two scales of x, w and the gradient from the
                              largest |value| of the last 16 steps; Float formats, no blocks)
FORMAT: see lowbit.numerics.FORMAT_GRAMMAR (e.g. fixed16.8, binary, lns5.10:interp6)
"""


def _family(fmt) -> str | None:
    if fmt is None:
        return None
    if isinstance(fmt, (Float, Block, AccumulatorModel)):
        return "float"
    return "lns" if isinstance(fmt, LNS) else "fixed"  # binary/ternary are integers: fixed family


FP32_ACCUMULATOR = Float(8, 23)
"""The accumulator of a spec whose operands are Float formats and that names none."""


@dataclass(frozen=True)
class EmulationSpec:
    """Formats of a layer's roles; ``None`` means plain float (not emulated).

    - ``weight``: the stored weights (cast on every forward: STE to the latent float);
    - ``activation``: layer inputs;
    - ``output``: the format the forward matmul (and bias) rounds into; None: the
      activation format (binary/ternary activations: the exact integer result);
    - ``accumulator``: of every matmul (None: exact for fixed point, the output
      format for LNS; fp32 for Float operands); for Float operands also an
      :class:`~lowbit.numerics.accumulators.AccumulatorModel` (``acc=hopper_fp8``);
    - ``grad_input``: the incoming gradient and the gradient w.r.t. the inputs;
    - ``grad_weight``: gradients w.r.t. weights and bias;
    - ``order``, ``compensated``: accumulation order and Kahan flag of all three matmuls;
    - ``ste``: "identity" or "clipped" (zero gradient where |x| exceeds the
      format's range; for binary/ternary, outside [-1, 1] as in BinaryNet);
    - ``scaling``: None, or "delayed" (FP8 training's per-tensor delayed scaling: the
      activations, weights and incoming gradient are multiplied by 2**k before their cast,
      k the largest integer with amax * 2**k <= the format's largest value, amax the
      largest magnitude of that tensor over the last ``AMAX_HISTORY`` training steps (2**0
      before any); each matmul accumulates in ``accumulator`` and its result is multiplied
      by the inverse scales (exact) before its one rounding into its format: the
      forward and the input gradient into ``output`` (the previous layer casts that
      gradient into ``grad_input`` at its own scale, as FP8 training's dgrad does), the
      weight and bias gradients into ``grad_weight``).

    Block formats (MX, NVFP4) serve the weight, activation and both gradient roles, with
    MX training's rule (Rouhani et al. 2023, arXiv 2310.10537 §6): every product casts
    **both** its operands into their block formats along **its own** contraction axis,
    from their float values, and writes a Float, never a block format. For a linear
    layer y = x W^T + b, x (M x K), W (N x K), incoming gradient g (M x N):

    - forward y = x W^T: x and W blocked along K (the format's ``axis``, -1 by default);
    - input gradient g W: g along N in ``grad_input``, W cast afresh from the latent
      float weights along N (axis 0) in ``weight``;
    - weight gradient g^T x: g along M (axis 0) in ``grad_input``, x cast afresh from the
      float input along M in ``activation``; the bias gradient sum(g) reads the same g;
    - a tiled format (``:tile=RxC``, e.g. NVFP4 16x16 weight tiles) is not cast again:
      transposition maps its tiles onto themselves, so the backward products read the
      forward's codes, transposed (why recipes tile the weights); element formats are
      never cast again either;
    - results: with a block ``grad_input`` the input gradient rounds once into ``output``
      if it is a Float, else into the accumulator's result format (fp32 by default; the
      previous layer block-casts it as its own incoming gradient); the weight and bias
      gradients round once into the accumulator's result format and are then block-cast
      into a block ``grad_weight`` (the weight gradient along its last axis, as the
      weight; the bias gradient along its one axis, a tile's row), or round once into a
      Float ``grad_weight``;
    - a block weight or activation beside Float (or float) gradients is cast along the
      backward product's axis too (before this rule, the backward products read the
      forward's blocks along K).

    Delayed scaling is for Float formats only (blocks carry their own scales).
    """

    weight: Format | None = None
    activation: Format | None = None
    output: Format | None = None
    accumulator: Format | None = None
    grad_input: Format | None = None
    grad_weight: Format | None = None
    order: str = "sequential"
    compensated: bool = False
    ste: str = "identity"
    scaling: str | None = None

    def __post_init__(self) -> None:
        for f in ("weight", "activation", "output", "accumulator", "grad_input", "grad_weight"):
            v = getattr(self, f)
            if isinstance(v, str):
                v = None if v == "float" else (parse_accumulator(v) if f == "accumulator"
                                               else parse_format(v))
                object.__setattr__(self, f, v)
            allowed = (Fixed, Binary, Ternary, LNS, Float) + \
                ((AccumulatorModel,) if f == "accumulator" else ()) + \
                ((Block,) if f in BLOCK_ROLES else ())
            if isinstance(v, Block) and not isinstance(v, allowed):
                raise ValueError(f"EmulationSpec.{f} {v}: a matmul writes a Float, never a "
                                 "block format (block formats serve w=, a=, gi=, gw=; give o= "
                                 "and acc= as Float formats such as bf16 or fp32)")
            if v is not None and not isinstance(v, allowed):
                raise TypeError(f"EmulationSpec.{f} must be a format or None, got {v!r}")
        if self.order not in ORDERS:
            raise ValueError(f"EmulationSpec.order must be one of {ORDERS}, got {self.order!r}")
        if self.ste not in STES:
            raise ValueError(f"EmulationSpec.ste must be one of {STES}, got {self.ste!r}")
        if not isinstance(self.compensated, bool):
            raise TypeError(f"EmulationSpec.compensated must be a bool, got {self.compensated!r}")
        for f in ("weight", "activation", "output", "grad_input", "grad_weight"):
            v = getattr(self, f)
            if isinstance(v, Fixed) and v.bits > 53:
                raise ValueError(f"EmulationSpec.{f} {v!r}: values travel between layers as "
                                 "float64, which holds codes of at most 53 bits (a wider "
                                 "format can be the accumulator)")
        if isinstance(self.output, (Binary, Ternary)):
            raise ValueError("EmulationSpec.output cannot be binary or ternary (a matmul's result "
                             "is an integer or fixed-point value; quantize the next input instead)")
        for a, b in (("weight", "activation"), ("output", "weight"), ("grad_input", "weight"),
                     ("grad_input", "activation"), ("grad_weight", "grad_input")):
            fa, fb = _family(getattr(self, a)), _family(getattr(self, b))
            if fa and fb and fa != fb:
                raise ValueError(f"EmulationSpec: {a} {getattr(self, a)!r} and {b} "
                                 f"{getattr(self, b)!r} meet in one matmul but are of different "
                                 "families (LNS, fixed point and floats cannot be multiplied "
                                 "together)")
        acc = self.accumulator
        operands = {_family(getattr(self, r)) for r in ("weight", "activation")}
        floats = operands == {"float"} or (operands - {None} == {"float"} and any(
            isinstance(getattr(self, r), Block) for r in ("grad_input", "grad_weight")))
        if acc is None and floats:  # Float products: fp32 accumulation unless told otherwise
            object.__setattr__(self, "accumulator", FP32_ACCUMULATOR)
            acc = FP32_ACCUMULATOR
        if acc is not None:
            fams = {_family(getattr(self, r)) for r in ("weight", "activation")} - {None}
            if not fams:
                raise ValueError("EmulationSpec: an accumulator needs emulated weights and activations")
            if isinstance(acc, (Binary, Ternary)) or fams != {_family(acc)}:
                raise ValueError(f"EmulationSpec.accumulator {acc!r} must be a Fixed format for "
                                 "fixed-point/binary/ternary operands, an LNS format for LNS "
                                 "ones, a Float format or an accumulator model for Float ones")
        if isinstance(self.grad_input, (Binary, Ternary)) or isinstance(self.grad_weight,
                                                                       (Binary, Ternary)):
            raise ValueError("EmulationSpec: gradients cannot be binary or ternary "
                             "(use a Fixed, LNS or Float format)")
        if isinstance(acc, AccumulatorModel) and (self.order != "sequential" or self.compensated):
            raise ValueError("EmulationSpec: an accumulator model fixes its own order (no "
                             "order= or kahan)")
        if self.compensated and self.order != "sequential":
            raise ValueError("EmulationSpec: Kahan compensation needs order='sequential'")
        if self.scaling is not None:
            if self.scaling not in SCALINGS:
                raise ValueError(f"EmulationSpec.scaling must be None or one of {SCALINGS}, "
                                 f"got {self.scaling!r}")
            blocks = [r for r in BLOCK_ROLES if isinstance(getattr(self, r), Block)]
            if blocks:
                raise ValueError(f"EmulationSpec: scaling=delayed is for Float formats; the "
                                 f"block formats of {', '.join(blocks)} carry their own scales")
            roles = (self.weight, self.activation, self.grad_input)
            if not all(isinstance(f, Float) for f in roles):
                raise ValueError("EmulationSpec: scaling=delayed scales Float weights, "
                                 "activations and gradients (e.g. w=e4m3,a=e4m3,gi=e5m2)")

    @classmethod
    def everywhere(cls, fmt: Format | str, **kw) -> "EmulationSpec":
        """The same format for weights, activations and both gradients."""
        f = parse_format(fmt)
        return cls(weight=f, activation=f, grad_input=f, grad_weight=f, **kw)

    @classmethod
    def parse(cls, text: "str | EmulationSpec") -> "EmulationSpec":
        """Read the string form (grammar: ``SPEC_GRAMMAR``); specs pass through."""
        if isinstance(text, EmulationSpec):
            return text
        if not isinstance(text, str) or not text.strip():
            raise ValueError(f"cannot parse emulation spec {text!r}\n{SPEC_GRAMMAR}")
        kw: dict[str, object] = {}
        items = [t.strip() for t in text.split(",")]
        try:
            if "=" not in items[0] and items[0] not in ("kahan",):
                f = parse_format(items[0])
                kw.update(weight=f, activation=f, grad_input=f, grad_weight=f)
                items = items[1:]
            for item in items:
                key, eq, val = item.partition("=")
                if item == "kahan":
                    kw["compensated"] = True
                elif key in ("order", "ste", "scaling") and eq:
                    kw[key] = val
                elif key == "acc" and eq:
                    kw["accumulator"] = None if val == "float" else parse_accumulator(val)
                elif key in ROLES and eq:
                    kw[ROLES[key]] = None if val == "float" else parse_format(val)
                else:
                    raise ValueError(f"unknown item {item!r}")
            return cls(**kw)  # type: ignore[arg-type]
        except (ValueError, TypeError) as exc:
            raise ValueError(f"cannot parse emulation spec {text!r}: {exc}\n{SPEC_GRAMMAR}") from None

    def __str__(self) -> str:
        parts = [f"{k}={getattr(self, v)}" for k, v in ROLES.items() if getattr(self, v) is not None]
        if self.order != "sequential":
            parts.append(f"order={self.order}")
        if self.compensated:
            parts.append("kahan")
        if self.ste != "identity":
            parts.append(f"ste={self.ste}")
        if self.scaling is not None:
            parts.append(f"scaling={self.scaling}")
        return ",".join(parts) or "w=float"

    def __repr__(self) -> str:
        return f"EmulationSpec({str(self)!r})"

    @property
    def emulated(self) -> bool:
        return any(getattr(self, f.name) is not None for f in fields(self)[:6])

    @property
    def delayed(self) -> bool:
        return self.scaling == "delayed"
