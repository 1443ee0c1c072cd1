"""The fast path for XML feeds: fastfeedparser (lxml plus a native extractor), hardened.

``parse_xml_fast`` answers a ``FastFeed`` only for documents where it gives what feedparser
gives (checked on the corpus by tests/unit/connectors/test_connectors_fastparse.py and
``python -m bench.feeds --parity``); otherwise ``None``, and connectors.rss uses feedparser.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from datetime import datetime
from typing import Any

# Documents the fast path never sees, decided from the raw bytes:
# - a DOCTYPE or entity declaration: feedparser's entity handling is the safe, known one;
# - a named entity reference other than XML's five outside CDATA: lxml drops ``&eacute;``,
#   feedparser resolves it from the HTML table;
# - anything but UTF-8 (or ASCII): feedparser's encoding detection and fallbacks are richer.
_DECLARATIONS = re.compile(rb"<!(DOCTYPE|ENTITY)", re.IGNORECASE)
_CDATA = re.compile(rb"<!\[CDATA\[.*?\]\]>", re.DOTALL)
_HTML_ENTITY = re.compile(rb"&(?!(?:amp|lt|gt|quot|apos);)[A-Za-z][A-Za-z0-9]*;")
_XML_DECLARATION = re.compile(rb"^<\?xml[^>]*?encoding=[\"']([^\"']*)[\"']", re.IGNORECASE)
# UTF-8 encoded twice ("Ã©" for "é"): feedparser repairs it, fastfeedparser keeps it.
_DOUBLE_UTF8 = re.compile(rb"\xc3[\x80-\x9f]\xc2[\x80-\xbf]")
# Elements where feedparser picks the entry text or title differently (podcast and YouTube
# summaries, XHTML titles), and xml:base, which feedparser applies to links.
_DIFFERENT_CHOICES = re.compile(
    rb"<itunes:summary|<media:description|<media:group|xml:base|type=[\"']xhtml[\"']"
)
_GUID = re.compile(rb"<guid(?:\s[^>]*)?>\s*[^\s<]")  # a non-empty guid
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")
_UTF8_NAMES = frozenset({"utf-8", "utf8", "us-ascii", "ascii"})
_ITEM_TAG = re.compile(rb"<(?:\w+:)?(?:item|entry)[\s>/]")
_HEAD_FIELD = re.compile(
    rb"<(ttl|sy:updatePeriod|sy:updateFrequency|language|dc:language)\s*>\s*([^<]{1,80}?)\s*</"
)
_XML_LANG = re.compile(rb"""\sxml:lang\s*=\s*["']([^"']*)["']""")
_ROOT = re.compile(rb"<(?!\?|!)([\w:.-]+)([^>]*)>")
_RSS_VERSION = re.compile(rb"""version\s*=\s*["']\s*([\d.]+)""")
_RSS_VERSIONS = {"2.0": "rss20", "0.91": "rss091u", "0.92": "rss092", "0.93": "rss093"}
_RSS_VERSIONS.update({"0.94": "rss094", "2": "rss20", "2.0.1": "rss20", "2.01": "rss20"})
_RDF_NAMESPACES = {b"http://purl.org/rss/1.0/": "rss10", b"http://my.netscape.com/rdf/simple/0.9/": "rss090"}  # fmt: skip
_ATOM_NAMESPACES = {b"http://www.w3.org/2005/Atom": "atom10", b"http://purl.org/atom/ns#": "atom03"}  # fmt: skip


@dataclass(frozen=True)
class FastEntry:
    title: str
    link: str | None
    guid: str | None
    body: str
    published: float | None


@dataclass(frozen=True)
class FastFeed:
    format: str
    title: str | None
    language: str | None
    entries: tuple[FastEntry, ...]
    item_count: int  # before the cap
    ttl: str | None
    update_period: str | None
    update_frequency: str | None


def _load() -> Any:
    """fastfeedparser with lxml parsers that never load a DTD, resolve an entity, use the
    network or lift libxml2's size and depth limits; None when that cannot be ensured."""
    try:
        import fastfeedparser.main as ffp
        from lxml import etree
    except ImportError:
        return None
    required = ("_XMLParsers", "_ThreadXMLParsers", "_THREAD_XML_PARSERS", "_SHARED_XML_PARSERS")
    if not all(hasattr(ffp, name) for name in required):
        return None  # a fastfeedparser we have not reviewed: feedparser only

    def hardened(self: Any) -> None:
        options = dict(
            ns_clean=True,
            collect_ids=False,
            resolve_entities=False,
            load_dtd=False,
            no_network=True,
            huge_tree=False,
        )
        self.strict = etree.XMLParser(recover=False, **options)
        self.recover = etree.XMLParser(recover=True, **options)

    ffp._XMLParsers.__init__ = hardened
    ffp._THREAD_XML_PARSERS = ffp._ThreadXMLParsers()
    ffp._SHARED_XML_PARSERS = ffp._XMLParsers()
    return ffp


_lock = threading.Lock()
_module: Any = None
_loaded = False


def _fastfeedparser() -> Any:
    global _module, _loaded
    with _lock:
        if not _loaded:
            _module, _loaded = _load(), True
    return _module


def available() -> bool:
    return _fastfeedparser() is not None


