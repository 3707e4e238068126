"""Formats are immutable, validated, hashable data with a canonical string form."""

from __future__ import annotations

import dataclasses
from fractions import Fraction

import pytest
from hypothesis import given

from lowbit.numerics import Binary, Fixed, Overflow, Rounding, Ternary, parse_format
from lowbit.numerics import testing as lt


class TestFixed:
    """Fixed validates its fields and derives its code range."""

    def test_ranges(self):
        f = Fixed(8, 3)
        assert (f.min_code, f.max_code) == (-128, 127)
        assert f.max_value == Fraction(127, 8) and f.ulp == Fraction(1, 8)
        u = Fixed(8, 3, signed=False)
        assert (u.min_code, u.max_code) == (0, 255)
        assert Fixed(1, 0).min_code == -1 and Fixed(1, 0).max_code == 0

    @pytest.mark.parametrize("kw, match", [
        (dict(bits=0, frac=0), r"Fixed.bits must be in 1..62, got 0"),
        (dict(bits=63, frac=0), r"Fixed.bits must be in 1..62, got 63"),
        (dict(bits=8, frac=513), r"Fixed.frac must be in -512..512, got 513"),
        (dict(bits=8, frac=0, rounding="nearest"), r"Fixed.rounding must be"),
        (dict(bits=8, frac=0, overflow="clip"), r"Fixed.overflow must be"),
    ])
    def test_rejects_bad_fields(self, kw, match):
        with pytest.raises(ValueError, match=match):
            Fixed(**kw)

    @pytest.mark.parametrize("kw", [dict(bits=8.0, frac=0), dict(bits=True, frac=0),
                                    dict(bits=8, frac=0, signed=1)])
    def test_rejects_bad_types(self, kw):
        with pytest.raises(TypeError, match="Fixed"):
            Fixed(**kw)

    def test_frozen_and_hashable(self):
        f = Fixed(16, 8)
        with pytest.raises(dataclasses.FrozenInstanceError):
            f.bits = 4  # type: ignore[misc]
        assert {f: 1}[Fixed(16, 8)] == 1
        assert Fixed(16, 8, rounding="sr") == Fixed(16, 8, rounding=Rounding.STOCHASTIC)

    def test_repr(self):
        assert repr(Fixed(16, 8)) == "Fixed(16, 8)"
        assert repr(Fixed(8, -2, signed=False, rounding=Rounding.FLOOR, overflow=Overflow.WRAP)) == \
            "Fixed(8, -2, signed=False, rounding=Rounding.FLOOR, overflow=Overflow.WRAP)"


class TestBinaryTernary:
    """Binary and ternary formats validate their options."""

    def test_bad_options(self):
        with pytest.raises(ValueError, match="Binary.scale must be one of"):
            Binary("max")
        with pytest.raises(ValueError, match="Ternary.threshold must be 'twn' or a float >= 0"):
            Ternary(threshold=-0.1)
        with pytest.raises(ValueError, match="Ternary.threshold"):
            Ternary(threshold=float("nan"))
        with pytest.raises(TypeError, match="Ternary.threshold"):
            Ternary(threshold=[1])
        with pytest.raises(ValueError, match="Ternary.scale must be one of"):
            Ternary(scale="mean")

    def test_repr(self):
        assert repr(Binary()) == "Binary()" and repr(Binary("per_channel")) == "Binary(scale='per_channel')"
        assert repr(Ternary()) == "Ternary()"
        assert repr(Ternary(threshold=0.5, scale=None)) == "Ternary(threshold=0.5, scale=None)"


class TestParse:
    """parse_format reads the documented grammar and str() is its inverse."""

    @pytest.mark.parametrize("text, fmt", [
        ("fixed16.8", Fixed(16, 8)),
        ("ufixed8.8", Fixed(8, 8, signed=False)),
        ("FIXED8.-2:floor:wrap", Fixed(8, -2, rounding=Rounding.FLOOR, overflow=Overflow.WRAP)),
        ("fixed4.4:sr", Fixed(4, 4, rounding=Rounding.STOCHASTIC)),
        ("binary", Binary()),
        ("binary:mean_abs", Binary("mean_abs")),
        ("ternary", Ternary()),
        ("ternary:threshold=0.05:scale=none", Ternary(threshold=0.05, scale=None)),
    ])
    def test_examples(self, text, fmt):
        assert parse_format(text) == fmt

    @pytest.mark.parametrize("text", ["fixed16", "fixed.8", "fixed16.8:rne:rna", "fixed16.8:up",
                                      "fixed99.0", "float32", "binary:median", "ternary:t=1",
                                      "ternary:threshold=-1", ""])
    def test_rejects(self, text):
        with pytest.raises(ValueError, match="cannot parse format"):
            parse_format(text)

    def test_rejects_non_strings(self):
        with pytest.raises(TypeError, match="format must be a str"):
            parse_format(16)  # type: ignore[arg-type]

    @given(lt.formats())
    def test_round_trip(self, fmt):
        assert parse_format(str(fmt)) == fmt
        assert parse_format(fmt) is fmt
