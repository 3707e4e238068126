"""The exact reference arithmetic: slow, obviously correct, and the definition.

Every result of :mod:`emulators` must equal what these functions return, code
for code. They work on Python ints and :class:`fractions.Fraction`, one element
at a time: use them as the oracle in tests, on small arrays.

- :mod:`lowbit.numerics.reference.rounding` rounds one exact rational into a format;
- :mod:`lowbit.numerics.reference.fixed` casts, adds, multiplies, sums and multiplies
  matrices of fixed-point (and binary/ternary) codes;
- :mod:`lowbit.numerics.reference.binary` casts floats to binary and ternary codes;
- :mod:`lowbit.numerics.reference.floating` rounds into, decodes and computes with
  floating-point formats (IEEE specials, signed zeros, every rounding mode).
"""

from lowbit.numerics.reference import binary, fixed, floating, rounding

__all__ = ["binary", "fixed", "floating", "rounding"]
