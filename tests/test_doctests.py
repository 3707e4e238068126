"""Every module's docstring examples run, imported under its installed name (lowbit.…)."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import lowbit

SKIP = {"lowbit.__main__"}  # runs the CLI when imported


def _modules() -> list[str]:
    names = ["lowbit"]
    for info in pkgutil.walk_packages(lowbit.__path__, "lowbit."):
        names.append(info.name)
    for sub in ("numerics", "emulators", "integrations"):
        pkg = importlib.import_module(f"lowbit.{sub}")
        names += [f"lowbit.{sub}"] + [i.name for i in pkgutil.walk_packages(pkg.__path__,
                                                                            f"lowbit.{sub}.")]
    return sorted(set(names) - SKIP)


MODULES = _modules()


def test_every_package_is_found():
    """The walk reaches the three layers and their subpackages (a miss would skip doctests)."""
    for name in ("lowbit.numerics.reference.fixed", "lowbit.emulators.ops",
                 "lowbit.integrations.torch.layers", "lowbit.integrations.cli"):
        assert name in MODULES


@pytest.mark.parametrize("name", MODULES)
def test_doctests(name):
    """The module's examples give the outputs they show."""
    module = importlib.import_module(name)
    finder = doctest.DocTestFinder(exclude_empty=True)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)  # as pytest's default
    for test in finder.find(module, name):  # globals: a copy of the module's
        runner.run(test)
    result = runner.summarize(verbose=False)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples failed in {name}"
