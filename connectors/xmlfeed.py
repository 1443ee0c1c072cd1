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
from dataclasses import dataclass
from typing import Any

from feedparser.mixin import _FeedParserMixin
from feedparser.urls import _urljoin, make_safe_absolute_uri
from lxml import etree

from connectors.xmltext import (
    base64_decoded,
    encodings,
    escape,
    has_c1_controls,
    html_entities_to_numeric,
    is_utf8,
    mend,
    repaired,
    timestamp,
)

_NAMESPACES = {uri.lower(): prefix for uri, prefix in _FeedParserMixin.namespaces.items()}
_XML_NS = "{http://www.w3.org/XML/1998/namespace}"
_XHTML = "application/xhtml+xml"
_HTML_TYPES = frozenset({_XHTML, "text/html"})
_TYPE_NAMES = {"text": "text/plain", "plain": "text/plain", "html": "text/html", "xhtml": _XHTML}
_RSS_VERSIONS = {"0.91": "rss091u", "0.92": "rss092", "0.93": "rss093", "0.94": "rss094"}
_ATOM_VERSIONS = {"0.1": "atom01", "0.2": "atom02", "0.3": "atom03"}
_DOCTYPE = re.compile(rb"<!DOCTYPE[^>]*>", re.IGNORECASE)
_FIRST_ELEMENT = re.compile(rb"<\w")
_LINK_REFERENCE = re.compile("&([A-Za-z0-9_]+);")
_XMLNS_DECLARATION = re.compile(r"""\sxmlns(?::[\w.-]+)?=(?:"[^"]*"|'[^']*')""")
_FEED_HINTS = frozenset({"ttl", "sy_updateperiod", "sy_updatefrequency"})
_NO_ATTRIBUTES: dict[str, str] = {}
_SCOPED = re.compile(r"(?:base|lang)$", re.IGNORECASE)  # xml:base, xml:lang, base, lang


@dataclass(frozen=True)
class XmlEntry:
    title: str
    link: str | None
    guid: str | None
    body: str
    published: float | None


@dataclass(frozen=True)
class XmlFeed:
    format: str
    title: str | None
    language: str | None
    entries: tuple[XmlEntry, ...]  # of the first max_entries, those with any content
    entry_count: int  # before the cap
    ttl: str | None
    update_period: str | None
    update_frequency: str | None
    warnings: tuple[str, ...] = ()  # an encoding override, markup mended before parsing


_parsers = threading.local()


def _parser() -> Any:
    parser = getattr(_parsers, "strict", None)
    if parser is None:
        parser = _parsers.strict = etree.XMLParser(
            resolve_entities=False,
            load_dtd=False,
            no_network=True,
            huge_tree=False,
            collect_ids=False,
        )
    return parser


