"""Entry dates: ``timestamp`` reads a date as feedparser does, giving the UTC epoch seconds
``calendar.timegm(feedparser's _parse_date(value))`` gives; ``dated_entry`` decides whether
an entry keeps its date or gets the fetch time; ``newest`` picks the entries a feed over the
per-feed cap keeps.

The two shapes nearly every feed uses, W3CDTF (``2026-12-01T08:00:00Z``) and RFC 822
(``Tue, 01 Dec 2026 08:00:00 GMT``), are read here by position, a few times faster than
feedparser's regular expressions; anything else goes to feedparser's own date parser.
tests/unit/connectors/test_connectors_xmlfeed.py compares the two on thousands of dates.
"""

from __future__ import annotations

import calendar
import re
from typing import Final

from feedparser.datetimes import _parse_date
from feedparser.datetimes.rfc822 import timezone_names

from connectors.base import FeedEntry

_DAY_NAMES: Final = frozenset({"mon", "tue", "wed", "thu", "fri", "sat", "sun"})
_MONTHS: Final = {
    m: n for n, m in enumerate("jan feb mar apr may jun jul aug sep oct nov dec".split(), 1)
}
_MONTH_DAYS: Final = (0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
_NO_DAY: Final = -1_000_000  # _epoch_days of a date that does not exist
_RFC822: Final = re.compile(
    r"(?:([a-z]{3})[a-z]*,?\s+)?(\d{1,2})\s+([a-z]{3})[a-z]*\s+(\d{4})\s+"
    r"(\d{1,2}):(\d{1,2})(?::(\d{1,2}))?\s+([a-z]+|[+-]\d{4})"
)
_W3CDTF: Final = re.compile(
    r"(\d{4})-(\d\d)-(\d\d)t(\d\d):(\d\d)(?::(\d\d)(?:\.\d+)?)?(z|[+-]\d\d:\d\d)?"
)
# A date further ahead of the fetch than this is a broken clock, not news.
MAX_FUTURE_SKEW_SECONDS: Final = 86400.0


def entry_time(published: float | None, fetched_at: float) -> float:
    """The time ``dated_entry`` gives an entry: its own date, or the fetch time."""
    if published is None or published < 0 or published > fetched_at + MAX_FUTURE_SKEW_SECONDS:
        return fetched_at
    return published


def newest(times: list[float], count: int) -> list[int]:
    """Indices of the ``count`` newest of ``times``, in their original (document) order.

    Equal times keep document order, so of entries without a date, which all carry the fetch
    time and so rank as the newest, the first ``count`` in the document are kept."""
    if len(times) <= count:
        return list(range(len(times)))
    order = sorted(range(len(times)), key=lambda index: -times[index])  # stable: ties in order
    return sorted(order[:count])


def dated_entry(
    title: str,
    link: str | None,
    guid: str | None,
    body: str,
    published: float | None,
    fetched_at: float,
    language: str | None,
    source: str | None = None,
) -> FeedEntry:
    """The entry at its own date, or at the fetch time (and marked so) when it has none we
    can believe: missing, before 1970, or more than a day ahead of the fetch."""
    if published is None or published < 0 or published > fetched_at + MAX_FUTURE_SKEW_SECONDS:
        return FeedEntry(title, link, guid, body, fetched_at, True, language, source)
    return FeedEntry(title, link, guid, body, published, False, language, source)


def timestamp(value: str | None) -> float | None:
    """A feed's date as UTC epoch seconds, or None when feedparser cannot read it either."""
    if not value:
        return None
    if len(value) >= 10 and value[4] == "-" and value[7] == "-" and value.isascii():
        fast = _w3cdtf(value)
        if fast is not None:
            return fast
    lowered = value.lower()
    match = _W3CDTF.fullmatch(lowered) if lowered[4:5] == "-" else None
    if match is not None:  # the same shape with other digits than ASCII ones
        year, month, day, hour, minute, second, zone = match.groups()
        offset = 0
        if zone and zone != "z":
            offset = int(zone[1:3]) * 3600 + int(zone[4:]) * 60
            offset = -offset if zone[0] == "-" else offset
        numbers = int(year), int(month), int(day), int(hour), int(minute), int(second or 0)
        fast = _utc_seconds(*numbers, offset)
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
    year, month, day = _number(value, 0, 4), _number(value, 5, 7), _number(value, 8, 10)
    if len(value) == 10:
        return _utc_seconds(year, month, day, 0, 0, 0, 0)
    if len(value) < 16 or value[10] not in "Tt" or value[13] != ":":
        return None
    hour, minute, second = _number(value, 11, 13), _number(value, 14, 16), 0
    end = 16
    if value[16:17] == ":":
        second, end = _number(value, 17, 19), 19
        if value[19:20] == ".":
            end = 20
            while value[end : end + 1].isdigit():
                end += 1
            if end == 20:
                return None
    zone = value[end:]
    offset = 0
    if zone and zone not in "Zz":
        if len(zone) != 6 or zone[0] not in "+-" or zone[3] != ":":
            return None
        hours, minutes = _number(zone, 1, 3), _number(zone, 4, 6)
        if hours < 0 or minutes < 0:
            return None
        offset = hours * 3600 + minutes * 60
        offset = -offset if zone[0] == "-" else offset
    return _utc_seconds(year, month, day, hour, minute, second, offset)


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
    numbers = int(year), month, int(day), int(hour), int(minute), int(second or 0)
    return _utc_seconds(*numbers, offset)


def _utc_seconds(
    year: int, month: int, day: int, hour: int, minute: int, second: int, offset: int
) -> float | None:
    """Epoch seconds of a UTC wall-clock time minus ``offset``; None for a time or date that
    datetime would refuse (feedparser refuses it then, or reads it another way)."""
    if not (0 <= hour <= 23 and 0 <= minute <= 59 and 0 <= second <= 59):
        return None
    days = _epoch_days(year, month, day)
    if days == _NO_DAY:
        return None
    return float(days * 86400 + hour * 3600 + minute * 60 + second - offset)


def _epoch_days(year: int, month: int, day: int) -> int:
    """Days from 1970-01-01 to a date of datetime.date's range (proleptic Gregorian), or
    _NO_DAY; the civil-to-days arithmetic of H. Hinnant's chrono algorithms."""
    if not (1 <= year <= 9999 and 1 <= month <= 12 and day >= 1):
        return _NO_DAY
    leap = year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
    if day > _MONTH_DAYS[month] + (1 if month == 2 and leap else 0):
        return _NO_DAY
    year = year - 1 if month <= 2 else year
    era_year = year % 400
    day_of_year = (153 * (month + (-3 if month > 2 else 9)) + 2) // 5 + day - 1
    return (
        (year // 400) * 146097
        + era_year * 365
        + era_year // 4
        - era_year // 100
        + day_of_year
        - 719468
    )


def _number(value: str, start: int, end: int) -> int:
    """The number value[start:end] spells in ASCII digits, or -1 (also when it is cut short)."""
    if end > len(value):
        return -1
    number = 0
    for index in range(start, end):
        digit = ord(value[index]) - 48
        if not 0 <= digit <= 9:
            return -1
        number = number * 10 + digit
    return number
