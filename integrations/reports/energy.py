"""Energy per training step, estimated from the operation account and a published
per-operation table -- an estimate from published tables, not a measurement.

    lowbit energy --format bf16 e4m3 fixed16.8 lns5.10 ... [--model mlp|cnn|module:callable]

The table (``data/horowitz_45nm.toml``) holds Horowitz's 45 nm figures with their
sources and status tags (V read, S reproduced by a third party, D derived here); every
op of an :class:`~lowbit.integrations.torch.account.OpAccount` maps to a cost by the
rules below, and an op with no rule is an error, never a zero:

- fixed point: add(n) = 0.003125 n pJ; mult(na, nb) = 0.0029948 na nb + 0.0010417
  sqrt(na nb) pJ (QKeras' Horowitz fits); an exact accumulator has the operands' bits
  plus log2(K);
- floats by significand width m (hidden bit included): mult = 0.4086 + 0.005714 m^2,
  add = -0.0231 + 0.03846 m pJ (the fit through fp16 and fp32; bf16 and FP8 are
  extrapolations, marked D); a matrix-unit model adds at its fraction bits + 1;
- binary x n-bit: 0.3 add(n) (a mux); ternary x n-bit: 0.6 add(n); binary x binary:
  XNOR + popcount 0.004 pJ per MAC; binary x float: a sign flip, free;
- LNS (W = int + frac bits): mult = add(W); an addition = 2 add(W) (subtract, add) plus
  one sb/db table read, whose cost is the open parameter (``--sb``): ``free`` (0),
  ``logic`` (0.003 bits log2(entries) pJ), ``sram`` (0.156 sqrt(bytes / 8 KB) pJ/bit x
  bits); every report shows all three;
- block formats: the element's MAC plus one 8-bit exponent add per block;
- casts from the fp32 carrier: into fixed point add(n) + a 24-bit barrel shift (add(24)
  log2 24); into a float add(m) + add(e); into LNS add(W) plus one table read; into
  binary free (the sign bit), ternary one fp32 compare (add(32));
- optimizer update: fp32 mult / add per counted operation;
- memory (``--memory``): none (arithmetic only, the default), ``sram:SIZE`` (every byte
  of the account at 0.156 sqrt(SIZE / 8 KB) pJ/bit) or ``dram`` (20.3125 pJ/bit).

Node scaling (``--node``) multiplies logic entries only (not SRAM, DRAM or the sram
table model) by the Stillmaker-Baas factor, interpolated linearly in nm. Leakage,
clock, control and instruction overhead are excluded.
"""

from __future__ import annotations

import dataclasses
import json
import math
import tomllib
from functools import lru_cache
from pathlib import Path

from lowbit.integrations.torch.account import ROLES, OpAccount
from lowbit.numerics import (LNS, AccumulatorModel, Binary, Block, Exact, Fixed, Float, Interp, Ternary,
                             parse_accumulator, parse_format)
from lowbit.numerics.gaussian_log import essential_zero, geometry

DATA = Path(__file__).parent / "data" / "horowitz_45nm.toml"
SB_MODELS = ("free", "logic", "sram")
CAVEAT = "an estimate from published tables, not a measurement"
COMPONENTS = ("mac", "add", "cast", "table_read", "update", "memory")


@lru_cache(maxsize=None)
def table(path: str = str(DATA)) -> dict:
    """The per-operation table (parsed TOML)."""
    with open(path, "rb") as f:
        return tomllib.load(f)


