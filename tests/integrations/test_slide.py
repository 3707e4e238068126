"""SlideLinear: all-active equals the dense emulated layer; labels always active; the
change-triggered rebuild fires when weights move and only then; LSH beats random."""

import numpy as np
import pytest
import torch

from lowbit.integrations.torch import emulated_linear
from lowbit.integrations.torch.slide import POLICIES, SlideLinear, active_targets


def layer(**kw):
    torch.manual_seed(0)
    m = SlideLinear(16, 300, **({"bits": 4, "tables": 8} | kw))
    with torch.no_grad():
        m.weight.normal_(0, 1)
        m.bias.normal_(0, 0.1)
    return m


@pytest.mark.parametrize("spec", [None, "bf16", "fixed16.8"])
def test_all_active_equals_the_dense_emulated_layer(spec):
    m = layer(spec=spec, min_active=300)
    x = torch.randn(5, 16)
    y, active = m(x)
    assert list(active) == list(range(300))
    w, b = m.weight.detach().clone().requires_grad_(), m.bias.detach().clone().requires_grad_()
    dense = x @ w.T + b if spec is None else emulated_linear(x, w, b, spec, seed=m.seed, step=0)
    assert torch.equal(y, dense)
    g = torch.randn_like(y)
    y.backward(g)
    dense.backward(g)
    assert torch.equal(m.weight.grad, w.grad) and torch.equal(m.bias.grad, b.grad)


@pytest.mark.parametrize("policy", POLICIES)
def test_every_policy_keeps_the_labels(policy):
    m = layer(policy=policy, beta=5, threshold=3)
    x = torch.randn(6, 16)
    labels = [[3, 299], [17], [150, 151, 152], [0], [42], [7]]
    y, active = m(x, labels)
    assert set(v for r in labels for v in r) <= set(active.tolist())
    assert y.shape == (6, len(active))
    t = active_targets(labels, active)
    assert torch.allclose(t.sum(1), torch.ones(6)) and m.last_stats["labels"] == 9


def test_change_triggered_rebuild():
    m = layer(rebuild="change", change_threshold=0.05)
    x = torch.randn(4, 16)
    m(x)
    assert [r.reason for r in m.rebuild_log] == ["initial"]
    for _ in range(3):  # weights unchanged: no rebuild
        m(x)
    assert len(m.rebuild_log) == 1 and m.changed_fraction() == 0.0
    with torch.no_grad():
        m.weight.add_(torch.randn_like(m.weight) * 2)  # weights move
    m(x)
    assert [r.reason for r in m.rebuild_log] == ["initial", "change"]
    assert m.changed_fraction() == 0.0 and m.rebuild_log[-1].seconds > 0
    # the check every batch is part of the trigger's cost: 4 checks after the initial build
    assert m.timing["check"] > 0
    assert m.rebuild_seconds() == sum(r.seconds for r in m.rebuild_log) + m.timing["check"]
    with pytest.raises(ValueError, match="change_threshold"):
        layer(rebuild="change", change_threshold=0.0)


def test_periodic_and_exponential_schedules():
    m = layer(rebuild_every=3, rebuild_growth=2.0)
    x = torch.randn(2, 16)
    for _ in range(20):
        m(x)
    assert [r.batch for r in m.rebuild_log] == [0, 3, 9]  # periods 3, 6, then 12


def test_lsh_finds_the_large_logits_better_than_random():
    """Recall of the true top-10 logits by the union of 12 tables vs random ids of the same count."""
    torch.manual_seed(1)
    m = SlideLinear(32, 2000, bits=8, tables=12, policy="union")
    with torch.no_grad():
        m.weight.normal_()
        m.bias.zero_()
    x = m.weight.detach()[:50] + 0.3 * torch.randn(50, 32)  # queries near some rows
    m.rebuild_tables()
    logits = (x @ m.weight.detach().T).numpy()
    recall_lsh, recall_rand, sizes = [], [], []
    rs = np.random.default_rng(0)
    for i in range(50):
        top = set(np.argsort(-logits[i])[:10].tolist())
        got = set(m.tables.union(simhash_row(m, x[i:i + 1])).tolist())
        recall_lsh.append(len(top & got) / 10)
        recall_rand.append(len(top & set(rs.choice(2000, len(got), replace=False).tolist())) / 10)
        sizes.append(len(got))
    # measured: 0.40 vs 0.07 at 123 active ids of 2000
    assert np.mean(recall_lsh) > 0.25 and np.mean(recall_lsh) > 3 * np.mean(recall_rand)
    assert np.mean(sizes) < 300


