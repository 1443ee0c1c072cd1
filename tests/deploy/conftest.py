"""Fixtures of the deployment tests: compose.yaml as compose reads it, deploy/k8s rendered."""

from __future__ import annotations

import functools
from typing import Any

import pytest
import yaml

from tests.deploy.checks import DEPLOY, interpolate, kustomize_build

K8S = DEPLOY / "k8s"


@pytest.fixture(scope="session")
def compose() -> dict[str, Any]:
    return yaml.safe_load(interpolate((DEPLOY / "compose.yaml").read_text(encoding="utf-8")))


@functools.cache
def _render(kustomization: str) -> list[dict[str, Any]]:
    return kustomize_build(K8S / kustomization)


@pytest.fixture(scope="session", params=["base", "overlays/production"])
def rendered(request: pytest.FixtureRequest) -> tuple[str, list[dict[str, Any]]]:
    """(name, objects) of one kustomization, rendered by kustomize build."""
    return request.param, _render(request.param)


@pytest.fixture(scope="session")
def base() -> list[dict[str, Any]]:
    return _render("base")


@pytest.fixture(scope="session")
def production() -> list[dict[str, Any]]:
    return _render("overlays/production")