def parse_xml(
    data: bytes, url: str | None, http_charset: str | None, max_entries: int
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
    walker = _Walker(version, url or "", has_c1_controls(utf8), max_entries)
    walker.element(root, _name(root.tag, root.prefix))
    feed = walker.feed
    entries = tuple(entry for raw in walker.entries if (entry := _entry(raw)) is not None)
    return XmlFeed(
        version,
        _text(feed.get("title")),
        _text(feed.get("language")),
        entries,
        len(walker.entries) + walker.entries_beyond_cap,
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
    name = _name(root.tag, root.prefix)
    if not version and name not in ("rss", "feed"):
        version = _version_from_namespaces(root)
    attributes = _attributes(root.items())
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
_names: dict[str, str] = {}


def _name(tag: str, prefix: str | None) -> str:
    """feedparser's name for an element: known namespaces get its standard prefix."""
    name = _names.get(tag)
    if name is not None:
        return name
    namespace, _, local = tag[1:].partition("}") if tag[0] == "{" else ("", "", tag)
    lowered = namespace.lower()
    if "backend.userland.com/rss" in lowered:
        lowered = "http://backend.userland.com/rss"
    standard = _NAMESPACES.get(lowered)
    if standard is None and namespace:
        return f"{prefix}_{local.lower()}" if prefix else local.lower()
    name = f"{standard}_{local.lower()}" if standard else local.lower()
    if len(_names) < 10_000:  # a hostile document must not grow the cache without end
        _names[tag] = name
    return name


def _attributes(items: list[tuple[str, str]]) -> dict[str, str]:
    """feedparser's view of attributes: known-namespace prefixes, lower-case names, and
    lower-case values for rel and type."""
    if not items:
        return _NO_ATTRIBUTES
    attributes = {}
    for key, value in items:
        if key[0] == "{":
            namespace, _, local = key[1:].partition("}")
            prefix = _NAMESPACES.get(namespace.lower(), "")
            key = f"{prefix}:{local}" if prefix else local
        key = key.lower()
        attributes[key] = value.lower() if key in ("rel", "type") else value
    return attributes


def _content_type(attributes: dict[str, str], default: str) -> str:
    if attributes is _NO_ATTRIBUTES:
        return default
    value = attributes.get("type", default).lower()
    return _TYPE_NAMES.get(value, value)


def _is_base64(attributes: dict[str, str], content_type: str) -> bool:
    if attributes.get("mode", "") == "base64":
        return True
    return not content_type.startswith("text/") and not content_type.endswith(("+xml", "/xml"))


class _Walker:
    """feedparser's state machine, driven by the lxml tree instead of SAX events."""

    def __init__(self, version: str, base: str, c1_controls: bool, max_entries: int) -> None:
        self.version = version
        self.c1_controls = c1_controls
        self.max_entries = max_entries
        self.entries_beyond_cap = 0
        # feedparser joins the base with itself at every element ("file:///a" becomes
        # "file://a"); once is enough, the join is idempotent after that.
        self.base = (make_safe_absolute_uri(base, base) or base) if base else base
        self.feed: dict[str, Any] = {}
        self.entries: list[dict[str, Any]] = []
        self.entry: dict[str, Any] = {}
        self.entry_depths: dict[str, int] = {}
        self.source: dict[str, Any] = {}
        self.depth = 0
        self.title_depth = -1
        self.infeed = self.inentry = self.insource = self.inimage = self.intextinput = False
        self.has_content = False
        self.guid_is_link = False

    def context(self) -> dict[str, Any]:
        if self.insource:
            return self.source
        if self.inimage and "image" in self.feed:
            image: dict[str, Any] = self.feed["image"]
            return image
        if self.intextinput:
            return self.feed.setdefault("textinput", {})
        if self.inentry:
            return self.entry
        return self.feed

    def element(self, element: Any, name: str) -> None:
        """feedparser's unknown_starttag ... unknown_endtag for one element."""
        self.depth += 1
        items = element.items()
        handler = _HANDLERS.get(name)
        if not items:
            if handler is not None:
                handler(self, element, _NO_ATTRIBUTES)
            elif name in _FEED_HINTS:
                self.pop(name, _own_text(element))
            else:
                self.children(element)
            self.depth -= 1
            return
        if handler is None and not any(_SCOPED.search(key) for key, _ in items):
            # Attributes of an element we do not read (media:content url=...) matter only
            # when they set xml:base or xml:lang for its children.
            if name not in _FEED_HINTS:
                self.children(element)
            self.depth -= 1
            return
        attributes = _attributes(items)
        saved_base = self.base
        base = attributes.get("xml:base", attributes.get("base"))
        if base:
            joined = make_safe_absolute_uri(self.base, base) if self.base else None
            self.base = joined or self.base if self.base else _urljoin("", base)
        language = attributes.get("xml:lang", attributes.get("lang"))
        if language and name in ("feed", "rss"):
            self.feed["language"] = language.replace("_", "-")
        if handler is not None:
            handler(self, element, attributes)
        elif name not in _FEED_HINTS:  # with attributes, feedparser keeps them, not the text
            self.children(element)
        self.base = saved_base
        self.depth -= 1

    def children(self, element: Any) -> None:
        names = _names
        handlers = _HANDLERS
        leaves = _LEAVES
        for child in element:
            tag = child.tag
            if tag.__class__ is not str:
                continue  # a comment or processing instruction
            name = names.get(tag) or _name(tag, child.prefix)
            leaf = leaves.get(name)
            if leaf is not None and not len(child) and not child.items():
                # Most elements: text only, no attributes. The same rules, fewer steps.
                self.depth += 1
                leaf(self, child.text or "")
                self.depth -= 1
            elif name in handlers or len(child):
                # An element without a handler and without children changes nothing we keep.
                self.element(child, name)

    # -- handlers for an element with text only (no attributes, no children)

    def title_text(self, text: str) -> None:
        if -1 < self.title_depth <= self.depth:  # an earlier title stands; pop would say so
            if text.strip():
                self.title_depth = self.depth
        elif self.pop("title", text, self.infeed or self.inentry or self.insource):
            self.title_depth = self.depth

    def media_title_text(self, text: str) -> None:
        if -1 < self.title_depth <= self.depth:
            return  # an earlier title stands, and a media:title leaves title_depth as it was
        title_depth = self.title_depth
        self.title_text(text)
        self.title_depth = title_depth

    def link_text(self, text: str) -> None:
        self.pop("link", text, self.infeed or self.inentry or self.insource)

    def guid_text(self, text: str) -> None:
        self.guid_is_link = True
        self.context().setdefault("link", self.pop("id", text))

    def description_text(self, text: str) -> None:
        if "summary" in self.context() and not self.has_content:
            self.content_text(text)
        else:
            self.pop("description", text, self.infeed or self.inentry or self.insource)

    def summary_text(self, text: str) -> None:
        if "summary" in self.context() and not self.has_content:
            self.content_text(text)
        else:
            self.pop("summary", text)

    def content_text(self, text: str) -> None:  # Atom content, or a summary taken as content
        self.has_content = True
        self.context().setdefault("summary", self.pop("content", text))

    def content_encoded_text(self, text: str) -> None:
        self.has_content = True
        self.context().setdefault("summary", self.pop("content", text))

    def published_text(self, text: str) -> None:
        self.context()["published_parsed"] = timestamp(self.pop("published", text))

    def updated_text(self, text: str) -> None:
        self.context()["updated_parsed"] = timestamp(self.pop("updated", text))

    def language_text(self, text: str) -> None:
        self.pop("language", text)

    def ttl_text(self, text: str) -> None:
        self.pop("ttl", text)

    def update_period_text(self, text: str) -> None:
        self.pop("sy_updateperiod", text)

    def update_frequency_text(self, text: str) -> None:
        self.pop("sy_updatefrequency", text)

    # -- what mixin.pop does with a value: resolve, repair, then store it where it belongs

    def pop(self, name: str, raw: str, expecting: bool = True, base64: bool = False) -> str:
        output = raw.strip()
        if not expecting:
            return output
        if base64:
            output = base64_decoded(output)
        if output and (name == "link" or (name == "id" and self.guid_is_link)):
            output = _resolved(self.base, output)
        if not output.isascii():
            output = repaired(output, self.c1_controls)
        if name == "title" and -1 < self.title_depth <= self.depth:
            return output
        if self.inentry and not self.insource:
            if name == "content":
                self.entry.setdefault("content", []).append(output)
            elif name == "link":
                if not self.inimage:
                    self.entry["link"] = _fixed_link(output)
            else:
                if name == "description":
                    name = "summary"
                previous = self.entry_depths.get(name)
                if previous is None or self.depth <= previous:
                    self.entry_depths[name] = self.depth
                    self.entry[name] = output
        elif self.infeed or self.insource:
            if name == "description":
                name = "subtitle"
            self.context()[name] = _fixed_link(output) if name == "link" else output
        return output

    def content(self, element: Any, name: str, content_type: str, attributes: dict[str, str],
                expecting: bool) -> tuple[str, str]:  # fmt: skip
        """push_content ... pop_content: the element's text with any child elements as markup."""
        base64 = attributes is not _NO_ATTRIBUTES and _is_base64(attributes, content_type)
        if len(element):
            pieces: list[str] = []
            if content_type == _XHTML and self.version == "atom10":
                element = _only_div(element)  # feedparser gives what is inside that div
            content_type = self.markup(element, content_type, pieces)
            raw = "".join(pieces)
        else:
            raw = element.text or ""
            if content_type == _XHTML:
                raw = escape(raw)
        return self.pop(name, raw, expecting, base64), content_type

    def markup(self, element: Any, content_type: str, pieces: list[str]) -> str:
        """Children of a content element as feedparser's handle_data pieces. Markup in an
        element that claims to hold escaped text switches it to XHTML, except a div, which
        is dropped (and, as in feedparser, leaves its depth counted)."""
        text = element.text
        if text:
            pieces.append(escape(text) if content_type == _XHTML else text)
        for child in element:
            if isinstance(child.tag, str):
                if content_type == _XHTML:
                    pieces.append(_serialized(child))
                else:
                    content_type = self.inline(child, content_type, pieces)
            tail = child.tail
            if tail:
                pieces.append(escape(tail) if content_type == _XHTML else tail)
        return content_type

    def inline(self, child: Any, content_type: str, pieces: list[str]) -> str:
        self.depth += 1
        local = etree.QName(child).localname.lower()
        is_div = local == "div" and _name(child.tag, child.prefix) in ("div", "xhtml_div")
        if not content_type.endswith("xml") and not is_div:
            content_type = _XHTML
        if content_type == _XHTML:
            pieces.append(_serialized(child))
            self.depth -= 1
            return content_type
        content_type = self.markup(child, content_type, pieces)
        if content_type.endswith("xml"):
            pieces.append(f"</{local}>")
            self.depth -= 1
        return content_type

    # -- element handlers (feedparser's _start_x and _end_x together)

    def rss_channel(self, element: Any, attributes: dict[str, str]) -> None:
        self.infeed = True
        self.children(element)
        self.infeed = False

    def item(self, element: Any, attributes: dict[str, str]) -> None:
        if len(self.entries) >= self.max_entries:
            # Counted, not read. What an entry leaves behind for the feed's own elements
            # (its title's depth) comes out the same: a later feed title is kept either way.
            self.entries_beyond_cap += 1
            self.title_depth = -1
            return
        self.entry = {}
        self.entry_depths = {}
        self.entries.append(self.entry)
        self.inentry = True
        self.guid_is_link = False
        self.title_depth = -1
        about = attributes.get("rdf:about")
        if about:
            self.context()["id"] = about
        if "lastmod" in attributes:
            self.context()["updated_parsed"] = timestamp(self.pop("updated", attributes["lastmod"]))
        if "href" in attributes:
            self.pop("link", attributes["href"], self.infeed or self.inentry or self.insource)
        self.children(element)
        self.inentry = False
        self.has_content = False

    def image(self, element: Any, attributes: dict[str, str]) -> None:
        if not self.inentry:
            self.context().setdefault("image", {})
        self.inimage = True
        self.title_depth = -1
        self.children(element)
        self.inimage = False

    def textinput(self, element: Any, attributes: dict[str, str]) -> None:
        self.context().setdefault("textinput", {})
        self.intextinput = True
        self.title_depth = -1
        self.children(element)
        self.intextinput = False

    def source_(self, element: Any, attributes: dict[str, str]) -> None:
        self.insource = True
        self.title_depth = -1
        self.children(element)
        self.insource = False
        self.context()["source"] = self.source
        self.source = {}

    def title(self, element: Any, attributes: dict[str, str]) -> None:
        expecting = self.infeed or self.inentry or self.insource
        value, _ = self.content(
            element, "title", _content_type(attributes, "text/plain"), attributes, expecting
        )
        if value:
            self.title_depth = self.depth

    def media_title(self, element: Any, attributes: dict[str, str]) -> None:
        if -1 < self.title_depth <= self.depth and not len(element):
            return  # as in media_title_text
        title_depth = self.title_depth
        self.title(element, attributes)
        self.title_depth = title_depth

    def link(self, element: Any, attributes: dict[str, str]) -> None:
        href = attributes.get("url", attributes.get("uri", attributes.get("href")))
        if href or "href" in attributes:
            rel = attributes.get("rel", "alternate")
            default = "application/atom+xml" if rel == "self" else "text/html"
            href = _resolved(self.base, href or "")
            if rel == "alternate" and _content_type(attributes, default) in _HTML_TYPES:
                self.context()["link"] = href
        else:
            self.pop("link", _own_text(element), self.infeed or self.inentry or self.insource)
        self.children(element)

    def guid(self, element: Any, attributes: dict[str, str]) -> None:
        self.guid_is_link = attributes.get("ispermalink", "true") == "true"
        value = self.pop("id", _own_text(element))
        if self.guid_is_link:
            self.context().setdefault("link", value)

    def description(self, element: Any, attributes: dict[str, str]) -> None:
        if "summary" in self.context() and not self.has_content:
            self.atom_content(element, attributes)
        else:
            expecting = self.infeed or self.inentry or self.insource
            content_type = _content_type(attributes, "text/html")
            self.content(element, "description", content_type, attributes, expecting)

    def abstract(self, element: Any, attributes: dict[str, str]) -> None:
        expecting = self.infeed or self.inentry or self.insource
        content_type = _content_type(attributes, "text/plain")
        self.content(element, "description", content_type, attributes, expecting)

    def summary(self, element: Any, attributes: dict[str, str]) -> None:
        if "summary" in self.context() and not self.has_content:
            self.atom_content(element, attributes)
        else:
            self.content(
                element, "summary", _content_type(attributes, "text/plain"), attributes, True
            )

    def atom_content(self, element: Any, attributes: dict[str, str]) -> None:
        self.has_content = True
        self.end_content(element, attributes, "text/plain")

    def content_encoded(self, element: Any, attributes: dict[str, str]) -> None:
        self.has_content = True
        self.end_content(element, attributes, "text/html")

    def body(self, element: Any, attributes: dict[str, str]) -> None:
        self.end_content(element, attributes, _XHTML)

    def end_content(self, element: Any, attributes: dict[str, str], default: str) -> None:
        content_type = _content_type(attributes, default)
        value, content_type = self.content(element, "content", content_type, attributes, True)
        if content_type == "text/plain" or content_type in _HTML_TYPES:
            self.context().setdefault("summary", value)

    def published(self, element: Any, attributes: dict[str, str]) -> None:
        value = self.pop("published", _own_text(element))
        self.context()["published_parsed"] = timestamp(value)

    def updated(self, element: Any, attributes: dict[str, str]) -> None:
        value = self.pop("updated", _own_text(element))
        self.context()["updated_parsed"] = timestamp(value)

    def language(self, element: Any, attributes: dict[str, str]) -> None:
        self.pop("language", _own_text(element))

    def opaque(self, element: Any, attributes: dict[str, str]) -> None:
        """Content elements we do not publish (subtitle, rights ...): their children are
        markup, never elements with a meaning of their own."""


_HANDLERS = {
    "channel": _Walker.rss_channel,
    "feed": _Walker.rss_channel,
    "item": _Walker.item,
    "entry": _Walker.item,
    "image": _Walker.image,
    "textinput": _Walker.textinput,
    "source": _Walker.source_,
    "title": _Walker.title,
    "dc_title": _Walker.title,
    "media_title": _Walker.media_title,
    "link": _Walker.link,
    "guid": _Walker.guid,
    "id": _Walker.guid,
    "description": _Walker.description,
    "dc_description": _Walker.description,
    "media_description": _Walker.description,
    "abstract": _Walker.abstract,
    "summary": _Walker.summary,
    "itunes_summary": _Walker.summary,
    "content": _Walker.atom_content,
    "content_encoded": _Walker.content_encoded,
    "fullitem": _Walker.content_encoded,
    "body": _Walker.body,
    "xhtml_body": _Walker.body,
    "published": _Walker.published,
    "issued": _Walker.published,
    "pubdate": _Walker.published,
    "dcterms_issued": _Walker.published,
    "updated": _Walker.updated,
    "modified": _Walker.updated,
    "lastbuilddate": _Walker.updated,
    "dc_date": _Walker.updated,
    "dcterms_modified": _Walker.updated,
    "language": _Walker.language,
    "dc_language": _Walker.language,
    "subtitle": _Walker.opaque,
    "tagline": _Walker.opaque,
    "rights": _Walker.opaque,
    "copyright": _Walker.opaque,
    "info": _Walker.opaque,
    "itunes_subtitle": _Walker.opaque,
}


def _only_div(element: Any) -> Any:
    """The element's single div child when there is nothing else in it but spaces."""
    children = [child for child in element if isinstance(child.tag, str)]
    if len(children) != 1 or (element.text or "").strip():
        return element
    (div,) = children
    if etree.QName(div).localname.lower() != "div" or (div.tail or "").strip():
        return element
    return div


def _serialized(element: Any) -> str:
    """An element inside content as markup, without the namespace declarations lxml adds."""
    markup: str = etree.tostring(element, encoding="unicode", with_tail=False)
    return _XMLNS_DECLARATION.sub("", markup) if "xmlns" in markup else markup


_LEAVES = {
    "title": _Walker.title_text,
    "dc_title": _Walker.title_text,
    "media_title": _Walker.media_title_text,
    "link": _Walker.link_text,
    "guid": _Walker.guid_text,
    "id": _Walker.guid_text,
    "description": _Walker.description_text,
    "dc_description": _Walker.description_text,
    "media_description": _Walker.description_text,
    "summary": _Walker.summary_text,
    "itunes_summary": _Walker.summary_text,
    "content": _Walker.content_text,
    "content_encoded": _Walker.content_encoded_text,
    "fullitem": _Walker.content_encoded_text,
    "published": _Walker.published_text,
    "issued": _Walker.published_text,
    "pubdate": _Walker.published_text,
    "dcterms_issued": _Walker.published_text,
    "updated": _Walker.updated_text,
    "modified": _Walker.updated_text,
    "lastbuilddate": _Walker.updated_text,
    "dc_date": _Walker.updated_text,
    "dcterms_modified": _Walker.updated_text,
    "language": _Walker.language_text,
    "dc_language": _Walker.language_text,
    "ttl": _Walker.ttl_text,
    "sy_updateperiod": _Walker.update_period_text,
    "sy_updatefrequency": _Walker.update_frequency_text,
}


def _own_text(element: Any) -> str:
    """The text directly inside an element (a child element's own text is its own value)."""
    text = element.text or ""
    if len(element):
        text += "".join(child.tail or "" for child in element)
    return text


def _resolved(base: str, uri: str) -> str:
    """feedparser's resolve_uri (feedparser.urls._urljoin), skipped where it changes nothing:
    an absolute http(s) URL that urllib's urlparse and urlunparse give back unchanged."""
    if (
        uri.startswith(("https://", "http://"))
        and uri.isascii()
        and uri.isprintable()  # urlsplit drops tabs and newlines
        and ";" not in uri  # an empty ;params would be dropped
        and "[" not in uri  # an IPv6 host may be refused
        and "?#" not in uri
        and not uri.endswith(("?", "#", ":"))
        and uri[8 if uri[4] == "s" else 7 : 9 if uri[4] == "s" else 8] not in ("/", "")
    ):
        return uri
    return _urljoin(base or "", uri)


def _fixed_link(link: str) -> str:
    # feedparser undoes "&amp;" and "&x;" in link text (query strings escaped once too often).
    if "&" not in link:
        return link
    link = link.replace("&amp;", "&")
    return _LINK_REFERENCE.sub(_without_semicolon, link) if ";" in link else link


def _without_semicolon(match: re.Match[str]) -> str:
    return "&" + match.group(1)


def _entry(raw: dict[str, Any]) -> XmlEntry | None:
    title = _text(raw.get("title")) or ""
    link = _text(raw.get("link"))
    guid = _text(raw.get("id"))
    contents = [_text(c) or "" for c in raw.get("content", ())]
    body = max(contents, key=len, default="") or _text(raw.get("summary")) or ""
    if not (title or link or guid or body):
        return None
    published = raw.get("published_parsed")
    if published is None:
        published = raw.get("updated_parsed")
    return XmlEntry(title, link, guid, body, published)


def _text(value: Any) -> str | None:
    if isinstance(value, str):
        value = value.strip()
        return value or None
    return None
