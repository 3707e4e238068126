"""The wheel installs one package, ``lowbit``, that works without the checkout.

Builds a wheel (``pip wheel --no-deps``), checks that it holds the top-level package
``lowbit`` (with its compiled C module) and nothing else, installs it with its
dependencies into a fresh venv, and there, from a folder outside the checkout, runs
probe.py: ``import lowbit`` must not import torch, and the codes of a cast, a matmul in
each format family and an EmulatedLinear forward must equal the development install's.
Finally the venv's site-packages must hold no top-level numerics, emulators or
integrations. Run by ``make wheel-check`` (and CI); exits non-zero on any failure.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PROBE = Path(__file__).with_name("probe.py")
GENERIC = ("numerics", "emulators", "integrations")


def run(cmd: list, **kw) -> subprocess.CompletedProcess:
    print("+", " ".join(str(c) for c in cmd), flush=True)
    return subprocess.run([str(c) for c in cmd], check=True, **kw)


def probe(python: Path, cwd: Path) -> dict:
    out = run([python, PROBE], cwd=cwd, capture_output=True, text=True)
    return json.loads(out.stdout)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", type=Path, default=None, help="work here and keep it")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        work = args.keep or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        dist, venv, outside = work / "dist", work / "venv", work / "elsewhere"
        outside.mkdir(exist_ok=True)
        for old in dist.glob("*.whl"):
            old.unlink()
        run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", dist, ROOT])
        wheel, = dist.glob("lowbit-*.whl")
        names = zipfile.ZipFile(wheel).namelist()
        top = sorted({n.split("/")[0] for n in names})
        errors = []
        if [t for t in top if not t.endswith(".dist-info")] != ["lowbit"]:
            errors.append(f"the wheel's top-level entries are {top}, expected lowbit and its "
                          "dist-info only")
        if not any(n.startswith("lowbit/emulators/_c/_lowbit_c") and n.endswith(".so")
                   for n in names):
            errors.append("the wheel holds no compiled C module lowbit/emulators/_c/_lowbit_c*.so")
        if "lowbit/py.typed" not in names:
            errors.append("the wheel holds no lowbit/py.typed")
        if "lowbit/integrations/reports/data/horowitz_45nm.toml" not in names:
            errors.append("the wheel holds no energy table (integrations/reports/data/*.toml)")
        run([sys.executable, "-m", "venv", "--clear", venv])
        pip = [venv / "bin" / "python", "-m", "pip", "install", "--quiet"]
        run(pip + ["-c", ROOT / "constraints.txt", f"{wheel}[torch]"])
        fresh = probe(venv / "bin" / "python", outside)
        dev = probe(Path(sys.executable), outside)
        site = Path(run([venv / "bin" / "python", "-c",
                         "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                        capture_output=True, text=True).stdout.strip())
        if fresh["torch_after_import"]:
            errors.append("`import lowbit` imported torch in the fresh venv")
        if not fresh["file"].startswith(str(site)):
            errors.append(f"the fresh venv imported lowbit from {fresh['file']}, not {site}")
        stray = [g for g in GENERIC if (site / g).exists() or (site / f"{g}.py").exists()]
        if stray:
            errors.append(f"site-packages holds top-level {stray}")
        keys = [k for k in dev if k not in ("file", "torch_after_import")]
        differ = [k for k in keys if fresh.get(k) != dev[k]]
        if differ:
            errors.append(f"the installed wheel and the development install differ in {differ}")
        print(f"wheel {wheel.name}: top level {top}; {len(keys)} results compared "
              f"({', '.join(keys)})")
        for e in errors:
            print("FAIL:", e)
        if not errors:
            print("OK: one top-level package, lean import, same codes as the development install")
        return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
