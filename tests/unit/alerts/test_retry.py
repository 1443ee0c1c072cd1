"""The retry schedule: Svix-like steps with jitter, Retry-After respected, then dead letters."""

from alerts.channels.webhook import classify_response
from alerts.dispatcher import retry_delay

SCHEDULE = (5, 300, 1800, 7200, 18000, 36000)


def test_schedule_steps_with_bounded_jitter():
    assert retry_delay(1, SCHEDULE, rand=lambda: 0.0) == 4.5
    assert retry_delay(1, SCHEDULE, rand=lambda: 1.0) == 5.5
    assert retry_delay(6, SCHEDULE, rand=lambda: 0.5) == 36000


def test_exhausted_schedule_means_dead_letter():
    assert retry_delay(7, SCHEDULE) is None


def test_retry_after_can_only_lengthen_the_wait():
    assert retry_delay(1, SCHEDULE, retry_after_seconds=120, rand=lambda: 0.5) == 120
    assert retry_delay(3, SCHEDULE, retry_after_seconds=1, rand=lambda: 0.5) == 1800


def test_http_status_classification():
    assert classify_response(204, None).outcome == "delivered"
    assert classify_response(301, None).outcome == "retry"  # redirects are never followed
    assert classify_response(410, None).outcome == "disabled"
    assert classify_response(429, "30").retry_after_seconds == 30
    assert classify_response(503, None).outcome == "retry"
    assert classify_response(400, None).outcome == "retry"
