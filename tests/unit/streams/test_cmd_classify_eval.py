"""`newsalert classify` and `newsalert eval` from the command line, on local files and a local
HTTP server (127.0.0.1 only; nothing reaches the internet)."""

from __future__ import annotations

import asyncio
import json
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiohttp import web

from newsalert.cli import main

DEVSET = Path(__file__).parents[2] / "data" / "devset.jsonl"
ARTICLE = {
    "id": "a1",
    "title": "Germany moves to exclude Huawei from 5G networks",
    "text": "Berlin will bar Huawei equipment from its 5G networks over espionage concerns.\n"
    "Security officials warned the vendor could be used for spying.",
}
HTML_PAGE = (
    "<html><head><title>U.S. adds Huawei to entity list</title></head><body>"
    "<p>The Commerce Department added Huawei to its entity list, barring sales of U.S. "
    "chips without a licence.</p></body></html>"
)


@pytest.fixture(autouse=True)
def no_environment_config(monkeypatch):
    for name in list(os.environ):
        if name.startswith("NEWSALERT_"):
            monkeypatch.delenv(name)


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_eval_json_prints_one_object_of_per_topic_metrics(capsys):
    code, out, err = run_cli(capsys, "eval", str(DEVSET), "--json")
    assert code == 0, err
    result = json.loads(out)  # exactly one JSON document
    assert {"5g-security", "sanctions", "vendor-bans"} <= set(result)
    for metrics in result.values():
        assert set(metrics) == {"precision", "recall", "f1", "support"}
        assert all(0.0 <= metrics[k] <= 1.0 for k in ("precision", "recall", "f1"))
        assert isinstance(metrics["support"], int) and metrics["support"] > 0


def test_eval_table_lists_each_topic(capsys, tmp_path):
    path = tmp_path / "set.jsonl"
    path.write_text(
        json.dumps({**ARTICLE, "labels": ["5g-security", "vendor-bans"]})
        + "\n"
        + json.dumps({"id": "n", "title": "Tennis star wins title", "text": "", "labels": []})
        + "\n"
    )
    code, out, _ = run_cli(capsys, "eval", str(path))
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == ["topic", "precision", "recall", "f1", "support"]
    assert lines[1].split() == ["5g-security", "1.000", "1.000", "1.000", "1"]
    assert lines[2].split() == ["vendor-bans", "1.000", "1.000", "1.000", "1"]


def test_eval_refuses_a_malformed_line_in_one_line_naming_it(capsys, tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps({**ARTICLE, "labels": []}) + "\n" + '{"title": "x", labels}\n')
    code, out, err = run_cli(capsys, "eval", str(path), "--json")
    assert code == 2 and out == ""
    assert err.count("\n") == 1
    assert f"{path}: line 2: invalid JSON" in err


def test_eval_refuses_a_missing_file(capsys, tmp_path):
    code, _, err = run_cli(capsys, "eval", str(tmp_path / "nope.jsonl"))
    assert code == 2
    assert err.strip() == f"newsalert: {tmp_path / 'nope.jsonl'}: no such file"


def test_eval_uses_the_taxonomy_from_config(capsys, tmp_path):
    (tmp_path / "taxonomy.yaml").write_text("topics:\n  fruit:\n    rules: ['apple']\n")
    (tmp_path / "config.yaml").write_text("taxonomy: taxonomy.yaml\n")
    data = tmp_path / "set.jsonl"
    data.write_text(json.dumps({"title": "An apple", "text": "", "labels": ["fruit"]}) + "\n")
    code, out, _ = run_cli(
        capsys, "eval", str(data), "--json", "--config", str(tmp_path / "config.yaml")
    )
    assert code == 0
    assert json.loads(out) == {"fruit": {"precision": 1.0, "recall": 1.0, "f1": 1.0, "support": 1}}


