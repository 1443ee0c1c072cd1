"""`newsalert deadletters list|replay`: records the stream agents could never process.

The dead-letter topic has one partition, so a dead letter's offset is its id. It is read from
the beginning without a consumer group (nothing is committed), on the broker the service uses.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from newsalert.settings import Settings
from streams.deadletters import STAGES
from streams.records import DeadLetter, error_line
from streams.topics import TopicNames

EXCERPT_CHARS = 60
BROKER_REACH_SECONDS = 10.0
READ_SECONDS = 60.0
NEEDS_BROKER = (
    "needs --broker kafka://HOST:PORT (or NEWSALERT_BROKER), the broker the service uses: the "
    "embedded one lives inside a single `newsalert run` and keeps its topics in memory only"
)


def add_parser(commands: Any) -> None:
    from newsalert.cli import common_options

    parser = commands.add_parser(
        "deadletters",
        help="list and replay records the stream agents could not process (needs a broker)",
        description="Records an agent could never process (a payload that does not decode, an "
        f"exception in the processing code) are on the topic {TopicNames().deadletters} (APP_ID.deadletters) with their "
        f"error. The command {NEEDS_BROKER}.",
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    listing = actions.add_parser(
        "list", help="dead letters: id, time, stage, source, error and an excerpt"
    )
    listing.add_argument(
        "--limit", type=int, default=50, help="show at most this many, newest first (default 50)"
    )
    listing.add_argument("--json", action="store_true", help="one JSON object per line")
    replay = actions.add_parser(
        "replay",
        help="send dead letters back to the topic they came from",
        description="Re-inject the original key and value of the chosen dead letters into their "
        "source topic, where the agent processes them again (one that fails again is a new "
        "dead letter). Replaying one twice injects it twice; article ids and content hashes, "
        "and the outbox's message ids, absorb the copy.",
    )
    replay.add_argument(
        "dead_letter_id", nargs="*", type=int, help="dead-letter ids, as `list` shows them"
    )
    replay.add_argument(
        "--stage", choices=STAGES, help="only dead letters of this agent (alone: all of them)"
    )
    for sub in (listing, replay):
        sub.add_argument("--broker", help="the service's Kafka as kafka://HOST:PORT")
        common_options(sub)


@dataclass(frozen=True)
class Entry:
    """One record of the dead-letter topic: its offset (the id), and the dead letter, or why
    the record is not one."""

    id: int
    letter: DeadLetter | None
    problem: str | None = None


def run(args: argparse.Namespace, settings: Settings) -> int:
    if not settings.broker:
        print(f"newsalert deadletters: {NEEDS_BROKER}", file=sys.stderr)
        return 2
    from connectors.publisher import bootstrap_from_broker_url

    bootstrap = bootstrap_from_broker_url(settings.broker)
    args.deadletters_topic = TopicNames(settings.app_id).deadletters
    if args.action == "list":
        return asyncio.run(_list(args, settings.broker, bootstrap))
    return asyncio.run(_replay(args, settings.broker, bootstrap))


@contextlib.contextmanager
def _reaching(broker: str) -> Iterator[None]:
    """A broker that cannot be reached is one line (BrokerError), not aiokafka's log lines."""
    from aiokafka.errors import KafkaConnectionError

    from newsalert.broker import BrokerError, quiet_kafka_client, unreachable_reason

    try:
        with quiet_kafka_client():
            yield
    except (KafkaConnectionError, OSError, TimeoutError) as exc:
        reason = unreachable_reason(exc, BROKER_REACH_SECONDS)
        raise BrokerError(f"broker {broker} could not be reached ({reason})") from None


