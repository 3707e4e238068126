"""``lowbit train language``: two agents learn a bit language about what they see
(Lacaille 2018, chapter 4).

Observations: both agents see the same image through their own fixed random
mask, drawn once per agent: each pixel is inverted (x -> 1 - x) with
probability ``noise``. Note that a fixed mask is an invertible per-pixel map,
so each view keeps all the image's information; the views differ, they do not
hide anything.

Each agent has a message generator - two ReLU layers of ``hidden`` units (the
last one is the agent's feature layer h) and ``length`` heads of two units (bit
0, bit 1) - and a discriminator D(observation, message bits) (one ReLU layer).
Messages are Gumbel-softmax samples of the heads (temperature ``tau``; the
soft sample's bit-1 component is the bit during training; at evaluation the
argmax bit, exactly 0 or 1). ``tau`` starts at ``tau_start`` and is multiplied
by ``tau_decay`` every ``tau_every`` steps, never below ``tau_min``.

Language objective (both agents, the mutual information between an agent's
observation and its message): D classifies (o_i, m_i) pairs from the joint
distribution as real and (o_i, m_{i+1}) pairs (messages rolled by one in the
minibatch: the product of the marginals) as fake, with the vanilla GAN loss;
the generator minimises the same loss (a max-max game: both want the pairs
told apart). Communication levels (agent A the teacher, B the student; q the
bit probabilities of an agent's own heads, s the other's message bits, the
cross-entropy -mean[s log q + (1 - s) log(1 - q)] weighted by ``weight``):

- ``none``: the language objective only;
- ``receive``: B also predicts A's message (s_A detached: no gradient to A);
- ``feedback``: the same, but B's loss flows back into A's generator;
- ``both``: additionally A predicts B's message, its loss flowing into B.

Evaluation: a linear classifier on B's feature layer h (detached: its training
does not touch the agents) learns the labels alongside; every ``eval_every``
steps its validation and test accuracies are recorded, and the summary reports
the test accuracy at the best validation accuracy. ``frozen`` is the control that
trains the probe alone on the agents' initial (random) features. ``format`` runs the agents'
layers (generators and discriminators) at emulated precision; the probe stays
float32. ``loss_scale`` multiplies the loss before the backward pass and divides
the gradients by it before the Adam step (static loss scaling, Micikevicius et al.
2018): with gradients in a fixed-point format, the weighted communication loss's
gradients (weight 0.01, over a batch of 64) fall below half an ulp of Fixed(16, 10)
and round to zero unless scaled up.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from lowbit.integrations.data import load_dataset
from lowbit.integrations.programs.teacher.train import split
from lowbit.integrations.runs import write_run
from lowbit.integrations.torch import EmulationSpec, swap_layers

LEVELS = ("none", "receive", "feedback", "both")
DEFAULT_WEIGHT = {"none": 0.0, "receive": 0.01, "feedback": 0.005, "both": 0.005}


@dataclass
class LanguageConfig:
    """A two-agent run (saved in summary.json)."""

    level: str = "none"
    length: int = 32
    weight: float = -1.0  # -1: the thesis' weight for the level (0.01 one-way, 0.005 two-way)
    noise: float = 0.2
    hidden: int = 256
    tau_start: float = 1.0
    tau_decay: float = 0.9
    tau_every: int = 500
    tau_min: float = 0.5
    batch: int = 64
    lr: float = 1e-3
    steps: int = 10_000
    eval_every: int = 250
    format: str = "float"
    loss_scale: float = 1.0  # static loss scaling for emulated gradients (1: none)
    frozen: bool = False  # a control: the agents keep their initial weights, the probe trains
    val_fraction: float = 1 / 6
    data: str = "digits"
    data_dir: str | None = None
    seed: int = 0
    out: str = "results/language"

    def check(self) -> None:
        if self.level not in LEVELS:
            raise ValueError(f"level must be one of {LEVELS}, got {self.level!r}")
        if not 0 <= self.noise <= 1:
            raise ValueError(f"noise must be in [0, 1], got {self.noise}")
        if not 0 < self.tau_min <= self.tau_start:
            raise ValueError("temperatures must satisfy 0 < tau_min <= tau_start")
        if not (np.isfinite(self.loss_scale) and self.loss_scale > 0):
            raise ValueError(f"loss_scale must be a positive number, got {self.loss_scale}")
        if not 0 < self.tau_decay <= 1:
            raise ValueError(f"tau_decay must be in (0, 1], got {self.tau_decay}")
        for name in ("length", "hidden", "batch", "steps", "eval_every", "tau_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")

    @property
    def loss_weight(self) -> float:
        return DEFAULT_WEIGHT[self.level] if self.weight < 0 else self.weight

    def tau(self, step: int) -> float:
        """The Gumbel-softmax temperature at ``step``."""
        return max(self.tau_min, self.tau_start * self.tau_decay ** (step // self.tau_every))


def mask(n_features: int, noise: float, seed: int) -> np.ndarray:
    """An agent's fixed mask: 1 where the pixel is inverted (probability ``noise``)."""
    return (np.random.default_rng([seed, 53]).random(n_features) < noise).astype(np.float32)


