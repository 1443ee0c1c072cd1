"""The pages over HTTP: login, the session cookie, CSRF on every form, what each page shows,
and that the subscriber links still work without a login."""

from __future__ import annotations

import re

import httpx

from newsalert.web.auth import SESSION_COOKIE
from tests.integration.web.conftest import TOKEN

CSRF = re.compile(r'name="csrf" value="([0-9a-f]+)"')


async def log_in(client: httpx.AsyncClient) -> None:
    response = await client.post("/login", data={"token": TOKEN, "next": "/feeds?sort=name"})
    assert response.status_code == 303 and response.headers["location"] == "/feeds?sort=name"


async def test_pages_redirect_to_the_login_and_a_wrong_token_is_refused(site):
    async with site.client(token=None) as client:
        home = await client.get("/subscribers?x=1&y=2")
        assert home.status_code == 303
        assert home.headers["location"] == "/login?next=/subscribers?x%3D1%26y%3D2"
        wrong = await client.post("/login", data={"token": "nope"})
        assert wrong.status_code == 401 and SESSION_COOKIE not in wrong.cookies
        # A bearer token is for the API; the pages want their cookie.
        bearer = await client.get("/", headers={"Authorization": f"Bearer {TOKEN}"})
        assert bearer.status_code == 303


async def test_login_sets_a_strict_httponly_cookie_and_never_sends_you_elsewhere(site):
    async with site.client(token=None) as client:
        response = await client.post("/login", data={"token": TOKEN, "next": "//evil.example/"})
    assert response.headers["location"] == "/"
    cookie = response.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/" in cookie
    assert "Secure" not in cookie  # api_cookie_secure is off
    assert TOKEN not in cookie


async def test_home_shows_each_topic_with_charts_spike_state_and_stories(site):
    async with site.client(token=None) as client:
        await log_in(client)
        page = await client.get("/")
    assert page.status_code == 200
    assert "default-src 'none'" in page.headers["content-security-policy"]
    section = page.text[page.text.index('id="topic-5g-security"') :]
    assert section.count("<svg") >= 2 and 'class="spike"' in section
    assert "started" in section and "/spikes/spike-5g-1" in section
    assert "Huawei 5G security story 1" in section and "huawei, 5g" in section


async def test_spike_page_shows_count_baseline_stories_and_who_was_notified(site):
    async with site.client(token=None) as client:
        await log_in(client)
        page = await client.get("/spikes/spike-5g-1")
        missing = await client.get("/spikes/nope")
    assert "9</strong> stories" in page.text and "baseline of 0.5" in page.text
    assert 'href="https://news.example/huawei"' in page.text and "Telecom Wire" in page.text
    assert "desk@example.org" in page.text and "pending" in page.text
    assert missing.status_code == 404


async def test_a_form_post_without_the_csrf_token_is_refused(site):
    async with site.client(token=None) as client:
        await log_in(client)
        form = {"name": "risk", "topics": "5g-security", "email": "risk@example.org"}
        refused = await client.post("/subscribers", data=form)
        forged = await client.post("/subscribers", data=form | {"csrf": "0" * 64})
        assert refused.status_code == 403 and forged.status_code == 403
        assert site.console.deliveries.subscriber("risk") is None
        csrf = CSRF.search((await client.get("/subscribers")).text)[1]
        added = await client.post("/subscribers", data=form | {"csrf": csrf})
    assert added.status_code == 200 and site.console.deliveries.subscriber("risk") is not None


async def test_adding_a_webhook_subscriber_shows_its_secret_once(site):
    async with site.client(token=None) as client:
        await log_in(client)
        csrf = CSRF.search((await client.get("/subscribers")).text)[1]
        form = {"csrf": csrf, "name": "hook", "topics": "5g-security"}
        refused = await client.post("/subscribers", data=form | {"webhook": "http://10.0.0.1/h"})
        assert refused.status_code == 422 and "refused" in refused.text
        added = await client.post("/subscribers", data=form | {"webhook": "http://127.0.0.1:9/"})
        (secret,) = re.findall(r"whsec_[A-Za-z0-9+/=]+", added.text)
        for path in ("/subscribers", "/subscribers/hook", "/deliveries", "/"):
            assert secret not in (await client.get(path)).text, path


