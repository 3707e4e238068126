"""cffi build script of the C backend (API mode, out-of-line).

Used by ``setup.py`` (``cffi_modules``) at install time, and directly to build
a variant elsewhere, e.g. under AddressSanitizer/UBSan for CI::

    python -m emulators._c.build --sanitize --outdir build/asan

The cdef is the section of ``csrc/lowbit.h`` between ``cffi:begin`` and
``cffi:end``, with enum values replaced by ``...`` so the C compiler supplies them.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from pathlib import Path

from cffi import FFI

ROOT = Path(__file__).resolve().parents[2]
CSRC = ROOT / "csrc"
SOURCES = ["fixed.c", "binary.c", "lns.c"]
MODULE = "emulators._c._lowbit_c"
CFLAGS = ["-O3", "-std=c11", "-ffp-contract=off", "-fopenmp", "-Wall", "-Wextra",
          "-Wno-unknown-pragmas"]
SANITIZE = ["-O1", "-g", "-fno-wrapv", "-fno-omit-frame-pointer", "-fsanitize=address,undefined",
            "-fno-sanitize-recover=all"]


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