def simhash_row(m, x):
    from lowbit.emulators.lsh import simhash

    return simhash(m.query_codes(x), m.lsh)[0]


def test_eval_is_dense_and_bad_arguments():
    m = layer()
    m.eval()
    assert m(torch.randn(3, 16)).shape == (3, 300)
    with pytest.raises(ValueError, match="policy"):
        SlideLinear(4, 10, policy="greedy")
    with pytest.raises(ValueError, match="hash_format"):
        SlideLinear(4, 10, hash_format="bf16")


def test_sample_scope_keeps_each_samples_own_set():
    m = layer(scope="sample", policy="topk", beta=7, sparse_products=False)
    x = torch.randn(4, 16)
    labels = [[1], [2, 250], [3], [4]]
    y, active = m(x, labels)
    m2 = layer(scope="batch", policy="topk", beta=7)
    y2, active2 = m2(x, labels)
    assert list(active) == list(active2)
    finite = torch.isfinite(y)
    assert torch.equal(y[finite], y2[finite])  # the same products, masked
    for i, lab in enumerate(labels):
        own = set(active[finite[i].numpy()].tolist())
        assert set(lab) <= own and len(own) <= 7 + len(lab)
    loss = -torch.log_softmax(y, 1)[torch.arange(4), torch.tensor(
        [list(active).index(lab[0]) for lab in labels])].mean()
    loss.backward()
    assert torch.isfinite(m.weight.grad).all()


@pytest.mark.parametrize("shift", [2, 3])
def test_dwta_family(shift):
    m = layer(family="dwta", dwta_shift=shift, policy="union")
    y, active = m(torch.randn(4, 16), [[1], [2], [3], [4]])
    assert {1, 2, 3, 4} <= set(active.tolist()) and m.tables.offsets.shape[1] == m.lsh.buckets + 1


def test_sparse_sample_products_are_the_reference_pairs_forward_and_backward():
    """scope sample in float32: only each sample's own pairs are computed, by the sparse
    kernels; logits = the reference's ordered float32 dots + bias, gradients = the reference
    sparse gradients; both agree with the masked batch product to float32 rounding."""
    from lowbit.numerics.reference import sparse as ref

    torch.manual_seed(0)
    x = torch.randn(5, 16)
    labels = [[1], [2, 250], [3], [4], [5]]
    got, masked = (layer(scope="sample", policy="topk", beta=7, sparse_products=flag)
                   for flag in (True, False))
    masked.load_state_dict(got.state_dict())
    xs = [x.clone().requires_grad_() for _ in range(2)]
    (y, active), (y2, active2) = got(xs[0], labels), masked(xs[1], labels)
    assert list(active) == list(active2) and torch.equal(torch.isfinite(y), torch.isfinite(y2))
    b, pos = np.nonzero(torch.isfinite(y).numpy())
    offsets = np.concatenate([[0], np.cumsum(np.bincount(b, minlength=5))])
    ids = active[pos]
    w = got.weight.detach().numpy()
    want = ref.sparse_dots(x.numpy(), w, offsets, ids) + got.bias.detach().numpy()[ids]
    assert np.array_equal(y.detach().numpy()[b, pos], want)
    torch.testing.assert_close(y[torch.isfinite(y)], y2[torch.isfinite(y2)])
    g = torch.randn(y.shape)
    (y.masked_fill(~torch.isfinite(y), 0) * g).sum().backward()
    (y2.masked_fill(~torch.isfinite(y2), 0) * g).sum().backward()
    gp = g.numpy()[b, pos]
    assert np.array_equal(xs[0].grad.numpy(), ref.sparse_grad_input(gp, w, offsets, ids))
    rows, dw = ref.sparse_grad_rows(gp, x.numpy(), offsets, ids)
    assert np.array_equal(got.weight.grad.numpy()[rows], dw)
    others = np.setdiff1d(np.arange(300), rows)
    assert (got.weight.grad.numpy()[others] == 0).all()
    for a, c in ((xs[0].grad, xs[1].grad), (got.weight.grad, masked.weight.grad),
                 (got.bias.grad, masked.bias.grad)):
        torch.testing.assert_close(a, c)


