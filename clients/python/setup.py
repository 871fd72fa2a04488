"""Builds the native CPU path (``sonograd/_native.c``) at install time where a C compiler and
Python's headers are at hand. It is optional: without them the install still succeeds, and
the client compiles it on first use instead (``sonograd/_build.py``) or measures in Python.
Everything else about the package is in ``pyproject.toml``."""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "sonograd._native",
            ["sonograd/_native.c"],
            extra_compile_args=["-O3", "-pthread"],
            extra_link_args=["-pthread"],
            libraries=["m"],
            optional=True,
        )
    ]
)
