"""The gloo runtime launched by ``torchrun`` as two hosts on this machine (``--nnodes 2
--node-rank 0|1``, rendezvous at 127.0.0.1): the same result as the built-in launcher, and a
killed host leaves the other finishing."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from lowbit.integrations.programs.nodes.distributed import free_port
from lowbit.integrations.programs.nodes.node import NodeConfig
from lowbit.integrations.programs.nodes.train import train

RUN = {"nodes": 4, "neighbours": 3, "share": "logits", "message_format": "fixed8.4",
       "hidden": 16, "consume_p": 0.5, "broadcast_p": 0.5}


def _argv(out, rounds, eval_every, timeout):
    return ["train", "nodes", "--runtime", "gloo", "--nodes", "4", "--neighbours", "3",
            "--share", "logits", "--message-format", "fixed8.4", "--hidden", "16",
            "--consume-p", "0.5", "--broadcast-p", "0.5", "--steps", str(rounds),
            "--eval-every", str(eval_every), "--timeout", str(timeout), "--data", "digits",
            "--out", str(out), "--quiet"]


def _torchrun(host: int, port: int, out, rounds, eval_every, timeout=30, extra=()):
    """One 'host': a torchrun agent with 2 node processes (ranks 2*host, 2*host+1)."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--node-rank",
           str(host), "--nproc-per-node", "2", "--master-addr", "127.0.0.1", "--master-port",
           str(port), "-m", "lowbit.integrations.cli", *_argv(out, rounds, eval_every, timeout), *extra]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True, text=True)


def _rows(path):
    with open(path / "metrics.csv") as fh:
        return list(csv.DictReader(fh))


def test_two_torchrun_hosts_match_the_builtin_launcher(tmp_path):
    cfg = NodeConfig(**RUN, rounds=20, eval_every=10, out=str(tmp_path / "builtin"))
    train(cfg, runtime="gloo", timeout=60)
    port = free_port()
    hosts = [_torchrun(h, port, tmp_path / f"host{h}", 20, 10) for h in (0, 1)]
    logs = [p.communicate(timeout=300)[0] for p in hosts]
    assert [p.returncode for p in hosts] == [0, 0], logs
    assert "node 2 finished" in logs[1]
    cols = ("round", "avg_acc", "coll_acc", "bytes_payload", "bytes_images", "from_inbox",
            "broadcasts", "alive")
    a, b = _rows(tmp_path / "builtin"), _rows(tmp_path / "host0")
    assert len(a) == len(b) == 2
    for x, y in zip(a, b):
        assert {k: x[k] for k in cols} == {k: y[k] for k in cols}
    # each host keeps its own nodes' folders
    assert sorted(p.name for p in (tmp_path / "host1").iterdir()) == ["node2", "node3"]


def test_a_killed_host_leaves_the_other_finishing(tmp_path):
    port = free_port()
    # node 3 crashes at round 12; torchrun's agent of host 1 then stops node 2: host 1 is gone
    hosts = [_torchrun(h, port, tmp_path / f"host{h}", 40, 10, timeout=5,
                       extra=("--kill", "3:12")) for h in (0, 1)]
    assert hosts[1].wait(timeout=240) != 0
    summary = tmp_path / "host0" / "summary.json"
    t0 = time.time()
    while not summary.exists() or not json.loads(summary.read_text())["done"]:
        assert time.time() - t0 < 240 and hosts[0].poll() is None, "host 0 did not finish"
        time.sleep(0.5)
    # host 0's agent now waits at torchrun's exit barrier for the dead host: stop it
    os.killpg(hosts[0].pid, signal.SIGKILL)
    hosts[0].wait()
    rows = _rows(tmp_path / "host0")
    assert int(rows[0]["alive"]) == 4 and int(rows[-1]["alive"]) == 2
    for i in (0, 1):
        counts = json.loads((tmp_path / "host0" / f"node{i}" / "counts_r40.json").read_text())
        assert counts["dead_neighbours"] == [2, 3] and counts["rounds"] == 40


def test_a_launch_that_does_not_fit_the_run_ends_with_one_line(tmp_path, capsys, monkeypatch):
    from lowbit.integrations.cli import main

    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "3")
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    monkeypatch.setenv("MASTER_PORT", str(free_port()))
    assert main(_argv(tmp_path, 4, 2, 1)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "WORLD_SIZE 3" in err[0] and "--nodes 4" in err[0]
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("RANK", "1")  # nobody hosts the store at that port
    assert main(_argv(tmp_path, 4, 2, 1)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "cannot reach the rendezvous store at 127.0.0.1" in err[0]