def test_lazy_adam_on_row_gradients_equals_lazy_adam_on_dense_gradients():
    """With sparse sample products a LazyAdam takes the active rows' gradients straight from
    the products (no N x d gradient): the same update, bit for bit, as from weight.grad."""
    from lowbit.integrations.torch.slide import LazyAdam

    torch.manual_seed(1)
    a, b = (layer(scope="sample", policy="union") for _ in range(2))
    b.load_state_dict(a.state_dict())
    oa, ob = LazyAdam(a, 1e-2), LazyAdam(b, 1e-2)
    b.row_grad = None  # b: the dense-gradient path
    for step in range(3):
        x = torch.randn(6, 16)
        labels = [[step + i] for i in range(6)]
        for m, o in ((a, oa), (b, ob)):
            y, active = m(x, labels)
            target = active_targets(labels, active)
            loss = -(target * torch.log_softmax(y, 1).masked_fill(target == 0, 0)).sum(1).mean()
            m.weight.grad = m.bias.grad = None
            loss.backward()
            o.step(active)
        assert a.weight.grad is None and b.weight.grad is not None
        assert torch.equal(a.weight, b.weight) and torch.equal(a.bias, b.bias)


def test_per_sample_fill_tops_up_each_samples_own_set():
    """fill="sample": every sample's own set reaches min_active with its own random ids (the
    released code's per-input fill); fill="batch": one shared fill for the batch."""
    x = torch.randn(6, 16)
    labels = [[i] for i in range(6)]
    m = layer(scope="sample", policy="topk", beta=3, min_active=40, fill="sample")
    y, active = m(x, labels)
    own = torch.isfinite(y).numpy()
    assert (own.sum(1) >= 40).all()
    sets = [set(active[r].tolist()) for r in own]
    assert all(sets[0] != s for s in sets[1:])  # each its own fill
    assert m.last_stats["fill"] > 0
    b = layer(scope="sample", policy="topk", beta=3, min_active=40, fill="batch")
    yb, ab = b(x, labels)
    assert len(ab) >= 40 and (torch.isfinite(yb).sum(1) < 40).all()
    with pytest.raises(ValueError, match="fill"):
        layer(fill="everywhere")


def test_sparse_loss_equals_the_masked_dense_loss_and_its_gradients():
    """SparseLogits + sparse_softmax_cross_entropy (O(nnz)) give the masked (B, |S|) loss of
    SLIDE's soft target and the same gradients, to float32 rounding."""
    from lowbit.integrations.torch.slide import sparse_softmax_cross_entropy

    torch.manual_seed(3)
    x = torch.randn(5, 16)
    labels = [[1], [2, 250], [3], [4, 5], [6]]
    a, b = layer(scope="sample", policy="union"), layer(scope="sample", policy="union")
    b.load_state_dict(a.state_dict())
    sl, active = a(x, labels, sparse_output=True)
    loss_a = sparse_softmax_cross_entropy(sl, labels)
    y, active2 = b(x, labels)
    assert list(active) == list(active2)
    torch.testing.assert_close(sl.dense(active), y)
    t = active_targets(labels, active2)
    loss_b = -(t * torch.log_softmax(y, 1).masked_fill(t == 0, 0)).sum(1).mean()
    torch.testing.assert_close(loss_a, loss_b)
    loss_a.backward()
    loss_b.backward()
    torch.testing.assert_close(a.weight.grad, b.weight.grad)
    torch.testing.assert_close(a.bias.grad, b.bias.grad)
    with pytest.raises(ValueError, match="not in its active set"):
        sparse_softmax_cross_entropy(sl, [[299]] * 5)
    with pytest.raises(ValueError, match="sparse_output needs"):
        layer(scope="batch")(x, labels, sparse_output=True)


def test_query_kernel_path_equals_the_general_path():
    """The union policy on the sparse path takes its pairs from one bucket-union kernel
    call; the active set, the pairs, the logits and the statistics are the general path's."""
    torch.manual_seed(5)
    x = torch.randn(7, 16)
    labels = [[1], [2, 250], [3], [4, 5], [6], [7], [8]]
    a, b = layer(scope="sample", policy="union"), layer(scope="sample", policy="union")
    b.load_state_dict(a.state_dict())
    b.query_kernel = False
    (la, sa), (lb, sb) = a(x, labels, sparse_output=True), b(x, labels, sparse_output=True)
    assert np.array_equal(sa, sb) and np.array_equal(la.offsets, lb.offsets)
    assert np.array_equal(la.ids, lb.ids) and torch.equal(la.values, lb.values)
    for k in ("active", "labels", "retrieved", "fill", "per_sample_mean", "per_query_mean"):
        assert a.last_stats[k] == b.last_stats[k], k


