"""Build hook for the one C extension (movierec._tower); everything else is in pyproject.toml.

The extension is optional: where it cannot be compiled (no C compiler, MSVC), the install
still succeeds and scoring keeps its torch path.
"""

import sys

from setuptools import Extension, setup

flags = [] if sys.platform == "win32" else ["-O3"]
setup(
    ext_modules=[
        Extension(
            "movierec._tower", ["src/movierec/_tower.c"], extra_compile_args=flags, optional=True
        )
    ]
)
