"""Accumulator models: the published golden vectors, an independent straightforward
implementation of MMA-Sim's fused_dot_add written here, and the plain Float
accumulations (sequential, pairwise, Kahan) of the exact reference."""

from __future__ import annotations

import math
import random
from fractions import Fraction

import numpy as np
import pytest

from lowbit.numerics import parse_format
from lowbit.numerics.accumulators import (
    ACCUMULATOR_MODELS,
    AccumulatorModel,
    Float,
    parse_accumulator,
)
from lowbit.numerics.reference import floating as ref

AM = ACCUMULATOR_MODELS
F = Fraction


class TestGoldenVectors:
    """shared/specs/floats.md section 2.5: the published model's predictions."""

    def test_hopper_fp8_without_and_with_promotion(self):
        terms = [F(9, 8)] * 4096  # a = 1.125 * ones(4096), b = ones
        assert ref.fused_accumulate(terms, AM["hopper_fp8"]) == 4324
        assert ref.fused_accumulate(terms, AM["hopper_fp8_promote128"]) == 4608
        assert ref.fused_accumulate(terms, AM["blackwell"]) == 4608
        assert ref.fused_accumulate(terms, parse_accumulator("hopper_fp8:promote128")) == 4608

    def test_one_group_drops_what_lies_below_the_quantum(self):
        terms = [F(256), F(1, 64)] + [F(0)] * 30
        assert ref.fused_accumulate(terms, AM["hopper_fp8"]) == 256
        assert ref.fused_accumulate(terms, AM["blackwell"]) == F(256) + F(1, 64)

    def test_fp32_and_bf16_sequential_sums_of_the_same_vector(self):
        terms = [F(9, 8)] * 4096
        assert ref.accumulate(terms, parse_format("fp32")) == 4608
        assert ref.accumulate(terms, parse_format("bf16")) == 512  # stagnation at 512


def straightforward_fused_dot(products, k, n, register, align="truncate", promote=None,
                              outer=None):
    """MMA-Sim's fused_dot_add as its paper states it, written apart from the library:
    per group, E = max exponent of (products, c); each cut to n bits below 2**E; exact sum;
    round into the register; optional promotion."""
    def exponent(x):
        return math.floor(math.log2(abs(x))) if x else None  # exact enough? checked below

    def exact_exponent(x):
        e = exponent(x)
        while F(2) ** e > abs(x):
            e -= 1
        while F(2) ** (e + 1) <= abs(x):
            e += 1
        return e

    def cut(x, q):
        r = x / q
        if align == "floor":
            return math.floor(r)
        return int(r)  # toward zero for Fractions

    def rnd(x, fmt):
        return ref.decode(ref.quantize(x, fmt), fmt)

    c, total_outer, done = F(0), F(0), 0
    for g in range(0, len(products), k):
        grp = list(products[g:g + k]) + [c]
        exps = [exact_exponent(x) for x in grp if x != 0]
        if exps:
            q = F(2) ** (max(exps) - n)
            c = F(rnd(sum(cut(x, q) for x in grp) * q, register))
        done += len(products[g:g + k])
        if promote and done % promote == 0:
            total_outer = F(rnd(total_outer + c, outer))
            c = F(0)
    if promote:
        if len(products) % promote:
            total_outer = F(rnd(total_outer + c, outer))
        return total_outer
    return c


