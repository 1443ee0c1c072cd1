"""What the deployment tests share: where things are, the kustomize they render with, compose's
variable interpolation, and the check that a deployment's NEWSALERT_* variables are settings the
service really reads."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from pydantic import BaseModel, SecretStr
from pydantic_core import to_jsonable_python

from newsalert.cli.config import CONFIG_FILE_VARIABLE, setting_env_names, setting_rows
from newsalert.settings import ENV_PREFIX, Settings, load_settings

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
# A tag that names a release: digits, not a moving name.
PINNED_TAG = re.compile(r"^v?\d+(\.\d+)+([.-][\w.]+)?$")


def image_is_pinned(image: str) -> bool:
    name, _, tag = image.rpartition(":")
    return bool(name) and "/" not in tag and bool(PINNED_TAG.match(tag))


def find_kustomize() -> str:
    """kustomize on PATH or where `make kustomize` puts it; missing fails, never skips."""
    found = shutil.which("kustomize")
    if found:
        return found
    gopath = None
    if shutil.which("go"):
        gopath = subprocess.run(
            ["go", "env", "GOPATH"], capture_output=True, text=True, check=False
        ).stdout.strip()
    for directory in filter(None, [gopath, str(Path.home() / "go")]):
        candidate = Path(directory) / "bin" / "kustomize"
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    pytest.fail(
        "kustomize is not on PATH nor in $(go env GOPATH)/bin: run `make kustomize` (it "
        "installs sigs.k8s.io/kustomize/kustomize/v5@v5.7.1 with go install; needs Go)",
        pytrace=False,
    )


def kustomize_build(directory: Path) -> list[dict[str, Any]]:
    result = subprocess.run(
        [find_kustomize(), "build", str(directory)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, f"kustomize build {directory}:\n{result.stderr}"
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


_VARIABLE = re.compile(r"\$\{(?P<name>\w+)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}")


def interpolate(text: str) -> str:
    """Compose's ``${NAME:-default}`` with nothing set in the environment: the default. A
    variable without one would make `docker compose up` need a .env file: refused here."""

    def value(match: re.Match[str]) -> str:
        if match["op"] in (":-", "-"):
            return match["arg"]
        raise AssertionError(f"compose variable {match[0]} has no default")

    return _VARIABLE.sub(value, text.replace("$$", "\0")).replace("\0", "$")


def newsalert_variables(env: dict[str, str]) -> dict[str, str]:
    return {name: value for name, value in env.items() if name.startswith(ENV_PREFIX)}


def unknown_variables(env: dict[str, str]) -> set[str]:
    return set(newsalert_variables(env)) - setting_env_names()


def settings_from(
    env: dict[str, str], config_file: Path | None, monkeypatch: pytest.MonkeyPatch
) -> Settings:
    """The settings a process started with ``env`` builds (its config file read from
    ``config_file``, the repository's copy of what it mounts), and nothing else from here."""
    for name in list(os.environ):
        if name.startswith(ENV_PREFIX):
            monkeypatch.delenv(name)
    for name, value in newsalert_variables(env).items():
        monkeypatch.setenv(name, value)
    if CONFIG_FILE_VARIABLE in env:
        assert config_file is not None, f"{env[CONFIG_FILE_VARIABLE]}: no file behind it"
        monkeypatch.setenv(CONFIG_FILE_VARIABLE, str(config_file))
    return load_settings()


def assert_variables_read(env: dict[str, str], settings: Settings) -> None:
    """Each NEWSALERT_* variable in ``env`` set the setting it names to its value."""
    by_env = {row.env: row.name for row in setting_rows()}
    for name, text in newsalert_variables(env).items():
        if name == CONFIG_FILE_VARIABLE:
            continue
        value: Any = settings
        for part in by_env[name].split("."):
            value = getattr(value, part)
        assert _same(value, text), f"{name}={text!r} but the setting reads {value!r}"


def _same(value: Any, text: str) -> bool:
    if isinstance(value, SecretStr):
        value = value.get_secret_value()
    if isinstance(value, BaseModel | tuple | list | dict):
        return to_jsonable_python(value) == json.loads(text)
    if isinstance(value, bool):
        return str(value).lower() == text.lower()
    if isinstance(value, int | float):
        return value == float(text)
    return str(value) == text


def http_statuses(paths: set[str]) -> dict[str, int]:
    """GET each path from the service's own HTTP endpoint (newsalert/http.py, as every role
    starts it), on a free 127.0.0.1 port."""
    from newsalert.http import ServiceHttp

    async def get_all() -> dict[str, int]:
        http = ServiceHttp("127.0.0.1", 0)
        await http.start()
        try:
            async with aiohttp.ClientSession() as session:
                statuses = {}
                for path in sorted(paths):
                    async with session.get(f"{http.url}{path}") as response:
                        statuses[path] = response.status
                return statuses
        finally:
            await http.stop()

    return asyncio.run(get_all())
