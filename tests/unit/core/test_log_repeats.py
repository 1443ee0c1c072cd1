"""A broker that is away makes aiokafka log every reconnection attempt: the service lets one
line of each kind through per window and says how many it held back."""

from __future__ import annotations

import logging

from newsalert.service import RepeatFilter


def record(name: str, msg: str, created: float, *args: object) -> logging.LogRecord:
    made = logging.LogRecord(name, logging.ERROR, __file__, 1, msg, args, None)
    made.created = created
    return made


def test_repeated_aiokafka_lines_are_held_back_and_counted():
    keep = RepeatFilter(window_seconds=30)
    template = "Unable connect to node with id %s: %s"
    passed = [
        keep.filter(record("aiokafka", template, 100.0 + t / 10, 1, "refused"))
        for t in range(50)  # five seconds of ten lines a second
    ]
    assert passed == [True] + [False] * 49
    later = record("aiokafka", template, 131.0, 1, "refused")
    assert keep.filter(later)
    assert later.getMessage() == (
        "Unable connect to node with id 1: refused (49 more like it in the last 30 s)"
    )


def test_other_kinds_and_other_loggers_pass():
    keep = RepeatFilter(window_seconds=30)
    assert keep.filter(record("aiokafka", "Unable connect to node with id %s", 1.0, 1))
    assert keep.filter(record("aiokafka.consumer.fetcher", "Failed fetch messages from %s", 1.0, 1))
    for _ in range(3):
        assert keep.filter(record("connectors.poller", "feed %s: HTTP 404", 1.0, "u"))
