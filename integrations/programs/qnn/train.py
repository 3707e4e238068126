"""``lowbit train qnn``: quantized networks trained at emulated precision.

Recipes (``--format``), after the papers:

- ``float``: the same network in float32 (reference);
- ``binaryconnect`` (Courbariaux et al. 2015): binary weights (sign, no scale),
  float activations, latent float weights clipped to [-1, 1], batch norm;
- ``binarynet`` (Hubara/Courbariaux et al. 2016): binary weights and binary
  activations (sign after batch norm and hardtanh, clipped straight-through
  estimator), 8-bit fixed-point input pixels, latent weights clipped to [-1, 1];
- ``ternary`` (Li et al., TWN 2016): ternary weights with threshold
  0.7 * mean|w| and scale mean|w| over the kept weights, float activations;
- ``fixed2``, ``fixed4``, ``fixed8`` (k-bit QNN): weights in Fixed(k, k-1)
  ([-1, 1)), activations clipped to [0, 1] and quantized to k bits
  (ufixed k.k, clipped STE), exact accumulation, latent weights clipped;
- ``kbit-float``: the k-bit recipes' network and training (activations clipped
  to [0, 1], latent weights initialised in and clipped to [-1, 1]) without any
  quantization: it separates the cost of the bits from the cost of the recipe;
- mixed-precision training (Micikevicius et al. 2018): the ``float`` recipe's network
  and Adam on fp32 master weights (latent float weights), every matmul emulated:
  ``mp-fp16`` (fp16 weights, activations and gradients, fp32 accumulation, dynamic loss
  scaling), ``mp-bf16`` (bf16, no loss scaling), ``mp-fp8`` (E4M3 weights and
  activations, E5M2 gradients, bf16 matmul outputs, fp32 accumulation), ``mp-fp8-hopper``
  (the same on the Hopper FP8 accumulator model, no promotion) and
  ``mp-fp8-hopper-promote`` (with promotion to fp32 every 128 products), ``mp-fp8-delayed``
  (saturating E4M3 / E5M2 casts at per-tensor delayed power-of-two scales from a 16-step amax
  history, bf16 matmul outputs and weight gradients, as FP8 training recipes run);
  block formats:
  ``mp-mxfp8`` (MXFP8 weights and activations, blocks of 32 along the contraction axis,
  E5M2 gradients, bf16 outputs, fp32 accumulation), ``mp-mxfp8-hopper[-promote]`` (on
  the Hopper model), ``mp-mxfp4`` (MXFP4 weights, MXFP8 activations) and ``mp-nvfp4``
  (NVFP4 weights and activations); block formats in all three matmuls, as MX training
  runs (each matmul blocks both operands along its own contraction axis, docs/floats.md):
  ``mp-mxfp8-train`` (MXFP8 weights and activations, MXFP8 E5M2 gradients, bf16 outputs
  and weight gradients, Rouhani et al. 2023), ``mp-nvfp4-train`` (NVFP4 weights in
  16x16 tiles, NVFP4 activations and gradients, bf16 outputs and weight gradients) and
  ``mp-nvfp4-train-sr`` (the same, the gradients rounded stochastically with 8 random bits,
  as NVIDIA's NVFP4 recipe does);
- the LNS table of the seed talk, a plain ReLU MLP trained with SGD:
  ``lns-float`` (float32), ``lns-matmul`` (every forward and backward matmul in
  LNS, weights stored and updated in float), ``lns-everywhere`` (also weight
  storage and update in LNS), ``lns-kahan`` (also Kahan-compensated accumulation
  and updates); ``--lns FORMAT`` picks the LNS format (default lns5.10).

Any other ``--format`` is an emulation spec (``lowbit.integrations.torch.SPEC_GRAMMAR``)
applied to every layer, with latent float weights.

Loss scaling (``--loss-scale none|dynamic|S``, :mod:`lowbit.integrations.torch.loss_scaling`)
is an option of every recipe; its default is ``dynamic`` for ``mp-fp16``, ``none``
otherwise. Steps whose gradients overflowed are skipped and counted (``skipped``).

Every run writes ``metrics.csv`` (one row per epoch), ``curve.png``,
``summary.json`` and ``checkpoint.pt`` (model, optimizer, epoch, metrics) into
``--out``; a rerun resumes from the checkpoint and reproduces the uninterrupted
run bit for bit (the batch order of each epoch derives from the seed and the
epoch; stochastic rounding counts steps in checkpointed buffers).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from lowbit.integrations.data import Dataset, load_dataset
from lowbit.integrations.programs.qnn import (  # noqa: F401
    LNS_RECIPES,
    MP_RECIPES,
    QNN_RECIPES,
    RECIPES,
)
from lowbit.integrations.runs import load_checkpoint, save_checkpoint, torch_load, write_run
from lowbit.integrations.torch import EmulationSpec, QuantAct, swap_layers
from lowbit.integrations.torch.loss_scaling import LossScaler
from lowbit.integrations.torch.optim import EmulatedSGD
from lowbit.integrations.torch.spec import ROLES
from lowbit.numerics import LNS, parse_format


@dataclass
class TrainConfig:
    """Everything that defines a run (saved in summary.json)."""

    recipe: str = "float"
    data: str = "digits"
    data_dir: str | None = None
    arch: str = "mlp"
    hidden: tuple[int, ...] = ()
    epochs: int = 10
    batch: int = 100
    lr: float = 0.0
    lr_decay: float = 1.0
    momentum: float = 0.9
    seed: int = 0
    lns: str = "lns5.10"
    out: str = "results/qnn"
    extra: dict = field(default_factory=dict)
    loss_scale: str = ""  # none, dynamic or a power of two; "": the recipe's default

    def resolved(self, ds: Dataset) -> "TrainConfig":
        """Defaults that depend on the dataset and recipe."""
        c = TrainConfig(**asdict(self))
        if not c.hidden:
            big = ds.n_features > 100
            if lns_network(c.recipe):
                c.hidden = (256, 256) if big else (128, 128)
            else:
                c.hidden = (1024, 1024) if big else (256, 256)
        c.hidden = tuple(c.hidden)
        if not c.lr:
            c.lr = 0.05 if lns_network(c.recipe) else 0.001
        if not c.loss_scale:
            c.loss_scale = "dynamic" if c.recipe == "mp-fp16" else "none"
        return c


# ----------------------------------------------------------------- models ---

class Clip01(nn.Module):
    """Activations clipped to [0, 1] (k-bit QNN), before their quantizer."""

    def forward(self, x):
        return x.clamp(0.0, 1.0)


def _activation(recipe: str, k: int | None, seed: int) -> list[nn.Module]:
    if recipe == "binarynet":
        return [nn.Hardtanh(), QuantAct("binary", ste="clipped", seed=seed)]
    if k is not None:
        return [Clip01(), QuantAct(f"ufixed{k}.{k}", ste="clipped", seed=seed)]
    if recipe == "kbit-float":
        return [Clip01()]
    return [nn.ReLU()]


def lns_network(recipe: str) -> bool:
    """Whether ``recipe`` trains the LNS table's network (ReLU MLP, plain SGD, no batch
    norm): an LNS recipe, or a raw emulation spec whose every format is LNS."""
    if recipe in LNS_RECIPES:
        return True
    if recipe in QNN_RECIPES or recipe in MP_RECIPES or recipe == "kbit-float":
        return False
    spec = EmulationSpec.parse(recipe)
    formats = [getattr(spec, role) for role in ROLES.values()]
    formats = [f for f in formats if f is not None]
    return bool(formats) and all(isinstance(f, LNS) for f in formats)


def _bits(recipe: str) -> int | None:
    return int(recipe[len("fixed"):]) if recipe in ("fixed2", "fixed4", "fixed8") else None


def _kbit_network(recipe: str) -> bool:
    """The k-bit recipes' latent weights: initialised in and clipped to [-1, 1]."""
    return _bits(recipe) is not None or recipe == "kbit-float"


