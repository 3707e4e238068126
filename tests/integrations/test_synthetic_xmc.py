"""The synthetic extreme-classification task has Amazon-670K's statistics, its labels
are the teacher's top logits, and it is a deterministic function of its seed."""

import numpy as np
import pytest

from lowbit.integrations.synthetic_xmc import make_xmc


@pytest.fixture(scope="module")
def task():
    return make_xmc(labels=5000, features=3000, train=4000, test=500, seed=3)


def test_amazon_like_statistics(task):
    s = task.train
    nnz, k = np.diff(s.indptr), np.diff(s.label_ptr)
    assert 73 < nnz.mean() < 77 and 5.2 < k.mean() < 5.6  # Amazon-670K: 74.7 and 5.4
    assert k.min() >= 1 and nnz.min() >= 1
    for i in range(0, s.n, 97):  # distinct sorted features, unit rows, positive values
        idx = s.indices[s.indptr[i]:s.indptr[i + 1]]
        v = s.values[s.indptr[i]:s.indptr[i + 1]]
        assert np.all(np.diff(idx) > 0) and np.all(v > 0)
        assert abs(float(np.sum(v.astype(np.float64) ** 2)) - 1) < 1e-5
    freq = np.sort(np.bincount(s.labels, minlength=task.labels))[::-1]
    assert freq[:50].sum() > 0.1 * freq.sum()          # a popular head ...
    assert (freq > 0).mean() > 0.5                     # ... and most labels in use (a long tail)


def test_labels_are_the_teachers_top_logits(task):
    rows = np.arange(0, task.test.n, 7)
    logits = task.teacher_logits(task.test, rows)
    for r, i in enumerate(rows):
        lab = task.test.labels_of(i)
        assert list(lab) == list(np.argsort(-logits[r], kind="stable")[:len(lab)])
        assert len(set(lab)) == len(lab)


def test_deterministic_in_the_seed():
    a, b = make_xmc(300, 400, train=50, test=10, seed=5), make_xmc(300, 400, train=50, test=10, seed=5)
    c = make_xmc(300, 400, train=50, test=10, seed=6)
    assert np.array_equal(a.train.indices, b.train.indices) and np.array_equal(a.test.labels, b.test.labels)
    assert np.array_equal(a.train.values, b.train.values)
    assert not np.array_equal(a.train.labels[:20], c.train.labels[:20])


@pytest.mark.parametrize("bad", [dict(labels=1), dict(train=0), dict(features=1.5), dict(label_zipf=-1)])
def test_bad_sizes(bad):
    with pytest.raises(ValueError, match="make_xmc"):
        make_xmc(**({"labels": 100, "features": 100, "train": 10, "test": 2} | bad))