def observe(x: np.ndarray, m: np.ndarray) -> np.ndarray:
    """x with the masked pixels inverted: x (1 - m) + (1 - x) m."""
    return x * (1 - m) + (1 - x) * m


def gumbel_bits(logits: torch.Tensor, tau: float, hard: bool = False) -> torch.Tensor:
    """Bits from (..., L, 2) head logits: the bit-1 component of a Gumbel-softmax
    sample at temperature ``tau`` (differentiable), or with ``hard`` the argmax
    bits (0.0 / 1.0, no noise, no gradient)."""
    if hard:
        return logits.argmax(-1).to(logits.dtype)
    return F.gumbel_softmax(logits, tau=tau, hard=False, dim=-1)[..., 1]


class Agent(nn.Module):
    """A message generator (features h, bit heads) and its discriminator."""

    def __init__(self, n_in: int, hidden: int, length: int):
        super().__init__()
        self.length = length
        self.features = nn.Sequential(nn.Linear(n_in, hidden), nn.ReLU(),
                                      nn.Linear(hidden, hidden), nn.ReLU())
        self.heads = nn.Linear(hidden, 2 * length)
        self.disc = nn.Sequential(nn.Linear(n_in + length, hidden), nn.ReLU(), nn.Linear(hidden, 1))

    def forward(self, o: torch.Tensor):
        """(features h, head logits of shape (batch, length, 2))."""
        h = self.features(o)
        return h, self.heads(h).reshape(len(o), self.length, 2)


def mi_loss(disc: nn.Module, o: torch.Tensor, bits: torch.Tensor):
    """The GAN loss of telling (o_i, m_i) from (o_i, m_{i+1}); and D's accuracy."""
    joint = disc(torch.cat([o, bits], 1))
    marginal = disc(torch.cat([o, bits.roll(1, 0)], 1))
    loss = (F.binary_cross_entropy_with_logits(joint, torch.ones_like(joint))
            + F.binary_cross_entropy_with_logits(marginal, torch.zeros_like(marginal)))
    acc = 0.5 * ((joint > 0).float().mean() + (marginal <= 0).float().mean())
    return loss, float(acc)


def bit_cross_entropy(logits: torch.Tensor, target_bits: torch.Tensor) -> torch.Tensor:
    """-mean[s log q + (1 - s) log(1 - q)], q = P(bit = 1) of the heads."""
    logq = torch.log_softmax(logits, -1)
    return -(target_bits * logq[..., 1] + (1 - target_bits) * logq[..., 0]).mean()


def communication_loss(level: str, logits_a, logits_b, bits_a, bits_b) -> torch.Tensor:
    """The message cross-entropies of a communication level (A teacher, B student):
    ``receive``: B predicts A's bits, no gradient into A; ``feedback``: the same
    with the gradient flowing into A; ``both``: also A predicts B's bits."""
    if level == "none":
        return torch.zeros(())
    loss = bit_cross_entropy(logits_b, bits_a.detach() if level == "receive" else bits_a)
    if level == "both":
        loss = loss + bit_cross_entropy(logits_a, bits_b)
    return loss


