"""The README's Python examples run as written, and its layout table names the tree."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def _blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", README.read_text(), flags=re.S)


def test_python_examples_run():
    """Every ```python block executes without error (a doc a user copies must work)."""
    blocks = _blocks("python")
    assert blocks, "the README shows no Python example"
    for code in blocks:
        assert "import lowbit" in code
        exec(compile(code, str(README), "exec"), {})


def test_layout_table_matches_the_tree():
    """Each folder the layout table names exists, and each top-level package folder is in it."""
    text = README.read_text()
    layout = text.split("## Layout", 1)[1]
    named = {n for cell in re.findall(r"^\| (`[^|]+`) \|", layout, flags=re.M)
             for n in re.findall(r"`([\w/.]+)`", cell)}
    root = README.parent
    for path in named:
        assert (root / path).exists(), f"README's layout names {path}, which does not exist"
    for folder in ("lowbit/", "numerics/", "emulators/", "integrations/", "csrc/", "tests/",
                   "docs/", "benchmarks/"):
        assert any(n.rstrip("/") == folder.rstrip("/") for n in named), f"{folder} missing"
    for sub in sorted((root / "integrations").iterdir()):
        if sub.is_dir() and (sub / "__init__.py").exists():
            assert f"integrations/{sub.name}/" in named, f"integrations/{sub.name}/ missing"
