"""``emulate``: models nobody here wrote, all of their products in the emulator.

The oracle of the forward tests is written here, op by op, with
``lowbit.emulators.matmul`` and ``cast`` on numpy arrays (no lowbit torch code): a
transformer layer by hand, and a plain reference mode for the Hugging Face models and
the convolutional nets (im2col by numpy's sliding windows).
"""

import copy
import math
import warnings

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

import lowbit.emulators as E
from lowbit.integrations.torch import (EmulatedConv2d, EmulatedMultiheadAttention, EmulationError,
                                       EmulationSpec, coverage, emulate, emulated_einsum,
                                       emulated_matmul, swap_layers)

BF16 = EmulationSpec.parse("bf16")


# --- the oracle: emulator calls on numpy arrays -----------------------------------------

def _q(t, fmt):
    return E.cast(t.detach().numpy(), fmt)


def _f32(a: E.EmuArray) -> torch.Tensor:
    return torch.from_numpy(a.to_float()).to(torch.float32)


def ref_linear(x, w, b, spec=BF16):
    """x @ w.T (+ b): one emulated matmul rounded into the output format, the bias
    added in that format."""
    out = spec.activation
    x2 = x.detach().reshape(-1, x.shape[-1])
    y = E.matmul(_q(x2, spec.activation), _q(w, spec.weight).T, out, spec.accumulator)
    if b is not None:
        y = E.add(y, _q(b, out)[None, :], out)
    return _f32(y).reshape(*x.shape[:-1], w.shape[0])


def ref_bmm(a, b, spec=BF16):
    """Batched a @ b, one emulated matmul per batch element, both operands activations."""
    a3, b3 = a.detach().reshape(-1, *a.shape[-2:]), b.detach().reshape(-1, *b.shape[-2:])
    out = [_f32(E.matmul(_q(a3[i], spec.activation), _q(b3[i], spec.activation),
                         spec.activation, spec.accumulator)) for i in range(a3.shape[0])]
    return torch.stack(out).reshape(*a.shape[:-1], b.shape[-1])


def ref_attention(q, k, v, mask=None, scale=None, spec=BF16):
    sc = 1 / math.sqrt(q.shape[-1]) if scale is None else scale
    s = ref_bmm(q * sc, k.transpose(-1, -2), spec)
    if mask is not None:
        s = s.masked_fill(~mask, float("-inf")) if mask.dtype == torch.bool else s + mask
    return ref_bmm(torch.softmax(s, -1), v, spec)


