"""The walk of connectors.xmlfeed: feedparser's element handlers (feedparser/mixin.py and
feedparser/namespaces/*.py) for the fields we publish, driven by an lxml tree.

feedparser is event-driven (SAX); its state (inside an entry, a source, an image; the depth
of the title kept; which properties came from how deep) is kept here with the same names so
each handler can be read beside feedparser's. Only what decides title, link, id, body, dates,
language and the refresh hints is followed; the rest of feedparser's bookkeeping is not.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, Final
from urllib.parse import uses_relative

from feedparser.mixin import _FeedParserMixin
from feedparser.urls import _urljoin, make_safe_absolute_uri
from lxml import etree

from connectors.feeddates import newest
from connectors.xmltext import base64_decoded, escape, repaired

_NAMESPACES: Final = {uri.lower(): prefix for uri, prefix in _FeedParserMixin.namespaces.items()}
_XHTML: Final = "application/xhtml+xml"
_HTML_TYPES: Final = frozenset({_XHTML, "text/html"})
_TYPE_NAMES: Final = {
    "text": "text/plain",
    "plain": "text/plain",
    "html": "text/html",
    "xhtml": _XHTML,
}
_LINK_REFERENCE: Final = re.compile("&([A-Za-z0-9_]+);")
_XMLNS_DECLARATION: Final = re.compile(r"""\sxmlns(?::[\w.-]+)?=(?:"[^"]*"|'[^']*')""")
_FEED_HINTS: Final = frozenset({"ttl", "sy_updateperiod", "sy_updatefrequency"})
_NO_ATTRIBUTES: Final[dict[str, str]] = {}
_BODIES: Final = frozenset({"content", "summary", "description"})
_SCHEME: Final = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*):")
_SCOPED: Final = ("base", "lang")  # the end of xml:base, xml:lang, base, lang


_names: Final[dict[str, str]] = {}


def element_name(tag: str, prefix: str | None) -> str:
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


def attributes_of(items: list[tuple[str, str]]) -> dict[str, str]:
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


class Walker:
    """feedparser's state machine, driven by the lxml tree instead of SAX events."""

    def __init__(
        self,
        version: str,
        base: str,
        max_entries: int,
        entry_time: Callable[[dict[str, Any]], float],
    ) -> None:
        self.version = version
        # Over the cap the newest entries by entry_time are kept, not the first: all are read,
        # and at twice the cap the older half goes, so memory stays bounded by the cap.
        self.max_entries = max_entries
        self.entry_time = entry_time
        self.entries_dropped = 0
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

    def walk(self, root: Any) -> None:
        self.depth += 1
        self.element(root, _KINDS.get(root.tag) or _kind(root), root.items())
        self.depth -= 1

    def element(
        self, element: Any, kind: tuple[str, Any, Any], items: list[tuple[str, str]]
    ) -> None:
        """feedparser's unknown_starttag ... unknown_endtag for one element (at self.depth),
        given its attributes."""
        name, _, handler = kind
        if not items:
            if handler is not None:
                handler(self, element, _NO_ATTRIBUTES)
            elif name in _FEED_HINTS:
                self.pop(name, _own_text(element))
            else:
                self.children(element)
            return
        if handler is None and not any(key[-4:].lower() in _SCOPED for key, _ in items):
            # Attributes of an element we do not read (media:content url=...) matter only
            # when they set xml:base or xml:lang for its children.
            if name not in _FEED_HINTS:
                self.children(element)
            return
        attributes = attributes_of(items)
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

    def children(self, element: Any) -> None:
        """The child elements, one level deeper. Most are text only, without attributes:
        those go straight to a leaf handler (the same rules, fewer steps)."""
        self.depth += 1
        kinds = _KINDS
        for child in element:
            kind = kinds.get(child.tag) or _kind(child)
            if kind[1] is not None:
                items = child.items()
                if not items and not len(child):
                    kind[1](self, child.text or "")
                else:
                    self.element(child, kind, items)
            elif kind[2] is not None or len(child):
                # An element without a handler and without children changes nothing we keep.
                self.element(child, kind, child.items())
        self.depth -= 1

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
        # The last one counts (feedparser's published_parsed); parsed once, for entries only.
        self.context()["published_date"] = self.pop("published", text)

    def updated_text(self, text: str) -> None:
        self.context()["updated_date"] = self.pop("updated", text)

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
        if not output.isascii() and not (
            name in _BODIES and self.inentry and not self.insource
        ):  # an entry's bodies are repaired once one is chosen (connectors.xmlfeed._entry)
            output = repaired(output)
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

    def content(
        self,
        element: Any,
        name: str,
        content_type: str,
        attributes: dict[str, str],
        expecting: bool,
    ) -> tuple[str, str]:
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
        is_div = local == "div" and element_name(child.tag, child.prefix) in ("div", "xhtml_div")
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

    def keep_newest(self) -> None:
        """Drop all but the ``max_entries`` newest entries read so far (counted)."""
        if len(self.entries) <= self.max_entries:
            return
        entry_time = self.entry_time
        kept = newest([entry_time(entry) for entry in self.entries], self.max_entries)
        self.entries_dropped += len(self.entries) - len(kept)
        self.entries = [self.entries[index] for index in kept]

    def item(self, element: Any, attributes: dict[str, str]) -> None:
        if len(self.entries) >= 2 * self.max_entries:
            self.keep_newest()
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
            self.context()["updated_date"] = self.pop("updated", attributes["lastmod"])
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
        self.published_text(_own_text(element))

    def updated(self, element: Any, attributes: dict[str, str]) -> None:
        self.updated_text(_own_text(element))

    def language(self, element: Any, attributes: dict[str, str]) -> None:
        self.pop("language", _own_text(element))

    def opaque(self, element: Any, attributes: dict[str, str]) -> None:
        """Content elements we do not publish (subtitle, rights ...): their children are
        markup, never elements with a meaning of their own."""


