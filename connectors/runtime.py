"""Builds the running connector side of the service: feed state, fetcher, publisher, poller."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from connectors.fetcher import Fetcher
from connectors.poller import FeedPoller
from connectors.publisher import KafkaPublisher
from connectors.state import FeedState
from streams.settings import Settings


async def build_poller(
    settings: Settings, bootstrap_servers: str
) -> tuple[FeedPoller, KafkaPublisher, Callable[[], Awaitable[None]]]:
    """Return the poller (``await poller.run()``), its publisher and one ``close`` for both."""
    state = FeedState(settings.database_path)
    state.sync_config(settings.feeds)
    fetcher = Fetcher(settings)
    publisher = KafkaPublisher(bootstrap_servers, linger_ms=settings.producer_linger_ms)
    try:
        await publisher.start()
    except Exception:
        await fetcher.aclose()
        state.close()
        raise
    poller = FeedPoller(settings, state, publisher, fetcher)

    async def close() -> None:
        try:
            await fetcher.aclose()
            await publisher.stop()
        finally:
            state.close()

    return poller, publisher, close