class TestAgainstAStraightforwardImplementation:
    """10,000 random small dot products: the reference equals the implementation above."""

    @pytest.mark.parametrize("name", sorted(AM))
    def test_random_dots(self, name):
        model = AM[name]
        r = random.Random(name)
        e4m3, bf16 = parse_format("e4m3"), parse_format("bf16")
        fa = e4m3 if "fp8" in name else bf16
        for trial in range(10_000 // len(AM)):
            K = r.choice([1, 3, model.group, model.group + 1, 2 * model.group + 5, 130])
            # values spread over 2^-12 .. 2^12 (products inside the registers' range),
            # cancellation included: both signs
            a = [ref.quantize(r.gauss(0, 1) * 2.0 ** r.randint(-12, 8), fa) for _ in range(K)]
            b = [ref.quantize(r.gauss(0, 1) * 2.0 ** r.randint(-12, 8), fa) for _ in range(K)]
            prods = [ref.exact_mul(ref.decode(x, fa), ref.decode(y, fa)) for x, y in zip(a, b)]
            if any(isinstance(p, float) for p in prods):  # NaN/inf/-0: the specials case
                continue
            want = straightforward_fused_dot(prods, model.group, model.frac_bits,
                                             model.register, model.align, model.promote_every,
                                             model.outer)
            assert ref.fused_accumulate(prods, model) == want, (name, trial)


class TestModels:
    def test_presets_are_labelled_unverified_and_cite_their_source(self):
        for name, m in AM.items():
            assert not m.verified and "MMA-Sim" in m.source and str(m) == name

    def test_grammar(self):
        assert parse_accumulator("hopper_fp8") is AM["hopper_fp8"]
        assert str(parse_accumulator("hopper_fp8:promote256")) == "hopper_fp8:promote256"
        assert parse_accumulator("hopper_fp8_promote128:nopromote").promote_every is None
        assert parse_accumulator("fp32") == parse_format("fp32")
        with pytest.raises(ValueError, match="option 'turbo'"):
            parse_accumulator("hopper_fp8:turbo")

    @pytest.mark.parametrize("kwargs, match", [
        ({"group": 0, "frac_bits": 13}, "group must be in 1..64"),
        ({"group": 32, "frac_bits": 0}, "frac_bits must be in 1..48"),
        ({"group": 32, "frac_bits": 13, "align": "round"}, "align must be one of"),
        ({"group": 32, "frac_bits": 13, "promote_every": 100}, "multiple of group"),
        ({"group": 32, "frac_bits": 13, "register": parse_format("fixed16.8")},
         "register must be a Float"),
        ({"group": 32, "frac_bits": 13, "register": Float(8, 13, rounding="sr")},
         "cannot round stochastically"),
        ({"group": 32, "frac_bits": 13, "outer": parse_format("fp32")}, "outer needs promote"),
    ])
    def test_bad_models(self, kwargs, match):
        with pytest.raises((ValueError, TypeError), match=match):
            AccumulatorModel(**kwargs)

    def test_specials_propagate(self):
        m = AM["hopper_fp8"]
        assert ref.fused_accumulate([F(1), math.inf], m) == math.inf
        assert math.isnan(ref.fused_accumulate([math.inf, -math.inf], m))
        assert math.isnan(ref.fused_accumulate([F(1), math.nan], m))


class TestPlainAccumulation:
    def test_orders_and_kahan(self):
        bf16 = parse_format("bf16")
        terms = [F(256)] + [F(1, 2)] * 64  # each 1/2 is half an ulp of 256 in bf16: ties
        assert ref.accumulate(terms, bf16) == 256  # every tie to even: stays
        assert ref.accumulate(terms, bf16, compensated=True) == 288
        last = [F(1, 2)] * 64 + [F(256)]  # pairwise: 32 ones, ..., then 32 + 256, all exact
        assert ref.accumulate(last, bf16, "pairwise") == 288

    def test_matmul_final_rounding_and_exact_sum(self):
        e4m3, fp32 = parse_format("e4m3"), parse_format("fp32")
        a = np.array([[ref.quantize(1.5, e4m3), ref.quantize(-1.5, e4m3)]])
        b = np.array([[ref.quantize(448.0, e4m3)], [ref.quantize(448.0, e4m3)]])
        assert ref.decode(int(ref.matmul(a, e4m3, b, e4m3, fp32)[0, 0]), fp32) == 0
        c = np.array([[ref.quantize(2**-9, e4m3)], [ref.quantize(448.0, e4m3)]])
        one = np.array([[ref.quantize(1.0, e4m3), ref.quantize(1.0, e4m3)]])
        assert ref.decode(int(ref.matmul(one, e4m3, c, e4m3, fp32)[0, 0]), fp32) == 448 + F(1, 512)
        assert ref.decode(int(ref.matmul(one, e4m3, c, e4m3, fp32,
                                         acc=parse_format("bf16"))[0, 0]), fp32) == 448
