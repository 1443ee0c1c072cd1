"""Bytes and text for connectors.xmlfeed: the document's encoding, HTML entities, dates and the
text repairs feedparser applies, each done as feedparser does it so both give the same values.
"""

from __future__ import annotations

import base64
import binascii
import calendar
import codecs
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date
from html.entities import name2codepoint

from feedparser.datetimes import _parse_date
from feedparser.datetimes.rfc822 import timezone_names
from feedparser.encodings import lazy_chardet_encoding
from feedparser.html import _cp1252

# feedparser's regular expression: a declaration must start the document and sit on one line.
_XML_DECLARATION = re.compile(rb"^<\?xml[^>]*?>")
_UTF8_DECLARATION = b"<?xml version='1.0' encoding='utf-8'?>"
_UTF8_NAMES = frozenset({"utf-8", "utf8"})
_FIRST_ELEMENT = re.compile(rb"<[A-Za-z_]")
_CDATA = re.compile(rb"<!\[CDATA\[.*?\]\]>", re.DOTALL)
_NAMED_REFERENCE = re.compile(rb"&(?!(?:amp|lt|gt|quot|apos);)([A-Za-z][A-Za-z0-9]*);")
_XML_ESCAPES = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;"})
_CP1252_RANGE = re.compile("[\x80-\x9f]")
_C1_CHARACTER = re.compile(rb"\xc2[\x80-\x9f]")  # U+0080-U+009F in UTF-8


_BOMS = (
    (codecs.BOM_UTF32_BE, "utf-32be", 4),
    (codecs.BOM_UTF32_LE, "utf-32le", 4),
    (codecs.BOM_UTF16_BE, "utf-16be", 2),
    (codecs.BOM_UTF16_LE, "utf-16le", 2),
    (codecs.BOM_UTF8, "utf-8", 3),
)
_MARKERS = {
    b"\x4c\x6f\xa7\x94": "cp037",
    b"\x00\x3c\x00\x3f": "utf-16be",
    b"\x3c\x00\x3f\x00": "utf-16le",
    b"\x00\x00\x00\x3c": "utf-32be",
    b"\x3c\x00\x00\x00": "utf-32le",
}
_UNICODE_NAMES = frozenset(
    {"u16", "utf-16", "utf16", "utf_16", "u32", "utf-32", "utf32", "utf_32", "iso-10646-ucs-2",
     "iso-10646-ucs-4", "csucs4", "csunicode", "ucs-2", "ucs-4"}
)  # fmt: skip


@dataclass(frozen=True)
class Decoded:
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
        except (UnicodeDecodeError, LookupError):
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
    newline = data.find(b"\n")
    line = data if newline < 0 else data[:newline]
    last_close = line.rfind(b"?>")
    end = len(line)
    while last_close > 0:
        at = line.rfind(b"encoding=", 2, end)
        if at < 0:
            return None
        opening = at + 9
        if line[opening : opening + 1] in (b"'", b'"'):
            quotes = (line.find(b"'", opening + 1), line.find(b'"', opening + 1))
            closing = min((q for q in quotes if q >= 0), default=-1)
            if 0 <= closing < last_close:
                return line[opening + 1 : closing]
        end = at + 8  # an earlier encoding= (ending before this one does)
    return None


def is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


_CONTROL_CHARACTERS = re.compile(rb"[\x00-\x08\x0b\x0c\x0e-\x1f]")
_BARE_AMPERSAND = re.compile(rb"&(?!(?:[A-Za-z][\w.:-]*|#[0-9]+|#[xX][0-9A-Fa-f]+);)")
_ROOT_NAME = re.compile(rb"<([A-Za-z_][\w.:-]*)")


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


_DAY_NAMES = frozenset({"mon", "tue", "wed", "thu", "fri", "sat", "sun"})
_MONTHS = {m: n for n, m in enumerate("jan feb mar apr may jun jul aug sep oct nov dec".split(), 1)}
_RFC822 = re.compile(
    r"(?:([a-z]{3})[a-z]*,?\s+)?(\d{1,2})\s+([a-z]{3})[a-z]*\s+(\d{4})\s+"
    r"(\d{1,2}):(\d{1,2})(?::(\d{1,2}))?\s+([a-z]+|[+-]\d{4})"
)
_W3CDTF = re.compile(r"(\d{4})-(\d\d)-(\d\d)t(\d\d):(\d\d)(?::(\d\d)(?:\.\d+)?)?(z|[+-]\d\d:\d\d)?")


