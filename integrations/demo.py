"""The per-format demo: how much error each format adds on real data.

For each format it reports, on scikit-learn's digits:

- the cast error of the pixels and of the weights of a logistic-regression
  classifier trained in float64 (max and RMS absolute error, share saturated);
- the error of the classifier's logits computed entirely in the format
  (weights and pixels cast, matmul with an exact accumulator, and with a narrow
  accumulator of twice the pixel format's bits at its binary point, so every
  product is rounded as it is added, sequential, with and without Kahan),
  against float64 logits, and the resulting test accuracy.

Binary and ternary formats apply to the weights; the pixels then use Fixed(8, 6).
LNS formats have no exact accumulator: "exact" there means an LNS accumulator
with 6 more fractional bits, "narrow" the format itself.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np

import emulators as E
from integrations.data import Dataset, load_digits
from numerics import LNS, Fixed, Format, parse_format

DEFAULT_FORMATS = ("fixed8.4", "fixed8.6", "fixed12.8", "fixed16.12", "fixed16.12:sr",
                   "binary:mean_abs", "ternary", "lns5.10", "lns5.7", "lns5.7:interp6")
PIXEL_FORMAT_FOR_BINARY = Fixed(8, 6)


@dataclass
class FormatRow:
    format: str
    pixel_max_err: float
    pixel_rms_err: float
    weight_max_err: float
    weight_rms_err: float
    weight_saturated: float
    logit_rms_err_exact: float
    logit_rms_err_narrow: float
    logit_rms_err_kahan: float
    accuracy_exact: float
    accuracy_narrow: float
    accuracy_kahan: float


def _rms(e: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(e)))) if e.size else 0.0


def train_float_classifier(data: Dataset):
    """A multinomial logistic regression in float64 (weights K x classes, bias)."""
    from sklearn.linear_model import LogisticRegression

    clf = LogisticRegression(max_iter=2000, C=1.0, random_state=0)
    clf.fit(data.x_train.astype(np.float64), data.y_train)
    return clf.coef_.T.copy(), clf.intercept_.copy()


def evaluate_format(fmt: Format, data: Dataset, w: np.ndarray, b: np.ndarray) -> FormatRow:
    """Cast and logit errors of one format (see the module docstring)."""
    x = data.x_test.astype(np.float64)
    if isinstance(fmt, LNS):
        return _evaluate_lns(fmt, data, w, b)
    px_fmt = fmt if isinstance(fmt, Fixed) else PIXEL_FORMAT_FOR_BINARY
    ex = E.cast(x, px_fmt)
    ew = E.cast(w.T, fmt).T if not isinstance(fmt, Fixed) else E.cast(w, fmt)
    wf = ew.to_float()
    saturated = 0.0
    if isinstance(fmt, Fixed):
        saturated = float(np.mean((ew.codes == fmt.min_code) | (ew.codes == fmt.max_code)))
    ref_logits = x @ w + b
    out = Fixed(40, 2 * px_fmt.frac) if isinstance(fmt, Fixed) else Fixed(40, px_fmt.frac)
    results = {}
    acc = Fixed(min(2 * px_fmt.bits, 62), px_fmt.frac)  # wide enough, but coarse: rounds products
    for name, kw in (("exact", {}), ("narrow", {"acc": acc}),
                     ("kahan", {"acc": acc, "compensated": True})):
        y = E.matmul(ex, ew, out if name == "exact" else None, **kw).to_float() + b
        results[name] = (_rms(y - ref_logits), float(np.mean(y.argmax(1) == data.y_test)))
    return FormatRow(
        str(fmt), float(np.max(np.abs(ex.to_float() - x))), _rms(ex.to_float() - x),
        float(np.max(np.abs(wf - w))), _rms(wf - w), saturated,
        results["exact"][0], results["narrow"][0], results["kahan"][0],
        results["exact"][1], results["narrow"][1], results["kahan"][1])


def _evaluate_lns(fmt: LNS, data: Dataset, w: np.ndarray, b: np.ndarray) -> FormatRow:
    x = data.x_test.astype(np.float64)
    ex, ew = E.cast(x, fmt), E.cast(w, fmt)
    wide = LNS(fmt.int_bits, min(fmt.frac_bits + 6, 16), fmt.adder)
    ref_logits = x @ w + b
    results = {}
    for name, kw in (("exact", {"acc": wide}), ("narrow", {}), ("kahan", {"compensated": True})):
        y = E.matmul(ex, ew, fmt, **kw).to_float() + b
        results[name] = (_rms(y - ref_logits), float(np.mean(y.argmax(1) == data.y_test)))
    sat = float(np.mean(np.abs(ew.codes) == fmt.max_code))
    return FormatRow(
        str(fmt), float(np.max(np.abs(ex.to_float() - x))), _rms(ex.to_float() - x),
        float(np.max(np.abs(ew.to_float() - w))), _rms(ew.to_float() - w), sat,
        results["exact"][0], results["narrow"][0], results["kahan"][0],
        results["exact"][1], results["narrow"][1], results["kahan"][1])


def run_demo(out_dir: Path, formats=DEFAULT_FORMATS) -> Path:
    """Evaluate every format, print a table, write ``demo.md`` and ``demo.csv``."""
    data = load_digits()
    w, b = train_float_classifier(data)
    float_acc = float(np.mean((data.x_test @ w + b).argmax(1) == data.y_test))
    rows = [evaluate_format(parse_format(f), data, w, b) for f in formats]
    out_dir.mkdir(parents=True, exist_ok=True)
    names = [f.name for f in fields(FormatRow)]
    with open(out_dir / "demo.csv", "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(names)
        for r in rows:
            writer.writerow([getattr(r, n) for n in names])
    table = _markdown(rows, names)
    text = (f"# lowbit demo: per-format error on scikit-learn digits\n\n"
            f"Logistic regression trained in float64: test accuracy {float_acc:.4f} "
            f"({len(data.y_test)} test images). Narrow/Kahan: the logits accumulate in "
            f"Fixed(2 x bits, frac) of the pixel format, sequentially, rounding every product.\n\n{table}\n")
    (out_dir / "demo.md").write_text(text)
    print(text)
    return out_dir / "demo.md"


def _markdown(rows, names) -> str:
    head = "| " + " | ".join(names) + " |\n|" + "---|" * len(names) + "\n"
    body = "".join("| " + " | ".join(_fmt_cell(getattr(r, n)) for n in names) + " |\n" for r in rows)
    return head + body


def _fmt_cell(v) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)
