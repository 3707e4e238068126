"""The counter-based random generator behind stochastic rounding.

Every stochastic rounding draws one 64-bit word that depends only on the
operation's ``seed`` and a *counter* naming the rounding (never on global state,
threads or the clock), so the reference, Numba and C produce the same codes:

    u64(seed, counter) = mix(seed + (counter + 1) * GAMMA  mod 2**64)

where ``mix`` is the splitmix64 finalizer (Steele, Lea & Flood 2014). This is the
``counter``-th output of splitmix64 started from state ``seed``. Stochastic
rounding uses the top 53 bits, ``u53 = u64 >> 11``, and rounds up when
``u53 < fraction * 2**53`` (exact comparison). Counters are documented in
``docs/rng.md``: the flat C-order index of the output element for element-wise
operations and casts, and ``(element << 32) | step`` inside accumulations.

>>> hex(random_u64(0, 0))
'0xe220a8397b1dcdaf'
"""

from __future__ import annotations

MASK64 = (1 << 64) - 1
GAMMA = 0x9E3779B97F4A7C15
MIX1 = 0xBF58476D1CE4E5B9
MIX2 = 0x94D049BB133111EB
STEP_BITS = 32
"""Counters inside an accumulation are ``(element << STEP_BITS) | step``."""
FINAL_STEP = (1 << STEP_BITS) - 1
"""The step number of the final rounding of an accumulation into its output format."""
MAX_SEED = MASK64


def mix(z: int) -> int:
    """The splitmix64 output function of a 64-bit state."""
    z = ((z ^ (z >> 30)) * MIX1) & MASK64
    z = ((z ^ (z >> 27)) * MIX2) & MASK64
    return z ^ (z >> 31)


def random_u64(seed: int, counter: int) -> int:
    """The 64-bit random word for ``(seed, counter)``, both taken mod 2**64."""
    return mix((seed + ((counter + 1) & MASK64) * GAMMA) & MASK64)


def random_u53(seed: int, counter: int) -> int:
    """The 53-bit uniform integer stochastic rounding compares against."""
    return random_u64(seed, counter) >> 11


def step_counter(element: int, step: int) -> int:
    """Counter of rounding number ``step`` of accumulation output ``element``."""
    return ((element << STEP_BITS) | step) & MASK64


def check_seed(seed: object) -> int:
    """Validate a seed: an int in 0..2**64-1."""
    if isinstance(seed, bool):
        raise TypeError(f"seed must be an int, got bool {seed!r}")
    if not isinstance(seed, int):
        # numpy integers are accepted through __index__
        try:
            seed = seed.__index__()  # type: ignore[union-attr]
        except AttributeError:
            raise TypeError(f"seed must be an int, got {type(seed).__name__} {seed!r}") from None
    if not 0 <= seed <= MAX_SEED:  # type: ignore[operator]
        raise ValueError(f"seed must be in 0..2**64-1, got {seed}")
    return seed  # type: ignore[return-value]