def train(cfg: LanguageConfig, progress: bool = True) -> dict:
    """Train both agents and the probe; write the run's files; return the summary."""
    from tqdm import tqdm

    cfg.check()
    ds = load_dataset(cfg.data, cfg.data_dir)
    data = split(ds, cfg.val_fraction, cfg.seed)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    masks = [mask(ds.n_features, cfg.noise, cfg.seed * 2 + k) for k in range(2)]
    views = {name: [torch.from_numpy(observe(x, m)) for m in masks]
             for name, x in (("train", data.x_train), ("val", data.x_val), ("test", data.x_test))}
    torch.manual_seed(cfg.seed)
    agents = [Agent(ds.n_features, cfg.hidden, cfg.length) for _ in range(2)]
    if cfg.format != "float":
        spec = EmulationSpec.parse(cfg.format)
        for k, a in enumerate(agents):
            swap_layers(a, spec, seed=cfg.seed * 100 + 10 * k, cast_weights=False)
    probe = nn.Linear(cfg.hidden, ds.n_classes)
    opt = torch.optim.Adam([p for a in agents for p in a.parameters()], lr=cfg.lr)
    probe_opt = torch.optim.Adam(probe.parameters(), lr=cfg.lr)
    rng = np.random.default_rng([cfg.seed, 59])
    y_train = torch.from_numpy(data.y_train)
    metrics: list[dict] = []
    t0 = time.perf_counter()
    lam = cfg.loss_weight
    bar = tqdm(range(1, cfg.steps + 1), disable=not progress, unit="step",
               desc=f"language {cfg.level}")
    for step in bar:
        idx = torch.from_numpy(rng.choice(len(data.y_train), cfg.batch, replace=False))
        tau = cfg.tau(step - 1)
        for a in agents:
            a.train()
        obs = [v[idx] for v in views["train"]]
        outs = [a(o) for a, o in zip(agents, obs)]
        bits = [gumbel_bits(lg, tau) for _, lg in outs]
        losses = [mi_loss(a.disc, o, b) for a, o, b in zip(agents, obs, bits)]
        loss = (losses[0][0] + losses[1][0]
                + lam * communication_loss(cfg.level, outs[0][1], outs[1][1], bits[0], bits[1]))
        if not cfg.frozen:
            opt.zero_grad()
            (loss * cfg.loss_scale).backward()
            if cfg.loss_scale != 1.0:
                for group in opt.param_groups:
                    for prm in group["params"]:
                        if prm.grad is not None:
                            prm.grad.div_(cfg.loss_scale)
            opt.step()
        probe_opt.zero_grad()
        F.cross_entropy(probe(outs[1][0].detach()), y_train[idx]).backward()
        probe_opt.step()
        if step % cfg.eval_every == 0 or step == cfg.steps:
            row = {"step": step, "tau": tau, "loss": loss.item(),
                   "disc_acc_a": losses[0][1], "disc_acc_b": losses[1][1],
                   **evaluate(agents, probe, views, data), "seconds": time.perf_counter() - t0}
            metrics.append(row)
            bar.set_postfix(val=f"{row['val_acc']:.4f}", agree=f"{row['bit_agreement']:.2f}")
    s = summary(cfg, metrics)
    write_run(out, metrics, s, "step", {"validation (probe on B)": "val_acc",
                                        "test (probe on B)": "test_acc"},
              f"two agents, communication '{cfg.level}' ({cfg.data}, {cfg.format})",
              "training steps")
    return s


def evaluate(agents, probe, views, data) -> dict:
    """The probe's accuracies on B's features and how often B's own (hard) bits
    equal A's on the validation images."""
    with torch.no_grad():
        for a in agents:
            a.eval()
        h_val, lg_b = agents[1](views["val"][1])
        _, lg_a = agents[0](views["val"][0])
        h_test, _ = agents[1](views["test"][1])
        val = float((probe(h_val).argmax(1).numpy() == data.y_val).mean())
        test = float((probe(h_test).argmax(1).numpy() == data.y_test).mean())
        agree = float((gumbel_bits(lg_a, 1, hard=True) == gumbel_bits(lg_b, 1, hard=True))
                      .float().mean())
    return {"val_acc": val, "test_acc": test, "bit_agreement": agree}


def summary(cfg: LanguageConfig, metrics: list[dict]) -> dict:
    """The run's summary: test accuracy at the best validation accuracy (earliest step on ties),
    the step of it, final test accuracy and bit agreement, wall time, and whether all steps
    were done."""
    best = max(metrics, key=lambda m: (m["val_acc"], -m["step"]))
    return {"config": asdict(cfg), "done": metrics[-1]["step"] == cfg.steps,
            "best_val_acc": best["val_acc"], "test_acc": best["test_acc"],
            "step_at_best": int(best["step"]), "final_test_acc": metrics[-1]["test_acc"],
            "final_bit_agreement": metrics[-1]["bit_agreement"],
            "seconds": metrics[-1]["seconds"]}
