"""The one JIT policy of the Numba backend: every kernel is decorated here.

- ``jit``: serial helper or kernel, cached on disk, releases the GIL.
- ``pjit``: the same with ``parallel=True`` for kernels whose outer loop is a
  ``prange`` over independent output elements (results do not depend on the
  thread count: no element's value depends on another's).

The default ``error_model="python"`` is kept: an integer division by zero raises
instead of returning 0.
"""

from __future__ import annotations

import functools

import numba
from llvmlite import ir
from numba.core import cgutils, types
from numba.extending import intrinsic

jit = functools.partial(numba.njit, cache=True, nogil=True)
pjit = functools.partial(numba.njit, cache=True, nogil=True, parallel=True)


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
