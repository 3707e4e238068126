"""The C header and the Python enums agree; the C module loads or explains how to build it."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

from lowbit.numerics import Overflow, Rounding


def test_enum_values_match_c():
    lib = importlib.import_module("lowbit.emulators._c.backend").lib
    for r in Rounding:
        assert getattr(lib, f"LOWBIT_{r.name}") == int(r)
    for o in Overflow:
        assert getattr(lib, f"LOWBIT_{o.name}") == int(o)
    assert (lib.LOWBIT_SEQUENTIAL, lib.LOWBIT_PAIRWISE) == (0, 1)


def test_missing_build_names_the_command(tmp_path):
    code = ("import os; os.environ['LOWBIT_C_MODULE_DIR'] = %r\n"
            "import lowbit.emulators._c.backend") % str(tmp_path)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode != 0
    assert "pip install -e ." in proc.stderr


@pytest.mark.parametrize("module, banned", [
    ("lowbit.numerics", ("numba", "torch")),
    ("lowbit.emulators", ("numba", "torch")),
    ("lowbit", ("numba", "torch", "lowbit.integrations.torch"))])
def test_imports_stay_lean(module, banned):
    """Importing numerics pulls in neither numba nor torch; emulators and lowbit itself
    compile nothing and leave torch out until a torch name is used (which layer may import
    which is tests/test_layering.py)."""
    code = f"import sys, {module}; print(sorted(m for m in {banned!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
