"""newsalert's Grafana dashboards as code (grafana-foundation-sdk, Grafana's own library).

``python deploy/grafana/dashboards.py`` writes ``dashboards/*.json``: the committed JSON is
what Grafana imports (provisioning/dashboards/newsalert.yml), and a test checks it is what
this file builds. tests/deploy/test_prometheus.py runs every query here against a real
Prometheus scraping a running newsalert: a panel whose query finds no series fails it.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path

from grafana_foundation_sdk.builders import dashboard, prometheus, stat, timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.dashboard import DataSourceRef

HERE = Path(__file__).parent
PROMETHEUS = DataSourceRef(type_val="prometheus", uid="prometheus")  # provisioning's uid
SPIKE_ANNOTATION = (
    'sum by (topic, state) (increase(newsalert_spikes_total{state=~"started|escalated"}[2m])) > 0'
)


@dataclass(frozen=True)
class Panel:
    title: str
    expr: str
    unit: str = "short"
    legend: str = ""
    kind: str = "timeseries"  # or "stat"
    description: str = ""


@dataclass(frozen=True)
class Board:
    uid: str
    title: str
    panels: tuple[Panel, ...]
    spikes_marked: bool = False


BOARDS = (
    Board(
        "newsalert-topics",
        "newsalert: topics and spikes",
        (
            Panel(
                "Classified articles by topic",
                "sum by (topic) (rate(newsalert_articles_classified_total[5m]))",
                "cps",
                "{{topic}}",
            ),
            Panel(
                "Spike events by topic and state (last hour)",
                "sum by (topic, state) (increase(newsalert_spikes_total[1h]))",
                legend="{{topic}} {{state}}",
                description="Spike events the detector emitted; spikes are also marked on every panel.",
            ),
            Panel(
                "Spikes started (24 h)",
                'sum(increase(newsalert_spikes_total{state="started"}[24h]))',
                kind="stat",
            ),
        ),
        spikes_marked=True,
    ),
    Board(
        "newsalert-ingestion",
        "newsalert: ingestion health",
        (
            Panel(
                "Feed fetches by outcome",
                "sum by (outcome) (rate(newsalert_feed_fetches_total[5m]))",
                "cps",
                "{{outcome}}",
            ),
            Panel(
                "Fetch errors by kind",
                "sum by (kind) (rate(newsalert_feed_fetch_errors_total[5m]))",
                "cps",
                "{{kind}}",
            ),
            Panel(
                "Feeds by health",
                "max by (state) (newsalert_feeds)",
                legend="{{state}}",
                description="Every connectors process reports the whole feed list: the largest count.",
            ),
            Panel(
                "Articles published",
                "sum by (kind) (rate(newsalert_articles_published_total[5m]))",
                "cps",
                "{{kind}}",
            ),
            Panel(
                "Feed parse time (p95)",
                "histogram_quantile(0.95, sum by (le) (rate(newsalert_feed_parse_duration_seconds_bucket[5m])))",
                "s",
                "p95",
            ),
            Panel(
                "Entries dropped",
                "sum by (reason) (increase(newsalert_feed_entries_dropped_total[1h]))",
                legend="{{reason}}",
            ),
        ),
    ),
    Board(
        "newsalert-processing",
        "newsalert: processing",
        (
            Panel(
                "Articles processed",
                "sum(rate(newsalert_articles_processed_total[5m]))",
                "cps",
                "processed",
            ),
            Panel(
                "Consumer lag by topic",
                "sum by (topic) (newsalert_consumer_lag)",
                legend="{{topic}}",
                description="Records the stream workers have yet to read, per topic.",
            ),
            Panel(
                "Duplicates by reason",
                "sum by (reason) (rate(newsalert_articles_duplicate_total[5m]))",
                "cps",
                "{{reason}}",
            ),
            Panel(
                "Late articles",
                "sum(rate(newsalert_articles_late_total[5m]))",
                "cps",
                "late",
            ),
            Panel(
                "Fetch to processing (p95)",
                "histogram_quantile(0.95, sum by (le) (rate(newsalert_article_process_lag_seconds_bucket[5m])))",
                "s",
                "p95",
            ),
            Panel(
                "Article latency (p95) by stage",
                "histogram_quantile(0.95, sum by (le, stage, since) "
                "(rate(newsalert_article_latency_seconds_bucket[5m])))",
                "s",
                "{{stage}} since {{since}}",
                description="From an article's publication or fetch to its classification, "
                "and to a delivered notification of a spike it is the newest story of.",
            ),
            Panel(
                "Dead letters by stage (last hour)",
                "sum by (stage) (increase(newsalert_dead_letters_total[1h]))",
                legend="{{stage}}",
            ),
        ),
        spikes_marked=True,
    ),
    Board(
        "newsalert-delivery",
        "newsalert: delivery",
        (
            Panel(
                "Deliveries by channel and outcome",
                "sum by (channel, outcome) (rate(newsalert_deliveries_total[5m]))",
                "cps",
                "{{channel}} {{outcome}}",
            ),
            Panel(
                "Spike to notification (p95)",
                "histogram_quantile(0.95, sum by (le, channel) (rate(newsalert_notification_latency_seconds_bucket[5m])))",
                "s",
                "{{channel}}",
            ),
            Panel("Outbox pending", "sum(newsalert_outbox_pending)", legend="pending"),
            Panel(
                "Dead deliveries (last hour)",
                'sum by (channel) (increase(newsalert_deliveries_total{outcome="dead"}[1h]))',
                legend="{{channel}}",
            ),
        ),
    ),
)


def queries() -> list[tuple[str, str, str]]:
    """(dashboard uid, panel title, PromQL) of every panel and annotation."""
    found = [(b.uid, p.title, p.expr) for b in BOARDS for p in b.panels]
    found += [(b.uid, "spikes (annotation)", SPIKE_ANNOTATION) for b in BOARDS if b.spikes_marked]
    return found


def build(board: Board) -> dict:
    builder = (
        dashboard.Dashboard(board.title)
        .uid(board.uid)
        .tags(["newsalert"])
        .refresh("30s")
        .time("now-24h", "now")
        .timezone("browser")
    )
    if board.spikes_marked:
        builder = builder.annotation(
            dashboard.AnnotationQuery()
            .name("Spikes")
            .datasource(PROMETHEUS)
            .enable(True)
            .icon_color("red")
            .expr(SPIKE_ANNOTATION)
        )
    for panel in board.panels:
        query = (
            prometheus.Dataquery()
            .expr(panel.expr)
            .legend_format(panel.legend or "__auto")
            .ref_id("A")
        )
        if panel.kind == "stat":
            built = stat.Panel().title(panel.title).datasource(PROMETHEUS).with_target(query)
            built = built.unit(panel.unit).height(6).span(6)
        else:
            built = timeseries.Panel().title(panel.title).datasource(PROMETHEUS).with_target(query)
            built = built.unit(panel.unit).height(8).span(12)
        if panel.description:
            built = built.description(panel.description)
        builder = builder.with_panel(built)
    return json.loads(json.dumps(builder.build(), cls=JSONEncoder))


def rendered() -> dict[str, str]:
    """File name -> JSON text, as committed under dashboards/."""
    return {f"{b.uid}.json": json.dumps(build(b), indent=2, sort_keys=True) + "\n" for b in BOARDS}


def main() -> int:
    out = HERE / "dashboards"
    out.mkdir(exist_ok=True)
    for name, text in rendered().items():
        (out / name).write_text(text, encoding="utf-8")
        print(f"wrote {out / name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
