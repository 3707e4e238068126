"""``lowbit train teacher``: a trained teacher picks the student's training data
(Lacaille 2018, chapter 3).

The teacher (784-1200-1200-10 ReLU MLP, dropout 0.5 on the hidden layers) is
trained to convergence first: Adam (default settings), batch 32, on the
training split; when the validation accuracy (the last ``val_fraction`` of a
seeded permutation of the training set) has not improved for ``teacher_patience``
epochs, the best weights are restored and the learning rate divided by 10, at
most ``teacher_lr_drops`` times, then training stops (with Adam at 1e-3 alone a
Fashion-MNIST teacher plateaued at 87.3 % test accuracy, below the 32-32
student's 87.4 %: no teacher at all); it is cached in
``teacher_dir`` and reused by every student run on the same data and seed.

The student (784-32-32-10 ReLU MLP, no dropout; ``format`` makes its arithmetic
emulated) trains with Adam, batch 32, in one of these ways (``select``):

- ``none``: the baseline, the student alone on its minibatches and true labels;
- ``ce`` / ``euclidean``: the student sends its predictions p_s on each
  minibatch; the teacher pushes the minibatch with p_s and its own predictions
  p_t onto a stack; when the stack holds ``stack`` minibatches it scores every
  sample's difficulty, the cross-entropy -sum_c p_t log p_s or the Euclidean
  distance ||p_t - p_s||_2, and sends back the ``batch`` highest-scoring
  samples (ties: the earlier sample) with ``targets`` = ``true`` labels or the
  teacher's ``soft`` labels (softmax of its logits / ``temperature``); the
  student trains on them and the stack is emptied;
- ``random``: like the above but the teacher sends ``batch`` samples drawn
  uniformly from the stack.

Counts, in minibatches: student backward passes (= parameter updates), student
forward passes (the predictions sent, plus the training forward), and teacher
forward passes. Every ``eval_every`` backward passes the student is evaluated
on the validation and test sets; the run stops after ``max_backward`` backward
passes or ``patience`` evaluations without a better validation accuracy. The
summary reports the test accuracy of the best-validation student and the
backward passes at which it was reached.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from lowbit.integrations.data import Dataset, load_dataset
from lowbit.integrations.runs import (
    load_checkpoint,
    previous,
    save_checkpoint,
    torch_load,
    write_run,
    write_text,
)
from lowbit.integrations.torch import EmulationSpec, swap_layers

SELECTIONS = ("none", "ce", "euclidean", "random")


@dataclass
class TeacherConfig:
    """A student run (and the teacher it uses); saved in summary.json."""

    select: str = "ce"
    stack: int = 2
    targets: str = "soft"
    temperature: float = 1.0
    format: str = "float"
    batch: int = 32
    max_backward: int = 40_000
    eval_every: int = 250
    patience: int = 40
    val_fraction: float = 1 / 6
    teacher_hidden: int = 1200
    teacher_dropout: float = 0.5
    teacher_patience: int = 5
    teacher_max_epochs: int = 60
    teacher_lr_drops: int = 2
    student_hidden: int = 32
    data: str = "digits"
    data_dir: str | None = None
    seed: int = 0
    teacher_dir: str = "results/teacher-models"
    out: str = "results/teacher"

    def check(self) -> None:
        if self.select not in SELECTIONS:
            raise ValueError(f"select must be one of {SELECTIONS}, got {self.select!r}")
        if self.targets not in ("soft", "true"):
            raise ValueError(f"targets must be 'soft' or 'true', got {self.targets!r}")
        if self.stack < 1 or (self.select != "none" and self.stack < 1):
            raise ValueError(f"stack must be >= 1 minibatch, got {self.stack}")
        if self.temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {self.temperature}")
        if self.teacher_lr_drops < 0:
            raise ValueError(f"teacher_lr_drops must be >= 0, got {self.teacher_lr_drops}")
        if not 0 < self.val_fraction < 1:
            raise ValueError(f"val_fraction must be in (0, 1), got {self.val_fraction}")
        for name in ("batch", "max_backward", "eval_every", "patience", "student_hidden",
                     "teacher_hidden", "teacher_patience", "teacher_max_epochs"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")


@dataclass(frozen=True)
class Split:
    """Train / validation / test arrays (the validation set is cut from train)."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


