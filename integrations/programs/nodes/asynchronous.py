"""Asynchronous SGD with a parameter server (Downpour-like, Dean et al. 2012), simulated.

Time runs in ticks (one tick = one training step per worker, the harness' round). At
tick t, in worker order, worker i

1. fetches the server's parameters if t is a multiple of ``n_fetch`` (remembering the
   server's version v_i: the number of updates it had applied);
2. computes the gradient of its next shard minibatch on its local copy (which only a
   fetch changes) and adds it to its accumulator;
3. after ``n_push`` gradients, pushes their mean, tagged with v_i, which reaches the
   server at tick t + d; the delay d (ticks) is drawn from the worker's own seeded
   stream: Poisson with mean ``async_delay`` (0: no delay).

At the end of tick t the server takes the pushes that have arrived (arrival tick <= t), in
order of (arrival tick, worker). ``async_apply="each"``: every push is one optimizer step;
``"mean"``: pushes are buffered and every N of them (one per worker with no delay) are
summed in arrival order and their mean is one step, as synchronous SGD does. The
staleness of a push is tau = server version at its step - v_i (recorded per update).
``staleness_lr``: the step's learning rate is lr / max(1, tau) (Zhang et al. 2016,
alpha / tau, alpha at tau = 0); else fixed.

Built-in identity: with no delays, n_push = n_fetch = 1 and ``"mean"``, the server's
parameters equal synchronous SGD's bit for bit after every tick (tau = 0 everywhere).

Bytes per worker: 4P (float32) per push and per fetch. Evaluation: the server's model.
"""

from __future__ import annotations

import numpy as np
import torch

from lowbit.integrations.programs.nodes.node import NodeConfig, build_model
from lowbit.integrations.programs.nodes.sync import SyncNode


class ParameterServer:
    """The server's model, optimizer, update count (version), pushes in flight, the pushes
    buffered for a mean step, and the staleness of every update."""

    def __init__(self, cfg: NodeConfig, ds):
        self.cfg = cfg
        self.model = build_model(cfg, ds, cfg.seed * 100_003)
        self.opt = (torch.optim.Adam if cfg.optimizer == "adam" else torch.optim.SGD)(
            self.model.parameters(), lr=cfg.lr)
        self.sizes = [p.numel() for p in self.model.parameters()]
        self.version = 0
        self.in_flight: list[tuple[int, int, int, torch.Tensor]] = []  # (arrival, worker, tag, g)
        self.buffer: list[tuple[int, torch.Tensor]] = []  # (tag, g) awaiting a mean step
        self.taus: list[int] = []

    def flat(self) -> torch.Tensor:
        return torch.cat([p.detach().reshape(-1) for p in self.model.parameters()])

    def _step(self, g: torch.Tensor, taus: list[int]) -> None:
        lr = self.cfg.lr / max(1, max(taus)) if self.cfg.staleness_lr else self.cfg.lr
        for group in self.opt.param_groups:
            group["lr"] = lr
        for p, part in zip(self.model.parameters(), torch.split(g, self.sizes)):
            p.grad = part.reshape(p.shape).clone()
        self.opt.step()
        self.version += 1
        self.taus.extend(taus)

    def arrive(self, tick: int, n_workers: int) -> list[tuple[int, int]]:
        """Apply the pushes that have arrived by ``tick``; returns (worker, tau) of each."""
        due = sorted((p for p in self.in_flight if p[0] <= tick), key=lambda p: (p[0], p[1]))
        self.in_flight = [p for p in self.in_flight if p[0] > tick]
        done = []
        for _, worker, tag, g in due:
            if self.cfg.async_apply == "each":
                tau = self.version - tag
                self._step(g, [tau])
                done.append((worker, tau))
                continue
            self.buffer.append((worker, tag, g))
            if len(self.buffer) == n_workers:
                taus = [self.version - t for _, t, _ in self.buffer]
                total = None
                for _, _, gi in self.buffer:
                    total = gi.clone() if total is None else total + gi
                self._step(total / n_workers, taus)
                done.extend((w, tau) for (w, _, _), tau in zip(self.buffer, taus))
                self.buffer = []
        return done

    def state(self) -> dict:
        return {"model": self.model.state_dict(), "opt": self.opt.state_dict(),
                "version": self.version, "in_flight": list(self.in_flight),
                "buffer": list(self.buffer), "taus": list(self.taus)}

    def load(self, st: dict) -> None:
        self.model.load_state_dict(st["model"])
        self.opt.load_state_dict(st["opt"])
        self.version, self.taus = st["version"], list(st["taus"])
        self.in_flight = [tuple(p) for p in st["in_flight"]]
        self.buffer = [tuple(b) for b in st["buffer"]]