def build_model(cfg: TrainConfig, ds: Dataset) -> nn.Module:
    """The float network of a recipe (layers swapped to emulated twins afterwards)."""
    torch.manual_seed(cfg.seed)
    k = _bits(cfg.recipe)
    bn = cfg.recipe in QNN_RECIPES or cfg.recipe in MP_RECIPES
    layers: list[nn.Module] = []
    if cfg.recipe == "binarynet" or k is not None:
        layers.append(QuantAct("ufixed8.8", seed=cfg.seed))  # the input pixels, 8 bits
    if cfg.arch == "mlp":
        sizes = (ds.n_features,) + tuple(cfg.hidden)
        for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
            layers.append(nn.Linear(a, b))
            if bn:
                layers.append(nn.BatchNorm1d(b))
            layers += _activation(cfg.recipe, k, cfg.seed + 100 + i)
        layers.append(nn.Linear(sizes[-1], ds.n_classes))
        if bn:
            layers.append(nn.BatchNorm1d(ds.n_classes))
        return nn.Sequential(*layers)
    if cfg.arch == "cnn":
        c, h, w = ds.image_shape
        ch = (16, 32) if h < 16 else (32, 64)
        layers.append(nn.Unflatten(1, (c, h, w)))
        prev = c
        for i, cout in enumerate(ch):
            layers += [nn.Conv2d(prev, cout, 3, padding=1)]
            if bn:
                layers.append(nn.BatchNorm2d(cout))
            layers += _activation(cfg.recipe, k, cfg.seed + 100 + i)
            layers.append(nn.MaxPool2d(2))
            prev = cout
        layers.append(nn.Flatten())
        flat = prev * (h // 4) * (w // 4)
        layers.append(nn.Linear(flat, ds.n_classes))
        if bn:
            layers.append(nn.BatchNorm1d(ds.n_classes))
        return nn.Sequential(*layers)
    raise ValueError(f"--arch must be 'mlp' or 'cnn', got {cfg.arch!r}")


MP_SPECS = {
    "mp-fp16": "fp16",
    "mp-bf16": "bf16",
    "mp-fp8": "w=e4m3,a=e4m3,o=bf16,gi=e5m2,gw=e5m2",
    "mp-fp8-hopper": "w=e4m3,a=e4m3,o=bf16,gi=e5m2,gw=e5m2,acc=hopper_fp8",
    "mp-fp8-hopper-promote": "w=e4m3,a=e4m3,o=bf16,gi=e5m2,gw=e5m2,acc=hopper_fp8_promote128",
    "mp-fp8-delayed": "w=e4m3,a=e4m3,o=bf16,gi=e5m2:sat,gw=bf16,scaling=delayed",
    "mp-mxfp8": "w=mxfp8,a=mxfp8,o=bf16,gi=e5m2,gw=e5m2",
    "mp-mxfp8-hopper": "w=mxfp8,a=mxfp8,o=bf16,gi=e5m2,gw=e5m2,acc=hopper_fp8",
    "mp-mxfp8-hopper-promote": "w=mxfp8,a=mxfp8,o=bf16,gi=e5m2,gw=e5m2,acc=hopper_fp8_promote128",
    "mp-mxfp4": "w=mxfp4,a=mxfp8,o=bf16,gi=e5m2,gw=e5m2",
    "mp-nvfp4": "w=nvfp4,a=nvfp4,o=bf16,gi=e5m2,gw=e5m2",
    "mp-mxfp8-train": "w=mxfp8,a=mxfp8,o=bf16,gi=mxfp8e5m2,gw=bf16",
    "mp-nvfp4-train": "w=nvfp4:tile=16x16,a=nvfp4,o=bf16,gi=nvfp4,gw=bf16",
    "mp-nvfp4-train-sr": "w=nvfp4:tile=16x16,a=nvfp4,o=bf16,gi=nvfp4:sr8,gw=bf16",
}
"""The emulation specs of the mixed-precision recipes (acc: fp32 unless named)."""


def recipe_spec(cfg: TrainConfig) -> EmulationSpec | None:
    """The emulation spec every Linear/Conv2d layer of the recipe gets."""
    r = cfg.recipe
    if r in ("float", "lns-float", "kbit-float"):
        return None
    if r == "binaryconnect":
        return EmulationSpec(weight=parse_format("binary"))
    if r == "binarynet":  # inputs arrive as +-1 (or 8-bit pixels): cast exactly
        return EmulationSpec(weight=parse_format("binary"), ste="clipped")
    if r == "ternary":
        return EmulationSpec(weight=parse_format("ternary"))
    k = _bits(r)
    if k is not None:
        return EmulationSpec(weight=parse_format(f"fixed{k}.{k - 1}"), ste="clipped")
    lns = parse_format(cfg.lns)
    if not isinstance(lns, LNS):
        raise ValueError(f"--lns must be an LNS format, got {cfg.lns!r}")
    if r in MP_SPECS:
        return EmulationSpec.parse(MP_SPECS[r])
    if r in ("lns-matmul", "lns-everywhere"):
        return EmulationSpec.everywhere(lns)
    if r == "lns-kahan":
        return EmulationSpec.everywhere(lns, compensated=True)
    return EmulationSpec.parse(r)  # a raw spec string


def build(cfg: TrainConfig, ds: Dataset):
    """(model, optimizer, after_step) of a recipe."""
    model = build_model(cfg, ds)
    spec = recipe_spec(cfg)
    r = cfg.recipe
    if _kbit_network(r):  # k-bit weights: latent weights span the format's range
        with torch.no_grad():
            for m in model.modules():
                if isinstance(m, (nn.Linear, nn.Conv2d)):
                    m.weight.uniform_(-1.0, 1.0)
    if spec is not None:
        # latent float weights; LNS master weights are cast by their optimizer
        swap_layers(model, spec, seed=cfg.seed, cast_weights=False)
    clip = r in ("binaryconnect", "binarynet") or _kbit_network(r)
    if r in ("lns-everywhere", "lns-kahan"):
        opt = EmulatedSGD(model.parameters(), cfg.lr, spec.weight, momentum=cfg.momentum,
                          compensation="kahan" if r == "lns-kahan" else None, seed=cfg.seed)
    elif lns_network(r):
        opt = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum)
    else:
        opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)

    def after_step():
        if clip:
            with torch.no_grad():
                for m in model.modules():
                    if isinstance(m, (nn.Linear, nn.Conv2d)):
                        m.weight.clamp_(-1.0, 1.0)
    return model, opt, after_step


