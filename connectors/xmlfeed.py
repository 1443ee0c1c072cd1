"""RSS 0.9x/1.0/2.0 and Atom 0.3/1.0 read with lxml, giving the values feedparser gives.

``parse_xml`` walks the lxml tree applying feedparser's own rules for the fields we publish
(its element handlers in feedparser/namespaces/_base.py and ``_FeedParserMixin.pop``): which
title, link, id, body and dates an entry keeps, xml:base, guid isPermaLink, a second summary
taken as content, the double-UTF-8 repair. It answers a string (the reason) instead of a feed
when only feedparser should read the document: XML that is not well-formed (feedparser's
loose parser reads it), an encoding only feedparser's guessing decodes, or a root element
that is not RSS, RDF or Atom. connectors.rss then uses feedparser.

Where we differ from feedparser on purpose (``python -m bench.feeds --parity`` counts them):
- HTML in titles and bodies is not sanitised: it becomes plain text downstream
  (streams.clean), where scripts and styles are dropped anyway;
- relative URIs inside entry HTML are left alone, as connectors.rss asked of feedparser.
The parser never loads a DTD, expands an entity or touches the network: HTML entity names
are rewritten to character references before parsing (connectors.xmltext) and connectors.rss
removes any DOCTYPE internal subset first.
"""

from __future__ import annotations

import re
import threading
from typing import Any, Final, NamedTuple

from lxml import etree

from connectors.base import FeedEntry
from connectors.feeddates import dated_entry, entry_time, timestamp
from connectors.xmltext import (
    encodings,
    html_entities_to_numeric,
    is_utf8,
    mend,
    repaired,
)
from connectors.xmlwalk import Walker, attributes_of, element_name

_RSS_VERSIONS: Final = {"0.91": "rss091u", "0.92": "rss092", "0.93": "rss093", "0.94": "rss094"}
_ATOM_VERSIONS: Final = {"0.1": "atom01", "0.2": "atom02", "0.3": "atom03"}
_DOCTYPE: Final = re.compile(rb"<!DOCTYPE[^>]*>", re.IGNORECASE)
_FIRST_ELEMENT: Final = re.compile(rb"<\w")


class XmlFeed(NamedTuple):
    format: str
    title: str | None
    language: str | None
    entries: tuple[FeedEntry, ...]  # of the max_entries newest, those with any content
    entry_count: int  # before the cap
    ttl: str | None
    update_period: str | None
    update_frequency: str | None
    warnings: tuple[str, ...] = ()  # an encoding override, markup mended before parsing


_parsers: Final = threading.local()


def _parser() -> Any:
    parser = getattr(_parsers, "strict", None)
    if parser is None:
        parser = _parsers.strict = etree.XMLParser(
            resolve_entities=False,
            load_dtd=False,
            no_network=True,
            huge_tree=False,
            collect_ids=False,
            remove_comments=True,  # feedparser ignores comments and processing instructions
            remove_pis=True,
        )
    return parser


def parse_xml(
    data: bytes, url: str | None, http_charset: str | None, max_entries: int, fetched_at: float
) -> XmlFeed | str:
    """The feed, or why feedparser should read this document instead."""
    parsed = _tree(data, http_charset)
    if isinstance(parsed, str):
        return parsed
    root, utf8, warnings = parsed
    if not isinstance(root.tag, str):
        return "no root element"
    version = _version(root, utf8)
    if version is None:
        return "root element is not RSS, RDF or Atom"
    walker = Walker(version, url or "", max_entries, lambda raw: _entry_time(raw, fetched_at))
    try:
        walker.walk(root)
    except RecursionError:  # libxml2 stops at depth 256; this is only a second guard
        return "nested too deeply to walk"
    walker.keep_newest()
    feed = walker.feed
    language = _text(feed.get("language"))
    entries = tuple(
        entry for raw in walker.entries if (entry := _entry(raw, fetched_at, language)) is not None
    )
    return XmlFeed(
        version,
        _text(feed.get("title")),
        language,
        entries,
        len(walker.entries) + walker.entries_dropped,
        _text(feed.get("ttl")),
        _text(feed.get("sy_updateperiod")),
        _text(feed.get("sy_updatefrequency")),
        warnings,
    )


