"""The PyTorch integration is bit-exact with the emulators, and trains."""

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
    BinaryLinear,
    EmulatedConv2d,
    EmulatedLinear,
    EmulationSpec,
    QuantAct,
    TernaryLinear,
    carrier_dtype,
    from_carrier,
    quantize,
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
from lowbit.integrations.torch.optim import EmulatedOptimizer, EmulatedSGD
from lowbit.numerics import LNS, Binary, Fixed, Ternary
from lowbit.numerics import testing as lt

SPECS = ["fixed16.8", "w=fixed8.4,a=fixed8.4,acc=fixed16.4,gi=fixed16.8,gw=fixed16.8,kahan",
         "lns5.10", "lns5.7,kahan", "w=lns5.10:interp6,a=lns5.10:interp6,gi=lns5.10,gw=lns5.10"]


class TestCarriers:
    """cast(to_float(codes)) == codes through the carrier, for every supported format."""

    @settings(max_examples=300)
    @given(st.one_of(lt.fixed_formats(max_bits=53),
                     lt.lns_formats(max_int_bits=10, max_frac_bits=16),
                     lt.binary_formats(), lt.ternary_formats()), st.data())
    def test_round_trip(self, fmt, data):
        codes = data.draw(lt.codes(fmt, (16,)))
        if isinstance(fmt, Ternary):
            fmt = Ternary(threshold=0.5, scale=None)
        if isinstance(fmt, Binary):
            fmt = Binary()
        x = E.from_codes(codes, fmt)
        t = to_carrier(x)
        assert t.dtype == carrier_dtype(fmt)
        assert np.array_equal(from_carrier(t, fmt).codes, codes)

    def test_every_code_of_small_formats(self):
        for fmt in (LNS(3, 6), LNS(7, 4), Fixed(24, 12), Fixed(8, -3), Fixed(12, 140)):
            codes = np.arange(fmt.min_code, fmt.max_code + 1)
            t = to_carrier(E.from_codes(codes, fmt))
            assert t.dtype == torch.float32
            assert np.array_equal(from_carrier(t, fmt).codes, codes)
        assert carrier_dtype(Fixed(32, 16)) == torch.float64
        assert carrier_dtype(LNS(8, 4)) == torch.float64
        with pytest.raises(ValueError, match="no exact float carrier"):
            carrier_dtype(Fixed(54, 0))
        with pytest.raises(ValueError, match="at most 53 bits"):
            EmulationSpec.parse("fixed54.0")
        assert EmulationSpec.parse("fixed16.8,acc=fixed60.20").accumulator == Fixed(60, 20)


class TestLinearIsBitExact:
    """EmulatedLinear's forward and backward are exactly the emulator's matmuls."""

    @pytest.mark.parametrize("spec", SPECS)
    def test_forward_and_backward(self, spec):
        spec = EmulationSpec.parse(spec)
        torch.manual_seed(0)
        layer = EmulatedLinear(12, 7, spec=spec, seed=11)
        x = torch.randn(5, 12, requires_grad=True)
        y = layer(x)
        step, seed = 0, 11
        a, w = spec.activation, spec.weight
        xq, wq = from_carrier(x, a), from_carrier(layer.weight, w)
        ref = E.matmul(xq, wq.T, a, spec.accumulator, spec.order, spec.compensated,
                       seed=op_seed(seed, step, FORWARD))
        ref = E.add(ref, from_carrier(layer.bias, a)[None, :], a, seed=op_seed(seed, step, BIAS))
        assert np.array_equal(from_carrier(y, a).codes, ref.codes)
        g = torch.randn(5, 7)
        y.backward(g)
        gi, gw = spec.grad_input, spec.grad_weight
        gq = from_carrier(g, gi, op_seed(seed, step, CAST_G))
        acc = spec.accumulator
        ref_gx = E.matmul(gq, wq, gi, acc, spec.order, spec.compensated,
                          seed=op_seed(seed, step, GRAD_X))
        ref_gw = E.matmul(gq.T, xq, gw, acc, spec.order, spec.compensated,
                          seed=op_seed(seed, step, GRAD_W))
        ref_gb = E.sum(gq, axis=0, out=gw, seed=op_seed(seed, step, GRAD_B))
        assert np.array_equal(from_carrier(x.grad, gi).codes, ref_gx.codes)
        assert np.array_equal(from_carrier(layer.weight.grad, gw).codes, ref_gw.codes)
        assert np.array_equal(from_carrier(layer.bias.grad, gw).codes, ref_gb.codes)

    def test_conv_is_the_matmul_of_patches(self):
        torch.manual_seed(1)
        conv = EmulatedConv2d(3, 4, 3, padding=1, spec="fixed16.8")
        x = torch.randn(2, 3, 5, 5)
        y = conv(x)
        cols = F.unfold(x, 3, padding=1).transpose(1, 2).reshape(-1, 27)
        lin = EmulatedLinear(27, 4, spec="fixed16.8")
        with torch.no_grad():
            lin.weight.copy_(conv.weight.reshape(4, -1))
            lin.bias.copy_(conv.bias)
        ref = lin(cols).reshape(2, 25, 4).transpose(1, 2).reshape(2, 4, 5, 5)
        assert torch.equal(y, ref)

    def test_float_roles_fall_back_to_torch(self):
        torch.manual_seed(2)
        layer = BinaryLinear(6, 3, spec="w=binary")  # BinaryConnect: float activations
        x = torch.randn(4, 6)
        expected = x @ torch.where(layer.weight >= 0, 1.0, -1.0).T + layer.bias
        assert torch.allclose(layer(x), expected)