@dataclasses.dataclass(frozen=True)
class Costs:
    """The cost rules, at a node and with an sb-table model and a memory policy."""

    node: int = 45
    vdd: float = 0.9
    sb: str = "logic"
    memory: str = "none"

    def __post_init__(self):
        if self.sb not in SB_MODELS:
            raise ValueError(f"sb-table model must be one of {SB_MODELS}, got {self.sb!r}")
        if self.vdd not in (0.8, 0.9):
            raise ValueError(f"vdd must be 0.8 or 0.9 (the scaling table's columns), got {self.vdd}")
        self.node_factor  # validates the node
        memory_per_bit(self.memory)

    @property
    def node_factor(self) -> float:
        """Logic energy at this node relative to 45 nm (linear between table nodes)."""
        col = table()["node_factor"]["vdd_0_9" if self.vdd == 0.9 else "vdd_0_8"]
        pts = sorted((int(k), v) for k, v in col.items())
        n = self.node
        if not pts[0][0] <= n <= pts[-1][0]:
            raise ValueError(f"node {n} nm is outside the scaling table ({pts[0][0]}..{pts[-1][0]} nm)")
        for (n0, f0), (n1, f1) in zip(pts, pts[1:]):
            if n0 <= n <= n1:
                return f0 + (f1 - f0) * (n - n0) / (n1 - n0)
        raise AssertionError

    # --- units (45 nm, pJ) ---------------------------------------------------------
    @staticmethod
    def int_add(n: float) -> float:
        return table()["rule"]["int_add"]["per_bit"] * n

    @staticmethod
    def int_mult(na: float, nb: float) -> float:
        r = table()["rule"]["int_mult"]
        return r["a"] * na * nb + r["b"] * math.sqrt(na * nb)

    @staticmethod
    def fp_mult(m: int) -> float:
        d = table()["derived"]["fp_mult"]
        return d["c0"] + d["c2"] * m * m

    @staticmethod
    def fp_add(m: int) -> float:
        d = table()["derived"]["fp_add"]
        return max(d["d0"] + d["d1"] * m, 0.0)

    def shift(self, n: int) -> float:
        return self.int_add(n) * math.log2(n)

    # --- formats -----------------------------------------------------------------
    def mult(self, a, b) -> float:
        """One product of operands in formats a and b (45 nm)."""
        if isinstance(a, Block) or isinstance(b, Block):
            return self.mult(_element(a), _element(b))
        if isinstance(b, (Binary, Ternary)) and not isinstance(a, (Binary, Ternary)):
            a, b = b, a
        if isinstance(a, Binary):
            if isinstance(b, (Binary, Ternary)):
                return 0.0  # in the XNOR-popcount MAC
            if isinstance(b, Float):
                return 0.0  # a sign flip
            return table()["entry"]["binary_mux_factor"]["value"] * self.int_add(_bits(b))
        if isinstance(a, Ternary):
            if isinstance(b, Float):
                return 0.0  # a sign flip or a zero
            return table()["entry"]["ternary_factor"]["value"] * self.int_add(_bits(b) if not isinstance(b, (Binary, Ternary)) else 2)
        if isinstance(a, Fixed) and isinstance(b, Fixed):
            return self.int_mult(a.bits, b.bits)
        if isinstance(a, Float) and isinstance(b, Float):
            return self.fp_mult(max(a.man_bits, b.man_bits) + 1)
        if isinstance(a, LNS) and isinstance(b, LNS):
            return self.int_add(max(a.exp_bits, b.exp_bits))
        raise ValueError(f"energy: no multiplication rule for {a} x {b}")

    def accumulate(self, acc) -> float:
        """One addition into the accumulator (an LNS one without its table read)."""
        if isinstance(acc, int):  # an exact accumulator of this many bits
            return self.int_add(acc)
        if isinstance(acc, AccumulatorModel):
            return self.fp_add(acc.frac_bits + 1)
        return self.add(acc)

    def add(self, fmt) -> float:
        if isinstance(fmt, Fixed):
            return self.int_add(fmt.bits)
        if isinstance(fmt, Float):
            return self.fp_add(fmt.man_bits + 1)
        if isinstance(fmt, LNS):
            return 2 * self.int_add(fmt.exp_bits)
        raise ValueError(f"energy: no addition rule for {fmt}")

    def cast(self, fmt) -> float:
        if isinstance(fmt, Block):
            return self.cast(fmt.element) + self.int_add(8) / fmt.block
        if isinstance(fmt, Fixed):
            return self.int_add(fmt.bits) + self.shift(24)
        if isinstance(fmt, Float):
            return self.int_add(fmt.man_bits + 1) + self.int_add(fmt.exp_bits)
        if isinstance(fmt, LNS):
            return self.int_add(fmt.exp_bits)  # plus one table read, costed as such
        if isinstance(fmt, Binary):
            return 0.0
        if isinstance(fmt, Ternary):
            return self.int_add(32)
        raise ValueError(f"energy: no cast rule for {fmt}")

    def table_read(self, fmt: LNS, model: str | None = None) -> float:
        """One sb/db lookup of fmt's adder under an sb-table model (pJ, at this node for
        the logic model; the sram model is not node-scaled)."""
        model = model or self.sb
        entries, bits = adder_table_size(fmt)
        if model == "free":
            extra = 0.0
        elif model == "logic":
            extra = 0.003 * bits * math.log2(entries) * self.node_factor
        else:
            extra = sram_per_bit(entries * bits / 8) * bits
        if isinstance(fmt.adder, Interp):  # the interpolation: (F+P) x k multiply and an add
            g = geometry(fmt)
            extra += (self.int_mult(bits, max(g.k, 1)) + self.int_add(bits)) * self.node_factor
        return extra

    # --- an account ----------------------------------------------------------------
    def op(self, op: str, fmt: str) -> float:
        """Cost in pJ of one op of the account (logic node-scaled; table reads by model)."""
        if op == "mac":
            a, b, acc = parse_mac(fmt)
            if isinstance(a, Binary) and isinstance(b, Binary):
                return table()["derived"]["xnor_popcount_mac"]["value"] * self.node_factor
            blocks = sum(1 / f.block for f in (a, b) if isinstance(f, Block))
            return (self.mult(a, b) + self.accumulate(acc) + blocks * self.int_add(8)) * self.node_factor
        if op == "table_read":
            return self.table_read(_format(fmt))
        if op in ("add", "cast"):
            return getattr(self, op)(_format(fmt)) * self.node_factor
        if op == "update_mul":
            return self.fp_mult(24) * self.node_factor
        if op == "update_add":
            return self.fp_add(24) * self.node_factor
        raise ValueError(f"energy: no rule for op {op!r} ({fmt})")