def test_classify_text_file_shows_topics_scores_and_terms(capsys, tmp_path):
    path = tmp_path / "article.txt"
    path.write_text(ARTICLE["title"] + "\n" + ARTICLE["text"] + "\n")
    code, out, _ = run_cli(capsys, "classify", str(path))
    assert code == 0
    assert out.splitlines()[0] == ARTICLE["title"]
    assert "5g-security  score" in out and "vendor-bans  score" in out
    assert "'Huawei' (title 25-31)" in out


def test_classify_json_file_gives_terms_with_positions(capsys, tmp_path):
    path = tmp_path / "article.json"
    path.write_text(json.dumps(ARTICLE))
    code, out, _ = run_cli(capsys, "classify", str(path), "--json")
    assert code == 0
    result = json.loads(out)
    assert result["id"] == "a1" and result["language"] == "en"
    assert {"5g-security", "vendor-bans"} <= set(result["topics"])
    huawei = [t for t in result["topics"]["vendor-bans"]["terms"] if t["term"] == "Huawei"]
    assert {"term": "Huawei", "field": "title", "start": 25, "end": 31, "quote": "Huawei"} in huawei


def test_classify_jsonl_gives_one_result_per_article(capsys, tmp_path):
    path = tmp_path / "articles.jsonl"
    other = {"id": "a2", "title": "Local bakery wins prize", "text": "Bread."}
    path.write_text(json.dumps(ARTICLE) + "\n\n" + json.dumps(other) + "\n")
    code, out, _ = run_cli(capsys, "classify", str(path), "--json")
    assert code == 0
    results = [json.loads(line) for line in out.splitlines()]
    assert [r["id"] for r in results] == ["a1", "a2"]
    assert results[1]["topics"] == {}


def test_classify_bad_jsonl_line_is_named(capsys, tmp_path):
    path = tmp_path / "articles.jsonl"
    path.write_text(json.dumps(ARTICLE) + "\nnot json\n")
    code, _, err = run_cli(capsys, "classify", str(path))
    assert code == 2
    assert f"{path}: line 2: invalid JSON" in err


@pytest.fixture
def local_site() -> Iterator[str]:
    """An aiohttp server on a free 127.0.0.1 port, in its own thread and loop; stopped after."""
    app = web.Application()

    async def page(request: web.Request) -> web.Response:
        return web.Response(text=HTML_PAGE, content_type="text/html", charset="utf-8")

    async def article(request: web.Request) -> web.Response:
        return web.json_response(ARTICLE)

    app.router.add_get("/story.html", page)
    app.router.add_get("/story.json", article)
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(app)
    loop.run_until_complete(runner.setup())
    site = web.TCPSite(runner, "127.0.0.1", 0)
    loop.run_until_complete(site.start())
    port = runner.addresses[0][1]
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.run_until_complete(runner.cleanup())
        loop.close()


@pytest.fixture
def private_ok(tmp_path) -> str:
    config = tmp_path / "config.yaml"
    config.write_text('allow_private_networks: "127.0.0.1/32"\n')
    return str(config)


def test_classify_fetches_an_html_url(capsys, local_site, private_ok):
    code, out, err = run_cli(
        capsys, "classify", f"{local_site}/story.html", "--json", "--config", private_ok
    )
    assert code == 0, err
    result = json.loads(out)
    assert result["title"] == "U.S. adds Huawei to entity list"
    assert result["url"] == f"{local_site}/story.html"
    assert "sanctions" in result["topics"]


def test_classify_fetches_a_json_url(capsys, local_site, private_ok):
    code, out, err = run_cli(capsys, "classify", f"{local_site}/story.json", "--config", private_ok)
    assert code == 0, err
    assert out.splitlines()[0] == ARTICLE["title"]
    assert "vendor-bans  score" in out


def test_classify_url_on_a_private_network_is_refused_by_default(capsys, local_site):
    code, out, err = run_cli(capsys, "classify", f"{local_site}/story.html")
    assert code == 2 and out == ""
    assert err.startswith(f"newsalert: {local_site}/story.html: ")
