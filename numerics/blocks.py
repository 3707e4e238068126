"""Block-scaled formats (:class:`Block`): OCP Microscaling (MXFP8, MXFP6, MXFP4, MXINT8) and
NVIDIA's NVFP4, and any element / scale / block shape in between.

A block of ``block`` consecutive values along ``axis`` (or a ``tile`` of rows x columns over
the last two axes) shares one scale ``S`` from the ``scale`` format; each value ``x`` is
stored as an element code ``q`` of ``element``; its value is ``q * S * T``, where ``T`` is
the tensor scale (1 without ``tensor_scale``). The rules, in order (the exact reference is
:mod:`lowbit.numerics.reference.block`):

1. **Inputs** are float32 or float64 values, taken exactly; with ``daz`` a value below the
   smallest normal float32 (2**-126) is read as a zero of its sign (Rouhani et al., MX
   Algorithm 1, step 4).
2. **Tensor scale** (``tensor_scale=True``, NVFP4): ``T`` = the float32 nearest (ties to even)
   to ``amax(tensor) / (max(scale) * max(element))``, at least 2**-149; 1 for a tensor of
   zeros or with a NaN or inf.
3. **Blocks** start at index 0 of the axis (tiles at row 0 and column 0); a last, partial
   block is scaled from the values it has (as if padded with zeros).
4. **A block holding a NaN or an inf** gets the scale's NaN code (its elements the code of +0):
   every value of it decodes to NaN, as the OCP spec's NaN scale says; a scale without NaN
   raises ValueError.
5. **An all-zero block** gets the smallest positive scale (E8M0: 2**-127) and zero elements.
6. **The scale** of a block with largest magnitude ``a`` (``a / T`` with a tensor scale), for
   an element whose largest value is ``m = 2**emax * f`` (``emax`` its exponent):

   - a power-of-two scale (E8M0, no mantissa bits) is ``2**e``, clamped to the scale's range:
     ``floor``: e = floor(log2 a) - emax (OCP; the top element may clip);
     ``ceil``: e = ceil(log2 a) - emax;
     ``even``: e = floor(log2 a') - emax, with a' = a rounded to the element's precision,
     ties away (torchao's EVEN);
     ``rceil``: e = ceil(log2(a / m)), the smallest scale that clips nothing (NVIDIA);
     ``nearest``: e = round(log2(a / m)) (MLX);
   - any other scale (NVFP4's UE4M3) is ``a / m`` rounded into the scale format: upward
     (``rceil``, cuDNN's "round up") or to nearest even (``nearest``, torchao), clamped to the
     scale's smallest positive and largest values.
7. **Elements**: ``q`` = the exact ``x / (S * T)`` rounded once with the element's rounding
   mode (stochastic draws keyed by the flat index of ``x``, as :func:`cast`), clamped to
   +-max(element) whatever the element's overflow policy ("clamping normal numbers"). An
   element is **clipped** when ``|x / (S * T)| > max(element)``; a block cast counts them.

MXINT8's element is ``Fixed(8, 6)`` (values k/64); by default its code -128 (-2.0) is unused
(symmetric, as microxcaling); ``asymmetric=True`` uses it.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from fractions import Fraction

from lowbit.numerics.formats import FLOAT_PRESETS, Fixed, Float
from lowbit.numerics.modes import Overflow, Rounding

SCALE_RULES = ("floor", "ceil", "even", "rceil", "nearest")
"""The shared-scale rules (docs/floats.md): OCP's floor, ceil, torchao's even, NVIDIA's rceil,
MLX's nearest."""
MAX_BLOCK = 1 << 16
"""Most elements in one block or tile."""
MXINT8_ELEMENT = Fixed(8, 6)
MAX_SCALE_MAN_BITS = 7
"""Widest mantissa of a non-power-of-two scale (a scale times the tensor scale stays exact in
a float64)."""


