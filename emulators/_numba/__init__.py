"""The Numba backend: one module per family of kernels, one JIT policy (:mod:`.jit`).

Importing this package compiles nothing; kernels compile on first call and are
cached on disk (``cache=True``).
"""
