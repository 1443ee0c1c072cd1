"""The Quix Streams peer: the same per-article work as ``newsalert streams`` (streams.pipeline's
ArticleProcessor and the topic hits, called from ``sdf.apply``), forwarding each classified
article to a topic. Runs in bench/.venv-quix (Quix Streams 3.28 needs pydantic < 2.14), with
PYTHONPATH at the repository; started by bench/peer.py. Prints one JSON line at the end: its
CPU seconds and peak RSS.

    python bench/quix_peer.py BOOTSTRAP INPUT OUTPUT GROUP COUNT TIMEOUT_SECONDS
"""

from __future__ import annotations

import json
import logging
import resource
import sys
import time
from pathlib import Path

from quixstreams import Application

from streams.classify.taxonomy import load_taxonomy
from streams.pipeline import ArticleProcessor
from streams.spikes.hits import article_hits


def main() -> int:
    bootstrap, source, output, group, count, timeout_seconds = sys.argv[1:]
    processor = ArticleProcessor(load_taxonomy(None))

    def process(raw: dict) -> dict | None:
        article = processor.process(raw, time.time()).article
        if article is not None:
            article_hits(article, {})  # the default settings track no entities
        return article

    app = Application(
        broker_address=bootstrap,
        consumer_group=group,
        auto_offset_reset="earliest",
        # The embedded broker (Tansu) needs these to let the group settle.
        consumer_extra_config={"session.timeout.ms": 6000, "heartbeat.interval.ms": 1000},
        loglevel=logging.WARNING,
        use_changelog_topics=False,
    )
    sdf = app.dataframe(app.topic(source, value_deserializer="json", key_deserializer="str"))
    sdf = sdf.apply(process).filter(lambda article: article is not None)
    sdf.to_topic(app.topic(output, value_serializer="json", key_serializer="str"))
    app.run(count=int(count), timeout=float(timeout_seconds), collect=False)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    # VmHWM, not ru_maxrss: Linux carries ru_maxrss over fork and exec from the parent.
    status = Path("/proc/self/status").read_text().splitlines()
    (peak_kb,) = [int(line.split()[1]) for line in status if line.startswith("VmHWM:")]
    cpu_seconds = usage.ru_utime + usage.ru_stime
    print(json.dumps({"cpu_seconds": cpu_seconds, "peak_rss_bytes": peak_kb * 1024}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
