"""The webhook body matches its JSON Schema; e-mail content is safe against hostile titles."""

import email
import email.policy
import json
from pathlib import Path

import jsonschema

import alerts
from alerts.channels.base import Outgoing
from alerts.channels.email import build_message
from alerts.links import Links
from alerts.payload import webhook_payload
from alerts.routing import Notification

LINKS = Links("http://alerts.example:9464", b"k" * 32)


def outgoing(spike, test=False, kind="spike"):
    note = Notification("msg_1", "desk", "email", "risk@example.org", spike, kind=kind)
    payload = webhook_payload("msg_1", "desk", spike, test=test, kind=kind, links=LINKS)
    return Outgoing(
        note, payload, unsubscribe_url=LINKS.unsubscribe_url("desk", "risk@example.org")
    )


SCHEMA = json.loads((Path(alerts.__file__).parent / "webhook-payload.schema.json").read_text())


def test_payload_validates_against_the_published_schema(spike):
    payload = webhook_payload("msg_abc123", "desk", spike, links=LINKS)
    jsonschema.validate(payload, SCHEMA, format_checker=jsonschema.FormatChecker())
    assert payload["version"] == 1 and payload["type"] == "spike.started"
    assert [p["count"] for p in payload["recent_counts"]] == [0, 1, 2, 3]


def test_only_http_links_are_passed_on(spike):
    urls = [s["url"] for s in webhook_payload("msg_1", "desk", spike)["top_stories"]]
    assert urls == ["https://news.example/a1", None]


def test_email_has_text_and_html_and_no_header_injection_from_titles(spike):
    spike["topic"] = "5g-security\r\nBcc: victim@example.org"
    message = build_message(outgoing(spike), "newsalert@example.org")
    reparsed = email.message_from_bytes(message.as_bytes(), policy=email.policy.default)
    assert reparsed["Bcc"] is None and reparsed["To"] == "risk@example.org"
    assert "\n" not in reparsed["Subject"]
    assert message["To"] == "risk@example.org"
    html = message.get_body(preferencelist=("html",)).get_content()
    plain = message.get_body(preferencelist=("plain",)).get_content()
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert "javascript:" not in html
    assert "US warns Germany over Huawei in 5G" in plain and "<svg" in html


def test_test_notifications_are_clearly_marked(spike):
    message = build_message(outgoing(spike, test=True), "newsalert@example.org")
    assert message["Subject"].startswith("[TEST]")
    assert "TEST NOTIFICATION" in message.get_body(preferencelist=("plain",)).get_content()


def test_email_carries_one_click_unsubscribe_and_a_mute_link(spike):
    message = build_message(outgoing(spike), "newsalert@example.org")
    assert message["List-Unsubscribe"].startswith("<http://alerts.example:9464/unsubscribe?")
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert "/mute?" in message.get_body(preferencelist=("plain",)).get_content()


def test_digest_payload_validates_and_lists_every_spike(spike):
    digest = {"period": {"start": "2026-01-01T00:00:00Z", "end": "2026-01-01T01:00:00Z"}}
    digest["items"] = [spike, dict(spike, topic="sanctions")]
    payload = webhook_payload("msg_d1", "desk", digest, kind="digest")
    jsonschema.validate(payload, SCHEMA, format_checker=jsonschema.FormatChecker())
    message = build_message(outgoing(digest, kind="digest"), "newsalert@example.org")
    assert "2 spikes" in message["Subject"]
    plain = message.get_body(preferencelist=("plain",)).get_content()
    assert "Topic 5g-security" in plain and "Topic sanctions" in plain


def test_the_readme_payload_example_is_what_is_sent(spike):
    """The example in README.md ("Webhook payload, version 1") has the fields, order and id
    formats of a real payload, and validates against the schema."""
    import re

    from alerts.routing import message_id

    readme = (Path(alerts.__file__).parents[1] / "README.md").read_text(encoding="utf-8")
    section = readme.split("### Webhook payload, version 1", 1)[1]
    example = json.loads(section.split("```json", 1)[1].split("```", 1)[0])
    jsonschema.validate(example, SCHEMA, format_checker=jsonschema.FormatChecker())
    sent = webhook_payload(
        message_id(spike["spike_id"], "started", "desk", "webhook"), "desk", spike, links=LINKS
    )
    assert list(example) == list(sent)
    assert re.fullmatch(r"msg_[0-9a-f]{26}", sent["message_id"])
    assert re.fullmatch(r"msg_[0-9a-f]{26}", example["message_id"])
    assert re.fullmatch(r"spk_[0-9a-f]{24}", example["spike_id"])


def test_the_alert_says_at_which_width_the_spike_was_seen(spike):
    daily = dict(spike, width_seconds=86400.0, window_end=spike["window_start"] + 86400)
    payload = webhook_payload("msg_w1", "desk", daily, links=LINKS)
    jsonschema.validate(payload, SCHEMA, format_checker=jsonschema.FormatChecker())
    assert payload["width_seconds"] == 86400
    message = build_message(outgoing(daily), "newsalert@example.org")
    plain = message.get_body(preferencelist=("plain",)).get_content()
    html = message.get_body(preferencelist=("html",)).get_content()
    assert "(seen in 1 day buckets)" in plain and "(seen in 1 day buckets)" in html
    # An event from before several widths: its window is its one bucket.
    old = {k: v for k, v in spike.items() if k != "width_seconds"}
    assert webhook_payload("msg_w2", "desk", old)["width_seconds"] == int(
        spike["window_end"] - spike["window_start"]
    )
