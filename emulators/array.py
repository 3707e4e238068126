"""``EmuArray``: an array of integer codes of one format (plus optional scales).

>>> import numpy as np
>>> from lowbit.numerics import Fixed
>>> x = from_codes(np.array([3, -4]), Fixed(8, 2))
>>> x
EmuArray(codes=[ 3 -4], fmt=Fixed(8, 2))
>>> x.to_float()
array([ 0.75, -1.  ])
"""

from __future__ import annotations

import numpy as np

from lowbit.numerics.formats import (
    FORMAT_TYPES,
    LNS,
    Binary,
    Block,
    Fixed,
    Float,
    Format,
    Ternary,
    parse_format,
)
from lowbit.numerics.gaussian_log import mantissa_table


NARROW_CODES = (np.dtype(np.uint8), np.dtype(np.uint16))
"""Storage a Float or block array's codes may keep when every code fits (a cast into an
8-bit format stores bytes): ``codes`` and the kernels still see int64."""


class EmuArray:
    """Integer codes (int64, read-only) of format ``fmt``; value = decode(code) * scale.

    A Float or block array made by a cast may store its codes narrower (``NARROW_CODES``:
    one byte per FP8/FP6/FP4 code); ``codes`` then widens them to int64.

    ``scale`` is ``None`` or float64 metadata broadcastable to the codes with the
    same number of dimensions (binary/ternary scales; products of scales after a
    matmul; a block format's per-element block scale). ``tensor_scale`` is a block
    format's float32 tensor scale (1.0 otherwise). ``lazy_scale``, instead of ``scale``:
    a function that returns it, called on first use (a block cast's per-element scales
    are a repeat of its block scales, built only when asked for). Construct with
    :func:`lowbit.emulators.cast` or :func:`from_codes`.
    """

    __slots__ = ("_codes", "_fmt", "_scale", "_tensor", "_lazy")

    def __init__(self, codes: np.ndarray, fmt: Format, scale: np.ndarray | None = None,
                 tensor_scale: float = 1.0, *, lazy_scale=None):
        # _codes stays writeable and private (kernels get it: Numba compiles slower
        # code for read-only arrays); users see a read-only view through .codes.
        codes = np.asarray(codes)
        narrow = codes.dtype in NARROW_CODES and isinstance(fmt, (Float, Block))
        self._codes = codes if narrow else np.asarray(codes, dtype=np.int64)
        self._fmt = fmt
        if scale is not None:
            scale = np.asarray(scale, dtype=np.float64)
            scale.flags.writeable = False
        self._scale = scale
        self._tensor = float(tensor_scale)
        self._lazy = lazy_scale

    @property
    def codes(self) -> np.ndarray:
        """The codes, an int64 array (read-only: a view, or a widened copy of narrow
        storage)."""
        view = self._codes.view() if self._codes.dtype == np.int64 else \
            self._codes.astype(np.int64)
        view.flags.writeable = False
        return view

    @property
    def fmt(self) -> Format:
        return self._fmt

    @property
    def scale(self) -> np.ndarray | None:
        if self._lazy is not None:
            scale = np.asarray(self._lazy(), dtype=np.float64)
            scale.flags.writeable = False
            self._scale, self._lazy = scale, None
        return self._scale

    @property
    def tensor_scale(self) -> float:
        return self._tensor

    @property
    def shape(self) -> tuple[int, ...]:
        return self._codes.shape

    @property
    def ndim(self) -> int:
        return self._codes.ndim

    @property
    def size(self) -> int:
        return self._codes.size

    def __len__(self) -> int:
        return len(self._codes)

    def to_float(self) -> np.ndarray:
        """The values as float64: code * 2**-frac (* scale).

        Exact for every code of at most 53 significant bits (every format with
        ``bits <= 53``, every binary/ternary code); otherwise rounded once to
        nearest-even. With a scale, ``code * scale`` is one float64 product.
        LNS values are irrational but for powers of two: each is correctly rounded.
        """
        if isinstance(self._fmt, LNS):
            return _lns_to_float(self._codes, self._fmt)
        if isinstance(self._fmt, Block):
            from lowbit.emulators._block_ops import element_values

            return element_values(self._codes, self._fmt) * self.scale * self._tensor
        if isinstance(self._fmt, Float):
            from lowbit.emulators._float_ops import to_float

            vals = to_float(self._codes, self._fmt)
            return vals if self.scale is None else vals * self.scale
        vals = self._codes.astype(np.float64)
        if isinstance(self._fmt, Fixed) and self._fmt.frac:
            vals *= 2.0 ** -self._fmt.frac
        if self.scale is not None:
            vals = vals * self.scale
        return vals

    def _with(self, codes: np.ndarray, scale: np.ndarray | None) -> "EmuArray":
        return EmuArray(codes, self._fmt, scale, self._tensor)

    @property
    def T(self) -> "EmuArray":
        """The transpose (codes and scale)."""
        return self._with(self._codes.T, None if self.scale is None else self.scale.T)

    def reshape(self, *shape) -> "EmuArray":
        """Reshape the codes; a scale must be a single value (all axes of size 1)."""
        codes = self._codes.reshape(*shape)
        scale = self.scale
        if scale is not None:
            if scale.size != 1:
                raise ValueError("reshape of an array with per-channel scales is not supported")
            scale = scale.reshape((1,) * codes.ndim)
        return self._with(codes, scale)

    def __getitem__(self, index) -> "EmuArray":
        codes = self._codes[index]
        scale = None
        if self.scale is not None and self.scale.size == 1:
            scale = self.scale.reshape((1,) * np.ndim(codes))
        elif self.scale is not None:
            scale = np.broadcast_to(self.scale, self.shape)[index]
        return self._with(codes, scale)

    def identical(self, other: object) -> bool:
        """Same format, same codes, same shape and same scales (bit for bit)."""
        if not isinstance(other, EmuArray) or other.fmt != self.fmt:
            return False
        if other.shape != self.shape or not np.array_equal(other.codes, self.codes):
            return False
        if (self.scale is None) != (other.scale is None) or self._tensor != other._tensor:
            return False
        return self.scale is None or np.array_equal(
            np.broadcast_to(self.scale, self.shape), np.broadcast_to(other.scale, other.shape))

    def __repr__(self) -> str:
        s = f"EmuArray(codes={np.array2string(self._codes, threshold=20)}, fmt={self._fmt!r}"
        if self.scale is not None:
            s += f", scale={np.array2string(self.scale, threshold=8)}"
        return s + ")"