class TestQuantize:
    """quantize casts exactly and passes gradients straight through (or clipped)."""

    def test_ste(self):
        x = torch.tensor([0.3, -2.0, 5.0], requires_grad=True)
        y = quantize(x, Fixed(4, 1))  # range [-4, 3.5]
        assert y.tolist() == [0.5, -2.0, 3.5]
        y.sum().backward()
        assert x.grad.tolist() == [1.0, 1.0, 1.0]
        x.grad = None
        quantize(x, Fixed(4, 1), ste="clipped").sum().backward()
        assert x.grad.tolist() == [1.0, 1.0, 0.0]
        x.grad = None
        quantize(x, Binary(), ste="clipped").sum().backward()  # BinaryNet's hardtanh STE
        assert x.grad.tolist() == [1.0, 0.0, 0.0]

    def test_gradient_format(self):
        x = torch.tensor([1.0], requires_grad=True)
        (quantize(x, Fixed(8, 4), grad_fmt=Fixed(8, 2)) * 0.3).sum().backward()
        assert x.grad.tolist() == [0.25]

    def test_quant_act_module(self):
        act = QuantAct("fixed8.4:sr", seed=3)
        x = torch.full((1000,), 0.03)
        y1, y2 = act(x), act(x)  # the step advances: fresh random bits
        assert not torch.equal(y1, y2)
        assert abs(float(y1.mean()) - 0.03) < 0.01


class TestSwapLayers:
    """swap_layers replaces exactly the intended layers, at any depth."""

    def test_nested(self):
        class Block(nn.Module):
            def __init__(self):
                super().__init__()
                self.fc = nn.Linear(4, 4)
                self.conv = nn.Conv2d(1, 2, 3)
                self.norm = nn.LayerNorm(4)

        model = nn.Sequential(Block(), nn.ModuleList([nn.Linear(4, 4), Block()]), nn.Linear(4, 2))
        before = model[2].weight.detach().clone()
        swap_layers(model, "fixed16.8", filter_fn=lambda name, m: not name.endswith("conv"))
        kinds = {n: type(m).__name__ for n, m in model.named_modules()}
        assert kinds["0.fc"] == kinds["1.0"] == kinds["1.1.fc"] == kinds["2"] == "EmulatedLinear"
        assert kinds["0.conv"] == kinds["1.1.conv"] == "Conv2d"
        assert kinds["0.norm"] == "LayerNorm"
        q = to_carrier(from_carrier(before, Fixed(16, 8)))
        assert torch.equal(model[2].weight, q)  # trained weights kept, cast into the format
        assert isinstance(model[2].to_module(), nn.Linear)
        swap_layers(model, "lns5.10")  # already emulated layers are left alone
        assert model[2].spec == EmulationSpec.parse("fixed16.8")

    def test_binary_and_ternary_from_module(self):
        lin, conv = nn.Linear(6, 3), nn.Conv2d(2, 3, 3)
        b = BinaryLinear.from_module(lin, "a=fixed8.4", seed=5)
        assert b.spec.weight == Binary() and b.spec.activation == Fixed(8, 4) and b.seed == 5
        assert set(b.weight.detach().abs().flatten().tolist()) == {1.0}
        t = TernaryLinear.from_module(lin, None)
        assert t.spec.weight == Ternary() and t.spec.ste == "clipped"
        from lowbit.integrations.torch import BinaryConv2d
        c = BinaryConv2d.from_module(conv, None, seed=2)
        assert c.seed == 2 and c(torch.randn(1, 2, 5, 5)).shape == (1, 3, 3, 3)

    def test_resume_state(self):
        layer = EmulatedLinear(3, 2, spec="fixed8.4:sr")
        layer(torch.randn(2, 3))
        assert int(layer.state_dict()["rounding_step"]) == 1