def _format(name: str):
    return Float(8, 23) if name == "fp32" else parse_format(name)


def _element(f):
    return f.element if isinstance(f, Block) else f


def _bits(f) -> int:
    if isinstance(f, Fixed):
        return f.bits
    if isinstance(f, Float):
        return f.width
    if isinstance(f, LNS):
        return 1 + f.exp_bits
    raise ValueError(f"energy: no width for {f}")


def parse_mac(text: str):
    """'a x b -> acc' of the account into (format, format, accumulator: a format, a
    model, or an int = exact accumulator bits)."""
    ops, _, acc = text.partition(" -> ")
    a, _, b = ops.partition(" x ")
    if acc.startswith("exact"):
        acc_v: object = int(acc[5:])
    elif acc == "fp32":
        acc_v = Float(8, 23)
    else:
        acc_v = parse_accumulator(acc)
    return _format(a), _format(b), acc_v


def adder_table_size(fmt: LNS) -> tuple[int, int]:
    """(entries per function, bits per entry) of fmt's sb/db adder as lowbit builds it:
    Exact is the direct table over |z| up to the essential zero; Table(n) and Interp(n)
    have 2**n entries plus the exact first interval's 2**k."""
    g = geometry(fmt)
    bits = fmt.frac_bits + g.guard
    if isinstance(fmt.adder, Exact):
        return essential_zero(fmt.frac_bits) + 1, max(bits, 1)
    return g.entries + (1 << g.k), max(bits, 1)


def sram_per_bit(size_bytes: float) -> float:
    """pJ per bit read from an SRAM of this size (0.156 sqrt(S / 8 KB), 45 nm)."""
    return table()["entry"]["sram_read_8kb_per_bit"]["value"] * math.sqrt(size_bytes / 8192)