def split(ds: Dataset, val_fraction: float, seed: int) -> Split:
    """A seeded permutation of the training set; its last ``val_fraction`` validates."""
    perm = np.random.default_rng([seed, 31]).permutation(len(ds.y_train))
    n_val = int(round(len(perm) * val_fraction))
    tr, va = np.sort(perm[:-n_val]), np.sort(perm[-n_val:])
    return Split(ds.x_train[tr], ds.y_train[tr], ds.x_train[va], ds.y_train[va],
                 ds.x_test, ds.y_test)


def mlp(sizes: list[int], dropout: float = 0.0) -> nn.Sequential:
    """A ReLU MLP with layer sizes ``sizes`` (dropout after each hidden activation when > 0),
    default PyTorch initialization."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(nn.ReLU())
            if dropout:
                layers.append(nn.Dropout(dropout))
    return nn.Sequential(*layers)


def predict(model: nn.Module, x: np.ndarray, batch: int = 2000) -> np.ndarray:
    """Logits (float64) of ``model`` in eval mode."""
    model.eval()
    with torch.no_grad():
        return torch.cat([model(torch.from_numpy(x[i:i + batch])).double()
                          for i in range(0, len(x), batch)]).numpy()


def accuracy(model: nn.Module, x: np.ndarray, y: np.ndarray) -> float:
    """Fraction of rows of ``x`` whose argmax prediction equals ``y``."""
    return float((predict(model, x).argmax(1) == y).mean())


# ------------------------------------------------------------------ teacher ---

def train_teacher(cfg: TeacherConfig, data: Split, ds: Dataset, progress: bool = True,
                  max_epochs: int | None = None) -> nn.Module | None:
    """The teacher for ``cfg``'s data and seed: loaded from ``teacher_dir`` if it
    was trained before with the same settings, else trained with early stopping.

    Every epoch checkpoints model, optimizer, both RNG streams and the early-stopping
    state (``teacher-checkpoint.pt``), so an interrupted training resumes on the
    identical trajectory. ``max_epochs`` stops this call after that many more epochs
    and returns None when the teacher is not finished (for tests and time-boxed runs)."""
    from tqdm import tqdm

    key = {"data": cfg.data, "seed": cfg.seed, "hidden": cfg.teacher_hidden,
           "dropout": cfg.teacher_dropout, "patience": cfg.teacher_patience,
           "max_epochs": cfg.teacher_max_epochs, "val_fraction": cfg.val_fraction,
           "batch": cfg.batch, "lr_drops": cfg.teacher_lr_drops}
    d = Path(cfg.teacher_dir) / f"{cfg.data}-seed{cfg.seed}"
    model = mlp([ds.n_features, cfg.teacher_hidden, cfg.teacher_hidden, ds.n_classes],
                cfg.teacher_dropout)
    st = load_checkpoint(d / "teacher.pt", torch_load)
    if st is not None:
        if st["key"] == key:
            model.load_state_dict(st["model"])
            return model
    d.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(cfg.seed * 7 + 1)
    model = mlp([ds.n_features, cfg.teacher_hidden, cfg.teacher_hidden, ds.n_classes],
                cfg.teacher_dropout)
    opt = torch.optim.Adam(model.parameters())
    rng = np.random.default_rng([cfg.seed, 41])
    state = {"epoch": 0, "best": -1.0, "best_state": None, "since": 0, "drops": 0, "log": [],
             "done": False}
    ckpt = d / "teacher-checkpoint.pt"
    saved = load_checkpoint(ckpt, torch_load)
    if saved is not None:
        if saved["key"] == key:
            model.load_state_dict(saved["model"])
            opt.load_state_dict(saved["opt"])
            rng.bit_generator.state = saved["numpy_rng"]
            torch.set_rng_state(saved["torch_rng"])
            state = saved["state"]
    stop = cfg.teacher_max_epochs if max_epochs is None else min(
        cfg.teacher_max_epochs, state["epoch"] + max_epochs)
    bar = tqdm(range(state["epoch"], stop), disable=not progress, desc="teacher", unit="epoch",
               initial=state["epoch"], total=cfg.teacher_max_epochs)
    for epoch in bar:
        if state["done"]:
            break
        model.train()
        order = rng.permutation(len(data.y_train))
        for i in range(0, len(order) - cfg.batch + 1, cfg.batch):
            idx = order[i:i + cfg.batch]
            opt.zero_grad()
            F.cross_entropy(model(torch.from_numpy(data.x_train[idx])),
                            torch.from_numpy(data.y_train[idx])).backward()
            opt.step()
        _early_stopping_step(state, model, opt, cfg, accuracy(model, data.x_val, data.y_val))
        state["epoch"] = epoch + 1
        bar.set_postfix(val=f"{state['log'][-1]['val_acc']:.4f}", best=f"{state['best']:.4f}")
        saved = {"key": key, "model": model.state_dict(), "opt": opt.state_dict(),
                 "numpy_rng": rng.bit_generator.state, "torch_rng": torch.get_rng_state(),
                 "state": state}
        save_checkpoint(ckpt, lambda fh: torch.save(saved, fh))
    if not state["done"] and state["epoch"] < cfg.teacher_max_epochs:
        return None
    model.load_state_dict(state["best_state"])
    test = accuracy(model, data.x_test, data.y_test)
    best = {"key": key, "model": state["best_state"]}
    save_checkpoint(d / "teacher.pt", lambda fh: torch.save(best, fh))
    write_text(d / "teacher.json", json.dumps({"key": key, "best_val_acc": state["best"],
                                               "test_acc": test, "epochs": state["log"]},
                                              indent=1))
    for done in (ckpt, previous(ckpt)):
        done.unlink(missing_ok=True)
    return model


def _early_stopping_step(state: dict, model: nn.Module, opt, cfg: TeacherConfig,
                         val: float) -> None:
    """Log ``val``; keep the best weights; after ``teacher_patience`` epochs without a
    better validation accuracy go back to the best weights with the learning rate / 10,
    ``teacher_lr_drops`` times, then mark the training done."""
    state["log"].append({"epoch": state["epoch"] + 1, "val_acc": val,
                         "lr": opt.param_groups[0]["lr"]})
    if val > state["best"]:
        state["best"], state["since"] = val, 0
        state["best_state"] = {k: v.clone() for k, v in model.state_dict().items()}
        return
    state["since"] += 1
    if state["since"] < cfg.teacher_patience:
        return
    if state["drops"] == cfg.teacher_lr_drops:
        state["done"] = True
        return
    state["drops"], state["since"] = state["drops"] + 1, 0
    model.load_state_dict(state["best_state"])
    for group in opt.param_groups:
        group["lr"] /= 10


# ------------------------------------------------------------------ student ---

def difficulty(p_teacher: np.ndarray, p_student: np.ndarray, measure: str) -> np.ndarray:
    """Per-sample distance between the teacher's and the student's predictions:
    ``"ce"``: -sum_c p_t log p_s (nats); ``"euclidean"``: ||p_t - p_s||_2."""
    if measure == "ce":
        return -(p_teacher * np.log(np.clip(p_student, 1e-300, None))).sum(1)
    if measure == "euclidean":
        return np.sqrt(((p_teacher - p_student) ** 2).sum(1))
    raise ValueError(f"difficulty measure must be 'ce' or 'euclidean', got {measure!r}")


def select_hardest(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k highest scores, highest first (ties: lower index first)."""
    if not 0 < k <= len(scores):
        raise ValueError(f"cannot select {k} of {len(scores)} samples")
    return np.argsort(-np.asarray(scores), kind="stable")[:k]