@dataclass(frozen=True)
class Block:
    """A block-scaled format (rules in the module docstring).

    ``element``: a signed :class:`Float` or, for MXINT8, ``Fixed(8, 6)``; ``block``: values
    per block (>= 1); ``scale``: an unsigned Float (E8M0 by default; UE4M3 for NVFP4);
    ``scale_rule``: one of :data:`SCALE_RULES` (only ``rceil`` and ``nearest`` for a scale
    with mantissa bits); ``axis``: the blocked axis; ``tile``: (rows, cols) blocks over the
    last two axes instead (``block`` is then rows * cols); ``tensor_scale``: NVFP4's float32
    tensor scale; ``daz``: float32 subnormal inputs read as zero; ``asymmetric``: MXINT8
    uses its code -2.0.
    """

    element: Float | Fixed
    block: int = 32
    scale: Float = field(default_factory=lambda: FLOAT_PRESETS["e8m0"])
    scale_rule: str = "floor"
    axis: int = -1
    tile: tuple[int, int] | None = None
    tensor_scale: bool = False
    daz: bool = False
    asymmetric: bool = False

    def __post_init__(self) -> None:
        e = self.element
        if isinstance(e, Fixed):
            if (e.bits, e.frac, e.signed) != (8, 6, True):
                raise ValueError(f"Block.element: the one integer element is MXINT8's "
                                 f"Fixed(8, 6), got {e!r}")
        elif isinstance(e, Float):
            if not e.signed or not e.zero:
                raise ValueError(f"Block.element must be a signed Float with a zero, got {e}")
        else:
            raise TypeError(f"Block.element must be a Float or Fixed(8, 6), got {e!r}")
        if self.tile is not None:
            if (not isinstance(self.tile, tuple) or len(self.tile) != 2
                    or not all(isinstance(t, int) and not isinstance(t, bool) and t >= 1
                               for t in self.tile)):
                raise ValueError(f"Block.tile must be (rows, cols) of positive ints, "
                                 f"got {self.tile!r}")
            object.__setattr__(self, "block", self.tile[0] * self.tile[1])
            if self.axis != -1:
                raise ValueError("Block.tile covers the last two axes: give no axis")
        if isinstance(self.block, bool) or not isinstance(self.block, int) \
                or not 1 <= self.block <= MAX_BLOCK:
            raise ValueError(f"Block.block must be in 1..{MAX_BLOCK}, got {self.block!r}")
        if isinstance(self.axis, bool) or not isinstance(self.axis, int):
            raise TypeError(f"Block.axis must be an int, got {self.axis!r}")
        s = self.scale
        if not isinstance(s, Float) or s.signed:
            raise ValueError(f"Block.scale must be an unsigned Float (e8m0, ue4m3), got {s!r}")
        if self.scale_rule not in SCALE_RULES:
            raise ValueError(f"Block.scale_rule must be one of {SCALE_RULES}, "
                             f"got {self.scale_rule!r}")
        if s.man_bits:
            if self.scale_rule not in ("rceil", "nearest"):
                raise ValueError(f"Block.scale_rule={self.scale_rule!r} is a power-of-two "
                                 f"rule; a scale with mantissa bits ({s}) takes 'rceil' "
                                 "(round up) or 'nearest' (to nearest even)")
            if s.man_bits > MAX_SCALE_MAN_BITS:
                raise ValueError(f"Block.scale: at most {MAX_SCALE_MAN_BITS} mantissa bits, "
                                 f"got {s}")
            if not s.zero:
                raise ValueError(f"Block.scale {s} with mantissa bits needs a zero code")
            r = e.rounding
            if r is Rounding.STOCHASTIC and not (isinstance(e, Float) and e.sr_bits
                                                 and e.sr_bits <= 16):
                raise ValueError("Block.element: stochastic rounding against a non-power-of-"
                                 "two scale takes k <= 16 random bits (e.g. e2m1:sr8); the "
                                 "exact quotient is not held for exact stochastic rounding")
        elif s.zero or s.exp_bits < 2:
            raise ValueError(f"Block.scale {s}: a power-of-two scale has no zero (E8M0)")
        if self.asymmetric and not isinstance(e, Fixed):
            raise ValueError("Block.asymmetric is MXINT8's option (its code -2.0)")
        for name in ("tensor_scale", "daz", "asymmetric"):
            if not isinstance(getattr(self, name), bool):
                raise TypeError(f"Block.{name} must be a bool, got {getattr(self, name)!r}")

    # -- derived ---------------------------------------------------------------------
    @property
    def pow2_scale(self) -> bool:
        """Whether every scale is a power of two (no mantissa bits: E8M0)."""
        return self.scale.man_bits == 0

    @property
    def grid(self) -> Float:
        """The Float whose rounding the elements follow, saturating: the element itself,
        or for MXINT8 the sign-magnitude Float with the values k/64, |k| <= 127
        (``asymmetric`` then widens the negative side to -2 by clamping)."""
        e = self.element
        if isinstance(e, Fixed):
            return Float(2 if self.asymmetric else 1, 6, bias=1, specials="none",
                         rounding=e.rounding)
        return replace(e, overflow=Overflow.SATURATE, inf="max", daz=False) \
            if e.has_nan else replace(e, daz=False)

    @property
    def element_max(self) -> Fraction:
        """The largest element value."""
        if isinstance(self.element, Fixed):
            return Fraction(127, 64)
        return self.element.max_value

    @property
    def element_emax(self) -> int:
        """floor(log2(element_max)): MX's emax_elem."""
        m = self.element_max
        e = m.numerator.bit_length() - m.denominator.bit_length()
        return e if Fraction(2) ** e <= m else e - 1

    @property
    def element_precision(self) -> int:
        """Significant bits of the element (for the ``even`` rule): man_bits + 1, or 7."""
        return 7 if isinstance(self.element, Fixed) else self.element.man_bits + 1

    @property
    def width(self) -> int:
        """Bits of one element code."""
        return 8 if isinstance(self.element, Fixed) else self.element.width

    @property
    def bits_per_value(self) -> float:
        """Storage per value: element bits plus the block scale's share."""
        return self.width + self.scale.width / self.block

    def __str__(self) -> str:
        for name, kw in BLOCK_PRESET_FIELDS.items():
            base = Block(**kw)
            if (base.element, base.scale) == (self.element, self.scale) or (
                    _same_layout(base.element, self.element) and base.scale == self.scale):
                break
        else:
            return repr(self)
        opts = []
        if self.element != base.element:
            rounding = self.element.rounding
            opts.append(f"sr{self.element.sr_bits}" if getattr(self.element, "sr_bits", None)
                        else rounding.short)
        if self.tile is not None:
            opts.append(f"tile={self.tile[0]}x{self.tile[1]}")
        elif self.block != base.block:
            opts.append(f"block={self.block}")
        if self.axis != base.axis:
            opts.append(f"axis={self.axis}")
        if self.scale_rule != base.scale_rule:
            opts.append(f"rule={self.scale_rule}")
        if self.tensor_scale != base.tensor_scale:
            opts.append("ts" if self.tensor_scale else "nots")
        if self.daz:
            opts.append("daz")
        if self.asymmetric:
            opts.append("asym")
        return ":".join([name] + opts)