async def test_subscriber_edit_disable_silence_and_delete(site):
    async with site.client(token=None) as client:
        await log_in(client)
        csrf = CSRF.search((await client.get("/subscribers")).text)[1]
        base = {"csrf": csrf, "topics": "5g-security", "email": "d@example.org"}
        await client.post("/subscribers", data=base | {"name": "desk2"})
        edited = await client.post("/subscribers/desk2", data=base | {"keywords": "huawei"})
        assert edited.status_code == 200
        assert site.console.deliveries.subscriber("desk2").keywords == "huawei"
        await client.post("/subscribers/desk2/disable", data={"csrf": csrf})
        assert site.console.deliveries.subscriber("desk2").active is False
        silenced = await client.post(
            "/subscribers/desk2/silence",
            data={"csrf": csrf, "key": "5g-security", "duration": "1d"},
        )
        assert silenced.status_code == 303
        assert [s.key for s in site.console.deliveries.silences()] == ["5g-security"]
        bad = await client.post("/subscribers/desk2/silence", data={"csrf": csrf, "key": "x"})
        assert bad.status_code == 422
        await client.post("/subscribers/desk2/delete", data={"csrf": csrf})
    assert site.console.deliveries.subscriber("desk2") is None


async def test_live_match_count_and_the_parsers_message(site):
    async with site.client(token=None) as client:
        await log_in(client)
        counted = await client.get("/match", params={"keywords": "huawei"})
        invalid = await client.get("/match", params={"keywords": "huawei AND ("})
    assert counted.json()["matched"] == 4
    assert invalid.status_code == 422 and "position" in invalid.json()["error"]


async def test_feeds_and_deliveries_pages_with_a_replay_button(site):
    store = site.console.deliveries
    store.record_attempt(store.get("m-1"), "failed", "550 no such user", status="dead")
    async with site.client(token=None) as client:
        await log_in(client)
        feeds = await client.get("/feeds")
        deliveries = await client.get("/deliveries")
        csrf = CSRF.search(deliveries.text)[1]
        replayed = await client.post("/deliveries/m-1/replay", data={"csrf": csrf})
    assert feeds.status_code == 200 and "No feeds" in feeds.text
    assert "550 no such user" in deliveries.text and "/deliveries/m-1/replay" in deliveries.text
    assert replayed.status_code == 200 and store.get("m-1").status == "pending"


async def test_logout_needs_csrf_and_ends_the_session(site):
    async with site.client(token=None) as client:
        await log_in(client)
        csrf = CSRF.search((await client.get("/")).text)[1]
        assert (await client.post("/logout")).status_code == 403
        assert (await client.post("/logout", data={"csrf": csrf})).status_code == 303
        assert (await client.get("/")).status_code == 303


async def test_without_a_token_setting_the_pages_and_api_are_off(tmp_path):
    from newsalert.http import ServiceHttp
    from newsalert.settings import load_settings
    from newsalert.web import console_routes

    routes, close = console_routes(load_settings(data_dir=tmp_path))
    http = ServiceHttp("127.0.0.1", 0)
    http.add_routes(routes)
    await http.start()
    try:
        async with httpx.AsyncClient(base_url=http.url) as client:
            for path in ("/", "/login", "/api/v1/topics"):
                response = await client.get(path, headers={"Authorization": "Bearer x"})
                assert response.status_code == 503
                assert "NEWSALERT_API_TOKEN" in response.text
    finally:
        await http.stop()
        close()


async def test_a_story_link_that_is_not_http_is_shown_as_text(site):
    hit = {"key": "5g-security", "story_id": "js", "published": 2e9, "title": "Evil story"}
    site.console.activity.record_hits([hit | {"url": "javascript:alert(1)", "terms": []}])
    async with site.client(token=None) as client:
        await log_in(client)
        page = await client.get("/")
    assert "Evil story" in page.text and "javascript:" not in page.text


async def test_wrong_tokens_are_limited_to_ten_a_minute(site):
    async with site.client(token=None) as client:
        for _ in range(10):
            assert (await client.post("/login", data={"token": "guess"})).status_code == 401
        refused = await client.post("/login", data={"token": TOKEN})
    assert refused.status_code == 429 and SESSION_COOKIE not in refused.cookies
