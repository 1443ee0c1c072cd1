from connectors.htmlpage import feed_links, is_html_page, looks_like_html
from connectors.rss import parse_feed

PAGE = "https://news.example/section/index.html"


def test_advertised_feeds_are_found_absolute_with_xml_formats_first():
    html = b"""<!doctype html><html><head>
    <link rel="stylesheet" href="/style.css">
    <link rel="alternate" type="application/feed+json" href="/feed.json">
    <link rel="alternate" type="application/rss+xml" title="RSS" href="rss.xml">
    <LINK REL="Alternate home" TYPE="application/atom+xml; charset=utf-8" HREF="//cdn.example/atom">
    <link rel="alternate" type="text/html" hreflang="fr" href="/fr/">
    <link rel="alternate" type="application/rss+xml" href="javascript:alert(1)">
    <link rel="alternate" type="application/rss+xml" href="rss.xml">
    </head><body></body></html>"""
    assert feed_links(html, PAGE) == [
        "https://news.example/section/rss.xml",
        "https://cdn.example/atom",
        "https://news.example/feed.json",
    ]


def test_base_href_is_honoured():
    html = b'<html><head><base href="https://other.example/x/"><link rel="alternate" type="application/atom+xml" href="a.xml"></head></html>'
    assert feed_links(html, PAGE) == ["https://other.example/x/a.xml"]


def test_a_page_without_feed_links_yields_none():
    assert feed_links(b"<html><body><a href='/rss'>RSS</a></body></html>", PAGE) == []
    assert feed_links(b"\xff\xfe<<<garbage", PAGE) == []


def test_html_is_recognised_by_type_or_by_its_start():
    assert looks_like_html(b"<rss/>", "text/html; charset=utf-8")
    assert looks_like_html(b"  <!DOCTYPE html><html>", None)
    assert not looks_like_html(b'<?xml version="1.0"?><rss/>', "application/xml")


def test_a_page_is_told_from_a_feed_served_as_html():
    assert is_html_page(b"<!doctype html><html><head></head></html>", None)
    assert is_html_page(b"<p>Down for maintenance</p>", "text/html")
    assert not is_html_page(b"<?xml version='1.0'?><!-- <html> --><rss><channel>", "text/html")
    assert not is_html_page(b'<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf">', "text/html")
    assert not is_html_page(b'{"version": "https://jsonfeed.org/version/1.1"}', "text/html")
    assert not is_html_page(b'<?xml version="1.0"?><rss/>', "application/xml")
    # so a broken feed served as text/html keeps the parser's error
    error = parse_feed(b"<rss version='2.0'><<<<", content_type="text/html").error
    assert error.startswith("not a valid feed: ") and "HTML page" not in error
