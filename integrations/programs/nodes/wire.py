"""The nodes' messages on the wire: a fixed schema, never a pickle.

A message is a 28-byte little-endian header and then raw arrays of known dtype::

    magic  b"LBNM"   4 bytes
    version          u8   (1)
    kind             u8   (0 labels, 1 logits, 2 features)
    reserved         u16  (0)
    sender           u32
    round            u32
    n                u32  images in the minibatch
    features         u32  pixels per image
    columns          u32  values per image (0 for labels)
    images           n * features  uint8 pixel codes
    labels           n int64 (kind labels)      or
    values           n * columns float64 (logits, features: already in the message format)

:func:`decode` checks everything against what the receiver expects before it
builds a :class:`Message`: the magic and version, the kind the run shares, the
sender (the rank whose key the message was read from) and the round, the batch
size limit, the image width, the value width, the exact byte length, labels in
``0..classes-1`` and finite values. Anything else raises :class:`WireError`; the
runtimes drop such a message with one logged warning and go on (a message is data,
never code: nothing in it is executed).

>>> import numpy as np
>>> m = Message(3, 7, "labels", np.zeros((2, 4), np.uint8), labels=np.array([1, 0]))
>>> raw = encode(m)
>>> len(raw)
52
>>> decode(raw, Expect(sender=3, round=7, kind="labels", features=4, classes=2)).labels
array([1, 0])
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass

import numpy as np

from lowbit.integrations.programs.nodes.protocol import Message

MAGIC = b"LBNM"
VERSION = 1
KINDS = ("labels", "logits", "features")
HEADER = struct.Struct("<4sBBHIIIII")
MAX_BATCH = 1 << 16  # images per message a receiver accepts


class WireError(ValueError):
    """A message that does not follow the schema or the receiver's expectations."""


@dataclass(frozen=True)
class Expect:
    """What a receiver accepts: the sender and round of the key it reads, the kind its run
    shares, the image width, the number of classes and (logits/features) the value width."""

    sender: int
    round: int
    kind: str
    features: int
    classes: int
    columns: int = 0
    max_batch: int = MAX_BATCH


def encode(msg: Message) -> bytes:
    """The wire bytes of ``msg`` (images as uint8, labels as int64, values as float64)."""
    if msg.kind not in KINDS:
        raise WireError(f"kind must be one of {KINDS}, got {msg.kind!r}")
    images = np.ascontiguousarray(msg.images, dtype=np.uint8)
    if images.ndim != 2:
        raise WireError(f"images must be (n, features), got shape {images.shape}")
    n, features = images.shape
    if msg.kind == "labels":
        body = np.ascontiguousarray(msg.labels, dtype="<i8")
        if body.shape != (n,):
            raise WireError(f"labels must have shape ({n},), got {body.shape}")
        columns = 0
    else:
        body = np.ascontiguousarray(msg.values, dtype="<f8")
        if body.ndim != 2 or body.shape[0] != n:
            raise WireError(f"values must be ({n}, columns), got shape {body.shape}")
        columns = body.shape[1]
    head = HEADER.pack(MAGIC, VERSION, KINDS.index(msg.kind), 0, msg.sender, msg.round, n,
                       features, columns)
    return head + images.tobytes() + body.tobytes()