def _same_layout(a, b) -> bool:
    """Whether two elements differ at most in their rounding."""
    if type(a) is not type(b):
        return False
    if isinstance(a, Fixed):
        return replace(a, rounding=b.rounding) == b
    return replace(a, rounding=b.rounding, sr_bits=b.sr_bits) == b


BLOCK_PRESET_FIELDS: dict[str, dict] = {
    "mxfp8": dict(element=FLOAT_PRESETS["e4m3"]),
    "mxfp8e5m2": dict(element=FLOAT_PRESETS["e5m2"]),
    "mxfp6": dict(element=FLOAT_PRESETS["e2m3"]),
    "mxfp6e3m2": dict(element=FLOAT_PRESETS["e3m2"]),
    "mxfp4": dict(element=FLOAT_PRESETS["e2m1"]),
    "mxint8": dict(element=MXINT8_ELEMENT),
    "nvfp4": dict(element=FLOAT_PRESETS["e2m1"], block=16, scale=FLOAT_PRESETS["ue4m3"],
                  scale_rule="rceil", tensor_scale=True),
}
"""The named block formats: OCP MX v1.0 (block 32, E8M0, the OCP floor rule) and NVFP4
(E2M1, block 16, UE4M3 scales rounded up as cuDNN does, a float32 tensor scale)."""
BLOCK_PRESETS = {name: Block(**kw) for name, kw in BLOCK_PRESET_FIELDS.items()}

BLOCK_GRAMMAR = """\
block    := BLOCK_PRESET (":" BLOCK_OPT)*
BLOCK_PRESET := "mxfp8" | "mxfp8e5m2" | "mxfp6" | "mxfp6e3m2" | "mxfp4" | "mxint8" | "nvfp4"
BLOCK_OPT := "block=" N | "tile=" R "x" C | "axis=" INT
          | "rule=" ("floor" | "ceil" | "even" | "rceil" | "nearest")
          | "ts" | "nots" | "daz" | "asym"                  (tensor scale, fp32-subnormal flush, MXINT8 -2)
          | ROUNDING | "odd" | "sr" K                       (the elements' rounding)
"""


def parse_block(head: str, opts: list[str]) -> Block:
    """A Block from its preset name and options (grammar in :data:`BLOCK_GRAMMAR`)."""
    from lowbit.numerics.formats import as_rounding

    kw: dict[str, object] = dict(BLOCK_PRESET_FIELDS[head])
    seen: set[str] = set()

    def put(key: str, value: object) -> None:
        if key in seen:
            raise ValueError(f"{key} given twice")
        seen.add(key)
        kw[key] = value

    element = kw["element"]
    for opt in opts:
        key, sep, val = opt.partition("=")
        if sep and key == "block":
            put("block", int(val))
        elif sep and key == "tile":
            r, x, c = val.partition("x")
            if not x:
                raise ValueError(f"tile needs ROWSxCOLS, got {val!r}")
            put("tile", (int(r), int(c)))
        elif sep and key == "axis":
            put("axis", int(val))
        elif sep and key == "rule":
            put("scale_rule", val)
        elif opt in ("ts", "nots"):
            put("tensor_scale", opt == "ts")
        elif opt == "daz":
            put("daz", True)
        elif opt == "asym":
            put("asymmetric", True)
        elif opt.startswith("sr") and opt[2:].isdigit():
            put("rounding", None)
            element = replace(element, rounding=Rounding.STOCHASTIC, sr_bits=int(opt[2:]))
        else:
            put("rounding", None)
            rounding = as_rounding(opt)
            element = (replace(element, rounding=rounding) if isinstance(element, Fixed)
                       else replace(element, rounding=rounding, sr_bits=None))
    kw.pop("rounding", None)
    kw["element"] = element
    return Block(**kw)  # type: ignore[arg-type]
