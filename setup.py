from setuptools import setup

setup(cffi_modules=["emulators/_c/build.py:ffibuilder"])
