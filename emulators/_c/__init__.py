"""The C backend: kernels in ``csrc/``, bound with cffi (see :mod:`.build`)."""