class AsyncWorker(SyncNode):
    """A worker: a local copy of the parameters, its version, its accumulator, its delays."""

    def __init__(self, index: int, cfg: NodeConfig, ds, shard: np.ndarray, server=None):
        super().__init__(index, cfg, ds, shard)
        self.server = server
        self.version = 0
        self.accum: torch.Tensor | None = None
        self.pending = 0
        self.delays = np.random.default_rng([cfg.seed, index, 3])

    @property
    def eval_model(self):
        return self.server.model

    def predict_proba(self, x, batch: int = 2000):
        local, self.model = self.model, self.server.model
        try:
            return super().predict_proba(x, batch)
        finally:
            self.model = local

    def fetch(self) -> None:
        with torch.no_grad():
            for p, q in zip(self.model.parameters(), self.server.model.parameters()):
                p.copy_(q)
        self.version = self.server.version
        self.counts["bytes_payload"] += 4 * sum(self.sizes)

    def tick(self, t: int) -> None:
        cfg = self.cfg
        if t % cfg.n_fetch == 0:
            self.fetch()
        g = self.gradient()
        self.accum = g if self.accum is None else self.accum + g
        self.pending += 1
        if self.pending == cfg.n_push:
            d = int(self.delays.poisson(cfg.async_delay)) if cfg.async_delay > 0 else 0
            self.server.in_flight.append((t + d, self.i, self.version, self.accum / cfg.n_push))
            self.accum, self.pending = None, 0
            self.counts["bytes_payload"] += 4 * sum(self.sizes)
            self.counts["broadcasts"] += 1

    def state(self) -> dict:
        st = {**super().state(), "version": self.version, "accum": self.accum,
              "pending": self.pending, "delays": self.delays.bit_generator.state}
        if self.i == 0:
            st["server"] = self.server.state()
        return st

    def load(self, st: dict) -> None:
        super().load(st)
        self.version, self.accum, self.pending = st["version"], st["accum"], st["pending"]
        self.delays.bit_generator.state = st["delays"]
        if "server" in st:
            self.server.load(st["server"])


def build_async(cfg: NodeConfig, ds, parts) -> list[AsyncWorker]:
    """The workers, sharing one parameter server."""
    server = ParameterServer(cfg, ds)
    return [AsyncWorker(i, cfg, ds, parts[i], server) for i in range(cfg.nodes)]


def async_round(workers: list[AsyncWorker], t: int) -> None:
    """One tick: every worker (in order) fetches if due, computes, pushes if due; then the
    server applies what has arrived; each update's staleness goes to its worker's counters."""
    for w in workers:
        w.tick(t)
    for worker, tau in workers[0].server.arrive(t, len(workers)):
        c = workers[worker].counts
        c["updates"] += 1
        c["staleness_sum"] += tau


# --- the gloo runtime: the server is a process of its own (rank ``nodes``) ------------------

FETCH, PUSH, DONE = 0, 1, 2  # header kinds: (kind, version tag, 0), int64


def processes(cfg: NodeConfig) -> int:
    """Processes of a run: one per node, plus the parameter server's for ``async``."""
    return cfg.nodes + (cfg.share == "async")


