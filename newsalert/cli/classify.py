"""`newsalert classify`: the topics, scores and matched terms of one article (a file or a URL),
or of every article of a JSON Lines file, classified as the stream does it."""

from __future__ import annotations

import argparse
import asyncio
import html
import json
import re
from pathlib import Path
from typing import Any

from newsalert.cli import common_options
from newsalert.settings import ConfigError, Settings

MAX_TERMS_SHOWN = 12
_HTML_TITLE = re.compile(r"<title[^>]*>(.*?)</title>", re.IGNORECASE | re.DOTALL)
_LOOKS_LIKE_HTML = re.compile(r"<(html|body|p|div|article|title)\b", re.IGNORECASE)


def add_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "classify",
        help="show the topics of an article and why",
        description="Clean and classify an article like the stream does and show, per topic, "
        "its score and the matched terms with their positions. FILE_OR_URL is a .txt file "
        "(first line = title), an .html page, a JSON object with title and text, a JSON Lines "
        "file of such objects (one result each), or an http(s) URL fetched with the service's "
        "SSRF-guarded fetcher.",
    )
    parser.add_argument(
        "source",
        metavar="FILE_OR_URL",
        help="a .txt, .html, JSON or JSON Lines file, or an http(s) URL (see above)",
    )
    parser.add_argument("--json", action="store_true", help="one JSON object per article")
    common_options(parser)


def run(args: argparse.Namespace, settings: Settings) -> int:
    from streams.classify.model import load_model
    from streams.classify.taxonomy import load_taxonomy

    taxonomy = load_taxonomy(settings.taxonomy)  # newsalert.cli reports a TaxonomyError
    model = load_model(settings.model) if settings.model else None  # and a ModelError
    if re.match(r"https?://", args.source, re.IGNORECASE):
        articles = [asyncio.run(_fetch_article(args.source, settings))]
    else:
        articles = _read_articles(Path(args.source))
    for index, raw in enumerate(articles):
        result = _classified(raw, taxonomy, model)
        if args.json:
            print(json.dumps(result, ensure_ascii=False))
        else:
            if index:
                print()
            _print_result(result)
    return 0


def _classified(raw: dict[str, Any], taxonomy: Any, model: Any = None) -> dict[str, Any]:
    from streams.classify.evaluate import classify_article
    from streams.classify.model import add_model_topics

    title, text, language, topics = classify_article(
        raw.get("title") or "", raw.get("text") or "", taxonomy, raw.get("language")
    )
    fields = {"title": title, "text": text}
    shown = {}
    for name, match in topics.items():
        shown[name] = match.as_dict()
        for term in shown[name]["terms"]:
            term["quote"] = fields[term["field"]][term["start"] : term["end"]]
    shown = add_model_topics(shown, model, title, text)  # rules decide; the model may add
    return {
        "id": raw.get("id"),
        "url": raw.get("url"),
        "title": title,
        "language": language,
        "topics": shown,
    }


def _print_result(result: dict[str, Any]) -> None:
    print(result["title"] or "(no title)")
    where = ", ".join(f"{k}: {result[k]}" for k in ("id", "url", "language") if result[k])
    if where:
        print(f"  {where}")
    if not result["topics"]:
        print("  no topic")
    for name, match in result["topics"].items():
        if match.get("reason") == "model":
            words = ", ".join(t["term"].removeprefix("model:") for t in match["terms"])
            print(f"  {name}  probability {match['score']:g} (model; top words: {words})")
            continue
        terms = [
            f"{t['quote']!r} ({t['field']} {t['start']}-{t['end']})"
            for t in match["terms"][:MAX_TERMS_SHOWN]
        ]
        more = len(match["terms"]) - MAX_TERMS_SHOWN
        if more > 0:
            terms.append(f"+{more} more")
        print(f"  {name}  score {match['score']:g}")
        print(f"    {', '.join(terms)}")


def _read_articles(path: Path) -> list[dict[str, Any]]:
    try:
        content = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read: {exc}") from None
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        articles = []
        for number, line in enumerate(content.splitlines(), start=1):
            if line.strip():
                articles.append(_json_article(line, f"{path}: line {number}"))
        if not articles:
            raise ConfigError(f"{path}: no articles")
        return articles
    if suffix == ".json":
        return [_json_article(content, str(path))]
    return [_document_article(content, path.suffix.lower() in (".html", ".htm"))]


def _json_article(content: str, where: str) -> dict[str, Any]:
    try:
        row = json.loads(content)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{where}: invalid JSON: {exc.msg} (line {exc.lineno})") from None
    if not isinstance(row, dict):
        raise ConfigError(f"{where}: expected a JSON object with title and text")
    if "text" not in row and "body" in row:
        row = {**row, "text": row["body"]}
    for key in ("title", "text"):
        if row.get(key) is not None and not isinstance(row[key], str):
            raise ConfigError(f"{where}: {key!r} must be a string")
    return row


def _document_article(content: str, is_html: bool) -> dict[str, Any]:
    """An HTML page (title from <title>) or plain text (title = first non-empty line)."""
    if is_html or _LOOKS_LIKE_HTML.search(content[:2000]):
        found = _HTML_TITLE.search(content)
        title = " ".join(html.unescape(found.group(1)).split()) if found else ""
        body = _HTML_TITLE.sub(" ", content)
        return {"title": title, "text": body}
    lines = content.strip().splitlines()
    return {"title": lines[0].strip() if lines else "", "text": "\n".join(lines[1:])}


async def _fetch_article(url: str, settings: Settings) -> dict[str, Any]:
    from connectors.fetcher import Fetcher, FetchError

    fetcher = Fetcher(settings)
    try:
        response = await fetcher.fetch(url)
    except FetchError as exc:
        raise ConfigError(f"{url}: {exc}") from None
    finally:
        await fetcher.aclose()
    content = response.body.decode(_charset(response.content_type), errors="replace")
    content_type = (response.content_type or "").lower()
    if "json" in content_type:
        article = _json_article(content, url)
    else:
        article = _document_article(content, "html" in content_type)
    return {**article, "url": article.get("url") or response.url}


def _charset(content_type: str | None) -> str:
    found = re.search(r"charset=[\"']?([\w.-]+)", content_type or "", re.IGNORECASE)
    if found:
        try:
            "".encode(found.group(1))
            return found.group(1)
        except LookupError:
            pass
    return "utf-8"