def _tree(data: bytes, http_charset: str | None) -> tuple[Any, bytes, tuple[str, ...]] | str:
    """The parsed document, the UTF-8 bytes it was parsed from and warnings; or why not."""
    for decoded in encodings(data, http_charset):
        utf8 = decoded.data
        if _DOCTYPE.search(utf8, 0, _prolog_end(utf8)):
            # With a DOCTYPE (and no DTD loaded) libxml2 would keep &eacute; as an unexpanded
            # reference node instead of refusing it: rewrite HTML entity names first.
            utf8 = html_entities_to_numeric(utf8)
        warnings = [decoded.warning] if decoded.warning else []
        done: set[str] = set()
        first_error = None
        while True:
            try:
                return etree.fromstring(utf8, _parser()), utf8, tuple(warnings)
            except etree.XMLSyntaxError as exc:
                error = str(exc)
            if first_error is None:
                if decoded.lazy and not is_utf8(decoded.data):
                    break  # not UTF-8 after all: feedparser goes on to the next encoding
                first_error = f"not well-formed: {error}"
            mended = mend(utf8, error)
            if mended is None or mended[0] in done:
                return first_error
            done.add(mended[0])
            utf8 = mended[1]
            if mended[0] != "HTML entity names":  # feedparser reads those; no warning
                warnings.append(f"not well-formed ({error}): {mended[0]}")
    return "encoding unknown: no candidate decodes it"


def _prolog_end(data: bytes) -> int:
    first = _FIRST_ELEMENT.search(data)
    return first.start() if first else len(data)


def _version(root: Any, data: bytes) -> str | None:
    doctype = _DOCTYPE.search(data, 0, _prolog_end(data))
    if doctype and b"netscape" in doctype.group().lower():
        return "rss091n"
    version = ""
    for prefix, uri in root.nsmap.items():  # feedparser: the first telling declaration
        lowered = uri.lower()
        if prefix is None and lowered == "http://my.netscape.com/rdf/simple/0.9/":
            version = "rss090"
        elif lowered == "http://purl.org/rss/1.0/":
            version = "rss10"
        elif lowered == "http://www.w3.org/2005/atom":
            version = "atom10"
        if version:
            break
    name = element_name(root.tag, root.prefix)
    if not version and name not in ("rss", "feed"):
        version = _version_from_namespaces(root)
    attributes = attributes_of(root.items())
    if name == "rss" and not version.startswith("rss"):
        declared = attributes.get("version", "")
        version = _RSS_VERSIONS.get(declared) or ("rss20" if declared.startswith("2.") else "rss")
    elif name == "feed" and not version:
        version = _ATOM_VERSIONS.get(attributes.get("version", ""), "atom")
    return version or None


def _version_from_namespaces(root: Any) -> str:
    """feedparser tracks namespace declarations wherever they are (RDF may declare RSS 1.0
    on its channel): the first telling one in document order names the version."""
    for element in root.iter(tag=etree.Element):
        for prefix, uri in element.nsmap.items():
            lowered = uri.lower()
            if prefix is None and lowered == "http://my.netscape.com/rdf/simple/0.9/":
                return "rss090"
            if lowered == "http://purl.org/rss/1.0/":
                return "rss10"
            if lowered == "http://www.w3.org/2005/atom":
                return "atom10"
    return ""


# Names of elements in no namespace or a namespace feedparser knows (the prefix used in the
# document does not matter for those); other namespaces keep the document's prefix.
def _entry(raw: dict[str, Any], fetched_at: float, language: str | None) -> FeedEntry | None:
    title = _text(raw.get("title")) or ""
    link = _text(raw.get("link"))
    guid = _text(raw.get("id"))
    # feedparser repairs every value as it is read (xmltext.repaired); an entry's bodies, the
    # long ones, are repaired here instead, the summary only when there is no content.
    contents = [_text(repaired(c)) or "" for c in raw.get("content", ())]
    body = max(contents, key=len, default="") or _text(_repaired(raw.get("summary"))) or ""
    if not (title or link or guid or body):
        return None
    return dated_entry(title, link, guid, body, _published(raw), fetched_at, language)


def _published(raw: dict[str, Any]) -> float | None:
    published = timestamp(raw.get("published_date"))
    if published is None:
        published = timestamp(raw.get("updated_date"))
    return published


def _entry_time(raw: dict[str, Any], fetched_at: float) -> float:
    """When the entry counts as published, to rank it against the cap."""
    return entry_time(_published(raw), fetched_at)


def _repaired(value: Any) -> Any:
    return repaired(value) if isinstance(value, str) else value


def _text(value: Any) -> str | None:
    if isinstance(value, str):
        value = value.strip()
        return value or None
    return None