# --------------------------------------------------------------- training ---

def _epoch_order(seed: int, epoch: int, n: int) -> np.ndarray:
    return np.random.default_rng([seed, epoch]).permutation(n)


def evaluate(model: nn.Module, x: torch.Tensor, y: np.ndarray, batch: int = 1000) -> float:
    """Accuracy of ``model`` (in eval mode, no gradients) on (x, y), in batches of ``batch``."""
    model.eval()
    correct = 0
    with torch.no_grad():
        for i in range(0, len(y), batch):
            correct += int((model(x[i:i + batch]).argmax(1).numpy() == y[i:i + batch]).sum())
    return correct / len(y)


def train(cfg: TrainConfig, progress: bool = True, max_epochs: int | None = None) -> dict:
    """Train (resuming from ``cfg.out``/checkpoint.pt if present); returns the summary.

    ``max_epochs`` stops after that many epochs in this call (a later call resumes).
    """
    from tqdm import tqdm

    ds = load_dataset(cfg.data, cfg.data_dir)
    cfg = cfg.resolved(ds)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    model, opt, after_step = build(cfg, ds)
    spec = recipe_spec(cfg)
    scaler = LossScaler.parse(cfg.loss_scale, spec.grad_weight if spec is not None else None)
    ckpt_path = out / "checkpoint.pt"
    metrics: list[dict] = []
    start = 0
    ckpt = load_checkpoint(ckpt_path, torch_load)
    if ckpt is not None:
        stored = {"loss_scale": "none", **ckpt["config"]}  # runs from before loss scaling
        if stored != _config_key(cfg):
            raise ValueError(f"{ckpt_path} belongs to another run ({ckpt['config']}); "
                             "use another --out")
        model.load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["optimizer"])
        metrics, start = ckpt["metrics"], ckpt["epoch"]
        if "scaler" in ckpt:
            scaler.load_state_dict(ckpt["scaler"])
    x, y = torch.from_numpy(ds.x_train), torch.from_numpy(ds.y_train)
    xt = torch.from_numpy(ds.x_test)
    stop = cfg.epochs if max_epochs is None else min(cfg.epochs, start + max_epochs)
    if metrics and start >= stop:  # resumed after the last checkpoint: the outputs may lag
        _write_outputs(cfg, metrics, out)
    for epoch in range(start, stop):
        for group in opt.param_groups:  # lr * lr_decay**epoch: a pure function of the epoch
            group["lr"] = cfg.lr * cfg.lr_decay**epoch
        model.train()
        t0 = time.perf_counter()
        order = torch.from_numpy(_epoch_order(cfg.seed, epoch, len(y)))
        loss_sum = correct = seen = 0
        batches = range(0, len(y), cfg.batch)
        bar = tqdm(batches, desc=f"{cfg.recipe} epoch {epoch + 1}/{cfg.epochs}", leave=False,
                   disable=not progress, unit="batch")
        for i in bar:
            idx = order[i:i + cfg.batch]
            opt.zero_grad()
            logits = model(x[idx])
            loss = F.cross_entropy(logits, y[idx])
            scaler.scale_loss(loss).backward()
            if scaler.unscale_and_check(model.parameters()):  # else: overflow, step skipped
                opt.step()
                after_step()
            loss_sum += loss.item() * len(idx)
            correct += int((logits.argmax(1) == y[idx]).sum())
            seen += len(idx)
            bar.set_postfix(loss=f"{loss_sum / seen:.3f}")
        seconds = time.perf_counter() - t0
        test_acc = evaluate(model, xt, ds.y_test)
        row = {"epoch": epoch + 1, "train_loss": loss_sum / seen,
               "train_acc": correct / seen, "test_acc": test_acc, "seconds": seconds}
        if scaler.mode != "none":
            row.update(loss_scale=scaler.scale, skipped=scaler.skipped)
        metrics.append(row)
        state = {"config": _config_key(cfg), "model": model.state_dict(),
                 "optimizer": opt.state_dict(), "epoch": epoch + 1, "metrics": metrics,
                 "scaler": scaler.state_dict()}
        save_checkpoint(ckpt_path, lambda fh: torch.save(state, fh))
        _write_outputs(cfg, metrics, out)
        if progress:
            print(f"{cfg.recipe} {cfg.data} seed {cfg.seed} epoch {epoch + 1}: "
                  f"loss {loss_sum / seen:.4f} test acc {test_acc:.4f} ({seconds:.1f} s)")
    return summary(cfg, metrics)


def _config_key(cfg: TrainConfig) -> dict:
    key = asdict(cfg)
    key.pop("out")
    key.pop("epochs")  # a run may be extended
    key["hidden"] = list(key["hidden"])
    return key


def summary(cfg: TrainConfig, metrics: list[dict]) -> dict:
    """The run's summary: final and best test accuracy, epochs done, total and mean seconds per
    epoch."""
    last = metrics[-1] if metrics else {}
    return {"config": {**asdict(cfg), "hidden": list(cfg.hidden)}, "epochs_done": len(metrics),
            "test_acc": last.get("test_acc"), "best_test_acc": max((m["test_acc"] for m in metrics),
                                                                     default=None),
            "seconds": sum(m["seconds"] for m in metrics),
            "seconds_per_epoch": float(np.mean([m["seconds"] for m in metrics])) if metrics else None}


def _write_outputs(cfg: TrainConfig, metrics: list[dict], out: Path) -> None:
    write_run(out, metrics, summary(cfg, metrics), "epoch",
              {"test accuracy": "test_acc", "train accuracy": "train_acc"},
              f"{cfg.recipe} on {cfg.data} (seed {cfg.seed})", "epoch")
