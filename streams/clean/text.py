"""Article text cleaning: HTML to plain text, Unicode normalisation and page-boilerplate removal,
plus a small stopword-based language detector (pure: no I/O)."""

from __future__ import annotations

import html
import re
import unicodedata
from html.parser import HTMLParser

# Elements whose content is never article text.
_SKIPPED_ELEMENTS = frozenset(
    {"script", "style", "nav", "footer", "aside", "header", "form", "noscript", "iframe", "svg",
     "template", "button", "select", "figure"}
)  # fmt: skip
# Elements that end a line of text.
_BLOCK_ELEMENTS = frozenset(
    {"p", "div", "br", "li", "ul", "ol", "h1", "h2", "h3", "h4", "h5", "h6", "tr", "table",
     "section", "article", "blockquote", "pre", "hr", "dd", "dt", "dl", "main", "figcaption"}
)  # fmt: skip
_VOID_ELEMENTS = frozenset({"br", "hr", "img", "meta", "link", "input", "source", "wbr"})
_LOOKS_LIKE_HTML = re.compile(r"<(?:[a-zA-Z][a-zA-Z0-9]*\b[^>]*|/[a-zA-Z][a-zA-Z0-9]*\s*)>")


class _TextExtractor(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.skip_depth = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIPPED_ELEMENTS:
            self.skip_depth += 1
        elif tag in _BLOCK_ELEMENTS:
            self.parts.append("\n")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _BLOCK_ELEMENTS:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIPPED_ELEMENTS:
            self.skip_depth = max(0, self.skip_depth - 1)
        elif tag in _BLOCK_ELEMENTS:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self.skip_depth:
            # In HTML a newline in text is just a space; lines come from block elements.
            self.parts.append(data.replace("\n", " "))


def html_to_text(raw: str) -> str:
    """Text content of an HTML fragment or page, one line per block element."""
    extractor = _TextExtractor()
    extractor.feed(raw)
    extractor.close()
    return "".join(extractor.parts)


# A block header after which a page lists other stories: everything from it on is dropped.
_TRAILING_BLOCK_HEADERS = re.compile(
    r"^(latest|related|more|top|recommended|popular|trending) (news|stories|articles|headlines|videos)"
    r"|^(related|related content|related coverage|recommended for you|trending now|read next|also read"
    r"|most (read|popular|viewed|shared)|you (may|might) (also )?like|further reading|more for you"
    r"|editors[’'] picks|around the web|more from [\w .]{1,40})$",
    re.IGNORECASE,
)
# Lines that are boilerplate wherever they appear.
_BOILERPLATE_LINES = [
    re.compile(p, re.IGNORECASE)
    for p in (
        r"^\[an error occurred while processing (the|this) directive\]",
        r"^audio by \w+$",
        r"^listen to (this|the) (article|story)\b.*$",
        r"^(skip )?advertisement\b.*$",
        r"^this article is more than \w+ (years?|months?|days?) old\.?$",
        r"^(published|updated|last updated|posted)\b:?.{0,60}\d.{0,60}$",
        r"^share (or comment on )?this (article|story|video)\b.*$",
        r"^share full article$",
        r"^view (image|gallery|photo)s? in fullscreen$",
        r"^click here to (get|download|sign up|subscribe)\b.*$",
        r"^(sign up|subscribe) (for|to) (our|the) \w+.*newsletter.*$",
        r"^by signing up, you\b.*$",
        r"^(follow|like) us on \w+.*$",
        r"^(image|photo|video|source|credit|file photo)( \w+)?: .{0,80}$",
        r"^(read|see) (more|also)\b.{0,80}$",
        r"^copyright\b.{0,120}$",
        r"^©.{0,120}$",
        r"^all rights reserved\.?$",
    )
]
_TIMESTAMP_LINE = re.compile(
    r"^(\d+\s*(seconds?|secs?|minutes?|mins?|hours?|hrs?|days?|weeks?|months?)\s*(ago)?\s*[-–|·]?"
    r"|(just now|yesterday|today)\s*[-–|·]?"
    r"|((mon|tue|wed|thu|fri|sat|sun)\w*,? )?\d{1,2}:?\d{0,2},? ?\w* \d{4}( \d{1,2}[.:]\d{2})?( ?[ap]m)?( \w{2,4})?"
    r"|((mon|tue|wed|thu|fri|sat|sun)\w*,? )?\d{1,2} \w+ \d{4}( \d{1,2}[.:]\d{2})?( ?[ap]m)?( \w{2,4})?"
    r"|\w+ \d{1,2}, \d{4},?( \d{1,2}[.:]\d{2}( ?[ap]m)?)?( \w{2,4})?.{0,40}"
    r"|\d{4}-\d{2}-\d{2}([ t]\d{2}:\d{2}(:\d{2})?)?z?"
    r"|\d{1,2}:\d{2}( ?[ap]m)?,? .{0,20}\d{4}"
    r"|[-–|·•]+)$",
    re.IGNORECASE,
)
_SENTENCE_END = re.compile(r"[.!?。！？:;\"”’)»]$")
_NAV_MAX_WORDS = 3
_NAV_MAX_CHARS = 30


def clean_text(raw: str, title: str | None = None) -> str:
    """Plain article text from ``raw`` (HTML or text): paragraphs separated by single newlines,
    with page boilerplate removed. ``title`` lines repeated in the body are dropped.

    A single-line input (a headline) keeps its words: the line filters only apply to bodies.
    """
    if _LOOKS_LIKE_HTML.search(raw):
        text = html_to_text(raw)
    else:
        text = html.unescape(raw)
    text = unicodedata.normalize("NFKC", text)
    lines = [" ".join(line.split()) for line in text.splitlines()]
    lines = [line for line in lines if line]
    if len(lines) <= 1:
        return lines[0] if lines else ""
    return "\n".join(_drop_boilerplate(lines, title))


def _normalized_line(line: str) -> str:
    return " ".join(re.findall(r"\w+", line.casefold()))


def _drop_boilerplate(lines: list[str], title: str | None) -> list[str]:
    title_key = _normalized_line(unicodedata.normalize("NFKC", title)) if title else ""
    if not title_key:
        # The first line repeated at once is a title printed twice (header and body).
        if len(lines) > 1 and _normalized_line(lines[0]) == _normalized_line(lines[1]):
            title_key = _normalized_line(lines[0])
    kept: list[str] = []
    for line in lines:
        key = _normalized_line(line)
        if title_key and (
            key == title_key or key.endswith(" " + title_key) and len(key) < 2 * len(title_key)
        ):
            continue
        if kept and _TRAILING_BLOCK_HEADERS.match(line.strip(" :-–")):
            break
        if any(p.match(line) for p in _BOILERPLATE_LINES) or _TIMESTAMP_LINE.match(line):
            # "Read more" follows the headline of a related article: drop that headline too.
            if line.lower().startswith(("read more", "see more", "see also")) and kept:
                if _is_headline_like(kept[-1]):
                    kept.pop()
            continue
        if _is_navigation(line):
            continue
        if kept and _repeats(_normalized_line(kept[-1]), key):
            continue  # a caption or standfirst printed twice
        kept.append(line)
    return kept


def _repeats(previous: str, key: str) -> bool:
    shorter, longer = sorted((previous, key), key=len)
    return bool(shorter) and longer.startswith(shorter) and len(longer) - len(shorter) < 40


def _is_headline_like(line: str) -> bool:
    return len(line.split()) <= 16 and not re.search(r"[.!。]$", line)


def _is_navigation(line: str) -> bool:
    """Menu items, share buttons, counters: a few words with no sentence punctuation."""
    if not re.search(r"\w", line):
        return True
    words = line.split()
    return (
        len(words) <= _NAV_MAX_WORDS
        and len(line) <= _NAV_MAX_CHARS
        and not _SENTENCE_END.search(line)
        and not _has_cjk(line)
    )


def _has_cjk(text: str) -> bool:
    return any("\u4e00" <= ch <= "\u9fff" for ch in text)


# Frequent function words per language; enough to tell these languages apart on a paragraph.
_STOPWORDS: dict[str, frozenset[str]] = {
    "en": frozenset("the and of to in is that for it with as was on are by this be from at have has not".split()),
    "de": frozenset("der die das und ist nicht ein eine zu den mit von sich des auf für im dem auch es".split()),
    "fr": frozenset("le la les et des est une un du que pour dans pas qui sur au avec il par ce sont".split()),
    "es": frozenset("el la los las y de que en un una es por con para del se no su al lo como".split()),
    "it": frozenset("il la di che e un una per non sono del della con è gli le nel si da anche".split()),
    "nl": frozenset("de het een en van is dat niet op te in zijn met voor er die ook aan bij".split()),
    "pt": frozenset("o a os as e de que em um uma do da para com não por se na no são".split()),
}  # fmt: skip
_MIN_STOPWORD_HITS = 3
_LANGUAGES_OF_STOPWORD: dict[str, tuple[str, ...]] = {
    word: tuple(lang for lang, stop in _STOPWORDS.items() if word in stop)
    for word in set().union(*_STOPWORDS.values())
}
_HAN = re.compile("[\u4e00-\u9fff]")  # the range _has_cjk tests
_LETTER_WORD = re.compile(r"[^\W\d_]+")


def detect_language(text: str, words: list[str] | None = None) -> str | None:
    """ISO 639-1 code of ``text`` among en, de, fr, es, it, nl, pt and zh, or None if unsure.

    Chinese is recognised by its share of Han characters; the others by counting frequent
    function words, which is crude but needs no model and is right on a paragraph or more.
    ``words``: the casefolded words of ``text`` when the caller has split it already (the
    story sketch's words: streams/stories/dedupe.py ``text_words``).
    """
    if not text:
        return None
    # Most texts have no Han character, and then their letters need not be counted.
    han_letters = sum(map(str.isalpha, _HAN.findall(text)))
    if han_letters and han_letters / sum(map(str.isalpha, text)) > 0.3:
        return "zh"
    if words is None:
        words = _LETTER_WORD.findall(text.casefold())
    counts = dict.fromkeys(_STOPWORDS, 0)
    for word in words:
        for lang in _LANGUAGES_OF_STOPWORD.get(word, ()):
            counts[lang] += 1
    best = max(counts, key=lambda lang: counts[lang])
    if counts[best] < _MIN_STOPWORD_HITS and counts[best] < len(words) / 4:
        return None
    if counts[best] == 0:
        return None
    return best
