import pytest

from connectors.opml import OpmlError, OpmlFeed, read_opml, write_opml

OPML = b"""<?xml version="1.0" encoding="UTF-8"?>
<opml version="1.0"><head><title>Subs</title></head><body>
  <outline text="Tech" title="Tech">
    <outline type="rss" text="Ars" xmlUrl="https://ars.example/feed" category="/science,gadgets"/>
    <outline text="Security"><outline text="Krebs" xmlUrl="https://krebs.example/feed/"/></outline>
  </outline>
  <outline text="Loose" xmlUrl="http://loose.example/rss"/>
  <outline text="Local" xmlUrl="file:///etc/passwd"/>
  <outline text="Again" xmlUrl="http://loose.example/rss"/>
</body></opml>"""


def test_outlines_become_feeds_with_folder_and_category_tags():
    feeds, skipped = read_opml(OPML)
    assert feeds == [
        OpmlFeed("https://ars.example/feed", "Ars", ("Tech", "science", "gadgets")),
        OpmlFeed("https://krebs.example/feed/", "Krebs", ("Tech", "Security")),
        OpmlFeed("http://loose.example/rss", "Loose", ()),
    ]
    assert skipped == [
        "file:///etc/passwd: not an http(s) URL",
        "http://loose.example/rss: listed twice",
    ]


def test_export_then_import_gives_the_same_feeds():
    feeds = [
        OpmlFeed("https://a.example/feed?x=1&y=2", "A & B", ("world", "tech"), 600.0),
        OpmlFeed("https://b.example/rss"),
        OpmlFeed("https://c.example/summaries", full_text=True),
    ]
    assert read_opml(write_opml(feeds)) == (feeds, [])


@pytest.mark.parametrize(
    "document, reason",
    [
        (
            b'<?xml version="1.0"?><!DOCTYPE opml [<!ENTITY a "aaaa">]><opml><body/></opml>',
            "DOCTYPE",
        ),
        (b"<opml><body><outline", "not well-formed"),
        (b"<rss><channel/></rss>", "root element is <rss>"),
        (b"<opml><head/></opml>", "no <body>"),
    ],
)
def test_bad_documents_are_refused_with_the_reason(document, reason):
    with pytest.raises(OpmlError, match=reason):
        read_opml(document)
