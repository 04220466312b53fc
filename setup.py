"""Build bdemu's native hook core (bdemu/_native/*.c); everything else is in pyproject.toml."""
from setuptools import Extension, setup

setup(ext_modules=[Extension("bdemu._native._core", ["bdemu/_native/core.c", "bdemu/_native/runs.c"],
                             extra_compile_args=["-O2"])])