@pytest.mark.parametrize("compensation", [None, "stochastic", "kahan"])
def test_lazy_adam_with_bf16_master_weights(compensation):
    """LazyAdam(master="bf16"): every weight stays a bf16 value; rows that were never active
    keep their bits (and Kahan registers); an active row's first update is round-to-nearest
    of w + d into bf16, checked against ml_dtypes on the exact float64 sum (plain)."""
    ml_dtypes = pytest.importorskip("ml_dtypes")
    from lowbit.integrations.torch.slide import LazyAdam

    m = layer(scope="sample", policy="union")
    opt = LazyAdam(m, 1e-2, master="bf16", compensation=compensation, seed=3)
    bf16 = lambda t: t.detach().numpy().astype(ml_dtypes.bfloat16).astype(np.float32)  # noqa: E731
    assert np.array_equal(bf16(m.weight), m.weight.detach().numpy())  # cast at construction
    w0 = m.weight.detach().clone()
    seen = np.zeros(300, bool)
    for step in range(3):
        x = torch.randn(6, 16)
        labels = [[step * 6 + i] for i in range(6)]
        y, active = m(x, labels)
        target = active_targets(labels, active)
        loss = -(target * torch.log_softmax(y, 1).masked_fill(target == 0, 0)).sum(1).mean()
        m.weight.grad = m.bias.grad = None
        loss.backward()
        if step == 0 and compensation is None:  # the active rows' gradients, from the kernel
            rows, dw = m.row_grad[0], m.row_grad[1]
            g = torch.zeros(len(active), 16)
            g[torch.from_numpy(np.searchsorted(active, rows))] = dw
        before = m.weight.detach().clone()
        opt.step(active)
        seen[active] = True
        w = m.weight.detach()
        assert np.array_equal(bf16(w), w.numpy())
        assert torch.equal(w[~torch.from_numpy(seen)], w0[~torch.from_numpy(seen)])
        if step == 0 and compensation is None:
            # Adam's first step: m = 0.1 g, v = 0.001 g^2, bias-corrected: d = -lr g / (|g| + eps')
            m1, v1 = 0.1 * g, 0.001 * g * g
            d = -(1e-2 * (1 - 0.999) ** 0.5 / (1 - 0.9)) * m1 / (v1.sqrt() + 1e-8)
            want = (before[torch.from_numpy(active)].double() + d.double()).numpy()
            want = want.astype(ml_dtypes.bfloat16).astype(np.float32)
            assert np.array_equal(w[torch.from_numpy(active)].numpy(), want)
    if compensation == "kahan":
        comp = opt.masters[0].comp
        assert (comp.codes[~seen] == 0).all() and (comp.codes[seen] != 0).any()
    with pytest.raises(ValueError, match="binary"):
        LazyAdam(layer(), master="binary")


def test_master_weights_apply_rows_equals_a_full_update_that_is_zero_elsewhere():
    from lowbit import emulators as E
    from lowbit.integrations.torch.updates import MasterWeights

    rs = np.random.default_rng(0)
    w = E.cast(rs.normal(size=(50, 7)), "bf16")
    rows = np.array([1, 4, 5, 30, 49])
    d = rs.normal(size=(5, 7)) * 1e-2
    full = np.zeros((50, 7))
    full[rows] = d
    a, b = MasterWeights(w, None), MasterWeights(w, None)
    got = a.apply_rows(rows, d, seed=1)
    want = b.apply(full, seed=1)
    assert np.array_equal(a.codes.codes, want.codes) and np.array_equal(got.codes, want.codes[rows])
    k = MasterWeights(w, "kahan")
    k.apply_rows(rows, d, seed=1)
    others = np.setdiff1d(np.arange(50), rows)
    assert np.array_equal(k.codes.codes[others], w.codes[others])
    assert (k.comp.codes[others] == 0).all()


@pytest.mark.parametrize("policy", ["random", "oracle"])
def test_policies_that_read_no_table_build_none(policy):
    m = layer(policy=policy, beta=20, rebuild_every=1)
    for _ in range(3):
        y, active = m(torch.randn(4, 16), [[1], [2], [3], [4]])
        assert {1, 2, 3, 4} <= set(active.tolist())
    assert m.tables is None and m.rebuild_log == [] and m.rebuild_seconds() == 0.0
