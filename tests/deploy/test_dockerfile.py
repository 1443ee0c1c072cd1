"""Dockerfile and .dockerignore, read as docker would: a pinned slim base, the compiled parse
path built in a build stage, a non-root user, a health check on /healthz."""

from __future__ import annotations

import fnmatch
import re

from connectors import compiled
from tests.deploy.checks import REPO

DOCKERFILE = (REPO / "Dockerfile").read_text(encoding="utf-8")


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments), continuation lines joined, comments dropped."""
    joined = re.sub(r"\\\n", " ", DOCKERFILE)
    found = []
    for line in joined.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            found.append((word.upper(), rest.strip()))
    return found


def stages() -> list[list[tuple[str, str]]]:
    split: list[list[tuple[str, str]]] = []
    for instruction in instructions():
        if instruction[0] == "FROM":
            split.append([])
        if split:
            split[-1].append(instruction)
    return split


def test_both_stages_use_a_pinned_slim_python():
    (base,) = [a for i, a in instructions() if i == "ARG" and a.startswith("PYTHON_IMAGE=")]
    assert re.fullmatch(r"PYTHON_IMAGE=python:3\.11\.\d+-slim(-\w+)?", base), base
    froms = [a for i, a in instructions() if i == "FROM"]
    assert froms == ["${PYTHON_IMAGE} AS build", "${PYTHON_IMAGE}"]


def test_build_stage_compiles_the_parse_path_and_checks_it_did():
    build, runtime = stages()
    steps = " ".join(a for i, a in build if i == "RUN")
    assert "-m connectors.compiled" in steps
    assert "compiled.is_compiled" in steps and "compiled.stale_modules()" in steps
    # The same four modules as the Makefile's COMPILED target.
    makefile = (REPO / "Makefile").read_text(encoding="utf-8")
    listed = re.search(r"addprefix connectors/,([\w.\s]+)\)", makefile)[1].split()
    assert sorted(f"connectors.{m.removesuffix('.py')}" for m in listed) == sorted(compiled.MODULES)
    copies = [a for i, a in runtime if i == "COPY"]
    assert copies == ["--from=build /opt/newsalert /opt/newsalert"]


def test_runtime_runs_as_a_non_root_user():
    _, runtime = stages()
    (user,) = [a for i, a in runtime if i == "USER"]
    uid = user.split(":")[0]
    assert uid not in ("0", "root")
    assert any(i == "RUN" and f"--uid {uid}" in a for i, a in runtime)


def test_healthcheck_asks_healthz_on_the_metrics_port_which_listens_beyond_loopback():
    _, runtime = stages()
    (healthcheck,) = [a for i, a in runtime if i == "HEALTHCHECK"]
    assert "/healthz" in healthcheck and "NEWSALERT_METRICS_PORT" in healthcheck
    (env,) = [a for i, a in runtime if i == "ENV"]
    assert "NEWSALERT_METRICS_HOST=0.0.0.0" in env
    assert ("ENTRYPOINT", '["newsalert"]') in runtime


def test_copied_sources_exist_and_are_not_ignored():
    ignored = [
        line.strip()
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    for must in (".git", ".venv", "**/*.so", "newsalert-data"):
        assert must in ignored  # no host state, no binaries built for another interpreter
    build, _ = stages()
    for _, args in (s for s in build if s[0] == "COPY"):
        *sources, _target = args.split()
        for source in sources:
            assert (REPO / source).exists(), source
            assert not any(fnmatch.fnmatch(source, pattern) for pattern in ignored), source


def test_build_stage_builds_the_rust_story_index_and_checks_it_imports():
    build, _ = stages()
    steps = " ".join(a for i, a in build if i == "RUN")
    assert "-m streams.stories.native" in steps and "native.available()" in steps
    assert "--default-toolchain" in steps  # a pinned Rust, not whatever is newest
