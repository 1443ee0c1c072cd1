"""Full-text extraction for summary-only feeds: the poller fetches each new article's page
through the shared Fetcher and publishes the extracted text without the page's boilerplate."""

from __future__ import annotations

import pytest
from aiohttp import web

from connectors.fetcher import Fetcher
from connectors.fulltext import extract_text
from connectors.poller import FeedPoller
from connectors.state import FeedState
from newsalert.settings import FeedConfig, Settings

ARTICLE = """<!doctype html><html><head><title>Huawei barred from 5G core | News</title></head>
<body><nav><a href="/">Home</a> <a href="/world">World</a> <a href="/tech">Tech</a></nav>
<h1>Huawei barred from 5G core</h1>
<article><p>The government on Tuesday barred Huawei equipment from the core of the country's
5G networks, citing security risks identified by the national cyber security centre.</p>
<p>Operators have until 2027 to remove existing equipment, a deadline the industry said would
cost billions and delay the roll-out of faster mobile services across rural areas.</p>
<p>The decision follows months of review and pressure from allies in Washington.</p></article>
<aside><h2>Related news</h2><ul><li><a href="/a">Cup final result</a></li>
<li><a href="/b">Weather warning for the weekend</a></li></ul></aside>
<div class="latest"><h3>Latest Stories</h3><ul><li><a href="/c">Film awards night</a></li></ul>
</div><footer>Copyright 2026 News Corp. All rights reserved.</footer></body></html>"""


def feed_xml(base: str) -> bytes:
    return f"""<?xml version="1.0"?><rss version="2.0"><channel><title>Summaries</title>
<item><title>Huawei barred from 5G core</title><link>{base}/story/1</link>
<description>Huawei barred.</description></item>
<item><title>Gone</title><link>{base}/story/missing</link>
<description>This one has only a summary.</description></item>
<item><title>Menu</title><link>{base}/story/menu</link>
<description>A page that is all navigation.</description></item>
</channel></rss>""".encode()


@pytest.fixture
async def news_site():
    async def feed(request: web.Request) -> web.Response:
        base = f"http://{request.host}"
        return web.Response(body=feed_xml(base), content_type="application/rss+xml")

    async def story(request: web.Request) -> web.Response:
        return web.Response(text=ARTICLE, content_type="text/html")

    app = web.Application()
    app.router.add_get("/feed", feed)

    async def menu(request: web.Request) -> web.Response:
        page = "<html><body><nav><a href='/'>Home</a> <a href='/w'>World</a></nav></body></html>"
        return web.Response(text=page, content_type="text/html")

    app.router.add_get("/story/1", story)
    app.router.add_get("/story/menu", menu)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"
    finally:
        await runner.cleanup()


class ListPublisher:
    def __init__(self):
        self.articles = []

    async def publish(self, article):
        self.articles.append(article)


def test_extraction_keeps_the_article_and_drops_the_boilerplate():
    text = extract_text(ARTICLE, "https://news.test/story/1")
    assert text.startswith("The government on Tuesday barred Huawei equipment")
    assert "pressure from allies in Washington." in text
    for boilerplate in ("Related news", "Latest Stories", "Cup final", "Copyright", "Home"):
        assert boilerplate not in text


async def poll(tmp_path, site, full_text):
    settings = Settings(
        data_dir=tmp_path,
        allow_private_networks="127.0.0.0/8",
        feeds=(FeedConfig(url=f"{site}/feed", full_text=full_text),),
    )
    state = FeedState(settings.database_path)
    state.sync_config(settings.feeds)
    fetcher = Fetcher(settings)
    publisher = ListPublisher()
    try:
        await FeedPoller(settings, state, publisher, fetcher).poll_once()
    finally:
        await fetcher.aclose()
    return {a.title: a.body for a in publisher.articles}


async def test_full_text_feeds_publish_the_page_text(tmp_path, news_site):
    bodies = await poll(tmp_path, news_site, full_text=True)
    assert bodies["Huawei barred from 5G core"].startswith("<p>The government on Tuesday")
    assert "Related news" not in bodies["Huawei barred from 5G core"]
    assert bodies["Gone"] == "This one has only a summary.", "a 404 page keeps the summary"
    assert bodies["Menu"] == "A page that is all navigation.", "no article: the summary stays"


async def test_other_feeds_keep_their_summaries(tmp_path, news_site):
    bodies = await poll(tmp_path, news_site, full_text=False)
    assert bodies["Huawei barred from 5G core"] == "Huawei barred."