TRAIN_SPECS = [
    "w=fixed16.8,a=fixed16.8,gi=fixed16.14,gw=fixed16.12",
    "w=fixed8.4,a=fixed8.4,acc=fixed16.4,gi=fixed16.14,gw=fixed16.12,kahan",
    "lns5.10", "lns5.7,kahan", "w=lns5.10:interp6,a=lns5.10:interp6,gi=lns5.10,gw=lns5.10",
    "w=binary:mean_abs,a=float", "w=ternary,a=fixed8.4,gi=fixed16.14,gw=fixed16.12",
    "w=binary,a=binary,gi=fixed16.14,gw=fixed16.12,ste=clipped",
]


@pytest.mark.parametrize("spec", TRAIN_SPECS)
def test_short_training_reduces_the_loss(spec):
    """30 steps of SGD on digits reduce the loss under every spec. Binary/ternary
    specs go to one layer only, the second for binary activations (its input is
    tanh's output; the first layer's inputs, pixels, are all >= 0)."""
    from sklearn.datasets import load_digits

    d = load_digits()
    x = torch.tensor(d.data[:256] / 16.0, dtype=torch.float32)
    y = torch.tensor(d.target[:256])
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 32), nn.Tanh(), nn.Linear(32, 10))
    only = "2" if "a=binary" in spec else "0"
    swap_layers(model, spec, filter_fn=(lambda name, m: name == only)
                if ("binary" in spec or "ternary" in spec) else None)
    opt = torch.optim.SGD(model.parameters(), lr=0.5, momentum=0.9)
    losses = []
    for _ in range(30):
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.9 * losses[0], losses


class TestOptimizers:
    """Sub-ulp updates: plain rounding stalls, Kahan and stochastic rounding do not."""

    @pytest.mark.parametrize("fmt, lr", [(Fixed(16, 8), 0.002), (LNS(5, 10), 0.0001)])
    def test_stall(self, fmt, lr):
        from sklearn.datasets import load_digits

        d = load_digits()
        x = torch.tensor(d.data[:300] / 16.0, dtype=torch.float32)
        y = torch.tensor(d.target[:300])
        drop = {}
        for comp in (None, "stochastic", "kahan"):
            torch.manual_seed(0)
            lin = nn.Linear(64, 10)
            opt = EmulatedSGD(lin.parameters(), lr, fmt, compensation=comp, seed=1)
            first = None
            for _ in range(60):
                opt.zero_grad()
                loss = F.cross_entropy(lin(x), y)
                loss.backward()
                opt.step()
                first = first or loss.item()
            drop[comp] = first - loss.item()
            q = from_carrier(lin.weight, fmt)  # the parameters hold format values
            assert torch.equal(to_carrier(q), lin.weight.detach())
        assert drop["kahan"] > 0 and drop["stochastic"] > 0
        assert drop[None] < 0.15 * min(drop["kahan"], drop["stochastic"]), drop

    def test_wrapper_and_state(self):
        lin = nn.Linear(4, 2)
        opt = EmulatedOptimizer(torch.optim.Adam(lin.parameters(), lr=0.01), "fixed16.8", "kahan")
        lin(torch.randn(3, 4)).sum().backward()
        opt.step()
        state = opt.state_dict()
        assert state["step_count"] == 1 and state["masters"][0]["comp"] is not None
        opt.load_state_dict(state)
        with pytest.raises(ValueError, match="binary/ternary weights take no small updates"):
            EmulatedSGD(nn.Linear(2, 2).parameters(), 0.1, "binary")
        with pytest.raises(ValueError, match="compensation must be one of"):
            EmulatedSGD(nn.Linear(2, 2).parameters(), 0.1, "fixed8.4", compensation="exact")


@pytest.mark.parametrize("text, match", [
    ("w=lns5.10,a=fixed8.4", "different families"),
    ("w=fixed8.4,a=fixed8.4,acc=lns5.10", "accumulator"),
    ("w=fixed8.4,a=fixed8.4,acc=binary", "accumulator"),
    ("fixed8.4,gi=binary", "gradients cannot be binary"),
    ("fixed8.4,order=pairwise,kahan", "needs order='sequential'"),
    ("fixed8.4,x=3", "unknown item"),
    ("fixed8.4,ste=hard", "ste must be one of"),
    ("", "cannot parse emulation spec"),
])
def test_bad_specs(text, match):
    with pytest.raises(ValueError, match=match):
        EmulationSpec.parse(text)


def test_spec_string_round_trip():
    for text in SPECS + ["w=binary", "w=ternary,a=fixed8.4,ste=clipped,order=pairwise"]:
        spec = EmulationSpec.parse(text)
        assert EmulationSpec.parse(str(spec)) == spec
    assert TernaryLinear(3, 2).spec.weight == Ternary()
