"""The nodes' wire format: every check of the schema, and a run whose store is fed a
crafted pickle, random bytes and a truncated message under a node's keys."""

from __future__ import annotations

import csv
import datetime
import os
import pickle
import threading

import numpy as np
import pytest

from lowbit.integrations.programs.nodes.protocol import Message
from lowbit.integrations.programs.nodes.wire import HEADER, Expect, WireError, decode, encode


def _labels(n=4, features=6, sender=2, rnd=9):
    rng = np.random.default_rng(0)
    return Message(sender, rnd, "labels", rng.integers(0, 17, (n, features)).astype(np.uint8),
                   labels=rng.integers(0, 10, n))


EXPECT = Expect(sender=2, round=9, kind="labels", features=6, classes=10, max_batch=8)


def test_round_trip_of_labels_and_values():
    m = _labels()
    back = decode(encode(m), EXPECT)
    assert (back.images == m.images).all() and (back.labels == m.labels).all()
    v = Message(1, 3, "logits", m.images, values=np.linspace(-2, 2, 40).reshape(4, 10))
    e = Expect(sender=1, round=3, kind="logits", features=6, classes=10, columns=10)
    back = decode(encode(v), e)
    assert back.kind == "logits" and (back.values == v.values).all()
    assert len(encode(v)) == HEADER.size + 4 * 6 + 4 * 10 * 8  # the schema's exact size


def _corrupt(raw: bytes, at: int, value: bytes) -> bytes:
    return raw[:at] + value + raw[at + len(value):]


@pytest.mark.parametrize("why, mangle", [
    ("shorter than", lambda r: r[:10]),
    ("bad magic", lambda r: _corrupt(r, 0, b"\x80\x04")),  # a pickle's first bytes
    ("unknown version", lambda r: _corrupt(r, 4, b"\x02")),
    ("kind code", lambda r: _corrupt(r, 5, b"\x01")),
    ("under the key", lambda r: _corrupt(r, 8, (5).to_bytes(4, "little"))),
    ("batch of", lambda r: _corrupt(r, 16, (9).to_bytes(4, "little"))),
    ("pixels per image", lambda r: _corrupt(r, 20, (7).to_bytes(4, "little"))),
    ("values per image", lambda r: _corrupt(r, 24, (1).to_bytes(4, "little"))),
    ("the header announces", lambda r: r[:-1]),
    ("the header announces", lambda r: r + b"\x00"),
    ("labels outside", lambda r: _corrupt(r, len(r) - 8, (10).to_bytes(8, "little"))),
    ("labels outside", lambda r: _corrupt(r, len(r) - 8, (-1).to_bytes(8, "little", signed=True))),
])
def test_every_malformed_message_is_refused(why, mangle):
    with pytest.raises(WireError, match=why):
        decode(mangle(encode(_labels())), EXPECT)


def test_non_finite_values_are_refused():
    v = Message(1, 3, "features", np.zeros((2, 6), np.uint8), values=np.array([[0.0, np.nan]] * 2))
    with pytest.raises(WireError, match="non-finite"):
        decode(encode(v), Expect(sender=1, round=3, kind="features", features=6, classes=10,
                                 columns=2))


class _Exploit:
    """Unpickling this creates a file: the attack a pickled message allows."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_crafted_store_messages_are_dropped_and_the_run_finishes(tmp_path):
    import torch.distributed as dist

    from lowbit.integrations.data import load_digits
    from lowbit.integrations.programs.nodes.distributed import free_port
    from lowbit.integrations.programs.nodes.node import NodeConfig
    from lowbit.integrations.programs.nodes.train import train

    victim = tmp_path / "pwned"
    ds = load_digits()
    good = Message(1, 7, "labels", np.zeros((32, ds.n_features), np.uint8),
                   labels=np.zeros(32, np.int64))
    planted = {"m/5/1": pickle.dumps(_Exploit(str(victim))),
               "m/6/1": os.urandom(300),
               "m/7/1": encode(good)[:-3]}  # truncated
    port = free_port()

    def attacker():  # another process on the network that can reach the store's port
        store = dist.PrefixStore("lowbit", dist.TCPStore(
            "127.0.0.1", port, None, False, timeout=datetime.timedelta(seconds=60),
            wait_for_workers=False))
        for key, raw in planted.items():
            store.set(key, raw)

    thread = threading.Thread(target=attacker)
    thread.start()
    cfg = NodeConfig(nodes=3, neighbours=2, share="labels", hidden=16, rounds=20, eval_every=10,
                     consume_p=0.5, broadcast_p=0.5, out=str(tmp_path / "run"))
    # node 1 crashes at round 5, before it posts anything under m/5/1: the planted values are
    # what its neighbours read for rounds 5, 6 and 7; then its keys stay empty (declared dead)
    s = train(cfg, runtime="gloo", timeout=5, kill={1: 5}, port=port)
    thread.join()
    assert not victim.exists()
    assert s["rounds_done"] == 20
    with open(tmp_path / "run" / "metrics.csv") as fh:
        last = list(csv.DictReader(fh))[-1]
    assert int(last["rejected"]) == 2 * 3  # both neighbours dropped all three
    assert int(last["alive"]) == 2


def test_a_crafted_checkpoint_is_refused_not_run(tmp_path):
    import io

    from lowbit.integrations.runs import load_checkpoint, torch_load

    victim = tmp_path / "pwned"
    ckpt = tmp_path / "checkpoint.pt"
    ckpt.write_bytes(pickle.dumps({"round": 3, "x": _Exploit(str(victim))}))
    log = io.StringIO()
    assert load_checkpoint(ckpt, torch_load, log=log) is None
    assert not victim.exists()
    assert "checkpoint.pt is damaged" in log.getvalue()
    # what the programs do store still loads: tensors, numpy arrays and scalars, big ints
    import torch

    state = {"w": torch.ones(2), "a": np.arange(3, dtype=np.float32), "s": np.float64(0.5),
             "rng": np.random.default_rng(1).bit_generator.state, "b": b"\x00raw"}
    torch.save(state, ckpt)
    back = load_checkpoint(ckpt, torch_load)
    assert (back["a"] == state["a"]).all() and back["s"] == 0.5 and back["rng"] == state["rng"]
