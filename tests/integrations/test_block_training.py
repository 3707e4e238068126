"""Block formats (MX, NVFP4) in every role of an EmulationSpec, with MX training's rule:
every product casts both its operands along its own contraction axis, from their float
values, and writes a Float.

The oracles here are built from the block cast alone (``lowbit.emulators.block_cast``,
tested against the exact reference in tests/emulators/test_blocks.py): the cast operands'
values, their products in float64 (exact: at most 7 significant bits each) and an IEEE
binary32 running sum in numpy, in k order from +0 -- which is what an emulated fp32
accumulator computes when every product is a binary32 (docs/floats.md, "Fast paths").
"""

from __future__ import annotations

import time
from dataclasses import replace

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import lowbit.emulators as E
from lowbit.integrations.torch import EmulatedLinear, EmulationSpec, swap_layers
from lowbit.integrations.torch import account
from lowbit.integrations.torch.conv import emulated_conv
from lowbit.integrations.torch.emulate import emulate
from lowbit.numerics import parse_format

MX_TRAIN = "w=mxfp8,a=mxfp8,gi=mxfp8e5m2,gw=mxfp8"
MXFP8, MXFP8E5M2 = parse_format("mxfp8"), parse_format("mxfp8e5m2")


def _values(t, fmt, axis) -> np.ndarray:
    """t block-cast along ``axis`` (float64 values of the cast)."""
    a = t.detach().numpy() if isinstance(t, torch.Tensor) else t
    return E.block_cast(a, replace(fmt, axis=axis)).array.to_float()