def softmax(z: np.ndarray, t: float = 1.0) -> np.ndarray:
    """Row-wise softmax of z / t (numerically stable: the row maximum is subtracted first)."""
    z = z / t
    e = np.exp(z - z.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def build_student(cfg: TeacherConfig, ds: Dataset) -> nn.Module:
    """The student MLP, seeded from ``cfg.seed``; its layers swapped for emulated ones when
    ``cfg.format`` is not float."""
    torch.manual_seed(cfg.seed * 7 + 2)
    model = mlp([ds.n_features, cfg.student_hidden, cfg.student_hidden, ds.n_classes])
    if cfg.format != "float":
        swap_layers(model, EmulationSpec.parse(cfg.format), seed=cfg.seed, cast_weights=False)
    return model


class Stream:
    """The student's minibatches: seeded shuffled passes over the training split."""

    def __init__(self, n: int, batch: int, seed: int):
        self.n, self.batch, self.seed = n, batch, seed
        self.epoch, self.cursor = 0, 0
        self.order = self._order()

    def _order(self) -> np.ndarray:
        return np.random.default_rng([self.seed, 43, self.epoch]).permutation(self.n)

    def next(self) -> np.ndarray:
        if self.cursor + self.batch > self.n:
            self.epoch, self.cursor = self.epoch + 1, 0
            self.order = self._order()
        idx = self.order[self.cursor:self.cursor + self.batch]
        self.cursor += self.batch
        return idx


def train(cfg: TeacherConfig, progress: bool = True) -> dict:
    """Train the student (and the teacher if needed); returns the summary."""
    from tqdm import tqdm

    cfg.check()
    ds = load_dataset(cfg.data, cfg.data_dir)
    data = split(ds, cfg.val_fraction, cfg.seed)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    teacher_logits = None
    if cfg.select != "none":
        teacher = train_teacher(cfg, data, ds, progress)
        teacher_logits = predict(teacher, data.x_train)  # fixed: one pass for all samples
    student = build_student(cfg, ds)
    opt = torch.optim.Adam(student.parameters())
    stream = Stream(len(data.y_train), cfg.batch, cfg.seed)
    pick = np.random.default_rng([cfg.seed, 47])
    counts = {"backward": 0, "student_forward": 0, "teacher_forward": 0}
    metrics: list[dict] = []
    best_val, since, t0 = -1.0, 0, time.perf_counter()
    bar = tqdm(total=cfg.max_backward, disable=not progress, unit="update",
               desc=f"student {cfg.select}/{cfg.stack}/{cfg.targets}")
    while counts["backward"] < cfg.max_backward:
        if cfg.select == "none":
            idx = stream.next()
            target = torch.from_numpy(data.y_train[idx])
        else:
            stack = [stream.next() for _ in range(cfg.stack)]
            idx_all = np.concatenate(stack)
            p_s = softmax(predict(student, data.x_train[idx_all]))
            counts["student_forward"] += cfg.stack
            counts["teacher_forward"] += cfg.stack
            if cfg.select == "random":
                chosen = np.sort(pick.choice(len(idx_all), cfg.batch, replace=False))
            else:
                p_t = softmax(teacher_logits[idx_all])
                chosen = select_hardest(difficulty(p_t, p_s, cfg.select), cfg.batch)
            idx = idx_all[chosen]
            if cfg.targets == "true":
                target = torch.from_numpy(data.y_train[idx])
            else:
                target = torch.from_numpy(softmax(teacher_logits[idx], cfg.temperature)).float()
        student.train()
        opt.zero_grad()
        logits = student(torch.from_numpy(data.x_train[idx]))
        if target.dtype == torch.int64:
            loss = F.cross_entropy(logits, target)
        else:
            loss = -(target * torch.log_softmax(logits, 1)).sum(1).mean()
        loss.backward()
        opt.step()
        counts["backward"] += 1
        counts["student_forward"] += 1
        bar.update(1)
        if counts["backward"] % cfg.eval_every == 0 or counts["backward"] == cfg.max_backward:
            val = accuracy(student, data.x_val, data.y_val)
            test = accuracy(student, data.x_test, data.y_test)
            metrics.append({**counts, "loss": loss.item(), "val_acc": val, "test_acc": test,
                            "seconds": time.perf_counter() - t0})
            bar.set_postfix(val=f"{val:.4f}")
            if val > best_val:
                best_val, since = val, 0
            else:
                since += 1
            if since >= cfg.patience:
                break
    bar.close()
    s = summary(cfg, metrics)
    write_run(out, metrics, s, "backward", {"validation": "val_acc", "test": "test_acc"},
              f"student {cfg.select}, stack {cfg.stack}, {cfg.targets} labels ({cfg.data})",
              "student backward passes")
    return s


def summary(cfg: TeacherConfig, metrics: list[dict]) -> dict:
    """Best-validation test accuracy and when it was reached."""
    best = max(metrics, key=lambda m: (m["val_acc"], -m["backward"]))
    return {"config": asdict(cfg), "done": True, "best_val_acc": best["val_acc"],
            "test_acc": best["test_acc"], "backward_at_best": int(best["backward"]),
            "forward_at_best": int(best["student_forward"]),
            "teacher_forward_at_best": int(best["teacher_forward"]),
            "backward_done": int(metrics[-1]["backward"]), "seconds": metrics[-1]["seconds"]}
