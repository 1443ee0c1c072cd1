"""Bytes and text for connectors.xmlfeed: the document's encoding, HTML entities and the
text repairs feedparser applies, each done as feedparser does it so both give the same values.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import re
from collections.abc import Callable, Iterator
from html.entities import name2codepoint
from typing import Final, NamedTuple

from feedparser.encodings import lazy_chardet_encoding
from feedparser.html import _cp1252

# feedparser's regular expression: a declaration must start the document and sit on one line.
_XML_DECLARATION: Final = re.compile(rb"^<\?xml[^>]*?>")
_UTF8_DECLARATION: Final = b"<?xml version='1.0' encoding='utf-8'?>"
_UTF8_NAMES: Final = frozenset({"utf-8", "utf8"})
_FIRST_ELEMENT: Final = re.compile(rb"<[A-Za-z_]")
_CDATA: Final = re.compile(rb"<!\[CDATA\[.*?\]\]>", re.DOTALL)
_NAMED_REFERENCE: Final = re.compile(rb"&(?!(?:amp|lt|gt|quot|apos);)([A-Za-z][A-Za-z0-9]*);")
_XML_ESCAPES: Final = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;"})
_CP1252_RANGE: Final = re.compile("[\x80-\x9f]")
_C1_CHARACTER: Final = re.compile(rb"\xc2[\x80-\x9f]")  # U+0080-U+009F in UTF-8


_BOMS: Final = (
    (codecs.BOM_UTF32_BE, "utf-32be", 4),
    (codecs.BOM_UTF32_LE, "utf-32le", 4),
    (codecs.BOM_UTF16_BE, "utf-16be", 2),
    (codecs.BOM_UTF16_LE, "utf-16le", 2),
    (codecs.BOM_UTF8, "utf-8", 3),
)
_MARKERS: Final = {
    b"\x4c\x6f\xa7\x94": "cp037",
    b"\x00\x3c\x00\x3f": "utf-16be",
    b"\x3c\x00\x3f\x00": "utf-16le",
    b"\x00\x00\x00\x3c": "utf-32be",
    b"\x3c\x00\x00\x00": "utf-32le",
}
_UNICODE_NAMES: Final = frozenset(
    {"u16", "utf-16", "utf16", "utf_16", "u32", "utf-32", "utf32", "utf_32", "iso-10646-ucs-2",
     "iso-10646-ucs-4", "csucs4", "csunicode", "ucs-2", "ucs-4"}
)  # fmt: skip


class Decoded(NamedTuple):
    """The document as UTF-8 bytes; ``lazy`` when they are the input bytes, not yet checked."""

    data: bytes
    encoding: str
    lazy: bool
    warning: str | None


def encodings(data: bytes, http_charset: str | None) -> Iterator[Decoded]:
    """The document decoded as feedparser's encodings.convert_to_utf8 would, first choice
    first: the HTTP charset, else the XML declaration, else UTF-8; then, when that does not
    decode, the declaration, the byte order mark, chardet when installed, UTF-8,
    Windows-1252 and ISO-8859-2, as feedparser tries them.

    A UTF-8 choice that needs no conversion is handed over as it is (``lazy``): lxml checks
    the UTF-8 as it parses, and the caller asks for the next candidate if it was not.
    """
    bom = ""
    body = data
    for mark, name, size in _BOMS:
        if data.startswith(mark) and (size != 2 or data[2:4] != b"\x00\x00"):
            bom, body = name, data[size:]
            break
    else:
        bom = _MARKERS.get(data[:4], "")
    head = body
    try:
        if bom:
            head = body[:1024].decode(bom, "ignore").encode("utf-8")
    except LookupError:
        head = b""
    declared = _pi_encoding(head)
    declared_name = declared.decode("utf-8", "replace").lower() if declared is not None else ""
    if bom and declared_name in _UNICODE_NAMES:
        declared_name = bom
    first = http_charset or declared_name or "utf-8"
    declared_name = "gb18030" if declared_name == "gb2312" else declared_name
    first = "gb18030" if first.lower() == "gb2312" else first
    tried: list[str] = []
    for candidate in (first, declared_name, bom, "chardet", "utf-8", "windows-1252", "iso-8859-2"):
        if candidate == "chardet":
            if lazy_chardet_encoding is None:
                continue
            candidate = lazy_chardet_encoding(body)
        if not candidate or candidate in tried:
            continue
        tried.append(candidate)
        warning = None
        if candidate != first:
            warning = f"document declared as {first}, but parsed as {candidate}"
        if candidate.lower() in _UTF8_NAMES and declared_name in _UTF8_NAMES | {""}:
            yield Decoded(body, candidate, True, warning)
            continue
        try:
            text = body.decode(candidate)
        except (LookupError, ValueError):  # ValueError: a declared name holding a NUL byte
            continue
        utf8 = text.encode("utf-8")
        if _XML_DECLARATION.match(utf8):
            utf8 = _XML_DECLARATION.sub(_UTF8_DECLARATION, utf8, count=1)
        else:
            utf8 = _UTF8_DECLARATION + b"\n" + utf8
        yield Decoded(utf8, candidate, False, warning)


def _pi_encoding(data: bytes) -> bytes | None:
    r"""What feedparser's ``^<\?.*encoding=['"](.*?)['"].*\?>`` captures, found with byte
    searches: the regex backtracks through the whole first line, all of a one-line feed.
    Its greedy ``.*`` picks the last ``encoding=`` on the first line that is followed by a
    quote, a closing quote and then ``?>``; the lazy group ends at the first closing quote."""
    if not data.startswith(b"<?"):
        return None
    line_end = data.find(b"\n")
    line_end = len(data) if line_end < 0 else line_end
    last_close = data.rfind(b"?>", 0, line_end)
    end = line_end
    while last_close > 0:
        at = data.rfind(b"encoding=", 2, end)
        if at < 0:
            return None
        opening = at + 9
        if data[opening : opening + 1] in (b"'", b'"'):
            quotes = (
                data.find(b"'", opening + 1, line_end),
                data.find(b'"', opening + 1, line_end),
            )
            closing = min((q for q in quotes if q >= 0), default=-1)
            if 0 <= closing < last_close:
                return data[opening + 1 : closing]
        end = at + 8  # an earlier encoding= (ending before this one does)
    return None


def is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


_CONTROL_CHARACTERS: Final = re.compile(rb"[\x00-\x08\x0b\x0c\x0e-\x1f]")
_BARE_AMPERSAND: Final = re.compile(rb"&(?!(?:[A-Za-z][\w.:-]*|#[0-9]+|#[xX][0-9A-Fa-f]+);)")
_ROOT_NAME: Final = re.compile(rb"<([A-Za-z_][\w.:-]*)")


def mend(data: bytes, error: str) -> tuple[str, bytes] | None:
    """The document with the slip lxml's ``error`` names mended, and what was done; None when
    it names none we mend. These make most real feeds that are not well-formed: an HTML
    entity name, a C0 control character, a bare ``&``, something after the root element."""
    if "Entity '" in error and "not defined" in error:
        return "HTML entity names", html_entities_to_numeric(data)
    if "invalid Char value" in error or ("Char 0x" in error and "out of allowed range" in error):
        return "control characters dropped", _CONTROL_CHARACTERS.sub(b"", data)
    if "xmlParseEntityRef: no name" in error or "EntityRef: expecting ';'" in error:
        escaped = _outside_cdata(data, lambda part: _BARE_AMPERSAND.sub(b"&amp;", part))
        return "bare '&' escaped", escaped
    if "Extra content at the end of the document" in error:
        root = _ROOT_NAME.search(data, _prolog_end(data))
        end = data.rfind(b"</" + root.group(1)) if root else -1
        close = data.find(b">", end) if end > 0 else -1
        if close > 0:
            return "content after the root element cut", data[: close + 1]
    return None


def _prolog_end(data: bytes) -> int:
    first = _FIRST_ELEMENT.search(data)
    return first.start() if first else 0


def _outside_cdata(data: bytes, change: Callable[[bytes], bytes]) -> bytes:
    if b"<![CDATA[" not in data:
        return change(data)
    out = []
    position = 0
    for cdata in _CDATA.finditer(data):
        out.append(change(data[position : cdata.start()]))
        out.append(cdata.group())
        position = cdata.end()
    out.append(change(data[position:]))
    return b"".join(out)


def _numeric_reference(match: re.Match[bytes]) -> bytes:
    codepoint = name2codepoint.get(match.group(1).decode("ascii"))
    if codepoint is None:
        return b"&amp;" + match.group(1) + b";"  # kept as text, as feedparser's loose parser does
    return b"&#%d;" % codepoint


def html_entities_to_numeric(data: bytes) -> bytes:
    """``&eacute;`` as ``&#233;`` outside CDATA sections, so a strict XML parser reads it.

    feedparser resolves HTML 4 names and keeps any other name as literal text; so do we. No
    entity is ever defined or expanded: a name is only rewritten to a character reference.
    """
    if b"&" not in data or _NAMED_REFERENCE.search(data) is None:
        return data
    return _outside_cdata(data, lambda part: _NAMED_REFERENCE.sub(_numeric_reference, part))


def escape(text: str) -> str:
    return text.translate(_XML_ESCAPES) if ("&" in text or "<" in text or ">" in text) else text


def repaired(text: str) -> str:
    """feedparser's last step on every value: UTF-8 read as Latin-1 is read again as UTF-8,
    and C1 control characters become the Windows-1252 characters they were meant to be.

    Whether a value holds a C1 character (U+0080-U+009F) is asked of its UTF-8 form, where
    they all start with the byte C2: a byte search and an encode, 0.05 ms a feed over the
    shared corpus. Asking the document instead (C2 bytes, then ``&#128;``-style references)
    cost 0.11 ms, mostly looking for ``&#`` among all the ``&``; a str regex over the value
    costs 0.21 ms."""
    if text.isascii():
        return text
    utf8 = text.encode("utf-8", "surrogatepass")
    if b"\xc2" not in utf8:
        # Both repairs need a character U+0080-U+00BF: UTF-8 read as Latin-1 has one for
        # every continuation byte, and the C1 controls are among them.
        return text
    try:
        text = text.encode("iso-8859-1").decode("utf-8")
        utf8 = text.encode("utf-8", "surrogatepass")
    except (UnicodeEncodeError, UnicodeDecodeError):
        pass
    if b"\xc2" in utf8 and _C1_CHARACTER.search(utf8) is not None:
        # As str.translate(_cp1252), which looks every character up in a dict: 1 ms a body.
        text = _CP1252_RANGE.sub(_windows_1252, text)
    return text


def _windows_1252(match: re.Match[str]) -> str:
    character = match.group()
    replacement: str = _cp1252.get(ord(character), character)
    return replacement


def base64_decoded(text: str) -> str:
    try:
        return base64.decodebytes(text.encode("utf8")).decode("utf8")
    except (binascii.Error, binascii.Incomplete, UnicodeDecodeError):
        return text