def _fp32_dot(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a @ b accumulated in binary32 (round to nearest even), k = 0, 1, ... from +0;
    every product must be a binary32 (checked), as it is for FP8 elements times scales."""
    out = np.zeros((a.shape[0], b.shape[1]), np.float32)
    for k in range(a.shape[1]):
        p = np.outer(a[:, k], b[k, :])  # exact in float64
        p32 = p.astype(np.float32)
        assert np.array_equal(p32.astype(np.float64), p), "a product is not a binary32"
        out = out + p32  # one IEEE binary32 addition per element
    return out


def _layer(spec, m, k, n, seed=0):
    torch.manual_seed(seed)
    layer = EmulatedLinear(k, n, spec=spec)
    x = torch.randn(m, k, requires_grad=True)
    return layer, x


class TestSpec:
    """Block formats parse in every operand role; results and delayed scaling refuse them."""

    @pytest.mark.parametrize("text", [MX_TRAIN, "w=nvfp4,a=nvfp4,o=bf16,gi=nvfp4,gw=bf16",
                                      "w=nvfp4:tile=16x16,a=nvfp4,gi=nvfp4,gw=nvfp4",
                                      "mxfp8", "w=e4m3,a=e4m3,gi=mxfp8e5m2,gw=mxfp8"])
    def test_block_gradients_parse_and_round_trip(self, text):
        s = EmulationSpec.parse(text)
        assert EmulationSpec.parse(str(s)) == s
        assert s.accumulator == parse_format("fp32")

    def test_roles(self):
        s = EmulationSpec.parse(MX_TRAIN)
        assert (s.grad_input, s.grad_weight) == (MXFP8E5M2, MXFP8)
        assert EmulationSpec.parse("gi=nvfp4,w=e4m3,a=e4m3").grad_input == parse_format("nvfp4")

    @pytest.mark.parametrize("text, match", [
        ("w=mxfp8,a=mxfp8,o=mxfp8", "a matmul writes a Float, never a block format"),
        ("w=mxfp8,a=mxfp8,gi=mxfp8,acc=nvfp4", "a matmul writes a Float, never a block format"),
        (MX_TRAIN + ",scaling=delayed", "scaling=delayed is for Float formats; the block "
                                        "formats of weight, activation, grad_input, grad_weight"),
        ("w=e4m3,a=e4m3,gi=mxfp8e5m2,scaling=delayed", "block formats of grad_input carry"),
        ("w=mxfp8,a=mxfp8,gi=fixed8.4", "different families"),
    ])
    def test_bad_specs(self, text, match):
        with pytest.raises(ValueError, match=match):
            EmulationSpec.parse(text)


@pytest.mark.parametrize("m, k, n", [(4, 64, 3), (40, 64, 35), (33, 48, 7)])
def test_linear_gradients_block_each_product_along_its_contraction(m, k, n):
    """dX = blk_N(g) @ blk_N(W) and dW = blk_M(g)^T @ blk_M(x), each summed in fp32 and
    written in fp32 (dX) or block-cast into mxfp8 along K (dW); db = the fp32 sum of
    blk_M(g) over M, block-cast along its one axis -- partial blocks where M, N, K are
    not multiples of 32."""
    layer, x = _layer(MX_TRAIN, m, k, n)
    y = layer(x)
    g = torch.randn(m, n)
    y.backward(g)
    w = layer.weight
    # forward: x and W along K
    want_y = _fp32_dot(_values(x, MXFP8, -1), _values(w, MXFP8, -1).T)
    b = layer.bias.detach().numpy().astype(np.float64)
    # no Float output format: the fp32 sum plus the bias in float64, into the float32 carrier
    assert np.array_equal(y.detach().numpy(), (want_y + b).astype(np.float32))
    # input gradient: g along N (gi), W cast afresh along N (axis 0)
    want_dx = _fp32_dot(_values(g, MXFP8E5M2, -1), _values(w, MXFP8, 0))
    assert x.grad.dtype == torch.float32
    assert np.array_equal(x.grad.numpy(), want_dx)
    # weight gradient: g along M (axis 0), x cast afresh along M; then into mxfp8 along K
    gm = _values(g, MXFP8E5M2, 0)
    dw32 = _fp32_dot(gm.T, _values(x, MXFP8, 0))
    assert np.array_equal(layer.weight.grad.numpy(), _values(dw32, MXFP8, -1))
    db32 = _fp32_dot(np.ones((1, m)), gm)[0]
    assert np.array_equal(layer.bias.grad.numpy(), _values(db32, MXFP8, -1))


def test_float_outputs_and_gradients_round_once():
    """o=bf16, gw=bf16 beside a block gi: dX rounds once from the fp32 sum into bf16, dW
    likewise (no block cast of a Float gradient)."""
    spec = "w=mxfp8,a=mxfp8,o=bf16,gi=mxfp8e5m2,gw=bf16"
    layer, x = _layer(spec, 8, 64, 5, seed=3)
    g = torch.randn(8, 5)
    layer(x).backward(g)
    dx = _fp32_dot(_values(g, MXFP8E5M2, -1), _values(layer.weight, MXFP8, 0))
    bf16 = lambda v: E.cast(v.astype(np.float64), "bf16").to_float()  # noqa: E731
    assert np.array_equal(x.grad.numpy(), bf16(dx))
    dw = _fp32_dot(_values(g, MXFP8E5M2, 0).T, _values(x, MXFP8, 0))
    assert np.array_equal(layer.weight.grad.numpy(), bf16(dw))


def _spread(n: int, step: int) -> torch.Tensor:
    """Magnitudes 1, 2**step, 2**(2 * step), 1, ... for n rows (or columns)."""
    return torch.tensor([2.0 ** (step * (i % 3)) for i in range(n)])


def test_the_input_gradient_blocks_along_n():
    """Rows of g 2**20 apart (beyond E5M2's range within one block) and rows of W 2**12
    apart (beyond E4M3's): the layer's dX equals the oracle that blocks g and W along N
    and differs from blocking g along M (the wrong axis) and from the forward's K-blocks
    of W (the rule before MX training)."""
    m = k = n = 32
    layer, x = _layer(MX_TRAIN, m, k, n, seed=5)
    with torch.no_grad():
        layer.weight.mul_(_spread(n, 12)[:, None])
    g = torch.randn(m, n) * _spread(m, 20)[:, None]
    layer(x).backward(g)
    w, dx = layer.weight, x.grad.numpy()
    assert np.array_equal(dx, _fp32_dot(_values(g, MXFP8E5M2, -1), _values(w, MXFP8, 0)))
    assert not np.array_equal(dx, _fp32_dot(_values(g, MXFP8E5M2, 0), _values(w, MXFP8, 0)))
    assert not np.array_equal(dx, _fp32_dot(_values(g, MXFP8E5M2, -1), _values(w, MXFP8, -1)))


def test_the_weight_gradient_blocks_along_m():
    """Columns of g 2**20 apart and rows of x 2**12 apart: the layer's dW equals the
    oracle that blocks g and x along M and differs from blocking g along N and from the
    forward's K-blocks of x."""
    m = k = n = 32
    layer, x = _layer(MX_TRAIN, m, k, n, seed=6)
    x = (x * _spread(m, 12)[:, None]).detach().requires_grad_(True)
    g = torch.randn(m, n) * _spread(n, 20)[None, :]
    layer(x).backward(g)
    dw = layer.weight.grad.numpy()

    def oracle(g_axis, x_axis):
        return _values(_fp32_dot(_values(g, MXFP8E5M2, g_axis).T, _values(x, MXFP8, x_axis)),
                       MXFP8, -1)

    assert np.array_equal(dw, oracle(0, 0))
    assert not np.array_equal(dw, oracle(-1, 0))
    assert not np.array_equal(dw, oracle(0, -1))


def test_block_weights_beside_float_gradients_are_cast_along_n():
    """A 1-D block weight with an E5M2 gradient: dX = e5m2(g) @ blk_N(W), rounded once
    into e5m2 (the gradient format) -- not the forward's K-blocks of W."""
    layer, x = _layer("w=mxfp8,a=mxfp8,o=bf16,gi=e5m2,gw=e5m2", 6, 64, 4, seed=2)
    g = torch.randn(6, 4)
    layer(x).backward(g)
    gq = E.cast(g.numpy().astype(np.float64), "e5m2")
    want = E.cast(_fp32_dot(gq.to_float(), _values(layer.weight, MXFP8, 0)).astype(np.float64),
                  "e5m2").to_float()
    assert np.array_equal(x.grad.numpy(), want)


class TestTiles:
    """A 2-D tile is the same tile under transposition: the backward products read the
    forward's codes, transposed, and nothing is cast again."""

    FMT = parse_format("nvfp4:tile=16x16")

    def test_a_tiled_cast_commutes_with_transposition(self):
        w = torch.randn(20, 40).numpy()  # partial tiles on both axes
        a, at = E.block_cast(w, self.FMT), E.block_cast(np.ascontiguousarray(w.T), self.FMT)
        assert np.array_equal(a.array.codes.T, at.array.codes)
        assert np.array_equal(a.scales.T, at.scales) and a.tensor_scale == at.tensor_scale
        assert np.array_equal(a.array.to_float().T, at.array.to_float())

    def test_the_input_gradient_reads_the_forward_tiles(self):
        spec = "w=nvfp4:tile=16x16,a=nvfp4,o=bf16,gi=nvfp4,gw=bf16"
        layer, x = _layer(spec, 8, 48, 20, seed=4)
        g = torch.randn(8, 20)
        with account.counting() as acct:
            layer(x).backward(g)
        wq = E.cast(layer.weight.detach().numpy(), self.FMT)  # the forward's tiles
        gn = E.cast(g.numpy(), replace(parse_format("nvfp4"), axis=-1))
        want = E.matmul(gn, wq, "bf16", "fp32")
        assert np.array_equal(x.grad.numpy(), want.to_float())
        casts = {}
        for (_, op, f), n in acct.ops.items():
            if op == "cast":
                casts[f] = casts.get(f, 0) + n
        assert casts["nvfp4:tile=16x16"] == 20 * 48  # the weights once, in the forward
        # x along K, x along M, g along N, g along M
        assert casts["nvfp4"] == 2 * 8 * 48 + 2 * 8 * 20


def test_the_account_counts_every_recast():
    """A linear step with 1-D blocks everywhere casts x, W (forward), g along N, W along N
    (input gradient), g along M, x along M (weight gradient), dW and db into gw."""
    m, k, n = 6, 64, 5
    layer, x = _layer(MX_TRAIN, m, k, n)
    with account.counting() as acct:
        layer(x).sum().backward()
    ops = acct.ops
    assert ops[("forward", "cast", "mxfp8")] == m * k + n * k
    assert ops[("grad_input", "cast", "mxfp8e5m2")] == m * n
    assert ops[("grad_input", "cast", "mxfp8")] == n * k
    assert ops[("grad_weight", "cast", "mxfp8e5m2")] == m * n
    assert ops[("grad_weight", "cast", "mxfp8")] == m * k + n * k + n
    assert ops[("grad_input", "mac", "mxfp8e5m2 x mxfp8 -> fp32")] == m * n * k
    assert ops[("grad_weight", "mac", "mxfp8e5m2 x mxfp8 -> fp32")] == m * n * k


def test_conv_gradients_follow_the_same_rule():
    """A 1x1 convolution is a linear layer over (batch, position) rows: its block
    gradients equal the oracle's, and a 3x3 convolution with block gradients runs every
    product emulated (no float fallback) with finite gradients."""
    torch.manual_seed(0)
    x = torch.randn(2, 40, 3, 3, requires_grad=True)
    w = torch.randn(6, 40, 1, 1, requires_grad=True)
    g = torch.randn(2, 6, 3, 3)
    emulated_conv(x, w, None, MX_TRAIN).backward(g)
    rows = x.detach().movedim(1, -1).reshape(-1, 40).numpy()  # (18, 40)
    g2 = g.movedim(1, -1).reshape(-1, 6).numpy()              # (18, 6)
    w2 = w.detach().reshape(6, 40).numpy()
    dx = _fp32_dot(_values(g2, MXFP8E5M2, -1), _values(w2, MXFP8, 0))
    assert np.array_equal(x.grad.movedim(1, -1).reshape(-1, 40).numpy(), dx)
    dw = _values(_fp32_dot(_values(g2, MXFP8E5M2, 0).T, _values(rows, MXFP8, 0)), MXFP8, -1)
    assert np.array_equal(w.grad.reshape(6, 40).numpy(), dw)
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, groups=2))
    xi = torch.randn(2, 3, 6, 6, requires_grad=True)
    with emulate(MX_TRAIN, model=model) as emu:
        model(xi).square().sum().backward()
    assert all(r.emulated for r in emu.records) and len(emu.records) == 2
    assert all(torch.isfinite(t).all() and t.abs().sum() > 0
               for t in (xi.grad, model[0].weight.grad, model[2].weight.grad))


def test_an_activation_product_gives_float_gradients():
    """q @ k^T of two activations under a block gi: both gradients round once into the
    fp32 result (their producers block-cast them), each operand cast along the backward
    product's contraction."""
    torch.manual_seed(1)
    q = torch.randn(6, 40, requires_grad=True)
    k = torch.randn(5, 40, requires_grad=True)
    g = torch.randn(6, 5)
    with emulate(MX_TRAIN):
        s = q @ k.mT
    s.backward(g)
    # s = q k^T is emulated_linear(q, k): dq = g @ k (over the 5 rows of k), dk = g^T q
    dq = _fp32_dot(_values(g.numpy(), MXFP8E5M2, -1), _values(k, MXFP8, 0))
    dk = _fp32_dot(_values(g.numpy(), MXFP8E5M2, 0).T, _values(q, MXFP8, 0))
    assert np.array_equal(q.grad.numpy(), dq) and np.array_equal(k.grad.numpy(), dk)


def test_mx_training_learns_digits():
    """60 Adam steps of a 64-32-10 MLP on digits with MXFP8 in all three products of both
    layers (E5M2 gradients blocked along each product's contraction) cut the loss to
    a tenth of its start (float32: 0.026 from 2.33; this spec: 0.031)."""
    from sklearn.datasets import load_digits

    d = load_digits()
    x = torch.tensor(d.data[:256] / 16.0, dtype=torch.float32)
    y = torch.tensor(d.target[:256])
    torch.manual_seed(0)
    model = swap_layers(nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10)),
                        MX_TRAIN, cast_weights=False)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    t0 = time.perf_counter()
    for _ in range(60):
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.1 * losses[0], losses
    assert time.perf_counter() - t0 < 60
