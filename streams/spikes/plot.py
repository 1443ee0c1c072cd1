"""`newsalert backtest --plot FILE.html`: each key's daily volume with its spikes (and known
events) marked, as one self-contained HTML page of inline SVG charts (pure: returns text)."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime
from html import escape

from streams.spikes.detector import SpikeEvent
from streams.spikes.scoring import DAY, KnownEvent

WIDTH, HEIGHT, PAD = 1100, 160, 28

STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5em; color: #222; }
h2 { font-size: 1.05em; margin: 1.4em 0 0.2em; }
p.legend { font-size: 0.85em; color: #555; }
svg { background: #fafafa; border: 1px solid #ddd; }
rect.volume { fill: #5b7fa6; }
rect.event { fill: #2e9d58; fill-opacity: 0.35; }
path.event { fill: #2e9d58; }
path.spike { fill: #c0392b; }
line.spike { stroke: #c0392b; stroke-width: 1; stroke-opacity: 0.5; }
text { font-size: 11px; fill: #555; }
"""


def _day(epoch: float) -> int:
    return int(epoch // DAY)


def _iso(day: int) -> str:
    return datetime.fromtimestamp(day * DAY, tz=UTC).strftime("%Y-%m-%d")


def daily_volume(series: list[tuple[float, int, float]]) -> dict[int, int]:
    """Counts per day (bucket starts summed by day: narrower buckets add up)."""
    days: dict[int, int] = defaultdict(int)
    for start, count, _ in series:
        days[_day(start)] += count
    return days


def chart(
    key: str,
    volume: dict[int, int],
    spikes: list[SpikeEvent],
    known: list[KnownEvent],
    first: int,
    last: int,
) -> str:
    span = max(last - first + 1, 1)
    top = max([*volume.values(), 1])
    x_per_day = (WIDTH - 2 * PAD) / span
    plot_height = HEIGHT - 2 * PAD

    def x(day: float) -> float:
        return PAD + (day - first) * x_per_day

    def y(count: float) -> float:
        return HEIGHT - PAD - plot_height * count / top

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
        f'role="img" aria-label="daily volume of {escape(key)} with spikes marked">',
        f"<title>{escape(key)}: daily volume, spikes and events</title>",
    ]
    for event in known:
        start, end = _day(event.start), _day(event.end)
        parts.append(
            f'<rect class="event" data-start="{_iso(start)}" x="{x(start):.1f}" y="{PAD / 2:.1f}" '
            f'width="{max((end - start) * x_per_day, 3):.1f}" height="{HEIGHT - 1.5 * PAD:.1f}">'
            f"<title>event {_iso(start)}..{_iso(end - 1)}: {escape(event.what)}</title></rect>"
        )
        # Days are thinner than a pixel over years: a mark under the axis keeps it visible.
        cx = x(start)
        parts.append(
            f'<path class="event" d="M{cx - 4:.1f},{HEIGHT - PAD + 10:.1f} '
            f'L{cx + 4:.1f},{HEIGHT - PAD + 10:.1f} L{cx:.1f},{HEIGHT - PAD + 2:.1f} Z"/>'
        )
    bar = max(x_per_day, 1.0)
    for day, count in sorted(volume.items()):
        if count:
            parts.append(
                f'<rect class="volume" x="{x(day):.1f}" y="{y(count):.1f}" width="{bar:.1f}" '
                f'height="{HEIGHT - PAD - y(count):.1f}"><title>{_iso(day)}: {count}</title></rect>'
            )
    for spike in spikes:
        day = _day(spike.window_start)
        cx = x(day) + bar / 2
        width = "1 day" if spike.width_seconds == DAY else f"{spike.width_seconds:g} s"
        titles = "; ".join(s["title"] for s in spike.top_stories[:3])
        parts.append(
            f'<g class="spike" data-start="{_iso(day)}" data-width="{spike.width_seconds:g}">'
            f'<line class="spike" x1="{cx:.1f}" x2="{cx:.1f}" y1="{PAD:.1f}" '
            f'y2="{HEIGHT - PAD:.1f}"/>'
            f'<path class="spike" d="M{cx - 5:.1f},{PAD - 10:.1f} L{cx + 5:.1f},{PAD - 10:.1f} '
            f'L{cx:.1f},{PAD - 1:.1f} Z"/>'
            f"<title>spike started {_iso(day)} at {width}: {spike.count} vs baseline "
            f"{spike.baseline:g}: {escape(titles)}</title></g>"
        )
    parts.append(
        f'<text x="{PAD}" y="{HEIGHT - 8}">{_iso(first)}</text>'
        f'<text x="{WIDTH - PAD}" y="{HEIGHT - 8}" text-anchor="end">{_iso(last)}</text>'
        f'<text x="4" y="{PAD + 10}">{top}</text>'
    )
    parts.append("</svg>")
    return "".join(parts)


def render_html(
    series: dict[str, list[tuple[float, int, float]]],
    events: list[SpikeEvent],
    known: list[KnownEvent] | None = None,
    title: str = "newsalert backtest",
    keys: list[str] | None = None,
) -> str:
    """One page: per key, its daily volume (bars), spike starts (red marks) and known events
    (green bands), all on one time axis; ``keys`` are charted even without articles."""
    known = known or []
    starts = [e for e in events if e.state == "started"]
    volumes = {key: daily_volume(points) for key, points in series.items()}
    keys = sorted(
        set(keys or ()) | set(volumes) | {e.topic for e in starts} | {e.topic for e in known}
    )
    days = [d for v in volumes.values() for d in v] + [_day(e.window_start) for e in starts]
    days += [_day(e.start) for e in known] + [_day(e.end) for e in known]
    first, last = (min(days), max(days)) if days else (0, 0)
    sections = []
    for key in keys:
        own = [e for e in starts if e.topic == key]
        own_known = [e for e in known if e.topic == key]
        found = sum(any(e.near(s.window_start) for s in own) for e in own_known)
        summary = f"{len(own)} spikes" + (
            f", {found} of {len(own_known)} events found" if own_known else ""
        )
        sections.append(
            f'<section data-key="{escape(key)}"><h2>{escape(key)}</h2>'
            f'<p class="legend">{summary}</p>'
            + chart(key, volumes.get(key, {}), own, own_known, first, last)
            + "</section>"
        )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{escape(title)}</title><style>{STYLE}</style></head><body>"
        f"<h1>{escape(title)}</h1>"
        '<p class="legend">Bars: distinct stories per day. Red marks: spike starts (hover for '
        "the width, count and top stories). Green bands and marks under the axis: known "
        "events.</p>" + "\n".join(sections) + "</body></html>\n"
    )
