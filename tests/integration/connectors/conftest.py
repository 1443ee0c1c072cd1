"""Fixtures for the connector integration tests."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(params=["sqlite", "postgresql"])
def state_target(request, tmp_path) -> Path | str:
    """Where the feed state lives, once per backend: a SQLite file, then a fresh, empty
    PostgreSQL database on the session's local server (what FeedState takes)."""
    if request.param == "sqlite":
        return tmp_path / "newsalert.sqlite3"
    return request.getfixturevalue("postgres_url")
