"""Shared fixtures: real local servers on 127.0.0.1, started per test and always stopped."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest

from newsalert.broker import EmbeddedBroker


async def eventually(
    condition: Callable[[], object], timeout_seconds: float = 20.0, what: str = ""
) -> None:
    """Poll ``condition`` until it is truthy; fail with ``what`` after the deadline."""
    deadline = time.monotonic() + timeout_seconds
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout_seconds} s waiting for {what or condition}")
        await asyncio.sleep(0.05)


@pytest.fixture
async def embedded_broker():
    broker = EmbeddedBroker()
    await broker.start()
    try:
        yield broker
    finally:
        broker.stop()
