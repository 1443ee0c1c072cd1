"""The alert agent: spike events -> the dispatcher's durable outbox.

The offset of a spike is committed only after ``accept`` has written its notifications, so a
crash between the two re-reads the spike, and the outbox's deterministic ids make that harmless.
While the state database is unavailable ``accept`` waits (the spike stays unacknowledged); a spike
that can never be accepted (it does not decode, or routing it raises) is a dead letter.
"""

from __future__ import annotations

from typing import Any

import faust

from streams.records import Spike, decode

STAGE = "alert"


def register(app: faust.App, spikes_topic: faust.TopicT, sink: Any) -> Any:
    """``spikes_topic`` is read as bytes (``app.spikes_topic``); ``app.dead_letters`` takes
    what cannot be accepted (streams/deadletters.py)."""
    dead_letters = app.dead_letters  # type: ignore[attr-defined]

    @app.agent(spikes_topic, name=STAGE)
    async def alert(stream: faust.StreamT) -> None:
        async for event in stream.events():
            try:
                spike = decode(Spike, event.value)
                await sink.accept(spike.asdict())
            except Exception as exc:
                await dead_letters.send(STAGE, event.message, exc)

    return alert
