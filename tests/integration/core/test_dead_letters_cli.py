"""`newsalert deadletters list|replay` against a broker shared with a running stream app (the
embedded broker of the test, reached by its address as an external one)."""

# ruff: noqa: F811 - the stream app and producer fixtures come from test_dead_letters

from __future__ import annotations

import asyncio
import json
from types import SimpleNamespace

from newsalert.cli import main
from streams.pipeline import ArticleProcessor
from streams.records import DeadLetter
from streams.topics import TopicNames, ensure_topics
from tests.conftest import eventually
from tests.integration.core.test_dead_letters import (  # noqa: F401 - fixtures too
    TopicReader,
    producer,
    raw_article,
    stream_app,
)

TOPICS = TopicNames()  # the default app id


async def cli(*argv: str) -> int:
    # The command runs its own event loop, as from a shell.
    return await asyncio.to_thread(main, list(argv))


def letter(stage: str, topic: str, offset: int, value: bytes, error: Exception) -> bytes:
    message = SimpleNamespace(topic=topic, partition=0, offset=offset, key=b"k", value=value)
    return DeadLetter.of(stage, message, error, 1_800_000_000.0 + offset).dumps()


async def test_list_shows_newest_first_id_stage_source_error_and_an_excerpt(
    embedded_broker, producer, capsys
):
    await ensure_topics(embedded_broker.bootstrap_servers, TOPICS.app_id, 1)
    long_value = b"<html>" + b"x" * 200
    for offset, value in enumerate((b"a", b"b", long_value)):
        await producer.send_and_wait(
            TOPICS.deadletters,
            letter("process-articles", TOPICS.raw_articles, 40 + offset, value, ValueError("bad")),
        )
    capsys.readouterr()
    assert await cli("deadletters", "list", "--limit", "2", "--broker", embedded_broker.url) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2
    assert lines[0] == (
        "2  2027-01-15 08:00:42  process-articles  newsalert.articles.raw[0]@42  "
        "ValueError: bad  | <html>" + "x" * 51 + "..."
    )
    assert lines[1].startswith("1  2027-01-15 08:00:41  process-articles")

    assert await cli("deadletters", "list", "--json", "--broker", embedded_broker.url) == 0
    shown = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [entry["id"] for entry in shown] == [2, 1, 0]
    assert shown[2] | {"failed_at": 0} == {
        "id": 0,
        "stage": "process-articles",
        "topic": TOPICS.raw_articles,
        "partition": 0,
        "offset": 40,
        "key": "k",
        "key_encoding": "utf-8",
        "value": "a",
        "value_encoding": "utf-8",
        "error": "ValueError: bad",
        "failed_at": 0,
        "version": 1,
    }


async def test_list_on_a_broker_without_dead_letters_says_so(embedded_broker, capsys):
    assert await cli("deadletters", "list", "--broker", embedded_broker.url) == 0
    assert capsys.readouterr().out == "no dead letters\n"


async def test_replay_puts_the_record_back_and_the_fixed_agent_processes_it(
    stream_app, producer, embedded_broker, monkeypatch, capsys
):
    prepare = ArticleProcessor.prepare

    def buggy(self, raw):
        if raw["article_id"] == "boom":
            raise ZeroDivisionError("division by zero")
        return prepare(self, raw)

    monkeypatch.setattr(ArticleProcessor, "prepare", buggy)
    async with TopicReader(
        embedded_broker.bootstrap_servers, TOPICS.deadletters, TOPICS.articles, TOPICS.raw_articles
    ) as topics:
        await producer.send_and_wait(TOPICS.raw_articles, raw_article("boom"), key=b"boom")
        await eventually(lambda: topics.dead_letters(), what="a dead letter")
        monkeypatch.setattr(ArticleProcessor, "prepare", prepare)  # the bug is fixed
        capsys.readouterr()
        assert await cli("deadletters", "replay", "0", "--broker", embedded_broker.url) == 0
        assert capsys.readouterr().out == (
            f"0 process-articles: back on {TOPICS.raw_articles}\nreplayed 1 dead letter\n"
        )
        await eventually(lambda: b"boom" in topics.keys(TOPICS.articles), what="boom classified")
    original, replayed = topics.of(TOPICS.raw_articles)
    assert (replayed.key, replayed.value) == (original.key, original.value)
    assert replayed.headers == (("newsalert-replay-of", b"newsalert.deadletters@0"),)


async def test_replay_by_stage_sends_back_only_that_agents_dead_letters(
    embedded_broker, producer, capsys
):
    await ensure_topics(embedded_broker.bootstrap_servers, TOPICS.app_id, 1)
    for stage, topic, value in (
        ("alert", TOPICS.spikes, b"spike 1"),
        ("detect-spikes", TOPICS.topic_hits, b"hit"),
        ("alert", TOPICS.spikes, b"spike 2"),
    ):
        await producer.send_and_wait(
            TOPICS.deadletters, letter(stage, topic, 0, value, KeyError("x"))
        )
    async with TopicReader(
        embedded_broker.bootstrap_servers, TOPICS.spikes, TOPICS.topic_hits
    ) as topics:
        argv = ("deadletters", "replay", "--stage", "alert", "--broker", embedded_broker.url)
        assert await cli(*argv) == 0
        assert capsys.readouterr().out.splitlines()[-1] == "replayed 2 dead letters"
        await eventually(lambda: len(topics.of(TOPICS.spikes)) == 2, what="two spikes back")
        assert [r.value for r in topics.of(TOPICS.spikes)] == [b"spike 1", b"spike 2"]
        assert topics.of(TOPICS.topic_hits) == []


async def test_replay_without_a_choice_or_with_an_unknown_id_replays_nothing(
    embedded_broker, producer, capsys
):
    await ensure_topics(embedded_broker.bootstrap_servers, TOPICS.app_id, 1)
    await producer.send_and_wait(
        TOPICS.deadletters, letter("alert", TOPICS.spikes, 0, b"s", KeyError("x"))
    )
    async with TopicReader(embedded_broker.bootstrap_servers, TOPICS.spikes) as topics:
        assert await cli("deadletters", "replay", "--broker", embedded_broker.url) == 2
        assert "name the dead letters to replay" in capsys.readouterr().err
        assert await cli("deadletters", "replay", "0", "7", "--broker", embedded_broker.url) == 1
        assert "no dead letter 7" in capsys.readouterr().err
        # The marker shows that anything sent before it would have been read by now.
        await producer.send_and_wait(TOPICS.spikes, b"marker")
        await eventually(lambda: topics.of(TOPICS.spikes), what="the marker")
        assert [r.value for r in topics.of(TOPICS.spikes)] == [b"marker"]


async def test_deadletters_without_a_broker_says_it_needs_one(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("NEWSALERT_BROKER", raising=False)
    assert await cli("deadletters", "list", "--data-dir", str(tmp_path)) == 2
    assert "needs --broker kafka://HOST:PORT" in capsys.readouterr().err
