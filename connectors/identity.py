"""Canonical URLs and stable article ids: the same story gets the same id on every fetch."""

from __future__ import annotations

import hashlib
import html
import re
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

# Query parameters that only say how the reader arrived; they never change the page.
TRACKING_PARAMS = frozenset(
    {
        "fbclid",
        "gclid",
        "dclid",
        "gclsrc",
        "msclkid",
        "yclid",
        "mc_cid",
        "mc_eid",
        "ref_src",
        "ref_url",
        "igshid",
        "_hsenc",
        "_hsmi",
        "mkt_tok",
        "cmpid",
        "ocid",
    }
)
TRACKING_PREFIXES = ("utm_",)
DEFAULT_PORTS = {"http": 80, "https": 443}


def _is_tracking(name: str) -> bool:
    lowered = name.lower()
    return lowered in TRACKING_PARAMS or lowered.startswith(TRACKING_PREFIXES)


def canonical_url(url: str) -> str:
    """The form of ``url`` used for identity: lower-case scheme and host, no default port,
    no fragment, no tracking parameters, remaining parameters sorted. Non-http(s) URLs and
    strings that do not parse are returned stripped but otherwise unchanged."""
    url = url.strip()
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return url
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS or not parts.hostname:
        return url
    host = parts.hostname.lower().rstrip(".")
    if ":" in host:
        host = f"[{host}]"
    # User info is dropped on purpose: credentials are not identity and must never be published.
    netloc = host if port in (None, DEFAULT_PORTS[scheme]) else f"{host}:{port}"
    query = sorted(
        (name, value)
        for name, value in parse_qsl(parts.query, keep_blank_values=True)
        if not _is_tracking(name)
    )
    path = parts.path or "/"
    return urlunsplit((scheme, netloc, path, urlencode(query), ""))


def article_id(
    *, url: str | None = None, guid: str | None = None, title: str = "", feed_url: str = ""
) -> str:
    """A stable short id: from the canonical URL, else the GUID, else title and feed."""
    if url and url.strip():
        basis = "url:" + canonical_url(url)
    elif guid and guid.strip():
        basis = "guid:" + guid.strip()
    else:
        basis = "title:" + feed_url.strip() + "\n" + " ".join(title.split()).lower()
    return "a" + hashlib.sha256(basis.encode("utf-8")).hexdigest()[:24]


# Hashes carry their version: a hash stored by an older version says nothing about the entry.
CONTENT_HASH_VERSION = "2:"
_SCRIPT_OR_STYLE = re.compile(r"<(script|style)\b.*?</\1\s*>", re.IGNORECASE | re.DOTALL)
_TAG = re.compile(r"<[^>]*>")


def plain_text(markup: str) -> str:
    """What a title or body says: no tags, scripts or styles, entities read, spaces collapsed.

    Two parsers that give the same text with different markup (feedparser sanitises HTML,
    connectors.xmlfeed does not) give the same plain text.
    """
    if "<" in markup:
        markup = _TAG.sub("", _SCRIPT_OR_STYLE.sub("", markup))
    if "&" in markup:
        markup = html.unescape(markup)
    return " ".join(markup.split())


def content_hash(title: str, body: str, url: str | None) -> str:
    """What 'the entry changed' means: the text of its title or body, or its link, changed."""
    digest = hashlib.sha256()
    for part in (plain_text(title), plain_text(body), url or ""):
        digest.update(part.encode("utf-8", "surrogatepass"))
        digest.update(b"\x00")
    return CONTENT_HASH_VERSION + digest.hexdigest()[:32]


def is_current_content_hash(value: str) -> bool:
    return value.startswith(CONTENT_HASH_VERSION)