_HANDLERS: Final = {
    "channel": Walker.rss_channel,
    "feed": Walker.rss_channel,
    "item": Walker.item,
    "entry": Walker.item,
    "image": Walker.image,
    "textinput": Walker.textinput,
    "source": Walker.source_,
    "title": Walker.title,
    "dc_title": Walker.title,
    "media_title": Walker.media_title,
    "link": Walker.link,
    "guid": Walker.guid,
    "id": Walker.guid,
    "description": Walker.description,
    "dc_description": Walker.description,
    "media_description": Walker.description,
    "abstract": Walker.abstract,
    "summary": Walker.summary,
    "itunes_summary": Walker.summary,
    "content": Walker.atom_content,
    "content_encoded": Walker.content_encoded,
    "fullitem": Walker.content_encoded,
    "body": Walker.body,
    "xhtml_body": Walker.body,
    "published": Walker.published,
    "issued": Walker.published,
    "pubdate": Walker.published,
    "dcterms_issued": Walker.published,
    "updated": Walker.updated,
    "modified": Walker.updated,
    "lastbuilddate": Walker.updated,
    "dc_date": Walker.updated,
    "dcterms_modified": Walker.updated,
    "language": Walker.language,
    "dc_language": Walker.language,
    "subtitle": Walker.opaque,
    "tagline": Walker.opaque,
    "rights": Walker.opaque,
    "copyright": Walker.opaque,
    "info": Walker.opaque,
    "itunes_subtitle": Walker.opaque,
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


_LEAVES: Final = {
    "title": Walker.title_text,
    "dc_title": Walker.title_text,
    "media_title": Walker.media_title_text,
    "link": Walker.link_text,
    "guid": Walker.guid_text,
    "id": Walker.guid_text,
    "description": Walker.description_text,
    "dc_description": Walker.description_text,
    "media_description": Walker.description_text,
    "summary": Walker.summary_text,
    "itunes_summary": Walker.summary_text,
    "content": Walker.content_text,
    "content_encoded": Walker.content_encoded_text,
    "fullitem": Walker.content_encoded_text,
    "published": Walker.published_text,
    "issued": Walker.published_text,
    "pubdate": Walker.published_text,
    "dcterms_issued": Walker.published_text,
    "updated": Walker.updated_text,
    "modified": Walker.updated_text,
    "lastbuilddate": Walker.updated_text,
    "dc_date": Walker.updated_text,
    "dcterms_modified": Walker.updated_text,
    "language": Walker.language_text,
    "dc_language": Walker.language_text,
    "ttl": Walker.ttl_text,
    "sy_updateperiod": Walker.update_period_text,
    "sy_updatefrequency": Walker.update_frequency_text,
}


def _own_text(element: Any) -> str:
    """The text directly inside an element (a child element's own text is its own value)."""
    text = element.text or ""
    if len(element):
        text += "".join(child.tail or "" for child in element)
    return text


def _resolved(base: str, uri: str) -> str:
    """feedparser's resolve_uri (feedparser.urls._urljoin), skipped where it changes nothing:
    an absolute http(s) URL that urllib's urlparse and urlunparse give back unchanged, and a
    URI of a scheme urljoin never resolves against (tag:, urn: ...), which it hands back."""
    if uri.startswith(("https://", "http://")):
        if (
            uri.isascii()
            and uri.isprintable()  # urlsplit drops tabs and newlines
            and ";" not in uri  # an empty ;params would be dropped
            and "[" not in uri  # an IPv6 host may be refused
            and "?#" not in uri
            and not uri.endswith(("?", "#", ":"))
            and uri[8 if uri[4] == "s" else 7 : 9 if uri[4] == "s" else 8] not in ("/", "")
        ):
            return uri
    else:
        scheme = _SCHEME.match(uri)
        if (
            scheme is not None
            and scheme.group(1).lower() not in uses_relative
            and not uri.startswith("//", scheme.end())
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


_SKIP: Final[tuple[str, Any, Any]] = ("", None, None)
# Element tag -> (feedparser's name, leaf handler, element handler), for tags in no namespace
# or one feedparser knows; a name in another namespace depends on the document's prefix.
_KINDS: Final[dict[Any, tuple[str, Any, Any]]] = {}


def _kind(element: Any) -> tuple[str, Any, Any]:
    tag = element.tag
    if tag.__class__ is not str:
        return _SKIP  # an entity reference left by a DOCTYPE
    name = element_name(tag, element.prefix)
    kind = (name, _LEAVES.get(name), _HANDLERS.get(name))
    if tag in _names:
        _KINDS[tag] = kind
    return kind
