"""OPML feed lists in and out: ``read_opml`` for ``feeds import``, ``write_opml`` for export.

Nested outlines are folders; their titles become tags of the feeds inside, as do the
outline's ``category`` values. A DOCTYPE is refused outright: a subscription list never needs
one, and it is where entity bombs live.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

MAX_OPML_BYTES = 10 * 1024 * 1024


class OpmlError(Exception):
    """The document is not a usable OPML file; the message says why."""


@dataclass(frozen=True)
class OpmlFeed:
    url: str
    name: str | None = None
    tags: tuple[str, ...] = ()
    interval_seconds: float | None = None
    full_text: bool = False  # newsalert's own attribute: fetch each article page's text


def read_opml(data: bytes) -> tuple[list[OpmlFeed], list[str]]:
    """The feeds in an OPML document, and one line per outline that was skipped and why."""
    if len(data) > MAX_OPML_BYTES:
        raise OpmlError(f"larger than {MAX_OPML_BYTES} bytes")
    if b"<!DOCTYPE" in data.upper() or b"<!ENTITY" in data.upper():
        raise OpmlError("has a DOCTYPE or entity declarations, which OPML never needs")
    try:
        root = ET.fromstring(data)
    except ET.ParseError as exc:
        raise OpmlError(f"not well-formed XML: {exc}") from None
    if root.tag.lower() != "opml":
        raise OpmlError(f"root element is <{root.tag}>, not <opml>")
    body = root.find("body")
    if body is None:
        raise OpmlError("no <body> element")
    feeds: list[OpmlFeed] = []
    skipped: list[str] = []
    seen: set[str] = set()
    _walk(body, (), feeds, skipped, seen)
    return feeds, skipped


def _walk(
    parent: ET.Element,
    folders: tuple[str, ...],
    feeds: list[OpmlFeed],
    skipped: list[str],
    seen: set[str],
) -> None:
    for outline in parent.findall("outline"):
        attrs = {name.lower(): value.strip() for name, value in outline.attrib.items()}
        label = attrs.get("title") or attrs.get("text") or None
        url = attrs.get("xmlurl")
        if not url:
            if label and len(outline):
                _walk(outline, (*folders, label), feeds, skipped, seen)
            continue
        if urlsplit(url).scheme.lower() not in ("http", "https"):
            skipped.append(f"{url}: not an http(s) URL")
            continue
        if url in seen:
            skipped.append(f"{url}: listed twice")
            continue
        seen.add(url)
        categories = [
            part.strip().strip("/")
            for part in attrs.get("category", "").replace("/", ",").split(",")
            if part.strip().strip("/")
        ]
        tags = tuple(dict.fromkeys([*folders, *categories]))
        name = label if label != url else None  # exporters put the URL in text when unnamed
        interval = _interval(attrs.get("newsalert-interval"))
        full_text = attrs.get("newsalert-full-text", "").lower() in ("true", "1", "yes")
        feeds.append(OpmlFeed(url, name, tags, interval, full_text))
        if len(outline):
            _walk(outline, (*folders, label) if label else folders, feeds, skipped, seen)


def _interval(value: str | None) -> float | None:
    try:
        seconds = float(value) if value else None
    except ValueError:
        return None
    return seconds if seconds is not None and 0 < seconds < 1e9 else None


def write_opml(feeds: Iterable[OpmlFeed], title: str = "newsalert feeds") -> bytes:
    """An OPML 2.0 document listing the feeds; tags go in ``category``."""
    root = ET.Element("opml", version="2.0")
    head = ET.SubElement(root, "head")
    ET.SubElement(head, "title").text = title
    body = ET.SubElement(root, "body")
    for feed in feeds:
        attrs = {"type": "rss", "text": feed.name or feed.url, "xmlUrl": feed.url}
        if feed.name:
            attrs["title"] = feed.name
        if feed.tags:
            attrs["category"] = ",".join(feed.tags)
        if feed.interval_seconds:
            attrs["newsalert-interval"] = f"{feed.interval_seconds:g}"
        if feed.full_text:
            attrs["newsalert-full-text"] = "true"
        ET.SubElement(body, "outline", attrs)
    ET.indent(root)
    return ET.tostring(root, encoding="utf-8", xml_declaration=True) + b"\n"
