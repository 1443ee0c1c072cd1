"""What a subscriber receives: the versioned webhook body and the e-mail's subject, text and
HTML. The webhook body is documented in the README and ``alerts/webhook-payload.schema.json``;
changing its shape means a new ``version``.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from functools import cache
from typing import Any
from urllib.parse import urlsplit

import jinja2

from alerts.links import Links

PAYLOAD_VERSION = 1


def iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, tz=UTC).isoformat().replace("+00:00", "Z")


def _safe_link(url: str | None) -> str | None:
    """Only http(s) links reach a subscriber (no javascript:, data: ...)."""
    if not url:
        return None
    return url if urlsplit(url).scheme.lower() in ("http", "https") else None


def width_label(seconds: float) -> str:
    """``3600`` -> ``1 hour``, ``86400`` -> ``1 day``: how an alert names a bucket width."""
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size and seconds % size == 0:
            n = int(seconds // size)
            return f"{n} {unit}" + ("s" if n > 1 else "")
    return f"{seconds:g} seconds"


def spike_summary(spike: dict[str, Any]) -> dict[str, Any]:
    """The part of a payload that describes one spike event."""
    # Events from before several widths carry no width: their window is one bucket.
    width = spike.get("width_seconds") or (spike["window_end"] - spike["window_start"])
    return {
        "topic": spike["topic"],
        "state": spike["state"],
        "spike_id": spike["spike_id"],
        "window": {"start": iso(spike["window_start"]), "end": iso(spike["window_end"])},
        "width_seconds": int(width),
        "count": spike["count"],
        "baseline": round(float(spike["baseline"]), 3),
        "ratio": round(float(spike["ratio"]), 3),
        "score": round(float(spike["score"]), 3),
        "detected_at": iso(spike.get("detected_at") or spike["window_end"]),
        "recent_counts": [
            {"start": iso(point["start"]), "count": point["count"]}
            for point in spike.get("recent_counts", [])
        ],
        "top_stories": [
            {
                "title": story.get("title") or "",
                "source": story.get("source"),
                "url": _safe_link(story.get("url")),
                "published": iso(story["published"]) if story.get("published") else None,
            }
            for story in spike.get("top_stories", [])
        ],
        "matched_terms": list(spike.get("top_terms", [])),
    }


def webhook_payload(
    message_id: str,
    subscriber: str,
    spike: dict[str, Any],
    *,
    test: bool = False,
    kind: str = "spike",
    links: Links | None = None,
) -> dict[str, Any]:
    """The versioned body: one spike (``spike.<state>``), a ``digest`` of several, or a
    ``notice`` (e.g. an endpoint was disabled)."""
    head = {"version": PAYLOAD_VERSION, "message_id": message_id, "test": test}
    head["subscriber"] = subscriber
    if kind == "digest":
        return {
            **head,
            "type": "digest",
            "period": spike["period"],
            "spikes": [spike_summary(item) for item in spike["items"]],
            "links": {"mute": None},
        }
    if kind == "notice":
        return {**head, "type": "notice", "subject": spike["subject"], "text": spike["text"]}
    mute = links.mute_url(subscriber, spike["topic"]) if links else None
    return {
        **head,
        "type": f"spike.{spike['state']}",
        **spike_summary(spike),
        "links": {"mute": mute},
    }


def webhook_body(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


@cache
def _templates() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("alerts", "templates"),
        # Titles and terms come from the web: HTML is escaped; plain text stays as written.
        autoescape=jinja2.select_autoescape(
            enabled_extensions=("html.j2",), disabled_extensions=("txt.j2",)
        ),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["width_label"] = width_label
    return env


def chart_svg(
    points: list[dict[str, Any]], baseline: float, width: int = 360, height: int = 80
) -> str:
    """A small bar chart of recent counts with the baseline as a line (inline SVG)."""
    if not points:
        return ""
    top = max(max(p["count"] for p in points), baseline, 1)
    bar = width / len(points)
    bars = []
    for i, point in enumerate(points):
        h = (height - 4) * point["count"] / top
        bars.append(
            f'<rect x="{i * bar + 1:.1f}" y="{height - h:.1f}" width="{max(bar - 2, 1):.1f}" '
            f'height="{h:.1f}" fill="#c0392b"/>'
        )
    y = height - (height - 4) * baseline / top
    line = f'<line x1="0" x2="{width}" y1="{y:.1f}" y2="{y:.1f}" stroke="#555" stroke-dasharray="4 3"/>'
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'role="img" aria-label="recent counts against baseline">{"".join(bars)}{line}</svg>'
    )


def email_content(payload: dict[str, Any]) -> tuple[str, str, str]:
    """(subject, plain text, HTML) for a payload built by :func:`webhook_payload`."""
    marker = "[TEST] " if payload["test"] else ""
    kind = payload["type"]
    if kind == "notice":
        subject = f"{marker}newsalert: {payload['subject']}"
        template = "notice"
    elif kind == "digest":
        topics = sorted({s["topic"] for s in payload["spikes"]})
        subject = f"{marker}newsalert digest: {len(payload['spikes'])} spikes ({', '.join(topics)})"
        template = "digest"
    else:
        subject = (
            f"{marker}newsalert: {payload['topic']} {payload['state']}: "
            f"{payload['count']} stories vs baseline {payload['baseline']:g}"
        )
        template = "alert"
    # Subject lines are headers: no line breaks from titles or topics.
    subject = " ".join(subject.split())
    spikes = payload.get("spikes") or ([payload] if kind.startswith("spike.") else [])
    context = {
        "p": payload,
        "spikes": spikes,
        "charts": [
            chart_svg([{"count": c["count"]} for c in s["recent_counts"]], s["baseline"])
            for s in spikes
        ],
    }
    env = _templates()
    plain = env.get_template(f"{template}.txt.j2").render(**context)
    html = env.get_template(f"{template}.html.j2").render(**context)
    return subject, plain, html
