"""The operation account counts exactly what a training step executes (by hand here)."""

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from lowbit.integrations.torch import emulate, swap_layers
from lowbit.integrations.torch.account import counting, exact_acc_bits, fmt_bits
from lowbit.numerics import Fixed

B = 32
SIZES = [(784, 256), (256, 256), (256, 10)]


def mlp():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(),
                         nn.Linear(256, 10))


def _step(model, opt, how):
    x, y = torch.randn(B, 784), torch.randint(0, 10, (B,))
    with counting() as acct:
        if how == "emulate":
            with emulate("fixed16.8", model=model):
                loss = F.cross_entropy(model(x), y)
                opt.zero_grad()
                loss.backward()
        else:
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
        opt.step()
    return acct


@pytest.mark.parametrize("how", ["emulate", "swap_layers"])
def test_mlp_step_counts_by_hand(how):
    model = mlp()
    if how == "swap_layers":
        swap_layers(model, "fixed16.8")
    opt = torch.optim.SGD(model.parameters(), 0.1, momentum=0.9)
    acct = _step(model, opt, how)
    f = "fixed16.8"
    acc = {k: f"exact{exact_acc_bits(Fixed(16, 8), Fixed(16, 8), k)}" for k in (784, 256, B)}
    fwd = sum(B * i * o for i, o in SIZES)
    # grad_input: every layer but the first (the data needs no gradient)
    gin = sum(B * i * o for i, o in SIZES[1:])
    gw = fwd
    want = {
        # forward MACs by contraction length (the exact accumulator's width follows K)
        ("forward", "mac", f"{f} x {f} -> {acc[784]}"): B * 784 * 256,
        ("forward", "mac", f"{f} x {f} -> {acc[256]}"): B * 256 * 256 + B * 256 * 10,
        ("forward", "add", f): B * (256 + 256 + 10),
        ("forward", "cast", f): B * (784 + 256 + 256) + 784 * 256 + 256 * 256 + 256 * 10,
        ("grad_input", "cast", f): B * (256 + 256 + 10),
        # g @ W contracts over each layer's outputs: 10 (layer 3) and 256 (layer 2)
        ("grad_input", "mac", f"{f} x {f} -> exact{exact_acc_bits(Fixed(16, 8), Fixed(16, 8), 10)}"): B * 256 * 10,
        ("grad_input", "mac", f"{f} x {f} -> {acc[256]}"): B * 256 * 256,
        ("grad_weight", "mac", f"{f} x {f} -> {acc[B]}"): gw,
        ("grad_weight", "add", f): B * (256 + 256 + 10),
        ("update", "update_mul", "fp32"): 2 * sum(i * o + o for i, o in SIZES),
        ("update", "update_add", "fp32"): 2 * sum(i * o + o for i, o in SIZES),
    }
    assert dict(acct.ops) == want
    assert acct.total("mac", "grad_input") == gin and acct.steps == 1
    n_params = sum(i * o + o for i, o in SIZES)
    by = acct.bytes
    assert by[("forward", "read", "weight", f)] == 2 * sum(i * o for i, o in SIZES)
    assert by[("forward", "read", "activation", f)] == 2 * B * (784 + 256 + 256)
    assert by[("forward", "write", "activation", f)] == 2 * B * (256 + 256 + 10)
    assert by[("grad_weight", "read", "activation", f)] == 2 * B * (784 + 256 + 256)
    assert by[("grad_input", "read", "weight", f)] == 2 * (256 * 256 + 256 * 10)
    assert by[("update", "read", "state", "fp32")] == 4 * n_params  # one momentum buffer


def test_nothing_is_counted_outside():
    model = mlp()
    with emulate("bf16", model=model):
        model(torch.randn(2, 784))
    with counting() as acct:
        pass
    assert not acct.ops and not acct.bytes


def test_a_convolution_reads_and_casts_its_input_once():
    torch.manual_seed(1)
    conv = nn.Conv2d(3, 4, 3, stride=2, padding=1, bias=False)
    x = torch.randn(2, 3, 8, 8, requires_grad=True)
    with counting() as acct, emulate("bf16"):
        conv(x).sum().backward()
    ho = 4
    macs = 2 * 4 * ho * ho * 3 * 9
    assert acct.total("mac", "forward") == macs and acct.total("mac", "grad_weight") == macs
    # the input gradient: the transposed conv of the stride-dilated gradient, 3x3 over 4
    # channels at every input position (zeros included: what the emulator executes)
    assert acct.total("mac", "grad_input") == 2 * 3 * 8 * 8 * 4 * 9
    assert acct.ops[("forward", "cast", "bf16")] == x.numel() + conv.weight.numel()
    assert acct.ops[("grad_input", "cast", "bf16")] == 2 * 4 * ho * ho
    assert acct.bytes[("forward", "read", "activation", "bf16")] == 2 * x.numel()


def test_lns_sums_read_the_adder_table():
    torch.manual_seed(2)
    lin = nn.Linear(5, 3)
    with counting() as acct, emulate("lns5.10:interp6"):
        lin(torch.randn(4, 5))
    assert acct.ops[("forward", "table_read", "lns5.10:interp6")] == 4 * 3 * 5 + 4 * 3


def test_widths():
    from lowbit.numerics import parse_format

    assert [fmt_bits(parse_format(f)) for f in ("fixed16.8", "bf16", "e4m3", "lns5.10", "binary")] == \
        [16, 16, 8, 16, 1]
    assert fmt_bits(parse_format("mxfp8")) == 8 + 8 / 32 and fmt_bits(None) == 32


def test_unknown_optimizer_is_an_error():
    model = nn.Linear(2, 2)
    opt = torch.optim.Adamax(model.parameters())
    model(torch.randn(1, 2)).sum().backward()
    with pytest.raises(ValueError, match="no op count for the optimizer Adamax"):
        with counting():
            opt.step()
