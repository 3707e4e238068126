"""Every convolution variant, forward and both gradients, against an exact oracle.

With fixed-point operands whose products and sums are exact in float64, the
emulated convolution must equal torch's float64 convolution of the cast operands,
rounded once into the output (or gradient) format: one dot product per output
element, whatever the stride, padding, dilation and groups -- so a patch-wise
gradient rounded before its overlapping patches are added would fail.
"""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

import lowbit.emulators as E
from lowbit.integrations.torch.conv import emulated_conv, emulated_conv_transpose
from lowbit.integrations.torch.spec import EmulationSpec
from lowbit.numerics import Fixed

# operands on a 2**-4 grid with at most 8 bits: products and sums exact in float64;
# outputs and gradients round into 2**-2 (output) and 2**-3 (gradients)
SPEC = EmulationSpec(weight=Fixed(8, 4), activation=Fixed(8, 4), output=Fixed(12, 2),
                     grad_input=Fixed(12, 3), grad_weight=Fixed(14, 3))
CONVS = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}
TCONVS = {1: F.conv_transpose1d, 2: F.conv_transpose2d, 3: F.conv_transpose3d}


def _round(t: torch.Tensor, fmt) -> torch.Tensor:
    """The exact value rounded once into fmt (the lowbit cast of a float64 value)."""
    return torch.from_numpy(E.cast(t.detach().numpy(), fmt).to_float())


def _grid(shape, rng, scale=4.0):
    return torch.from_numpy(np.round(rng.normal(0, scale, shape)) / 16.0)


def _oracle(conv, x, w, b, gy, **geometry):
    """Forward and gradients by torch in float64 on the cast operands, each rounded
    once into its format (the bias is added to the rounded product, in the output
    format, as the emulated layer does)."""
    xq = _round(x, SPEC.activation).requires_grad_()
    wq = _round(w, SPEC.weight).requires_grad_()
    y = conv(xq, wq, None, **geometry)
    y.backward(_round(gy, SPEC.grad_input))
    yo = _round(y, SPEC.output)
    if b is not None:
        yo = _round(yo + _round(b, SPEC.output).reshape(1, -1, *[1] * (y.ndim - 2)), SPEC.output)
    gb = None if b is None else _round(_round(gy, SPEC.grad_input).sum(
        [i for i in range(gy.ndim) if i != 1]), SPEC.grad_weight)
    return yo, _round(xq.grad, SPEC.grad_input), _round(wq.grad, SPEC.grad_weight), gb


def _check(got, want):
    assert got.shape == want.shape
    assert torch.equal(got.double(), want), (got - want).abs().max()


@st.composite
def geometries(draw):
    d = draw(st.sampled_from([1, 2, 3]))
    groups = draw(st.sampled_from([1, 2, 4]))
    cin = groups * draw(st.integers(1, 2))
    cout = groups * draw(st.integers(1, 2))
    k = draw(st.integers(1, 3))
    stride = draw(st.integers(1, 3))
    dil = draw(st.integers(1, 2))
    pad = draw(st.one_of(st.integers(0, 2), st.just("same"), st.just("valid")))
    if pad == "same":
        stride = 1
    size = draw(st.integers(dil * (k - 1) + 1, 7 if d < 3 else 5))
    return d, groups, cin, cout, k, stride, dil, pad, size, draw(st.booleans()), draw(st.integers(0, 999))


