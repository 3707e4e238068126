"""Float formats and accumulator models in the PyTorch library part: carriers round-trip,
EmulatedLinear is exactly the emulator's matmuls, specs validate, optimizers keep
bf16 master weights with stochastic rounding or Kahan, and a network trains."""

from __future__ import annotations

from dataclasses import replace

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
    CAST_W,
    CAST_X,
    FORWARD,
    GRAD_B,
    GRAD_W,
    GRAD_X,
    op_seed,
)
from lowbit.integrations.torch.optim import EmulatedSGD
from lowbit.numerics import FLOAT_PRESETS, Block, parse_format
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
    # a 1-D block weight (activation) is cast afresh along N (M) for the backward products
    wt = from_carrier(layer.weight, replace(w, axis=0)) if isinstance(w, Block) else wq
    xt = from_carrier(x, replace(a, axis=0)) if isinstance(a, Block) else xq
    ref_gx = E.matmul(gq, wt, gi, acc, spec.order, spec.compensated,
                      seed=op_seed(seed, step, GRAD_X))
    ref_gw = E.matmul(gq.T, xt, gw, acc, spec.order, spec.compensated,
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
    ("w=mxfp8,a=mxfp8,o=mxfp4", "a matmul writes a Float, never a block format"),
    ("w=mxfp8,a=mxfp8,acc=mxfp8", "a matmul writes a Float, never a block format"),
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


class TestDelayedScaling:
    """FP8 training's per-tensor delayed scaling (spec scaling=delayed)."""

    SPEC = "w=e4m3,a=e4m3,o=bf16,gi=e5m2,gw=e5m2,scaling=delayed"

    def test_scale_exponent(self):
        from lowbit.integrations.torch.functions import scale_exponent

        e4m3 = parse_format("e4m3")
        for amax, k in ((0.0, 0), (448.0, 0), (449.0, -1), (1.0, 8), (1.75, 8), (1.76, 7),
                        (2.0 ** -20, 28), (1e6, -12)):
            assert scale_exponent(torch.tensor([amax, 0.0]), e4m3) == k, amax
            assert amax * 2.0 ** k <= 448 and (amax == 0 or amax * 2.0 ** (k + 1) > 448)

    def test_forward_and_backward_scale_cast_and_unscale(self):
        torch.manual_seed(0)
        layer = EmulatedLinear(12, 7, spec=self.SPEC, seed=3)
        hist = torch.zeros(3, 16, dtype=torch.float64)
        hist[0, 5], hist[1, 0], hist[2, 2] = 3.0, 0.25, 1e-3  # kx = 7, kw = 10, kg = 18
        layer.amax_history.copy_(hist)
        x = torch.randn(5, 12, requires_grad=True)
        y = layer(x)
        spec = layer.spec
        xq = from_carrier(x * 2.0 ** 7, spec.activation, op_seed(3, 0, CAST_X))
        wq = from_carrier(layer.weight * 2.0 ** 10, spec.weight, op_seed(3, 0, CAST_W))
        acc = E.matmul(xq, wq.T, "fp32", "fp32")
        want = E.cast(acc.to_float() * 2.0 ** -17, "bf16")
        want = E.add(want, from_carrier(layer.bias, parse_format("bf16"))[None, :], "bf16")
        assert np.array_equal(from_carrier(y, parse_format("bf16")).codes, want.codes)
        g = torch.randn(5, 7) * 1e-4
        y.backward(g)
        gq = from_carrier(g * 2.0 ** 18, spec.grad_input, op_seed(3, 0, CAST_G))
        gx = E.cast(E.matmul(gq, wq, "fp32", "fp32").to_float() * 2.0 ** -28, "bf16")
        gw = E.cast(E.matmul(gq.T, xq, "fp32", "fp32").to_float() * 2.0 ** -25, "e5m2")
        assert np.array_equal(from_carrier(x.grad, parse_format("bf16")).codes, gx.codes)
        assert np.array_equal(from_carrier(layer.weight.grad, spec.grad_weight).codes, gw.codes)
        # the history took this step's amax, newest first
        h = layer.amax_history
        assert h[0, 0] == x.abs().max().item() and h[0, 6] == 3.0
        assert h[1, 0] == layer.weight.abs().max().item() and h[1, 1] == 0.25
        assert h[2, 0] == g.abs().max().item() and h[2, 3] == 1e-3

    def test_eval_does_not_record_and_gradients_survive_scaling(self):
        torch.manual_seed(1)
        layer = EmulatedLinear(8, 4, spec=self.SPEC)
        layer.eval()
        layer(torch.randn(3, 8))
        assert not layer.amax_history.any()
        layer.train()
        x = torch.randn(3, 8, requires_grad=True)
        layer(x)  # step 1 records
        layer(x).sum().backward()  # step 2 uses it
        unscaled = EmulatedLinear(8, 4, spec="w=e4m3,a=e4m3,o=bf16,gi=e5m2,gw=e5m2")
        # (without scaling the incoming gradient's E5M2 cast flushes 2^-20: min 2^-16)
        unscaled.load_state_dict({k: v for k, v in layer.state_dict().items()
                                  if k != "amax_history"})
        # tiny gradients: unscaled E5M2 flushes them, the scaled cast keeps them
        g = torch.full((3, 4), 2.0 ** -20)
        x1 = torch.randn(3, 8, requires_grad=True)
        x2 = x1.detach().clone().requires_grad_(True)
        layer.amax_history[2].fill_(2.0 ** -20)
        layer(x1).backward(g)
        unscaled(x2).backward(g)
        assert x2.grad.abs().max() == 0 and x1.grad.abs().max() > 0

    def test_bad_delayed_specs(self):
        with pytest.raises(ValueError, match="scaling=delayed scales Float"):
            EmulationSpec.parse("fixed8.4,scaling=delayed")
        with pytest.raises(ValueError, match="scaling must be None or one of"):
            EmulationSpec.parse("e4m3,scaling=current")
        from lowbit.integrations.torch import emulated_linear

        with pytest.raises(ValueError, match="needs the amax history"):
            emulated_linear(torch.ones(2, 3), torch.ones(4, 3), None, self.SPEC)
