"""The alert agent: spike events -> the dispatcher's durable outbox.

The offset of a spike is committed only after ``accept`` has written its notifications, so a
crash between the two re-reads the spike, and the outbox's deterministic ids make that harmless.
"""

from __future__ import annotations

from typing import Any

import faust


def register(app: faust.App, spikes_topic: faust.TopicT, sink: Any) -> Any:
    @app.agent(spikes_topic, name="alert")
    async def alert(stream: faust.StreamT) -> None:
        async for spike in stream:
            await sink.accept(spike.asdict())

    return alert
