"""The webhook body matches its JSON Schema; e-mail content is safe against hostile titles."""

import email
import email.policy
import json
from pathlib import Path

import jsonschema

import alerts
from alerts.channels.email import build_message
from alerts.payload import webhook_payload
from alerts.routing import Notification

SCHEMA = json.loads((Path(alerts.__file__).parent / "webhook-payload.schema.json").read_text())


def test_payload_validates_against_the_published_schema(spike):
    payload = webhook_payload("msg_abc123", "desk", spike)
    jsonschema.validate(payload, SCHEMA, format_checker=jsonschema.FormatChecker())
    assert payload["version"] == 1 and payload["type"] == "spike.started"
    assert [p["count"] for p in payload["recent_counts"]] == [0, 1, 2, 3]


def test_only_http_links_are_passed_on(spike):
    urls = [s["url"] for s in webhook_payload("msg_1", "desk", spike)["top_stories"]]
    assert urls == ["https://news.example/a1", None]


def test_email_has_text_and_html_and_no_header_injection_from_titles(spike):
    spike["topic"] = "5g-security\r\nBcc: victim@example.org"
    note = Notification("msg_1", "desk", "email", "risk@example.org", spike)
    message = build_message(note, "newsalert@example.org")
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
    note = Notification("msg_1", "desk", "email", "risk@example.org", spike)
    message = build_message(note, "newsalert@example.org", test=True)
    assert message["Subject"].startswith("[TEST]")
    assert "TEST NOTIFICATION" in message.get_body(preferencelist=("plain",)).get_content()