def _lns_to_float(codes: np.ndarray, fmt: LNS) -> np.ndarray:
    """+-mantissa[e mod 2**F] * 2**(e // 2**F), the mantissa table correctly rounded."""
    F = fmt.frac_bits
    e = np.abs(codes) - 1 + fmt.e_min
    vals = np.ldexp(mantissa_table(F)[e & ((1 << F) - 1)], (e >> F).astype(np.int32))
    return np.where(codes == 0, 0.0, np.where(codes < 0, -vals, vals))


def kernel_codes(x: EmuArray) -> np.ndarray:
    """The writeable int64 array behind ``x.codes``, C-contiguous (copied if it is
    not, widened if it is stored narrow), for passing to kernels only."""
    if x._codes.dtype != np.int64:
        return np.ascontiguousarray(x._codes, dtype=np.int64)
    return contiguous(x._codes)


def contiguous(a: np.ndarray) -> np.ndarray:
    """``a`` as a C-contiguous array of the same shape (0-d stays 0-d)."""
    return a if a.flags.c_contiguous else np.array(a, order="C")


def as_format(fmt: object, name: str = "fmt") -> Format:
    """A format object from a format or its short string; TypeError otherwise.
    """
    if isinstance(fmt, str):
        fmt = parse_format(fmt)
    if isinstance(fmt, FORMAT_TYPES):
        return fmt  # type: ignore[return-value]
    raise TypeError(f"{name} must be a format (Fixed, Binary, Ternary) or its string, "
                    f"got {type(fmt).__name__} {fmt!r}")


def from_codes(codes, fmt: Format | str, scale=None) -> EmuArray:
    """Wrap existing integer codes of ``fmt`` (validated; copied to int64).

    Raises ``TypeError`` for non-integer codes and ``ValueError`` naming the first
    code outside the format's range (binary codes must be -1 or +1).
    """
    fmt = as_format(fmt)
    arr = np.asarray(codes)
    if arr.dtype == np.bool_ or not np.issubdtype(arr.dtype, np.integer):
        raise TypeError(f"codes must be an integer array, got dtype {arr.dtype}")
    if arr.dtype == np.uint64 and arr.size and int(arr.max()) > np.iinfo(np.int64).max:
        bad = np.argmax(arr > np.iinfo(np.int64).max)
        raise ValueError(f"codes{list(np.unravel_index(bad, arr.shape))} = {arr.flat[bad]} "
                         f"is outside {fmt!r}")
    arr = np.array(arr, dtype=np.int64)
    bad_mask = (arr < fmt.min_code) | (arr > fmt.max_code)
    if isinstance(fmt, Binary):
        bad_mask |= arr == 0
    if bad_mask.any():
        i = int(np.argmax(bad_mask))
        idx = [int(v) for v in np.unravel_index(i, arr.shape)]
        raise ValueError(f"codes{idx} = {arr.flat[i]} is outside {fmt!r} "
                         f"(codes {fmt.min_code}..{fmt.max_code}"
                         f"{', not 0' if isinstance(fmt, Binary) else ''})")
    return EmuArray(arr, fmt, check_scale(scale, arr.shape))


def check_scale(scale, shape: tuple[int, ...]) -> np.ndarray | None:
    """Validate a scale: float64, finite, same ndim as the codes, broadcastable."""
    if scale is None:
        return None
    s = np.asarray(scale, dtype=np.float64)
    if s.ndim < len(shape):
        s = s.reshape((1,) * (len(shape) - s.ndim) + s.shape)
    try:
        np.broadcast_shapes(s.shape, shape)
    except ValueError:
        raise ValueError(f"scale of shape {s.shape} does not broadcast to codes of shape {shape}") from None
    if s.ndim != len(shape) or not np.isfinite(s).all():
        raise ValueError(f"scale must be finite with ndim <= {len(shape)}, got shape {s.shape}")
    return s


def is_integer_format(fmt: Format) -> bool:
    """Binary and ternary codes are integers (frac 0)."""
    return isinstance(fmt, (Binary, Ternary))