def timestamp(value: str | None) -> float | None:
    """UTC epoch seconds, as ``calendar.timegm(feedparser's _parse_date(value))`` gives them.

    The two shapes nearly every feed uses are read here directly (a fraction of the cost);
    anything else goes to feedparser's own date parser.
    """
    if not value:
        return None
    if len(value) >= 10 and value[4] == "-" and value[7] == "-" and value.isascii():
        fast = _w3cdtf(value)
        if fast is not None:
            return fast
    lowered = value.lower()
    match = _W3CDTF.fullmatch(lowered) if lowered[4:5] == "-" else None
    if match is not None:
        year, month, day, hour, minute, second, zone = match.groups()
        offset = 0
        if zone and zone != "z":
            offset = int(zone[1:3]) * 3600 + int(zone[4:]) * 60
            offset = -offset if zone[0] == "-" else offset
        fast = _utc_seconds(year, int(month), day, hour, minute, second or "0", offset)
        if fast is not None:
            return fast
    else:
        fast = _rfc822_split(lowered)
        if fast is None:
            match = _RFC822.fullmatch(lowered)
            fast = _rfc822(*match.groups()) if match is not None else None
        if fast is not None:
            return fast
    struct = _parse_date(value)
    if struct is None:
        return None
    try:
        return float(calendar.timegm(struct))
    except (OverflowError, ValueError, TypeError):
        return None


def _w3cdtf(value: str) -> float | None:
    """``2026-12-01``, ``2026-12-01T08:00:00Z``, ``...T08:00:00.123+01:00``, read by position
    (_W3CDTF's shape, and a bare date as midnight UTC); None for anything else."""
    year, month, day = value[0:4], value[5:7], value[8:10]
    if not (year.isdigit() and month.isdigit() and day.isdigit()):
        return None
    if len(value) == 10:
        return _utc_seconds(year, int(month), day, "0", "0", "0", 0)
    if len(value) < 16 or value[10] not in "Tt" or value[13] != ":":
        return None
    hour, minute, second = value[11:13], value[14:16], "0"
    end = 16
    if value[16:17] == ":":
        second, end = value[17:19], 19
        if len(second) != 2 or not second.isdigit():
            return None
        if value[19:20] == ".":
            end = 20
            while value[end : end + 1].isdigit():
                end += 1
            if end == 20:
                return None
    if not (hour.isdigit() and minute.isdigit()):
        return None
    zone = value[end:]
    offset = 0
    if zone and zone not in "Zz":
        if len(zone) != 6 or zone[0] not in "+-" or zone[3] != ":":
            return None
        hours, minutes = zone[1:3], zone[4:6]
        if not (hours.isdigit() and minutes.isdigit()):
            return None
        offset = int(hours) * 3600 + int(minutes) * 60
        offset = -offset if zone[0] == "-" else offset
    return _utc_seconds(year, int(month), day, hour, minute, second, offset)


_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()


def _utc_seconds(
    year: str, month: int, day: str, hour: str, minute: str, second: str, offset: int
) -> float | None:
    """Epoch seconds of a UTC wall-clock time minus ``offset``; None for a date datetime
    would refuse (feedparser refuses it then, or reads it another way)."""
    h, m, s = int(hour), int(minute), int(second)
    if h > 23 or m > 59 or s > 59:
        return None
    try:
        days = date(int(year), month, int(day)).toordinal() - _EPOCH_ORDINAL
    except ValueError:
        return None
    return float(days * 86400 + h * 3600 + m * 60 + s - offset)


def _rfc822_split(lowered: str) -> float | None:
    """_rfc822 of _RFC822's groups for its everyday shape, ``sat, 07 sep 2002 00:00:01 gmt``,
    read by splitting; None for any other shape."""
    parts = lowered.split(" ")
    if len(parts) != 6 or not lowered.isascii():
        return None
    day_name, day, month, year, clock, zone = parts
    if len(day_name) != 4 or day_name[3] != "," or not day_name[:3].isalpha():
        return None
    if not (0 < len(day) <= 2 and day.isdigit() and len(year) == 4 and year.isdigit()):
        return None
    if len(month) != 3 or not month.isalpha():
        return None
    times = clock.split(":")
    if not 2 <= len(times) <= 3:
        return None
    for part in times:
        if not (0 < len(part) <= 2 and part.isdigit()):
            return None
    if not (zone.isalpha() or (len(zone) == 5 and zone[0] in "+-" and zone[1:].isdigit())):
        return None
    second = times[2] if len(times) == 3 else None
    return _rfc822(day_name[:3], day, month, year, times[0], times[1], second, zone)


def _rfc822(
    day_name: str | None, day: str, month_name: str, year: str, hour: str, minute: str,
    second: str | None, zone: str,
) -> float | None:  # fmt: skip
    month = _MONTHS.get(month_name)
    if month is None or (day_name is not None and day_name not in _DAY_NAMES):
        return None
    if zone[0] in "+-":
        offset = int(zone[1:3]) * 3600 + int(zone[3:]) * 60
        offset = -offset if zone[0] == "-" else offset
    elif zone.startswith("gmt") and zone != "gmt":
        return None  # GMT+2 and the like: feedparser's own rules
    else:
        offset = timezone_names.get(zone, 0) * 3600
    return _utc_seconds(year, month, day, hour, minute, second or "0", offset)
