"""The repository's top-level folders numerics/, emulators/ and integrations/ are the
subpackages of one package, ``lowbit`` (lowbit/ holds its root); the C backend is
built by cffi."""

from setuptools import find_packages, setup

TOP = ("numerics", "emulators", "integrations")

setup(
    package_dir={"lowbit": "lowbit", **{f"lowbit.{t}": t for t in TOP}},
    packages=["lowbit"] + [f"lowbit.{p}" for p in find_packages(include=[f"{t}*" for t in TOP])],
    package_data={"lowbit": ["py.typed"], "lowbit.integrations.reports": ["data/*.toml"]},
    cffi_modules=["emulators/_c/build.py:ffibuilder"],
)