@settings(max_examples=60, deadline=None)
@given(geometries())
def test_conv_forward_and_gradients_are_one_rounded_dot_product_each(g):
    d, groups, cin, cout, k, stride, dil, pad, size, bias, seed = g
    rng = np.random.default_rng(seed)
    x = _grid((2, cin, *(size,) * d), rng).requires_grad_()
    w = _grid((cout, cin // groups, *(k,) * d), rng).requires_grad_()
    b = _grid((cout,), rng).requires_grad_() if bias else None
    y = emulated_conv(x, w, b, SPEC, stride, pad, dil, groups)
    gy = _grid(y.shape, rng, 16.0)
    y.backward(gy)
    want = _oracle(CONVS[d], x.detach(), w.detach(), None if b is None else b.detach(), gy,
                   stride=stride, padding=pad, dilation=dil, groups=groups)
    _check(y, want[0])
    _check(x.grad, want[1])
    _check(w.grad, want[2])
    if bias:
        _check(b.grad, want[3])


@settings(max_examples=40, deadline=None)
@given(geometries())
def test_transposed_conv_forward_and_gradients(g):
    d, groups, cin, cout, k, stride, dil, pad, size, bias, seed = g
    pad = 0 if isinstance(pad, str) else min(pad, dil * (k - 1))
    opad = (seed % stride) if stride > 1 else 0
    if opad >= max(stride, dil):
        opad = 0
    rng = np.random.default_rng(seed)
    x = _grid((2, cin, *(size,) * d), rng).requires_grad_()
    w = _grid((cin, cout // groups, *(k,) * d), rng).requires_grad_()
    b = _grid((cout,), rng).requires_grad_() if bias else None
    geometry = dict(stride=stride, padding=pad, output_padding=opad, groups=groups, dilation=dil)
    y = emulated_conv_transpose(x, w, b, SPEC, **geometry)
    gy = _grid(y.shape, rng, 16.0)
    y.backward(gy)
    want = _oracle(TCONVS[d], x.detach(), w.detach(), None if b is None else b.detach(), gy,
                   **geometry)
    _check(y, want[0])
    _check(x.grad, want[1])
    _check(w.grad, want[2])


@pytest.mark.parametrize("spec", ["bf16", "w=e4m3,a=e4m3,o=bf16,gi=e5m2,gw=bf16"])
def test_grouped_conv_is_the_concatenation_of_per_group_convs(spec):
    """Under rounding accumulators too (fp32 sums): a group's products never mix with another's."""
    torch.manual_seed(3)
    x = torch.randn(2, 6, 7, 7, requires_grad=True)
    w = torch.randn(9, 2, 3, 3, requires_grad=True)
    b = torch.randn(9, requires_grad=True)
    y = emulated_conv(x, w, b, spec, 2, 1, 1, 3)
    gy = torch.randn_like(y)
    y.backward(gy)
    parts, grads = [], []
    for g in range(3):
        xg = x.detach()[:, 2 * g:2 * g + 2].clone().requires_grad_()
        wg = w.detach()[3 * g:3 * g + 3].clone().requires_grad_()
        bg = b.detach()[3 * g:3 * g + 3].clone().requires_grad_()
        yg = emulated_conv(xg, wg, bg, spec, 2, 1, 1, 1)
        yg.backward(gy[:, 3 * g:3 * g + 3])
        parts.append(yg.detach())
        grads.append((xg.grad, wg.grad, bg.grad))
    assert torch.equal(y.detach(), torch.cat(parts, 1))
    assert torch.equal(x.grad, torch.cat([g[0] for g in grads], 1))
    assert torch.equal(w.grad, torch.cat([g[1] for g in grads], 0))
    assert torch.equal(b.grad, torch.cat([g[2] for g in grads], 0))


def test_float_gradients_follow_torch():
    """gi=float: the input gradient is torch's own (the transposed convolution in float)."""
    torch.manual_seed(4)
    x = torch.randn(1, 2, 6, 6, dtype=torch.float64, requires_grad=True)
    w = torch.randn(4, 2, 3, 3, dtype=torch.float64, requires_grad=True)
    y = emulated_conv(x, w, None, "w=fixed16.8,a=fixed16.8", 2, 1)
    y.sum().backward()
    x2 = x.detach().clone().requires_grad_()
    F.conv2d(x2, _round(w.detach(), Fixed(16, 8)), None, 2, 1).sum().backward()
    assert torch.allclose(x.grad, x2.grad, rtol=0, atol=1e-12)


@pytest.mark.parametrize("bad, match", [
    (dict(groups=3), "groups=3 must divide"),
    (dict(padding="full"), "padding must be"),
    (dict(stride=2, padding="same"), "'same' needs stride 1"),
    (dict(padding=-1), "negative padding"),
])
def test_bad_geometry_is_refused(bad, match):
    x, w = torch.randn(1, 4, 5, 5), torch.randn(2, 4, 3, 3)
    with pytest.raises(ValueError, match=match):
        emulated_conv(x, w, None, "bf16", **bad)


def test_delayed_scaling_and_binary_gradients_name_their_layer():
    x, w = torch.randn(1, 2, 5, 5), torch.randn(2, 2, 3, 3)
    with pytest.raises(ValueError, match="delayed"):
        emulated_conv(x, w, None, "w=e4m3,a=e4m3,gi=e5m2,scaling=delayed")
    with pytest.raises(ValueError, match="binary/ternary"):
        emulated_conv(x, w, None, "w=binary,a=fixed8.4,gi=fixed16.8,gw=fixed16.8")
