"""Builds the running connector side of the service: feed state, fetcher, publisher, poller."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from connectors import metrics
from connectors.fetcher import Fetcher
from connectors.poller import FeedPoller
from connectors.publisher import KafkaPublisher
from connectors.state import FeedState
from newsalert.settings import FeedConfig, Settings
from streams.topics import TopicNames


@dataclass
class ConnectorRuntime:
    poller: FeedPoller  # await poller.run()
    publisher: KafkaPublisher
    state: FeedState
    fetcher: Fetcher

    def reload_feeds(self, feeds: Iterable[FeedConfig]) -> None:
        """SIGHUP: the config file's feed list changed; CLI-added feeds stay."""
        self.state.sync_config(feeds)

    async def close(self) -> None:
        try:
            await self.fetcher.aclose()
            await self.publisher.stop()
        finally:
            self.state.close()


async def build_poller(settings: Settings, bootstrap_servers: str) -> ConnectorRuntime:
    metrics.initialise()
    state = FeedState(settings.state_database)  # a SQLite file, or PostgreSQL when configured
    state.sync_config(settings.feeds)
    fetcher = Fetcher(settings)
    # No broker setting: the embedded one, which has no idempotent producer.
    publisher = KafkaPublisher(
        bootstrap_servers,
        topic=TopicNames(settings.app_id).raw_articles,
        linger_ms=settings.producer_linger_ms,
        idempotent=settings.broker is not None,
    )
    try:
        await publisher.start()
    except Exception:
        await fetcher.aclose()
        state.close()
        raise
    poller = FeedPoller(settings, state, publisher, fetcher)
    return ConnectorRuntime(poller, publisher, state, fetcher)
