"""Real datasets, loaded from disk only (no downloads at run time).

- :func:`load_digits`: scikit-learn's bundled 8x8 digits (1797 images), the
  embedded default; a fixed stratified 75/25 split (``random_state=0``).
- :func:`load_idx`: any folder holding the four standard IDX files (MNIST,
  Fashion-MNIST, ...), gzipped or not.
- :func:`load_fashion_mnist`: Fashion-MNIST from Debian's ``dataset-fashion-mnist``
  package (``/usr/share/datasets/fashion-mnist``, or wherever ``dpkg -L`` says it put
  the files) unless a folder is given.
- :func:`load_dataset`: by name ("digits", "fashion-mnist") or folder;
  :func:`check_dataset` says, without loading, whether it is on this machine.

Pixels are scaled to [0, 1] (float32), labels are int64, images are flattened
rows; ``Dataset.image_shape`` gives (channels, height, width) for CNNs.
"""

from __future__ import annotations

import gzip
import shutil
import struct
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np

FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
IDX_FILES = {"x_train": "train-images-idx3-ubyte", "y_train": "train-labels-idx1-ubyte",
             "x_test": "t10k-images-idx3-ubyte", "y_test": "t10k-labels-idx1-ubyte"}


@dataclass(frozen=True)
class Dataset:
    """Images flattened to rows of float32 in [0, 1], integer labels."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    image_shape: tuple[int, int, int]
    pixel_levels: int = 255  # pixels are exact multiples of 1 / pixel_levels

    def pixel_codes(self, x: np.ndarray) -> np.ndarray:
        """Pixels as the integer codes they were read from (uint8): x * pixel_levels."""
        return np.rint(x * self.pixel_levels).astype(np.uint8)

    def pixels(self, codes: np.ndarray) -> np.ndarray:
        """The float32 pixels of ``codes``, exactly as in ``x_train``."""
        return codes.astype(np.float32) / np.float32(self.pixel_levels)

    @property
    def n_features(self) -> int:
        return self.x_train.shape[1]

    @property
    def n_classes(self) -> int:
        return int(max(self.y_train.max(), self.y_test.max())) + 1


def load_digits() -> Dataset:
    """scikit-learn's 8x8 digits, pixels / 16, fixed stratified split."""
    from sklearn.datasets import load_digits as sk_digits
    from sklearn.model_selection import train_test_split

    bunch = sk_digits()
    x = (bunch.data / 16.0).astype(np.float32)
    y = bunch.target.astype(np.int64)
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=0.25, random_state=0, stratify=y)
    return Dataset("digits", x_tr, y_tr, x_te, y_te, (1, 8, 8), pixel_levels=16)


def read_idx(path: Path) -> np.ndarray:
    """One IDX file (optionally .gz) as a numpy array (magic, dims, big-endian sizes)."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as fh:
        raw = fh.read()
    zero, dtype_code, ndim = struct.unpack(">HBB", raw[:4])
    if zero != 0 or dtype_code != 0x08:
        raise ValueError(f"{path}: not an unsigned-byte IDX file (magic {raw[:4].hex()})")
    dims = struct.unpack(">" + "I" * ndim, raw[4:4 + 4 * ndim])
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(dims)):
        raise ValueError(f"{path}: {data.size} bytes of data for dimensions {dims}")
    return data.reshape(dims)


def _find(folder: Path, stem: str) -> Path:
    for name in (stem, stem + ".gz"):
        if (folder / name).exists():
            return folder / name
    raise FileNotFoundError(f"{folder} has no {stem}[.gz]")


def load_idx(folder: str | Path, name: str | None = None) -> Dataset:
    """The four standard IDX files of ``folder`` (MNIST layout)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"dataset folder {folder} does not exist")
    arrays = {k: read_idx(_find(folder, v)) for k, v in IDX_FILES.items()}
    h, w = arrays["x_train"].shape[1:]
    x_tr = arrays["x_train"].reshape(len(arrays["x_train"]), -1).astype(np.float32) / 255.0
    x_te = arrays["x_test"].reshape(len(arrays["x_test"]), -1).astype(np.float32) / 255.0
    return Dataset(name or folder.name, x_tr, arrays["y_train"].astype(np.int64), x_te,
                   arrays["y_test"].astype(np.int64), (1, h, w))


def _missing(folder: Path) -> list[str]:
    """The standard IDX files (plain or .gz) that ``folder`` lacks."""
    return [stem for stem in IDX_FILES.values()
            if not any((folder / n).exists() for n in (stem, stem + ".gz"))]


def fashion_mnist_dir() -> Path:
    """Where Debian's ``dataset-fashion-mnist`` put the IDX files: the usual folder, else
    the folder ``dpkg -L dataset-fashion-mnist`` lists them in (the usual one if neither)."""
    if not _missing(FASHION_MNIST_DIR) or shutil.which("dpkg") is None:
        return FASHION_MNIST_DIR
    try:
        listed = subprocess.run(["dpkg", "-L", "dataset-fashion-mnist"], capture_output=True,
                                text=True, timeout=30).stdout.split()
    except (OSError, subprocess.TimeoutExpired):
        return FASHION_MNIST_DIR
    for path in listed:
        if Path(path).name.startswith(IDX_FILES["x_train"]) and not _missing(Path(path).parent):
            return Path(path).parent
    return FASHION_MNIST_DIR


FASHION_MNIST_HELP = ("install Debian's package (`apt-get install dataset-fashion-mnist`) or "
                      "give --data-dir a folder of the four IDX files (train-images-idx3-ubyte, "
                      "train-labels-idx1-ubyte, t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte, "
                      "each optionally .gz)")


def check_dataset(name: str, data_dir: str | Path | None = None) -> None:
    """Raise FileNotFoundError, saying what is missing and how to get it, unless
    :func:`load_dataset` would find the data (the files are not read)."""
    if name == "digits":
        return
    if name == "fashion-mnist":
        folder = Path(data_dir) if data_dir is not None else fashion_mnist_dir()
        if not folder.is_dir() or _missing(folder):
            raise FileNotFoundError(f"Fashion-MNIST is not in {folder}: {FASHION_MNIST_HELP}")
        return
    folder = Path(data_dir or name)
    if not folder.is_dir():
        raise FileNotFoundError(f"dataset folder {folder} does not exist")
    missing = _missing(folder)
    if missing:
        raise FileNotFoundError(f"dataset folder {folder} lacks {', '.join(missing)} (.gz or "
                                "plain): a folder of the four standard IDX files is expected")


def load_fashion_mnist(folder: str | Path | None = None) -> Dataset:
    """Fashion-MNIST (60,000 + 10,000 images, 28x28) from IDX files."""
    folder = Path(folder) if folder is not None else fashion_mnist_dir()
    try:
        return load_idx(folder, "fashion-mnist")
    except FileNotFoundError as exc:
        raise FileNotFoundError(f"Fashion-MNIST not found ({exc}): {FASHION_MNIST_HELP}") from None


def load_dataset(name: str, data_dir: str | Path | None = None) -> Dataset:
    """"digits", "fashion-mnist", or a folder of IDX files (also via ``data_dir``)."""
    if name == "digits":
        return load_digits()
    if name == "fashion-mnist":
        return load_fashion_mnist(data_dir)
    return load_idx(data_dir or name)
