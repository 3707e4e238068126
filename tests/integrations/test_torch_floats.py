"""Float formats and accumulator models in the PyTorch library part: carriers round-trip,
EmulatedLinear is exactly the emulator's matmuls, specs validate, optimizers keep
bf16 master weights with stochastic rounding or Kahan, and a network trains."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

import lowbit.emulators as E
from lowbit.integrations.torch import (
    EmulatedLinear,
    EmulationSpec,
    carrier_dtype,
    from_carrier,
    swap_layers,
    to_carrier,
)
from lowbit.integrations.torch.functions import (
    BIAS,
    CAST_G,
    FORWARD,
    GRAD_B,
    GRAD_W,
    GRAD_X,
    op_seed,
)
from lowbit.integrations.torch.optim import EmulatedSGD
from lowbit.numerics import FLOAT_PRESETS, parse_format
from lowbit.numerics import testing as lt

FLOAT_SPECS = ["bf16", "fp16,kahan", "w=e4m3,a=e4m3,gi=e5m2,gw=e5m2",
               "e4m3,acc=hopper_fp8", "w=e4m3,a=e4m3,o=bf16,gi=e5m2,gw=bf16,acc=blackwell",
               "w=e2m1,a=e4m3,o=fp16,gi=bf16,gw=bf16,acc=fp32,order=pairwise",
               "w=mxfp8,a=mxfp8,o=bf16,gi=e5m2,gw=e5m2", "w=mxfp4,a=mxfp8:rule=rceil,o=bf16,gi=bf16,gw=bf16",
               "w=nvfp4,a=nvfp4,o=bf16,gi=e5m2,gw=bf16,acc=hopper_fp8"]


@settings(max_examples=200)
@given(lt.float_formats(max_man_bits=23), st.data())
def test_carriers_round_trip_every_float_format(fmt, data):
    """cast(to_float(codes)) == codes through the carrier, for every code the format can
    produce (NaN: its canonical code; an FTZ format produces no subnormal, whose code
    flushes to zero; an inf carrier meets the format's inf policy, which may map it to
    max or NaN)."""
    codes = data.draw(lt.codes(fmt, (16,)))
    t = to_carrier(E.from_codes(codes, fmt))
    assert t.dtype == carrier_dtype(fmt)
    back = from_carrier(t, fmt).codes
    v = t.numpy().astype(np.float64)
    nan = np.isnan(v)
    flushed = (not fmt.subnormals) & (v != 0) & (np.abs(v) < float(fmt.min_normal)) & ~nan
    inf = np.isinf(v) & (fmt.inf != "inf")
    keep = ~nan & ~flushed & ~inf
    assert np.array_equal(back[keep], codes[keep])
    assert np.all(back[nan] == fmt.nan_code)
    assert np.all(E.from_codes(back[flushed], fmt).to_float() == 0)


def test_presets_travel_in_float32():
    assert all(carrier_dtype(f) == torch.float32 for f in FLOAT_PRESETS.values())


@pytest.mark.parametrize("spec", FLOAT_SPECS)
def test_linear_forward_and_backward_are_the_emulators_matmuls(spec):
    spec = EmulationSpec.parse(spec)
    torch.manual_seed(0)
    layer = EmulatedLinear(12, 7, spec=spec, seed=11)
    x = torch.randn(5, 12, requires_grad=True)
    y = layer(x)
    seed, step = 11, 0
    a, w = spec.activation, spec.weight
    out = spec.output or a
    xq, wq = from_carrier(x, a), from_carrier(layer.weight, w)
    acc = spec.accumulator
    ref = E.matmul(xq, wq.T, out, acc, spec.order, spec.compensated,
                   seed=op_seed(seed, step, FORWARD))
    ref = E.add(ref, from_carrier(layer.bias, out)[None, :], out, seed=op_seed(seed, step, BIAS))
    assert np.array_equal(from_carrier(y, out).codes, ref.codes)
    g = torch.randn(5, 7)
    y.backward(g)
    gi, gw = spec.grad_input, spec.grad_weight
    gq = from_carrier(g, gi, op_seed(seed, step, CAST_G))
    ref_gx = E.matmul(gq, wq, gi, acc, spec.order, spec.compensated,
                      seed=op_seed(seed, step, GRAD_X))
    ref_gw = E.matmul(gq.T, xq, gw, acc, spec.order, spec.compensated,
                      seed=op_seed(seed, step, GRAD_W))
    ref_gb = E.sum(gq, axis=0, out=gw, acc=acc, seed=op_seed(seed, step, GRAD_B))
    assert np.array_equal(from_carrier(x.grad, gi).codes, ref_gx.codes)
    assert np.array_equal(from_carrier(layer.weight.grad, gw).codes, ref_gw.codes)
    assert np.array_equal(from_carrier(layer.bias.grad, gw).codes, ref_gb.codes)


def test_float_specs_default_to_fp32_accumulation_and_round_trip():
    spec = EmulationSpec.parse("bf16")
    assert spec.accumulator == parse_format("fp32")
    for text in FLOAT_SPECS:
        s = EmulationSpec.parse(text)
        assert EmulationSpec.parse(str(s)) == s
    assert str(EmulationSpec.parse("e4m3,acc=hopper_fp8:promote128")).endswith(
        "acc=hopper_fp8:promote128,gi=e4m3,gw=e4m3")


@pytest.mark.parametrize("text, match", [
    ("w=e4m3,a=fixed8.4", "different families"),
    ("w=e4m3,a=e4m3,acc=fixed32.16", "a Float format or an accumulator model for Float"),
    ("w=fixed8.4,a=fixed8.4,acc=hopper_fp8", "must be a Fixed format"),
    ("e4m3,acc=hopper_fp8,order=pairwise", "fixes its own order"),
    ("w=e4m3,a=e4m3,gi=binary", "different families"),
    ("mxfp8", "block formats serve the weight and activation roles"),
    ("w=mxfp8,a=mxfp8,o=mxfp4", "block formats serve the weight and activation roles"),
    ("w=mxint8,a=fixed8.4", "different families"),
])
def test_bad_float_specs(text, match):
    with pytest.raises(ValueError, match=match):
        EmulationSpec.parse(text)


class TestMasterWeights:
    """bf16 master weights: updates below half an ulp are lost with round-to-nearest and
    kept by stochastic rounding or Kahan compensation (the fp32-master-weight problem)."""

    def test_small_updates(self):
        from sklearn.datasets import load_digits

        d = load_digits()
        x = torch.tensor(d.data[:300] / 16.0, dtype=torch.float32)
        y = torch.tensor(d.target[:300])
        drop = {}
        for comp in (None, "stochastic", "kahan"):
            torch.manual_seed(0)
            lin = nn.Linear(64, 10)
            with torch.no_grad():
                lin.weight.mul_(64)  # large weights: an update of 1e-3 is below half an ulp
            opt = EmulatedSGD(lin.parameters(), 4.0, "bf16", compensation=comp, seed=1)
            first = None
            for _ in range(40):
                opt.zero_grad()
                loss = F.cross_entropy(lin(x) / 64, y)
                loss.backward()
                opt.step()
                first = first or loss.item()
            drop[comp] = first - loss.item()
            q = from_carrier(lin.weight, parse_format("bf16"))
            assert torch.equal(to_carrier(q), lin.weight.detach())
        assert drop["kahan"] > 0 and drop["stochastic"] > 0
        assert drop[None] < 0.3 * min(drop["kahan"], drop["stochastic"]), drop


@pytest.mark.parametrize("spec", ["bf16", "w=e4m3,a=e4m3,gi=e5m2,gw=e5m2,acc=hopper_fp8"])
def test_a_swapped_network_trains(spec):
    """30 SGD steps on digits reduce the loss with bf16 and FP8 arithmetic (latent fp32
    weights, as mixed-precision training keeps them)."""
    from sklearn.datasets import load_digits

    d = load_digits()
    x = torch.tensor(d.data[:256] / 16.0, dtype=torch.float32)
    y = torch.tensor(d.target[:256])
    torch.manual_seed(0)
    model = swap_layers(nn.Sequential(nn.Linear(64, 32), nn.Tanh(), nn.Linear(32, 10)), spec,
                        cast_weights=False)
    opt = torch.optim.SGD(model.parameters(), lr=0.5, momentum=0.9)
    losses = []
    for _ in range(30):
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.9 * losses[0], losses