async def read_dead_letters(
    broker: str, bootstrap: str, topic: str = TopicNames().deadletters
) -> list[Entry]:
    """Every record of the dead-letter ``topic``, oldest first; none when it does not exist."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    try:
        with _reaching(broker):
            async with asyncio.timeout(BROKER_REACH_SECONDS):
                await consumer.start()
        async with asyncio.timeout(READ_SECONDS):
            if topic not in await consumer.topics():
                return []
            partition = TopicPartition(topic, 0)
            consumer.assign([partition])
            start = (await consumer.beginning_offsets([partition]))[partition]
            end = (await consumer.end_offsets([partition]))[partition]
            consumer.seek(partition, start)  # explicit: seek_to_beginning can lose a race
            entries = []
            while await consumer.position(partition) < end:
                batch = await consumer.getmany(partition, timeout_ms=1000)
                entries += [_entry(record) for record in batch.get(partition, [])]
            return entries
    finally:
        await consumer.stop()


def _entry(record: Any) -> Entry:
    try:
        return Entry(record.offset, DeadLetter.loads(record.value))
    except Exception as exc:  # someone else's record on the topic: shown, never replayed
        return Entry(record.offset, None, f"not a dead letter: {error_line(exc)}")


def _when(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, tz=UTC).strftime("%Y-%m-%d %H:%M:%S")


def excerpt(letter: DeadLetter) -> str:
    """The start of the original value, on one line."""
    if letter.value is None:
        return "(no value)"
    text = " ".join(letter.value.split())
    if len(text) > EXCERPT_CHARS:
        text = text[: EXCERPT_CHARS - 3] + "..."
    return f"base64:{text}" if letter.value_encoding == "base64" else text


def _line(entry: Entry) -> str:
    letter = entry.letter
    if letter is None:
        return f"{entry.id}  {entry.problem}"
    source = f"{letter.topic}[{letter.partition}]@{letter.offset}"
    return (
        f"{entry.id}  {_when(letter.failed_at)}  {letter.stage}  {source}  {letter.error}  "
        f"| {excerpt(letter)}"
    )


def _json(entry: Entry) -> str:
    if entry.letter is None:
        return json.dumps({"id": entry.id, "problem": entry.problem})
    return json.dumps({"id": entry.id, **entry.letter.asdict()})


async def _list(args: argparse.Namespace, broker: str, bootstrap: str) -> int:
    entries = await read_dead_letters(broker, bootstrap, args.deadletters_topic)
    shown = entries[::-1][: max(args.limit, 0)]
    for entry in shown:
        print(_json(entry) if args.json else _line(entry))
    if not entries and not args.json:
        print("no dead letters")
    return 0


async def _replay(args: argparse.Namespace, broker: str, bootstrap: str) -> int:
    if not args.dead_letter_id and not args.stage:
        print(
            "newsalert deadletters replay: name the dead letters to replay (ids from "
            "`newsalert deadletters list`), or --stage STAGE for all of one agent's",
            file=sys.stderr,
        )
        return 2
    topic = args.deadletters_topic
    entries = {entry.id: entry for entry in await read_dead_letters(broker, bootstrap, topic)}
    unknown = [i for i in args.dead_letter_id if i not in entries]
    if unknown:
        ids = ", ".join(str(i) for i in unknown)
        print(
            f"newsalert deadletters replay: no dead letter {ids} on {topic}; "
            "nothing replayed (see `newsalert deadletters list`)",
            file=sys.stderr,
        )
        return 1
    chosen = [entries[i] for i in args.dead_letter_id] or list(entries.values())
    chosen = [
        e for e in chosen if args.stage is None or (e.letter and e.letter.stage == args.stage)
    ]
    for entry in chosen:
        if entry.letter is None:
            print(f"newsalert deadletters replay: {entry.id} {entry.problem}", file=sys.stderr)
    letters = [(e.id, e.letter) for e in chosen if e.letter is not None]
    await _send(broker, bootstrap, letters, topic)
    for entry_id, letter in letters:
        print(f"{entry_id} {letter.stage}: back on {letter.topic}")
    print(f"replayed {len(letters)} dead letter{'' if len(letters) == 1 else 's'}")
    return 1 if len(letters) < len(chosen) else 0


async def _send(
    broker: str, bootstrap: str, letters: list[tuple[int, DeadLetter]], topic: str
) -> None:
    """Each original record back on its topic, marked with the dead letter it came from."""
    from aiokafka import AIOKafkaProducer

    if not letters:
        return
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    try:
        with _reaching(broker):
            async with asyncio.timeout(BROKER_REACH_SECONDS):
                await producer.start()
        for entry_id, letter in letters:
            origin = f"{topic}@{entry_id}".encode()
            await producer.send_and_wait(
                letter.topic,
                letter.original_value(),
                key=letter.original_key(),
                headers=[("newsalert-replay-of", origin)],
            )
    finally:
        await producer.stop()
