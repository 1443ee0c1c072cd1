"""Records an agent can never process go to the dead-letter topic with their error, and the
stream goes on: a payload that does not decode, or an exception from the pure code (a bug).

Agents read their topics as bytes (``undecoded``) and decode each record themselves
(streams.records.decode): a payload Faust cannot decode would otherwise stop the agent's stream
without a word. Only the record's own failures come here: a broker or state database that cannot
be reached is waited out, and the record is processed when it is back (``newsalert deadletters``
lists and replays the dead letters).
"""

from __future__ import annotations

import logging
import time
from typing import Any

import faust

from streams import metrics
from streams.records import DeadLetter, UndecodableRecord
from streams.topics import TopicNames

log = logging.getLogger(__name__)

# Every agent that sends dead letters (streams/articles.py, stories/agent.py, spikes/agent.py,
# alerts/agent.py): the ``stage`` of a DeadLetter and of newsalert_dead_letters_total.
STAGES = ("process-articles", "assign-stories", "detect-spikes", "alert")


def undecoded(topic: faust.TopicT) -> faust.ChannelT:
    """``topic`` read as key and value bytes, for an agent that decodes each record itself."""
    return topic.derive(schema=faust.Schema(key_serializer="raw", value_serializer="raw"))


class DeadLetters:
    """Sends dead letters with the app's producer. Every agent gets it, the alert agent through
    ``app.dead_letters`` (streams/ does not import alerts/)."""

    def __init__(self, app: faust.App) -> None:
        self.app = app
        self.topic = TopicNames(app.conf.id).deadletters

    async def send(self, stage: str, message: Any, error: Exception) -> None:
        """Return once the broker has the dead letter of ``message`` (a Faust message): only
        then may the agent go on and the record's offset be committed."""
        letter = DeadLetter.of(stage, message, error, time.time())
        log.error(
            "%s: %s partition %d offset %d goes to %s: %s",
            stage,
            letter.topic,
            letter.partition,
            letter.offset,
            self.topic,
            letter.error,
            # A bad payload says all in its error; a bug in our code needs its traceback.
            exc_info=None if isinstance(error, UndecodableRecord) else error,
        )
        # Faust's plain producer, also under exactly_once: its transactions take only topics
        # the app reads, and a dead letter sent twice is harmless.
        await self.app.producer.send_and_wait(
            self.topic, message.key, letter.dumps(), None, None, None
        )
        metrics.DEAD_LETTERS.labels(stage).inc()