def decode(raw: bytes, expect: Expect) -> Message:
    """The :class:`Message` in ``raw``, after every check of the module docstring
    (:class:`WireError` naming the first that fails)."""
    if len(raw) < HEADER.size:
        raise WireError(f"{len(raw)} bytes: shorter than the {HEADER.size}-byte header")
    magic, version, kind, reserved, sender, rnd, n, features, columns = HEADER.unpack_from(raw)
    if magic != MAGIC:
        raise WireError(f"bad magic {magic!r} (expected {MAGIC!r})")
    if version != VERSION or reserved != 0:
        raise WireError(f"unknown version {version} / reserved field {reserved}")
    if kind >= len(KINDS) or KINDS[kind] != expect.kind:
        raise WireError(f"kind code {kind}: this run shares {expect.kind!r}")
    if sender != expect.sender or rnd != expect.round:
        raise WireError(f"sender {sender} round {rnd} under the key of sender "
                        f"{expect.sender} round {expect.round}")
    if not 1 <= n <= expect.max_batch:
        raise WireError(f"batch of {n} images (limit 1..{expect.max_batch})")
    if features != expect.features:
        raise WireError(f"{features} pixels per image, expected {expect.features}")
    if expect.kind == "labels" and columns != 0 or \
            expect.kind != "labels" and columns != expect.columns:
        raise WireError(f"{columns} values per image, expected {expect.columns}")
    body = n * 8 if expect.kind == "labels" else n * columns * 8
    size = HEADER.size + n * features + body
    if len(raw) != size:
        raise WireError(f"{len(raw)} bytes, the header announces {size}")
    at = HEADER.size
    images = np.frombuffer(raw, np.uint8, n * features, at).reshape(n, features).copy()
    at += n * features
    msg = Message(sender, rnd, expect.kind, images)
    if expect.kind == "labels":
        labels = np.frombuffer(raw, "<i8", n, at).astype(np.int64)
        if labels.min() < 0 or labels.max() >= expect.classes:
            raise WireError(f"labels outside 0..{expect.classes - 1}")
        msg.labels = labels
    else:
        values = np.frombuffer(raw, "<f8", n * columns, at).reshape(n, columns).astype(np.float64)
        if not np.isfinite(values).all():
            raise WireError("non-finite values")
        msg.values = values
    return msg


REPORT_MAGIC = b"LBNR"
REPORT_HEADER = struct.Struct("<4sIII")  # magic, JSON bytes, rows, columns
MAX_REPORT_JSON = 1 << 16


def encode_report(probs: np.ndarray, counts: dict) -> bytes:
    """A node's evaluation for the collector: its counters (a flat JSON object of numbers,
    booleans and lists of numbers) and its test-set probabilities (rows x classes, float64)."""
    text = json.dumps(counts, sort_keys=True).encode("utf-8")
    probs = np.ascontiguousarray(probs, dtype="<f8")
    return REPORT_HEADER.pack(REPORT_MAGIC, len(text), *probs.shape) + text + probs.tobytes()


def decode_report(raw: bytes, rows: int, columns: int) -> tuple[np.ndarray, dict]:
    """(probs, counts) of :func:`encode_report`'s bytes, checked: magic, the expected shape,
    the exact length, a JSON object of at most 64 KiB whose values are numbers, booleans or
    lists of numbers, and probabilities in [0, 1]. Else :class:`WireError`."""
    if len(raw) < REPORT_HEADER.size:
        raise WireError(f"{len(raw)} bytes: shorter than the report header")
    magic, n_json, r, c = REPORT_HEADER.unpack_from(raw)
    if magic != REPORT_MAGIC:
        raise WireError(f"bad report magic {magic!r}")
    if (r, c) != (rows, columns) or n_json > MAX_REPORT_JSON:
        raise WireError(f"report of {r} x {c} with {n_json} JSON bytes, expected "
                        f"{rows} x {columns} and at most {MAX_REPORT_JSON}")
    if len(raw) != REPORT_HEADER.size + n_json + 8 * r * c:
        raise WireError(f"{len(raw)} report bytes, the header announces "
                        f"{REPORT_HEADER.size + n_json + 8 * r * c}")
    try:
        counts = json.loads(raw[REPORT_HEADER.size:REPORT_HEADER.size + n_json])
    except ValueError as e:
        raise WireError(f"report counters are not JSON: {e}") from None
    ok = (int, float, bool)
    if not isinstance(counts, dict) or not all(
            isinstance(v, ok) or isinstance(v, list) and all(isinstance(x, ok) for x in v)
            for v in counts.values()):
        raise WireError("report counters must be a JSON object of numbers and lists of numbers")
    probs = np.frombuffer(raw, "<f8", r * c, REPORT_HEADER.size + n_json).reshape(r, c)
    if not (np.isfinite(probs).all() and (probs >= 0).all() and (probs <= 1).all()):
        raise WireError("report probabilities outside [0, 1]")
    return probs.astype(np.float64), counts
