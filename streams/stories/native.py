"""The story index in Rust (streams/stories/storyindex/): ``StoryClusterer``'s state and
decisions, the story stage's inner loop and the one stage that cannot scale out.

``python -m streams.stories.native`` builds it with cargo and puts the extension module beside
this file (``make`` does, whenever the crate changes, if cargo is installed). Without a build,
``StoryClusterer`` runs its Python implementation: the same rules with the same results
(tests/unit/streams/test_story_native.py runs both over the same articles), several times
slower. A module older than its crate would run code that is no longer there: ``stale`` says
so, and the tests refuse to run on it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
CRATE = HERE / "storyindex"
MODULE = HERE / "_storyindex.abi3.so"

try:
    from streams.stories._storyindex import Sketcher, StoryIndex
except ImportError:  # not built: the Python implementation runs
    Sketcher: Any = None
    StoryIndex: Any = None


def available() -> bool:
    return StoryIndex is not None


def crate_sources() -> list[Path]:
    return [CRATE / "Cargo.toml", CRATE / "Cargo.lock", *sorted((CRATE / "src").glob("*.rs"))]


def stale() -> bool:
    """Whether the built module is older than a file of its crate."""
    if not MODULE.exists():
        return False
    built = MODULE.stat().st_mtime
    return any(source.stat().st_mtime > built for source in crate_sources())


def build() -> None:
    cargo = shutil.which("cargo")
    if cargo is None:
        raise SystemExit(
            "cargo not found: the story index runs as Python (see streams/stories/native.py)"
        )
    # The build tree under the virtual environment, not in the source tree.
    target = Path(os.environ.get("CARGO_TARGET_DIR", Path(sys.prefix) / "cargo-target"))
    subprocess.run(
        [
            cargo,
            "build",
            "--release",
            "--locked",
            "--quiet",
            "--manifest-path",
            str(CRATE / "Cargo.toml"),
        ],
        check=True,
        env={**os.environ, "CARGO_TARGET_DIR": str(target)},
    )
    built = target / "release" / "lib_storyindex.so"
    tmp = MODULE.with_suffix(".tmp")
    shutil.copyfile(built, tmp)
    os.replace(tmp, MODULE)


if __name__ == "__main__":
    try:
        build()
    except (OSError, subprocess.CalledProcessError) as exc:  # cargo said why, above
        sys.exit(f"streams.stories.native: {exc}")
    sys.exit(0)