def ref_conv2d(x, w, b, stride, padding, dilation, groups, spec):
    """im2col by numpy sliding windows, one emulated matmul per group."""
    (sh, sw), (dh, dw) = _pair(stride), _pair(dilation)
    xp = F.pad(x.detach(), [padding[1], padding[1], padding[0], padding[0]]) \
        if not isinstance(padding, str) else x.detach()
    if padding == "same":
        th, tw = dh * (w.shape[2] - 1), dw * (w.shape[3] - 1)
        xp = F.pad(x.detach(), [tw // 2, tw - tw // 2, th // 2, th - th // 2])
    a = xp.numpy()
    kh, kw = w.shape[2:]
    win = np.lib.stride_tricks.sliding_window_view(a, (dh * (kh - 1) + 1, dw * (kw - 1) + 1), (2, 3))
    win = win[:, :, ::sh, ::sw, ::dh, ::dw]  # N, C, Ho, Wo, kh, kw
    n, c, ho, wo = win.shape[:4]
    cg, og = c // groups, w.shape[0] // groups
    ys = []
    for g in range(groups):
        cols = win[:, g * cg:(g + 1) * cg].transpose(0, 2, 3, 1, 4, 5).reshape(n * ho * wo, -1)
        wg = w.detach()[g * og:(g + 1) * og].reshape(og, -1)
        y = E.matmul(E.cast(np.ascontiguousarray(cols), spec.activation), _q(wg, spec.weight).T,
                     spec.activation, spec.accumulator)
        if b is not None:
            y = E.add(y, _q(b.detach()[g * og:(g + 1) * og], spec.activation)[None, :], spec.activation)
        ys.append(_f32(y))
    return torch.cat(ys, 1).reshape(n, ho, wo, -1).permute(0, 3, 1, 2)


def _pair(v):
    return (v, v) if isinstance(v, int) else tuple(v)


class ReferenceMode(TorchFunctionMode):
    """The straightforward oracle: linear, addmm(bias, x, W), attention, conv2d and
    embedding by the functions above; everything else in float."""

    def __init__(self, spec=BF16):
        super().__init__()
        self.spec = spec

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        s = self.spec
        if func is F.linear:
            return ref_linear(args[0], args[1], args[2] if len(args) > 2 else kwargs.get("bias"), s)
        if func is torch.addmm:
            return ref_linear(args[1], args[2].T, args[0], s)
        if func is F.scaled_dot_product_attention:
            v = dict(zip(("query", "key", "value", "attn_mask", "dropout_p", "is_causal"), args)) | kwargs
            mask = v.get("attn_mask")
            if v.get("is_causal"):
                mask = torch.ones(v["query"].shape[-2], v["key"].shape[-2], dtype=torch.bool).tril()
            return ref_attention(v["query"], v["key"], v["value"], mask, v.get("scale"), s)
        if func is F.conv2d:
            v = dict(zip(("input", "weight", "bias", "stride", "padding", "dilation", "groups"), args)) | kwargs
            return ref_conv2d(v["input"], v["weight"], v.get("bias"), v.get("stride", 1),
                              _pair(v.get("padding", 0)) if not isinstance(v.get("padding", 0), str)
                              else v["padding"], v.get("dilation", 1), v.get("groups", 1), s)
        if func is F.embedding:
            w = _f32(_q(args[1], s.weight))
            return func(args[0], w, *args[2:], **kwargs)
        return func(*args, **kwargs)


# --- models ------------------------------------------------------------------------------

def encoder(layers=2, d=16, heads=2, ff=32):
    torch.manual_seed(0)
    return nn.TransformerEncoder(nn.TransformerEncoderLayer(d, heads, ff, dropout=0.0, batch_first=True),
                                 layers, enable_nested_tensor=False).eval()


def ref_encoder_layer(layer, x, mask=None, spec=BF16):
    """nn.TransformerEncoderLayer (post-norm, ReLU), op by op."""
    a = layer.self_attn
    B, L, D = x.shape
    H = a.num_heads
    qkv = ref_linear(x, a.in_proj_weight, a.in_proj_bias, spec)
    q, k, v = (t.reshape(B, L, H, D // H).transpose(1, 2) for t in qkv.split(D, -1))
    o = ref_attention(q, k, v, mask, spec=spec).transpose(1, 2).reshape(B, L, D)
    o = ref_linear(o, a.out_proj.weight, a.out_proj.bias, spec)
    x = layer.norm1(x + o)
    f = ref_linear(F.relu(ref_linear(x, layer.linear1.weight, layer.linear1.bias, spec)),
                   layer.linear2.weight, layer.linear2.bias, spec)
    return layer.norm2(x + f)


class InvertedResidual(nn.Module):
    """MobileNetV2's block: 1x1 expand, 3x3 depthwise, 1x1 project, residual."""

    def __init__(self, c, expand=4, stride=1):
        super().__init__()
        h = c * expand
        self.stride = stride
        self.block = nn.Sequential(
            nn.Conv2d(c, h, 1, bias=False), nn.BatchNorm2d(h), nn.ReLU6(),
            nn.Conv2d(h, h, 3, stride, 1, groups=h, bias=False), nn.BatchNorm2d(h), nn.ReLU6(),
            nn.Conv2d(h, c, 1, bias=False), nn.BatchNorm2d(c))

    def forward(self, x):
        y = self.block(x)
        return x + y if self.stride == 1 else y


def mobilenet():
    torch.manual_seed(1)
    return nn.Sequential(nn.Conv2d(1, 8, 3, 1, 1), nn.ReLU6(), InvertedResidual(8),
                         InvertedResidual(8, stride=2), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(8, 10)).eval()


class ReflectBlock(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.c1 = nn.Conv2d(c, c, 3, padding=1, padding_mode="reflect")
        self.bn = nn.BatchNorm2d(c)
        self.c2 = nn.Conv2d(c, c, 3, padding="same", padding_mode="reflect", dilation=2)

    def forward(self, x):
        return F.relu(x + self.c2(F.relu(self.bn(self.c1(x)))))


def resnet():
    torch.manual_seed(2)
    return nn.Sequential(nn.Conv2d(1, 6, 3, 2, 1), ReflectBlock(6), ReflectBlock(6),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(6, 10)).eval()


def digits_images(n=8):
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    return torch.tensor(X[:n], dtype=torch.float32).reshape(-1, 1, 8, 8) / 16.0, torch.tensor(y[:n])


def train_under(model, X, y, spec, steps, seed):
    """Adam (3e-3) on minibatches of 32 of the first 1500 samples, every product under
    ``emulate(spec)``; returns the losses and the mode."""
    opt = torch.optim.Adam(model.parameters(), 3e-3)
    g = torch.Generator().manual_seed(seed)
    losses = []
    with emulate(spec, model=model) as emu:
        for _ in range(steps):
            idx = torch.randint(0, 1500, (32,), generator=g)
            loss = F.cross_entropy(model(X[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
    return losses, emu


# --- tests -------------------------------------------------------------------------------

class TestTransformerEncoder:
    def test_coverage_is_every_mac(self):
        enc = encoder()
        cov = coverage(enc, torch.randn(3, 5, 16), "bf16")
        assert cov.fraction == 1.0 and cov.macs == 2 * (3 * 5 * (16 * 48 + 16 * 16 + 2 * 16 * 32)
                                                        + 2 * 3 * 2 * 5 * 5 * 8)
        assert {r.op for r in cov.records} == {"linear", "multi_head_attention_forward",
                                               "scaled_dot_product_attention"}
        assert "layers.1.self_attn" in {r.module for r in cov.records}
        assert "layer_norm" in cov.float_ops and "100.0 %" in str(cov)

    @pytest.mark.parametrize("masked", [False, True])
    def test_forward_equals_the_op_by_op_reference(self, masked):
        enc = encoder()
        x = torch.randn(3, 5, 16)
        mask = torch.ones(5, 5, dtype=torch.bool).tril() if masked else None
        with torch.no_grad(), emulate("bf16"):
            y = enc(x, mask=None if mask is None else ~mask)  # torch: True = masked out
        with torch.no_grad():
            ref = x
            for layer in enc.layers:
                ref = ref_encoder_layer(layer, ref, mask)
        assert torch.equal(y, ref)
        assert not torch.equal(y, enc(x, mask=None if mask is None else ~mask))  # bf16 differs from float

    def test_swap_layers_gives_the_same_numbers(self):
        enc = encoder()
        x = torch.randn(2, 4, 16)
        with torch.no_grad(), emulate("bf16"):
            want = enc(x)
        swapped = swap_layers(copy.deepcopy(enc), "bf16")
        assert isinstance(swapped.layers[0].self_attn, EmulatedMultiheadAttention)
        with torch.no_grad():
            assert torch.equal(swapped(x), want)

    def test_need_weights_path(self):
        """nn.MultiheadAttention called directly takes the bmm + softmax path."""
        torch.manual_seed(5)
        m = nn.MultiheadAttention(8, 2)
        x = torch.randn(4, 2, 8)
        cov = coverage(m, (x, x, x), "bf16")
        assert [r.op for r in cov.records].count("bmm") == 2 and cov.fraction == 1.0

    def test_training_on_digit_rows_reduces_the_loss(self):
        """Sequence classification of the rows of scikit-learn's digits (8 tokens of 8
        pixels), every product in bf16, 200 Adam steps."""
        from sklearn.datasets import load_digits

        X, y = load_digits(return_X_y=True)
        X = torch.tensor(X, dtype=torch.float32).reshape(-1, 8, 8) / 16.0
        y = torch.tensor(y)
        torch.manual_seed(0)
        model = nn.Sequential(nn.Linear(8, 32), encoder(1, 32, 2, 64).train(), nn.Flatten(), nn.Linear(256, 10))
        losses, emu = train_under(model, X, y, "bf16", 200, seed=0)
        assert all(r.emulated for r in emu.records)
        assert np.mean(losses[-20:]) < 0.5 * np.mean(losses[:20])
        with torch.no_grad(), emulate("bf16"):
            acc = (model(X[1500:]).argmax(1) == y[1500:]).float().mean().item()
        assert acc > 0.7


@pytest.fixture(scope="module")
def bert():
    """A 2-layer BERT with hidden size 64, built from its config (no download)."""
    transformers = pytest.importorskip("transformers")
    cfg = transformers.BertConfig(vocab_size=40, hidden_size=64, num_hidden_layers=2,
                                  num_attention_heads=2, intermediate_size=128,
                                  max_position_embeddings=16, num_labels=10,
                                  attn_implementation="sdpa")
    torch.manual_seed(0)
    return transformers.BertForSequenceClassification(cfg).eval()


@pytest.fixture(scope="module")
def gpt2():
    """A 2-layer GPT-2 (its Conv1D layers are addmm calls; causal attention)."""
    transformers = pytest.importorskip("transformers")
    cfg = transformers.GPT2Config(vocab_size=40, n_embd=64, n_layer=2, n_head=2, n_positions=16,
                                  bos_token_id=0, eos_token_id=0, attn_implementation="sdpa")
    torch.manual_seed(0)
    return transformers.GPT2LMHeadModel(cfg).eval()


class TestHuggingFace:

    @pytest.mark.parametrize("name", ["bert", "gpt2"])
    def test_coverage_and_forward_code_for_code(self, name, request):
        model = request.getfixturevalue(name)
        ids = torch.randint(0, 40, (2, 8), generator=torch.Generator().manual_seed(1))
        cov = coverage(model, ids, "bf16")
        assert cov.fraction == 1.0 and cov.macs > 0
        with torch.no_grad(), emulate("bf16"):
            got = model(ids).logits
        with torch.no_grad(), ReferenceMode():
            want = model(ids).logits
        assert torch.equal(got, want)

    def test_a_fine_tuning_step(self, bert):
        model = copy.deepcopy(bert).train()
        ids = torch.randint(0, 40, (4, 8), generator=torch.Generator().manual_seed(2))
        labels = torch.tensor([1, 2, 3, 4])
        opt = torch.optim.SGD(model.parameters(), 0.1)
        with emulate("bf16", model=model):
            loss = model(ids, labels=labels).loss
            opt.zero_grad()
            loss.backward()
            opt.step()
        grads = [p.grad for p in model.parameters() if p.requires_grad]
        assert all(g is not None and torch.isfinite(g).all() for g in grads)
        assert model.classifier.weight.grad.abs().sum() > 0


class TestConvNets:
    @pytest.mark.parametrize("make", [mobilenet, resnet])
    def test_coverage_and_forward_code_for_code(self, make):
        model = make()
        x, _ = digits_images()
        cov = coverage(model, x, "bf16")
        assert cov.fraction == 1.0
        if make is mobilenet:
            assert any("groups=32" in r.note for r in cov.records)
        with torch.no_grad(), emulate("bf16"):
            got = model(x)
        with torch.no_grad(), ReferenceMode():
            want = model(x)
        assert torch.equal(got, want)

    @pytest.mark.parametrize("make", [mobilenet, resnet])
    def test_swap_layers_converts_every_conv_and_agrees(self, make):
        model = make()
        x, y = digits_images()
        with torch.no_grad(), emulate("bf16"):
            want = model(x)
        swapped = swap_layers(copy.deepcopy(model), "bf16")
        assert not [m for m in swapped.modules() if type(m) is nn.Conv2d]
        with torch.no_grad():
            assert torch.equal(swapped(x), want)
        assert isinstance(swapped[0], EmulatedConv2d)

    @pytest.mark.parametrize("make", [mobilenet, resnet])
    def test_a_training_step_has_every_gradient(self, make):
        model = make().train()
        x, y = digits_images()
        with emulate("fixed16.8,w=fixed8.6", model=model):
            F.cross_entropy(model(x), y).backward()
        assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


class TestProducts:
    @pytest.mark.parametrize("eq, sa, sb", [
        ("ij,jk->ik", (3, 4), (4, 5)), ("bij,bjk->bik", (2, 3, 4), (2, 4, 5)),
        ("bhqd,bhkd->bhqk", (2, 2, 3, 4), (2, 2, 5, 4)), ("...ij,jk", (2, 3, 4), (4, 5)),
        ("ij,kj", (3, 4), (5, 4)), ("i,i->", (6,), (6,)), ("i,j->ij", (3,), (4,)),
        ("bnd,de->bne", (2, 3, 4), (4, 6)), ("ab,bc->ca", (3, 4), (4, 2)),
    ])
    def test_einsum_is_a_matmul(self, eq, sa, sb):
        """Against torch in float64 on bf16-exact operands with an exact accumulator."""
        g = torch.Generator().manual_seed(0)
        a = torch.randint(-8, 8, sa, generator=g).double() / 4
        b = torch.randint(-8, 8, sb, generator=g).double() / 4
        spec = "w=fixed16.4,a=fixed16.4,o=fixed24.8"
        assert torch.equal(emulated_einsum(eq, a, b, spec).double(), torch.einsum(eq, a, b))

    @pytest.mark.parametrize("sa, sb", [((3,), (3,)), ((3,), (3, 4)), ((2, 3), (3,)), ((5, 2, 3), (3, 4)),
                                        ((2, 3), (5, 3, 4)), ((2, 1, 2, 3), (4, 3, 2)), ((4, 2, 3), (4, 3, 2))])
    def test_matmul_broadcasting(self, sa, sb):
        g = torch.Generator().manual_seed(1)
        a = torch.randint(-8, 8, sa, generator=g).double() / 4
        b = torch.randint(-8, 8, sb, generator=g).double() / 4
        got = emulated_matmul(a, b, "w=fixed16.4,a=fixed16.4,o=fixed24.8")
        assert torch.equal(got.double(), a @ b)

    def test_operators_and_methods_are_caught(self):
        a, b = torch.randn(3, 4), torch.randn(4, 2)
        bias = torch.randn(2)
        with emulate("bf16", warn=False) as emu:
            outs = [a @ b, a.matmul(b), torch.mm(a, b), a.mm(b), torch.addmm(bias, a, b),
                    torch.bmm(a[None], b[None])[0], torch.baddbmm(bias, a[None], b[None])[0],
                    torch.einsum("ij,jk->ik", a, b), torch.mv(a, b[:, 0])[:, None].expand(3, 2)]
        assert len(emu.records) == 9 and all(r.emulated for r in emu.records)
        for o in outs[:4]:
            assert torch.equal(o, outs[0])
        assert torch.equal(outs[4], ref_linear(a, b.T, bias))
        assert torch.equal(outs[5], outs[0]) and torch.equal(outs[7], outs[0])

    def test_activation_products_round_both_operands(self):
        """x @ y of two activations casts both into the activation format."""
        a = torch.tensor([[1 + 2 ** -10]])
        with emulate("bf16", warn=False):
            assert (a @ a).item() == 1.0


class TestNotEmulated:
    class Tagger(nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn = nn.LSTM(4, 8, batch_first=True)
            self.out = nn.Linear(8, 3)

        def forward(self, x):
            return self.out(self.rnn(x)[0])

    def test_strict_names_the_op_and_module(self):
        m = self.Tagger()
        with pytest.raises(EmulationError, match=r"lstm in rnn: not emulated .*strict=False"):
            with emulate("bf16", model=m):
                m(torch.randn(2, 3, 4))

    def test_lenient_runs_in_float_lists_it_and_warns_once(self):
        m = self.Tagger()
        x = torch.randn(2, 3, 4)
        with pytest.warns(UserWarning, match=r"MACs ran in float.*lstm in rnn") as rec:
            with emulate("bf16", model=m, strict=False) as emu:
                m(x)
                m(x)
        assert len([w for w in rec if "lowbit.emulate" in str(w.message)]) == 1
        cov = coverage(m, x, "bf16")
        lstm = [r for r in cov.records if r.op == "lstm"][0]
        assert not lstm.emulated and lstm.macs == 2 * 3 * (4 * 32 + 8 * 32)
        assert 0 < cov.fraction < 1 and cov.float_modules == ["rnn"]

    def test_swap_layers_warns_about_what_it_leaves(self):
        with pytest.warns(UserWarning, match=r"left in float.*rnn \(LSTM\)"):
            swap_layers(self.Tagger(), "bf16")

    @pytest.mark.parametrize("eq", ["ii->i", "ij,jk,kl->il"])
    def test_einsum_that_is_not_one_product(self, eq):
        ops = [torch.randn(3, 3)] * (1 if eq == "ii->i" else 3)
        if len(ops) == 1:
            with emulate("bf16") as emu:  # a one-operand einsum has no products: float, listed
                torch.einsum(eq, *ops)
            assert emu.float_ops == {"einsum": 1}
        else:
            with pytest.raises(EmulationError, match="3 operands"):
                with emulate("bf16"):
                    torch.einsum(eq, *ops)

    def test_delayed_scaling_is_refused(self):
        with pytest.raises(EmulationError, match="delayed"):
            emulate("w=e4m3,a=e4m3,gi=e5m2,scaling=delayed")

    def test_out_argument_is_refused(self):
        a = torch.randn(2, 2)
        with pytest.raises(EmulationError, match="out="):
            with emulate("bf16"):
                torch.matmul(a, a, out=torch.empty(2, 2))


def test_nested_emulation_is_not_silently_swallowed():
    """An emulated layer inside an emulate context: the inner spec wins for its ops."""
    enc = encoder(1)
    swapped = swap_layers(copy.deepcopy(enc), "bf16")
    x = torch.randn(2, 4, 16)
    with torch.no_grad(), warnings.catch_warnings(), emulate("bf16"):
        warnings.simplefilter("error")
        y = swapped(x)
    with torch.no_grad(), emulate("bf16"):
        assert torch.equal(y, enc(x))


@pytest.mark.parametrize("spec", ["bf16", "fixed16.8", "lns5.10", "w=e4m3,a=e4m3,o=bf16,gi=e5m2,gw=bf16,ste=clipped"])
def test_batched_products_equal_one_linear_per_batch_element(spec):
    """The batched attention product and emulated_linear per batch element: same codes,
    forward and both gradients."""
    from lowbit.integrations.torch import emulated_linear
    from lowbit.integrations.torch.products import activation_spec

    g = torch.Generator().manual_seed(7)
    a = torch.randn(6, 3, 5, generator=g, requires_grad=True)
    b = torch.randn(6, 5, 4, generator=g, requires_grad=True)
    gy = torch.randn(6, 3, 4, generator=g)
    y = emulated_matmul(a, b, spec)
    y.backward(gy)
    s = activation_spec(EmulationSpec.parse(spec))
    a2, b2 = a.detach().clone().requires_grad_(), b.detach().clone().requires_grad_()
    y2 = torch.stack([emulated_linear(a2[i], b2[i].mT, None, s) for i in range(6)])
    y2.backward(gy)
    assert torch.equal(y, y2) and torch.equal(a.grad, a2.grad) and torch.equal(b.grad, b2.grad)


def test_swap_layers_covers_every_conv_kind():
    """Conv1d (grouped, reflect), Conv3d, ConvTranspose1d/2d/3d: swapped layers give the
    numbers emulate gives, and to_module gives back torch layers."""
    torch.manual_seed(3)
    net1 = nn.Sequential(nn.Conv1d(4, 8, 3, padding=1, groups=2, padding_mode="reflect"),
                         nn.ConvTranspose1d(8, 4, 3, stride=2, output_padding=1))
    net2 = nn.Sequential(nn.ConvTranspose2d(2, 4, 3, stride=2, padding=1, groups=2))
    net3 = nn.Sequential(nn.Conv3d(2, 4, 3, padding="same"), nn.ConvTranspose3d(4, 2, 2, stride=2))
    for net, x in ((net1, torch.randn(2, 4, 9)), (net2, torch.randn(2, 2, 5, 5)),
                   (net3, torch.randn(1, 2, 4, 4, 4))):
        with torch.no_grad(), emulate("bf16"):
            want = net(x)
        swapped = swap_layers(copy.deepcopy(net), "bf16")
        assert all(type(m).__name__.startswith("Emulated") for m in swapped)
        with torch.no_grad():
            assert torch.equal(swapped(x), want)
        back = [m.to_module() for m in swapped]
        assert [type(m) for m in back] == [type(m) for m in net]


def test_a_mobilenet_trains_on_digits():
    """The depthwise net, every product in fixed16.8 with 8.6 weights, 120 Adam steps on
    scikit-learn's digits: the loss falls."""
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    X = torch.tensor(X, dtype=torch.float32).reshape(-1, 1, 8, 8) / 16.0
    y = torch.tensor(y)
    losses, _ = train_under(mobilenet().train(), X, y,
                            "w=fixed8.6,a=fixed16.8,gi=fixed16.12,gw=fixed16.12", 120, seed=1)
    assert np.mean(losses[-20:]) < 0.6 * np.mean(losses[:20])


def test_a_spec_that_cannot_apply_names_the_op_and_module():
    """Binary weights with emulated gradients on a convolution: an error naming conv2d and
    the module, or (strict=False) float, listed with the reason."""
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten(), nn.Linear(2 * 6 * 6, 3))
    x = torch.randn(2, 1, 8, 8)
    spec = "w=binary,a=fixed8.4,gi=fixed16.8,gw=fixed16.8"
    with pytest.raises(EmulationError, match=r"conv2d in 0: not emulated \(emulated_conv: binary/ternary"):
        with emulate(spec, model=model):
            model(x)
    cov = coverage(model, x, spec)
    conv = [r for r in cov.records if r.op == "conv2d"]
    assert len(conv) == 1 and not conv[0].emulated and "binary/ternary" in conv[0].note
    assert [r.emulated for r in cov.records if r.op == "linear"] == [True]
