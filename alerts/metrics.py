"""Prometheus metrics of alert delivery (labels: channel, outcome; never an address)."""

from prometheus_client import Counter, Gauge, Histogram

NOTIFICATIONS_QUEUED = Counter(
    "newsalert_notifications_queued_total", "Notifications written to the outbox", ["channel"]
)
DELIVERIES = Counter(
    "newsalert_deliveries_total",
    "Delivery attempts by outcome (delivered, retry, failed, disabled, dead)",
    ["channel", "outcome"],
)
DELIVERY_DURATION = Histogram(
    "newsalert_delivery_duration_seconds",
    "Time of one delivery attempt",
    ["channel"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
NOTIFICATION_LATENCY = Histogram(
    "newsalert_notification_latency_seconds",
    "From a spike's detection to its notification being delivered",
    ["channel"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 3600),
)
OUTBOX_PENDING = Gauge("newsalert_outbox_pending", "Notifications waiting for delivery")
OUTBOX_RETRYING = Gauge(
    "newsalert_outbox_retrying",
    "Notifications waiting for a retry: pending after at least one failed attempt (a part of "
    "newsalert_outbox_pending)",
)
NOTIFICATIONS_SKIPPED = Counter(
    "newsalert_notifications_skipped_total",
    "Subscribers following a spike's topic who were not notified, by reason",
    ["reason"],
)
ENDPOINTS_DISABLED = Counter(
    "newsalert_endpoints_disabled_total",
    "Channels disabled (410, failing for days, bounces)",
    ["channel"],
)


CHANNELS = ("webhook", "email")
DELIVERY_OUTCOMES = ("delivered", "retry", "failed", "disabled", "dead")


def initialise() -> None:
    """Every label value known in advance gets its series at 0 from the start: a dashboard
    query or a rule finds it before the first event, and increase() sees the first one."""
    for channel in CHANNELS:
        NOTIFICATIONS_QUEUED.labels(channel)
        for outcome in DELIVERY_OUTCOMES:
            DELIVERIES.labels(channel, outcome)
