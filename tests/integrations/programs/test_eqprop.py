"""Equilibrium propagation: relaxation, the gradient theorem, bit-exactness, learning."""

from __future__ import annotations

import numpy as np
import pytest

from lowbit.integrations.data import load_digits
from lowbit.integrations.programs.eqprop.train import (
    EmuArith,
    EPConfig,
    EPNet,
    FloatArith,
    bptt_gradient,
    cosine,
    ep_estimate,
    make_arith,
    train,
)
from lowbit.integrations.torch.spec import EmulationSpec


@pytest.fixture(scope="module")
def batch():
    d = load_digits()
    return d.x_train[:32].astype(np.float64), np.eye(10)[d.y_train[:32]]


def test_free_phase_descends_the_energy(batch):
    """In float, every relaxation step lowers the energy of every example."""
    x, _ = batch
    cfg = EPConfig(arch=(64, 32, 10), seed=1)
    net = EPNet(cfg, FloatArith())
    x_drive = x @ net.W[0] + net.b[0]
    states = [np.zeros((len(x), 32)), np.zeros((len(x), 10))]
    energies = [net.energy(x, states)]
    for _ in range(300):
        states = net.relax(x, states, x_drive, 1)
        energies.append(net.energy(x, states))
    e = np.array(energies)
    assert np.all(np.diff(e, axis=0) <= 1e-12)
    assert np.abs(e[-1] - e[-2]).max() < 1e-6  # converged


def test_ep_matches_backprop_through_the_relaxation(batch):
    """The EP update approaches -dL/dW (BPTT at the free fixed point) as beta -> 0."""
    x, t = batch
    cfg = EPConfig(arch=(64, 32, 10), free_steps=200, nudged_steps=200, seed=3)
    net = EPNet(cfg, FloatArith())
    g = bptt_gradient(net, x, t, 200)
    cos = [cosine(ep_estimate(net, x, t, beta), g) for beta in (0.5, 0.1, 0.01)]
    assert cos[0] < cos[1] < cos[2] and cos[2] > 0.99
    assert cosine(ep_estimate(net, x, t, 0.01, symmetric=True), g) > cos[2]


def test_low_precision_degrades_the_estimate(batch):
    x, t = batch
    cfg = EPConfig(arch=(64, 32, 10), free_steps=200, nudged_steps=200, seed=3)
    g = bptt_gradient(EPNet(cfg, FloatArith()), x, t, 200)
    cos = {}
    for fmt in ("fixed16.14", "fixed8.6"):
        A = EmuArith(EmulationSpec.parse(fmt), None, 0, None)
        net = EPNet(cfg, A)
        cos[fmt] = cosine(ep_estimate(net, A.state(x), A.state(t), 0.01), g)
    assert cos["fixed16.14"] > 0.99 and cos["fixed8.6"] < 0.5


def _tiny(fmt, out, **kw) -> EPConfig:
    return EPConfig(arch=(64, 40, 10), format=fmt, data="digits", epochs=2, out=str(out), **kw)


@pytest.mark.parametrize("fmt", ["float", "fixed16.14", "lns5.10"])
def test_learns_above_chance(fmt, tmp_path):
    s = train(_tiny(fmt, tmp_path), progress=False)
    assert s["test_acc"] > 0.5, s


@pytest.mark.parametrize("fmt, update", [("fixed12.10", "stochastic"), ("lns5.7", "kahan")])
def test_bit_identical_across_backends_and_resume(fmt, update, tmp_path):
    from lowbit.integrations.runs import torch_load

    a = train(_tiny(fmt, tmp_path / "numba", update=update, backend="numba"), progress=False)
    b = train(_tiny(fmt, tmp_path / "c", update=update, backend="c"), progress=False)
    train(_tiny(fmt, tmp_path / "cut", update=update), progress=False, max_epochs=1)
    c = train(_tiny(fmt, tmp_path / "cut", update=update), progress=False)
    assert a["test_acc"] == b["test_acc"] == c["test_acc"]
    wa, wb, wc = (torch_load(open(tmp_path / d / "checkpoint.pt", "rb"))["W"]
                  for d in ("numba", "c", "cut"))
    for x, y, z in zip(wa, wb, wc):
        assert np.array_equal(x, y) and np.array_equal(x, z)


