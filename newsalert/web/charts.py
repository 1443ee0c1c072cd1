"""Small bar charts as inline SVG, drawn on the server (no script, no external asset): one
bar per bucket, bars inside a spike's window in red, a title per bar for its exact count."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from html import escape

from markupsafe import Markup


def bar_chart(
    series: list[dict[str, float]],
    bucket_seconds: float,
    spike_windows: Iterable[tuple[float, float]] = (),
    width: int = 360,
    height: int = 60,
    label: str = "",
) -> Markup:
    """``series``: ``[{"start": epoch, "count": n}]`` oldest first; a bar is marked when its
    bucket overlaps a spike window ``(start, end)``."""
    windows = list(spike_windows)
    peak = max((point["count"] for point in series), default=0) or 1
    slot = width / max(len(series), 1)
    bars = []
    for i, point in enumerate(series):
        start, count = point["start"], point["count"]
        marked = any(s < start + bucket_seconds and start < e for s, e in windows)
        bar_height = 0 if not count else max(1.5, (height - 12) * count / peak)
        when = datetime.fromtimestamp(start, UTC).strftime("%Y-%m-%d %H:%M")
        bars.append(
            f'<rect class="{"spike" if marked else "bar"}" x="{i * slot + 0.5:.1f}" '
            f'y="{height - bar_height:.1f}" width="{max(slot - 1, 1):.1f}" '
            f'height="{bar_height:.1f}"><title>{when} UTC: {int(count)}'
            f"{' (spike)' if marked else ''}</title></rect>"
        )
    return Markup(
        f'<svg class="chart" role="img" aria-label="{escape(label)}" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}" xmlns="http://www.w3.org/2000/svg">'
        f'<text x="2" y="10" class="peak">max {int(peak)}</text>'
        f'<line x1="0" y1="{height - 0.5}" x2="{width}" y2="{height - 0.5}" class="axis"/>'
        + "".join(bars)
        + "</svg>"
    )