def refusal(data: bytes) -> str | None:
    """Why this document goes to feedparser without trying the fast path, or None."""
    declared = _XML_DECLARATION.match(data)
    if declared and declared.group(1).strip().lower().decode("ascii", "replace") not in _UTF8_NAMES:
        return "declared encoding"
    if data[:2] in (b"\xff\xfe", b"\xfe\xff") or b"\x00" in data[:4]:
        return "utf-16/32"
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return "not utf-8"
    if _DECLARATIONS.search(data):
        return "doctype"
    if _DOUBLE_UTF8.search(data):
        return "double-encoded utf-8"
    if _DIFFERENT_CHOICES.search(data):
        return "summary, title or base feedparser reads differently"
    if b"&" in data and _HTML_ENTITY.search(_CDATA.sub(b"", data)):
        return "html entity"
    return None


def feed_format(data: bytes) -> str | None:
    """feedparser's version name for the document's root element, or None."""
    root = _ROOT.search(data)
    if root is None:
        return None
    name = root.group(1).split(b":")[-1].lower()
    attributes = root.group(2)
    if name == b"rss":
        version = _RSS_VERSION.search(attributes)
        return _RSS_VERSIONS.get(version.group(1).decode() if version else "", None)
    if name == b"rdf":
        return next((v for ns, v in _RDF_NAMESPACES.items() if ns in attributes), None)
    if name == b"feed":
        return next((v for ns, v in _ATOM_NAMESPACES.items() if ns in attributes), None)
    return None


def parse_xml_fast(data: bytes, max_entries: int, *, checked: bool = True) -> FastFeed | None:
    """The feed as feedparser would give it, or None when only feedparser should answer.

    ``checked=False`` skips the refusals and suspicion checks (for the parity harness only).
    """
    ffp = _fastfeedparser()
    if ffp is None or (checked and refusal(data) is not None):
        return None
    version = feed_format(data)
    if version is None and checked:
        return None
    if checked and not _well_formed(data):
        return None  # lxml's recovery and feedparser's loose parser disagree on broken XML
    try:
        parsed = ffp.parse(data)
    except (ValueError, TypeError, AttributeError, KeyError, IndexError, RecursionError):
        return None  # feedparser gives the verdict and the message
    raw_entries = parsed.get("entries") or []
    if checked and not raw_entries and _ITEM_TAG.search(data):
        return None
    entries = []
    plain_rss = version is not None and version.startswith(("rss0", "rss2"))
    guids = len(_GUID.findall(data)) if plain_rss else None
    if checked and guids and guids < len(raw_entries):
        return None  # some items without a guid: which ones is feedparser's to say
    for raw in raw_entries[:max_entries]:
        entry = _entry(raw, keep_guid=guids != 0)
        if entry is None:
            continue
        if checked and not (_absolute(entry.link) and _SCHEME.match(entry.guid or "x:")):
            return None  # feedparser resolves a relative link or id against the document URL
        entries.append(entry)
    feed = parsed.get("feed") or {}
    head = data[: m.start()] if (m := _ITEM_TAG.search(data)) else data
    fields: dict[str, str] = {}
    for name, value in _HEAD_FIELD.findall(data):  # RSS 1.0 puts them after its items
        if name.lower().endswith(b"language"):
            continue
        fields.setdefault(name.decode().lower(), value.decode("utf-8", "replace"))
    for name, value in _HEAD_FIELD.findall(head):
        fields.setdefault(name.decode().lower(), value.decode("utf-8", "replace"))
    root = _ROOT.search(data)
    xml_lang = _XML_LANG.search(root.group(2)) if root else None
    language = (
        fields.get("language")
        or fields.get("dc:language")
        or (xml_lang.group(1).decode("utf-8", "replace") if xml_lang else None)
    )
    return FastFeed(
        version or "unknown",
        _text(feed.get("title")),
        _text(language),
        tuple(entries),
        len(raw_entries),
        fields.get("ttl"),
        fields.get("sy:updateperiod"),
        fields.get("sy:updatefrequency"),
    )


def _well_formed(data: bytes) -> bool:
    from lxml import etree

    try:
        etree.fromstring(data, parser=_strict_parser())
    except etree.XMLSyntaxError:
        return False
    return True


_parsers = threading.local()


def _strict_parser() -> Any:
    parser = getattr(_parsers, "strict", None)
    if parser is None:
        from lxml import etree

        parser = _parsers.strict = etree.XMLParser(
            resolve_entities=False, load_dtd=False, no_network=True, huge_tree=False
        )
    return parser


def _absolute(link: str | None) -> bool:
    return link is not None and link.lower().startswith(("http://", "https://"))


def _entry(raw: Any, *, keep_guid: bool) -> FastEntry | None:
    title = _text(raw.get("title")) or ""
    link = _text(raw.get("link"))
    # With no <guid> in an RSS document, fastfeedparser's id is the link; feedparser has none.
    guid = _text(raw.get("id")) if keep_guid else None
    contents = [_text(c.get("value")) or "" for c in raw.get("content") or [] if hasattr(c, "get")]
    body = max(contents, key=len, default="") or _text(raw.get("description")) or ""
    if not (title or link or guid or body):
        return None
    published = _timestamp(raw.get("published")) or _timestamp(raw.get("updated"))
    return FastEntry(title, link, guid, body, published)


def _timestamp(value: Any) -> float | None:
    if not isinstance(value, str):
        return None
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        return None
    if when.tzinfo is None:
        return None
    return float(int(when.timestamp()))  # whole seconds, as feedparser's struct_time


def _text(value: Any) -> str | None:
    if isinstance(value, str):
        value = value.strip()
        return value or None
    return None