def memory_per_bit(policy: str) -> float:
    """pJ per bit moved under a memory policy: none, sram:SIZE (e.g. sram:32KB), dram."""
    if policy == "none":
        return 0.0
    if policy == "dram":
        return table()["entry"]["dram_per_bit"]["value"]
    if policy.startswith("sram:"):
        size = policy[5:].upper()
        mult = {"KB": 1024, "MB": 1024 ** 2, "B": 1}
        for unit, m in mult.items():
            if size.endswith(unit) and size[:-len(unit)].replace(".", "", 1).isdigit():
                return sram_per_bit(float(size[:-len(unit)]) * m)
    raise ValueError(f"memory policy must be none, dram or sram:SIZE (e.g. sram:32KB), got {policy!r}")


@dataclasses.dataclass
class Estimate:
    """pJ per step by (role, component); ``table_range``: the LNS table reads' total under
    each sb-table model."""

    label: str
    pj: dict
    table_range: dict

    @property
    def total(self) -> float:
        return sum(self.pj.values())

    def total_with(self, sb: str) -> float:
        return self.total - self.table_range.get(self.costs_sb, 0.0) + self.table_range.get(sb, 0.0)

    costs_sb: str = "logic"


def estimate(acct: OpAccount, costs: Costs, label: str = "", steps: int = 1) -> Estimate:
    """pJ per step of an account of ``steps`` training steps."""
    pj: dict = {}
    per_bit = memory_per_bit(costs.memory)
    for (role, op, fmt), n in acct.ops.items():
        comp = "update" if op.startswith("update") else op
        pj[(role, comp)] = pj.get((role, comp), 0.0) + n * costs.op(op, fmt) / steps
    if per_bit:
        for (role, _, _, _), nbytes in acct.bytes.items():
            pj[(role, "memory")] = pj.get((role, "memory"), 0.0) + nbytes * 8 * per_bit / steps
    rng = {}
    for model in SB_MODELS:
        rng[model] = sum(n * costs.table_read(_format(fmt), model) / steps
                         for (_, op, fmt), n in acct.ops.items() if op == "table_read")
    return Estimate(label, pj, rng, costs.sb)


def header(costs: Costs) -> str:
    t = table()
    scale = "none" if costs.node == 45 else f"45 nm -> {costs.node} nm, logic x{costs.node_factor:.3f} (Stillmaker & Baas)"
    return (f"lowbit energy estimate: {CAVEAT}\n"
            f"table {t['id']} v{t['version']} ({t['node_nm']} nm, {t['vdd']} V; D = derived or "
            f"extrapolated)   node scaling: {scale}\n"
            f"memory policy: {costs.memory}   LNS sb-table model: {costs.sb} (range free ... sram)")


def markdown(estimates: list[Estimate], costs: Costs, title: str) -> str:
    """The per-step table: rows (role, component), one column per format, the total (with
    the sb-table range where LNS tables are read) and the ratio to the first column."""
    keys = [(r, c) for r in ROLES for c in COMPONENTS
            if any(e.pj.get((r, c), 0) for e in estimates)]
    head = "| role | component | " + " | ".join(e.label for e in estimates) + " |"
    rows = [head, "|---|---|" + "---:|" * len(estimates)]
    for r, c in keys:
        rows.append(f"| {r} | {c} | " + " | ".join(_pj(e.pj.get((r, c))) for e in estimates) + " |")
    tot = []
    for e in estimates:
        s = f"**{e.total:,.0f}**"
        if e.table_range.get("sram"):
            s += f" ({e.total_with('free'):,.0f} ... {e.total_with('sram'):,.0f})"
        tot.append(s)
    rows.append("| total | pJ / step | " + " | ".join(tot) + " |")
    base = estimates[0].total
    rows.append("| ratio | vs " + estimates[0].label + " | " +
                " | ".join(f"{e.total / base:.3f}" for e in estimates) + " |")
    return f"{title}\n\n```\n{header(costs)}\n```\n\n" + "\n".join(rows) + "\n"


