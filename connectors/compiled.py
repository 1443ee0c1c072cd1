"""The XML parse path (connectors.xmlfeed, xmlwalk, xmltext, feeddates) compiled with mypyc.

``python -m connectors.compiled`` builds them in place (``make`` does, whenever one of them
changes); Python then imports the compiled module beside each source file. Without a build
the same modules run as plain Python, correct but ~15% slower per feed (bench/feeds.py).
A compiled module older than its source would run code that is no longer there:
``stale_modules`` names them, and the tests refuse to run on them.
"""

from __future__ import annotations

import os
import sys
import warnings
from importlib import import_module
from pathlib import Path

MODULES = (
    "connectors.feeddates",
    "connectors.xmlfeed",
    "connectors.xmltext",
    "connectors.xmlwalk",
)
ROOT = Path(__file__).resolve().parent.parent


def source_of(module: str) -> Path:
    return ROOT.joinpath(*module.split(".")).with_suffix(".py")


def stale_modules() -> list[str]:
    """Modules whose compiled file, the one Python imports, is older than the source."""
    stale = []
    for name in MODULES:
        loaded = Path(import_module(name).__file__ or "")
        if loaded.suffix != ".py" and loaded.stat().st_mtime < source_of(name).stat().st_mtime:
            stale.append(name)
    return stale


def is_compiled(module: str) -> bool:
    return not (import_module(module).__file__ or "").endswith(".py")


def build() -> None:
    from mypyc.build import mypycify  # mypy is a dev dependency; only the build needs it
    from setuptools import setup

    os.chdir(ROOT)  # mypyc names modules by their paths; --inplace writes beside them
    warnings.filterwarnings("ignore", module="setuptools")  # about pyproject.toml, not this
    sources = [str(source_of(name).relative_to(ROOT)) for name in MODULES]
    setup(
        name="newsalert-compiled",
        # separate: each module gets its own shared library beside it in connectors/
        ext_modules=mypycify([*sources, "--ignore-missing-imports"], separate=True),
        script_args=["--quiet", "build_ext", "--inplace", "--force"],
    )


if __name__ == "__main__":
    build()
    sys.exit(0)