def test_bad_configs():
    with pytest.raises(ValueError, match="one rate per layer"):
        EPNet(EPConfig(arch=(4, 3, 2), lrs=(0.1,)), FloatArith())
    with pytest.raises(ValueError, match="must hold 1.0"):
        EmuArith(EmulationSpec.parse("fixed8.7"), None, 0, None)
    with pytest.raises(ValueError, match="needs weight and activation"):
        EmuArith(EmulationSpec.parse("w=fixed16.14"), None, 0, None)


def test_backprop_baseline_and_persistent_particles(tmp_path):
    bp = train(_tiny("bp", tmp_path / "bp", lrs=(0.5, 0.25)), progress=False)
    pers = train(_tiny("float", tmp_path / "pers", persistent=True), progress=False)
    assert bp["test_acc"] > 0.5 and pers["test_acc"] > 0.5, (bp, pers)


def test_sub_ulp_updates_need_stochastic_rounding_or_kahan(batch):
    """Every update below half an ulp of Fixed(8, 6): plain rounding never moves a
    weight; stochastic rounding and Kahan's compensation do (the update keeps guard
    bits until it is applied, even when the spec sets every role to one format)."""
    x, t = batch
    moved = {}
    for upd in (None, "stochastic", "kahan"):
        cfg = EPConfig(arch=(64, 40, 10), format="fixed8.6", update=upd, lrs=(0.05, 0.025),
                       seed=5)
        A = make_arith(cfg)
        net = EPNet(cfg, A)
        w0 = net.W[0].codes.copy()
        xs, ts = A.state(x[:20]), A.state(t[:20])
        for _ in range(30):  # each |update| < 1.7e-3 < ulp / 2 = 7.8e-3
            net.step(xs, ts)
        moved[upd] = int((net.W[0].codes != w0).sum())
    assert moved[None] == 0
    assert moved["stochastic"] > 0 and moved["kahan"] > 0, moved


@pytest.mark.parametrize("fmt", ["fixed16.14", "fixed12.10", "lns5.10"])
def test_emulated_step_applies_the_estimate_of_its_own_phases(batch, fmt):
    """One emulated EP step changes W by lr x EP's estimate computed exactly (float64)
    from the same emulated phases, to within a few ulps of the weight format - also
    when the minibatch sums of state products (here up to 32, states near 1) exceed the
    weight format's range (Fixed(16, 14): +-2), which they must not saturate at."""
    x, t = batch
    cfg = EPConfig(arch=(64, 32, 10), batch=len(x), random_sign=False, seed=5)
    A = make_arith(EPConfig(**{**cfg.__dict__, "format": fmt}))
    net = EPNet(cfg, A)
    net.b = [A.weight(np.full(b.shape, 0.9)) for b in (np.zeros((1, 32)), np.zeros((1, 10)))]
    xs, ts = A.state(x), A.state(t)
    est = ep_estimate(net, xs, ts, cfg.beta)
    free, _ = net.free(xs)
    assert min(A.value(free[0]).mean(), A.value(free[1]).mean()) > 0.6  # large sums
    w0 = [A.value(w) for w in net.W]
    net.step(xs, ts)
    ulp = 2.0 ** -A.W.frac if hasattr(A.W, "frac") else None
    for k, (w, e) in enumerate(zip(w0, est)):
        delta = A.value(net.W[k]) - w
        want = cfg.lrs[k] * e
        if ulp is not None:  # fixed point: rounded once into the weight grid
            assert np.abs(delta - want).max() <= ulp, k
        else:  # LNS: one rounding relative to the weight (and its update)
            assert np.allclose(delta, want, rtol=0.02, atol=2e-3 * np.abs(w).max()), k
    assert np.abs(cfg.lrs[-1] * est[-1]).max() > 4 * (ulp or 1e-3)  # a real update