def _pj(v) -> str:
    return "—" if not v else (f"{v:,.0f}" if v >= 100 else f"{v:,.1f}")


def plot(estimates: list[Estimate], path: Path, title: str) -> None:
    """A stacked bar per format: pJ per step by role and component."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = [(r, c) for r in ROLES for c in COMPONENTS if any(e.pj.get((r, c), 0) for e in estimates)]
    fig, ax = plt.subplots(figsize=(max(6, 1.1 * len(estimates) + 3), 4.5))
    bottom = [0.0] * len(estimates)
    cmap = plt.get_cmap("tab20")
    for i, (r, c) in enumerate(keys):
        vals = [e.pj.get((r, c), 0.0) / 1e6 for e in estimates]
        ax.bar(range(len(estimates)), vals, bottom=bottom, label=f"{r} {c}", color=cmap(i % 20))
        bottom = [b + v for b, v in zip(bottom, vals)]
    for i, e in enumerate(estimates):
        if e.table_range.get("sram"):
            lo, hi = e.total_with("free") / 1e6, e.total_with("sram") / 1e6
            ax.errorbar(i, e.total / 1e6, yerr=[[e.total / 1e6 - lo], [hi - e.total / 1e6]],
                        color="k", capsize=4)
    ax.set_xticks(range(len(estimates)), [e.label for e in estimates], rotation=30, ha="right")
    ax.set_ylabel("µJ per training step")
    ax.set_title(title + f"\n({CAVEAT})", fontsize=9)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def to_json(estimates: list[Estimate], costs: Costs) -> str:
    t = table()
    return json.dumps({
        "caveat": CAVEAT, "table": t["id"], "version": t["version"], "node_nm": costs.node,
        "vdd": costs.vdd, "memory": costs.memory, "sb_model": costs.sb, "unit": "pJ per step",
        "formats": [{"label": e.label, "total": e.total,
                     "total_by_sb_model": {m: e.total_with(m) for m in SB_MODELS},
                     "by_role_component": {f"{r}/{c}": v for (r, c), v in e.pj.items()}}
                    for e in estimates]}, indent=1)


# --- a training step of a model, counted ----------------------------------------------

def builtin_model(name: str, batch: int):
    """``mlp``: 784-256-256-10 on Fashion-MNIST-sized inputs; ``cnn``: two 3x3 convolutions
    (8 and 16 channels, the second with stride 2) and a linear layer on 1x28x28."""
    import torch
    import torch.nn as nn

    torch.manual_seed(0)
    if name == "mlp":
        return (nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(),
                              nn.Linear(256, 10)), torch.randn(batch, 784))
    if name == "cnn":
        return (nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(),
                              nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.ReLU(), nn.Flatten(),
                              nn.Linear(16 * 14 * 14, 10)), torch.randn(batch, 1, 28, 28))
    raise ValueError(f"unknown built-in model {name!r} (mlp, cnn, or module:callable)")


def load_model(text: str, batch: int):
    """A built-in model name, or ``module:callable`` returning (model, example inputs) --
    a tensor or a tuple of positional arguments."""
    import importlib

    if ":" not in text:
        return builtin_model(text, batch)
    mod, _, name = text.partition(":")
    try:
        made = getattr(importlib.import_module(mod), name)()
    except (ImportError, AttributeError) as exc:
        raise ValueError(f"cannot load model {text!r}: {exc}") from None
    if not (isinstance(made, tuple) and len(made) == 2):
        raise ValueError(f"{text} must return (model, example_inputs)")
    return made


def _output_tensor(y):
    import torch

    if isinstance(y, torch.Tensor):
        return y
    for attr in ("logits", "last_hidden_state"):
        if getattr(y, attr, None) is not None:
            return getattr(y, attr)
    if isinstance(y, (tuple, list)) and y and isinstance(y[0], torch.Tensor):
        return y[0]
    raise ValueError(f"cannot find the output tensor of a {type(y).__name__}")


def step_account(model, inputs, spec: str) -> OpAccount:
    """The account of one SGD (momentum 0.9) training step of a copy of ``model`` on
    ``inputs`` under ``emulate(spec)`` (strict: a product that cannot be emulated, and so
    not counted, is an error); the loss is the mean square of the output."""
    import copy

    import torch

    from lowbit.integrations.torch import emulate
    from lowbit.integrations.torch.account import counting

    m = copy.deepcopy(model).train()
    args = inputs if isinstance(inputs, tuple) else (inputs,)
    opt = torch.optim.SGD([p for p in m.parameters() if p.requires_grad], 0.01, momentum=0.9)
    with counting() as acct:
        with emulate(spec, model=m):
            loss = _output_tensor(m(*args)).float().square().mean()
            opt.zero_grad()
            loss.backward()
        opt.step()
    return acct


def run_energy(specs: list[str], model: str = "mlp", batch: int = 32, costs: Costs = Costs(),
               out: Path | None = None, as_json: bool = False) -> str:
    """Estimate pJ per training step for fp32 and each spec; print and (with ``out``)
    write ``energy.md``, ``energy.png`` and ``energy.json``."""
    net, inputs = load_model(model, batch)
    labels = ["fp32"] + [s for s in specs if s not in ("fp32", "float")]
    ests = [estimate(step_account(net, inputs, "w=float" if lab == "fp32" else lab), costs, lab)
            for lab in labels]
    title = f"pJ per training step, model {model}, batch {batch}"
    text = markdown(ests, costs, title)
    if out is not None:
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "energy.md").write_text(text)
        (out / "energy.json").write_text(to_json(ests, costs))
        plot(ests, out / "energy.png", title)
    return to_json(ests, costs) if as_json else text


def published_checks(costs: Costs = Costs()) -> str:
    """How far this model's LNS MACs land from the published MAC-level ratios (energy.md
    section 8.4's validation; nothing is tuned to meet them). Johnson (arXiv 1811.01721)
    and LNS-Madam accumulate in the linear domain -- a different datapath from lowbit's
    sb/db adders -- so a gap is expected and reported, not fitted."""
    mac = costs.op
    lns16 = [mac("mac", "lns5.10 x lns5.10 -> lns5.10") + costs.table_read(parse_format("lns5.10"), m)
             for m in SB_MODELS]
    lns8 = [mac("mac", "lns3.4 x lns3.4 -> lns3.4") + costs.table_read(parse_format("lns3.4"), m)
            for m in SB_MODELS]
    fp16_fma = mac("mac", "fp16 x fp16 -> fp16")
    int8 = mac("mac", "fixed8.0 x fixed8.0 -> fixed32.0")
    fp8 = mac("mac", "e4m3 x e4m3 -> fp16")
    fp32 = mac("mac", "fp32 x fp32 -> fp32")
    rng = lambda v, b: " / ".join(f"{x / b:.2f}" for x in v)  # noqa: E731
    rows = ["| comparison | published | lowbit (sb table free / logic / sram) | source |",
            "|---|---:|---:|---|",
            f"| LNS16 MAC / FP16 FMA | 0.59 | {rng(lns16, fp16_fma)} | Johnson 2018 (28 nm, linear-domain Kulisch accumulation) [A] |",
            f"| LNS8 MAC / INT8xINT8+INT32 MAC | 0.96 | {rng(lns8, int8)} | Johnson 2018 [A] |",
            f"| FP8 PE / LNS8 PE (efficiency) | 2.2 | {' / '.join(f'{fp8 / x:.2f}' for x in lns8)} | LNS-Madam (PE level, sub-16 nm) [S] |",
            f"| FP32 PE / LNS8 PE (efficiency) | 11 | {' / '.join(f'{fp32 / x:.2f}' for x in lns8)} | LNS-Madam [S] |"]
    return "\n".join(rows) + "\n"
