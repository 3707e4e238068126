"""The one JIT policy of the Numba backend: every kernel is decorated here.

- ``jit``: serial helper or kernel, cached on disk, releases the GIL.
- ``inline``: a per-element helper that takes arrays (table lookups): inlined at
  Numba IR level, so the reference-count updates of its array arguments are
  pruned instead of costing two runtime calls per element (measured: 17 ns ->
  a few ns per LNS addition).
- ``pjit``: the same with ``parallel=True`` for kernels whose outer loop is a
  ``prange`` over independent output elements (results do not depend on the
  thread count: no element's value depends on another's). Each such kernel is
  also compiled serially (``kernel.serial``, its own cache entry); backends call
  :func:`sized` to use the serial twin below ``PARALLEL_MIN`` elements of work,
  where waking threads costs more than it saves and spinning OpenMP threads
  would slow the BLAS or torch call that comes next (the C kernels use the
  same threshold).

The default ``error_model="python"`` is kept: an integer division by zero raises
instead of returning 0.
"""

from __future__ import annotations

import functools
import types as pytypes

import numba
from llvmlite import ir
from numba.core import cgutils, types
from numba.extending import intrinsic

jit = functools.partial(numba.njit, cache=True, nogil=True)
inline = functools.partial(numba.njit, cache=True, nogil=True, inline="always")
PARALLEL_MIN = 65536


def pjit(fn):
    """Compile ``fn`` with ``parallel=True``, and serially as ``.serial``."""
    parallel = numba.njit(cache=True, nogil=True, parallel=True)(fn)
    twin = pytypes.FunctionType(fn.__code__, fn.__globals__, fn.__name__ + "_serial",
                                fn.__defaults__, fn.__closure__)
    twin.__qualname__ = fn.__qualname__ + "_serial"
    twin.__module__ = fn.__module__
    twin.__doc__ = fn.__doc__
    parallel.serial = jit(twin)
    return parallel


def sized(kernel, work: int):
    """``kernel`` when ``work`` (elements or multiply-adds) exceeds PARALLEL_MIN, else its serial twin."""
    return kernel if work > PARALLEL_MIN else kernel.serial


@intrinsic
def popcount64(typingctx, x):
    """Number of set bits of a uint64 (LLVM ``ctpop``, the POPCNT instruction)."""
    if x != types.uint64:
        return None

    def codegen(context, builder, signature, args):
        fnty = ir.FunctionType(ir.IntType(64), [ir.IntType(64)])
        fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.ctpop.i64")
        return builder.call(fn, [args[0]])

    return types.int64(types.uint64), codegen
