"""cffi build script of the C backend (API mode, out-of-line).

Used by ``setup.py`` (``cffi_modules``) at install time, and directly to build
a variant elsewhere, e.g. under AddressSanitizer/UBSan for CI::

    python -m lowbit.emulators._c.build --sanitize --outdir build/asan

The cdef is the section of ``csrc/lowbit.h`` between ``cffi:begin`` and
``cffi:end``, with enum values replaced by ``...`` so the C compiler supplies them.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import subprocess
import sys
import sysconfig
from pathlib import Path

from cffi import FFI

ROOT = Path(__file__).resolve().parents[2]
CSRC = ROOT / "csrc"
SOURCES = ["fixed.c", "binary.c", "lns.c", "floating.c", "block.c", "lsh.c", "sparse.c"]
MODULE = "lowbit.emulators._c._lowbit_c"
# -fno-trapping-math: no kernel reads the floating-point exception flags, and without it
# GCC keeps trunc/floor scalar (the matrix-unit models' cut terms); values are IEEE's either
# way (no contraction, no reassociation).
CFLAGS = ["-O3", "-std=c11", "-ffp-contract=off", "-fno-trapping-math", "-fopenmp", "-Wall",
          "-Wextra", "-Wno-unknown-pragmas"]
SANITIZE = ["-O1", "-g", "-fno-wrapv", "-fno-omit-frame-pointer", "-fsanitize=address,undefined",
            "-fno-sanitize-recover=all"]

# GCC's tuning for Skylake-family cores (and "generic") turns gather vectorization
# off; the LNS accumulation loops are table gathers and run ~10x slower without it
# (256^3 Exact matmul on a Cooper Lake core: 289 ms -> 30 ms). Used where accepted.
GATHER_TUNING = "-mtune-ctrl=use_gather_2parts,use_gather_4parts,use_gather"


def compiler_accepts(flag: str) -> bool:
    """Whether the C compiler distutils will use accepts ``flag`` (compiles an empty unit)."""
    cc = shlex.split(os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc")
    try:
        r = subprocess.run(cc + ["-Werror", flag, "-x", "c", "-c", "-o", os.devnull, "-"],
                           input=b"int lowbit_probe;\n", capture_output=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return r.returncode == 0


def cdef_source() -> str:
    """The cffi declarations read from csrc/lowbit.h."""
    text = (CSRC / "lowbit.h").read_text()
    body = text.split("/* cffi:begin */", 1)[1].split("/* cffi:end */", 1)[0]
    body = re.sub(r"/\*.*?\*/", "", body, flags=re.S)
    return re.sub(r"=\s*\d+", "= ...", body)


def make_ffi(sanitize: bool = False, absolute: bool = False) -> FFI:
    ffi = FFI()
    ffi.cdef(cdef_source())
    march = os.environ.get("LOWBIT_MARCH", "native")
    flags = list(CFLAGS) + ([f"-march={march}"] if march else [])
    if compiler_accepts(GATHER_TUNING):
        flags.append(GATHER_TUNING)
    link = ["-fopenmp"]
    if sanitize:
        flags = [f for f in flags if not f.startswith("-O")] + SANITIZE
        link = link + ["-fsanitize=address,undefined"]
    root = ROOT if absolute else Path(os.path.relpath(ROOT))
    ffi.set_source(
        MODULE,
        '#include "lowbit.h"',
        sources=[str(root / "csrc" / s) for s in SOURCES],
        include_dirs=[str(root / "csrc")],
        extra_compile_args=flags,
        extra_link_args=link,
    )
    return ffi


ffibuilder = make_ffi()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sanitize", action="store_true", help="build with ASan + UBSan")
    parser.add_argument("--outdir", default="build/c", help="where the module is written")
    args = parser.parse_args(argv)
    out = Path(args.outdir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    path = make_ffi(args.sanitize, absolute=True).compile(tmpdir=str(out), verbose=False)
    print(path)


if __name__ == "__main__":
    sys.exit(main())