class RemoteWorker(SyncNode):
    """An async worker in its own process: it talks to the server process (rank ``nodes``)
    with blocking point-to-point messages; what the delays are is what the processes do.

    Tick t: fetch (header FETCH; the server answers (version, this worker's updates so far,
    their staleness sum) and the float32 parameters) if t % n_fetch == 0; gradient on the
    local copy; after ``n_push`` gradients, push (header (PUSH, version)) and their mean.
    The server applies messages in the order it receives them (:func:`serve`). At an
    evaluation round the worker fetches the server's parameters into a second model (not
    counted as traffic) and reports their probabilities."""

    def __init__(self, index: int, cfg: NodeConfig, ds, shard: np.ndarray):
        super().__init__(index, cfg, ds, shard)
        self.version, self.pending = 0, 0
        self.accum: torch.Tensor | None = None
        self.eval_model = build_model(cfg, ds, cfg.seed * 100_003)
        self.counts.update(updates=0, staleness_sum=0)

    def _fetch(self, model) -> None:
        import torch.distributed as dist

        server = self.cfg.nodes
        dist.send(torch.tensor([FETCH, 0, 0], dtype=torch.int64), dst=server)
        reply = torch.empty(3, dtype=torch.int64)
        dist.recv(reply, src=server)
        flat = torch.empty(sum(self.sizes), dtype=getattr(torch, self.cfg.dtype))
        dist.recv(flat, src=server)
        with torch.no_grad():
            for p, part in zip(model.parameters(), torch.split(flat, self.sizes)):
                p.copy_(part.reshape(p.shape))
        self.version = int(reply[0])
        self.counts["updates"], self.counts["staleness_sum"] = int(reply[1]), int(reply[2])

    def tick(self, t: int) -> None:
        import torch.distributed as dist

        cfg = self.cfg
        if t % cfg.n_fetch == 0:
            self._fetch(self.model)
            self.counts["bytes_payload"] += 4 * sum(self.sizes)
        g = self.gradient()
        self.accum = g if self.accum is None else self.accum + g
        self.pending += 1
        if self.pending == cfg.n_push:
            dist.send(torch.tensor([PUSH, self.version, 0], dtype=torch.int64), dst=cfg.nodes)
            dist.send((self.accum / cfg.n_push).contiguous(), dst=cfg.nodes)
            self.accum, self.pending = None, 0
            self.counts["bytes_payload"] += 4 * sum(self.sizes)
            self.counts["broadcasts"] += 1

    def predict_proba(self, x, batch: int = 2000):
        self._fetch(self.eval_model)
        local, self.model = self.model, self.eval_model
        try:
            return super().predict_proba(x, batch)
        finally:
            self.model = local

    def finish(self) -> None:
        import torch.distributed as dist

        dist.send(torch.tensor([DONE, 0, 0], dtype=torch.int64), dst=self.cfg.nodes)

    def state(self) -> dict:
        return {**super().state(), "version": self.version, "accum": self.accum,
                "pending": self.pending}


def serve(cfg: NodeConfig, ds) -> ParameterServer:
    """The parameter server process: answer fetches and apply pushes in the order they are
    received (from any worker) until every worker has said DONE; staleness per update as in
    the simulation (``async_apply`` and ``staleness_lr`` too). Returns the server."""
    import torch.distributed as dist

    server = ParameterServer(cfg, ds)
    n, size = cfg.nodes, sum(server.sizes)
    updates, staleness = [0] * n, [0] * n
    hdr, finished = torch.empty(3, dtype=torch.int64), 0
    while finished < n:
        src = dist.recv(hdr)
        kind, tag = int(hdr[0]), int(hdr[1])
        if not 0 <= src < n or kind not in (FETCH, PUSH, DONE):
            raise RuntimeError(f"parameter server: header {hdr.tolist()} from rank {src}")
        if kind == DONE:
            finished += 1
        elif kind == FETCH:
            reply = torch.tensor([server.version, updates[src], staleness[src]],
                                 dtype=torch.int64)
            dist.send(reply, dst=src)
            dist.send(server.flat().contiguous(), dst=src)
        else:
            g = torch.empty(size, dtype=getattr(torch, cfg.dtype))
            dist.recv(g, src=src)
            server.in_flight.append((0, src, tag, g))
            for worker, tau in server.arrive(0, n):
                updates[worker] += 1
                staleness[worker] += tau
    return server
