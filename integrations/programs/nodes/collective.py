"""The collective decision: an entropy-weighted average of the nodes' predictions.

Node i's predictive distribution p_i(x) (softmax of its logits) gets the weight
w_i(x) = log C - H(p_i(x)), its negentropy: C classes, H the Shannon entropy in
nats. A uniform (clueless) prediction weighs 0 and a one-hot one log C. The
decision is p(x) = sum_i w_i(x) p_i(x) / sum_i w_i(x) over the nodes that are
alive (the plain mean of them if every weight is 0), and its argmax.

>>> import numpy as np
>>> p = np.array([[[0.5, 0.5]], [[0.9, 0.1]]])   # 2 nodes, 1 example, 2 classes
>>> np.round(collective(p), 4)
array([[0.9, 0.1]])
"""

from __future__ import annotations

import numpy as np


def entropy(p: np.ndarray) -> np.ndarray:
    """Shannon entropy (nats) over the last axis; 0 log 0 = 0."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return -np.where(p > 0, p * np.log(p), 0.0).sum(-1)


def weights(probs: np.ndarray) -> np.ndarray:
    """w_i(x) = log C - H(p_i(x)) for probs of shape (nodes, examples, classes)."""
    return np.log(probs.shape[-1]) - entropy(probs)


def collective(probs: np.ndarray, alive: np.ndarray | None = None) -> np.ndarray:
    """The weighted distribution (examples, classes) over the alive nodes."""
    probs = np.asarray(probs, dtype=np.float64)
    if alive is not None:
        probs = probs[np.asarray(alive, dtype=bool)]
    if len(probs) == 0:
        raise ValueError("no node is alive to decide")
    w = np.clip(weights(probs), 0.0, None)
    total = w.sum(0)
    mean = probs.mean(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = (w[..., None] * probs).sum(0) / total[:, None]
    return np.where(total[:, None] > 0, out, mean)


def accuracies(probs: np.ndarray, labels: np.ndarray, alive=None) -> tuple[float, float]:
    """(mean accuracy of the alive nodes, accuracy of their collective decision)."""
    probs = np.asarray(probs)
    sel = probs if alive is None else probs[np.asarray(alive, dtype=bool)]
    avg = float(np.mean([(p.argmax(1) == labels).mean() for p in sel]))
    coll = float((collective(probs, alive).argmax(1) == labels).mean())
    return avg, coll
