"""Every /api/v1 endpoint on the real HTTP endpoint, with good and bad input."""

from __future__ import annotations

import json
import re
from importlib import resources

import jsonschema
import pytest

from connectors.base import FetchResult
from newsalert.settings import SubscriptionConfig
from newsalert.web.api import PREFIX, Api
from tests.integration.web.conftest import spike_event

WEBHOOK_SECRET = re.compile(r"whsec_[A-Za-z0-9+/=]+")


async def test_every_endpoint_refuses_a_request_without_the_right_token(site):
    for token in (None, "wrong"):
        async with site.client(token) as client:
            for method, path, _ in Api(site.console, None, 1).table():
                path = re.sub(r"\{\w+\}", "x", path)
                response = await client.request(method, PREFIX + path)
                assert response.status_code == 401, (method, path)
                assert "Bearer" in response.json()["error"]


async def test_topics_show_volume_spike_state_and_latest_stories(site):
    async with site.client() as client:
        topics = (await client.get("/api/v1/topics")).json()
        topic = (await client.get("/api/v1/topics/5g-security")).json()
        unknown = await client.get("/api/v1/topics/no-such-topic")
    assert "5g-security" in {t["name"] for t in topics}
    assert topic["spike_state"] == "started" and topic["active_spike"] == "spike-5g-1"
    assert len(topic["hourly"]) == 48 and len(topic["daily"]) == 30
    assert sum(b["count"] for b in topic["hourly"]) == 9  # distinct stories
    assert topic["latest_stories"][0]["terms"] == ["huawei", "5g"]
    assert unknown.status_code == 404 and "no-such-topic" in unknown.json()["error"]


async def test_spikes_list_and_one_spike_with_who_was_notified(site):
    site.console.activity.record_spike(spike_event("escalated") | {"detected_at": 2e9})
    async with site.client() as client:
        spikes = (await client.get("/api/v1/spikes", params={"topic": "5g-security"})).json()
        spike = (await client.get("/api/v1/spikes/spike-5g-1")).json()
        missing = await client.get("/api/v1/spikes/nope")
        bad_topic = await client.get("/api/v1/spikes", params={"topic": "nope"})
    assert [s["state"] for s in spikes] == ["escalated"]  # the latest event of the spike
    assert spike["count"] == 9 and spike["baseline"] == 0.5
    assert [e["state"] for e in spike["events"]] == ["started", "escalated"]
    assert spike["top_stories"][0]["url"] == "https://news.example/huawei"
    (notified,) = spike["notified"]
    assert (notified["subscriber"], notified["channel"], notified["status"]) == (
        "desk",
        "email",
        "pending",
    )
    assert missing.status_code == 404 and bad_topic.status_code == 404


async def test_feeds_list_unhealthy_first_and_refuse_an_unknown_sort(site):
    state = site.console.feeds_state
    state.add_feed("https://a.example/ok.xml", name="fine")
    state.add_feed("https://b.example/bad.xml", name="broken")
    failed = FetchResult("error", "https://b.example/bad.xml", error="HTTP 500", error_kind="http")
    state.record_fetch("https://b.example/bad.xml", failed, now=1.0, default_interval_seconds=60)
    async with site.client() as client:
        feeds = (await client.get("/api/v1/feeds", params={"sort": "name"})).json()
        bad = await client.get("/api/v1/feeds", params={"sort": "colour"})
    assert [f["name"] for f in feeds] == ["broken", "fine"]
    assert feeds[0]["health"] == "unhealthy" and feeds[0]["last_error"] == "HTTP 500"
    assert bad.status_code == 422


async def test_deliveries_list_and_replay_of_a_dead_letter_only(site):
    store = site.console.deliveries
    store.record_attempt(store.get("m-1"), "failed", "550 no such user", status="dead")
    async with site.client() as client:
        dead = (await client.get("/api/v1/deliveries", params={"status": "dead"})).json()
        replayed = await client.post("/api/v1/deliveries/m-1/replay")
        again = await client.post("/api/v1/deliveries/m-1/replay")
        unknown = await client.post("/api/v1/deliveries/nope/replay")
        bad_limit = await client.get("/api/v1/deliveries", params={"limit": "many"})
        bad_status = await client.get("/api/v1/deliveries", params={"status": "lost"})
    assert [d["message_id"] for d in dead] == ["m-1"]
    assert replayed.status_code == 200 and replayed.json()["status"] == "pending"
    assert again.status_code == 409 and unknown.status_code == 404
    assert bad_limit.status_code == 400 and bad_status.status_code == 422


async def test_subscriber_create_shows_the_secret_once_then_get_update_delete(site):
    spec = {"name": "risk", "topics": ["5g-security"], "webhook": "http://127.0.0.1:9/hook"}
    async with site.client() as client:
        created = await client.post("/api/v1/subscribers", json=spec)
        assert created.status_code == 201
        secret = created.json()["webhook_secret"]
        assert WEBHOOK_SECRET.fullmatch(secret)
        listed = await client.get("/api/v1/subscribers")
        one = await client.get("/api/v1/subscribers/risk")
        assert secret not in listed.text and secret not in one.text
        assert one.json()["channels"][0]["target"] == "http://127.0.0.1:9/hook"

        changed = await client.patch(
            "/api/v1/subscribers/risk",
            json={"keywords": "huawei", "webhook": "http://127.0.0.1:10/hook"},
        )
        assert changed.status_code == 200 and "webhook_secret" not in changed.json()
        kept = site.console.deliveries.subscriber("risk")
        assert kept.keywords == "huawei" and kept.webhook.secrets() == [secret]

        twice = await client.post("/api/v1/subscribers", json=spec)
        assert twice.status_code == 409
        assert (await client.delete("/api/v1/subscribers/risk")).status_code == 204
        assert (await client.get("/api/v1/subscribers/risk")).status_code == 404
        assert (await client.delete("/api/v1/subscribers/risk")).status_code == 404


@pytest.mark.parametrize(
    ("spec", "status", "says"),
    [
        ({"name": "x", "topics": ["no-such-topic"], "email": "a@b.org"}, 422, "no-such-topic"),
        (
            {"name": "x", "topics": ["5g-security"], "email": "a@b.org", "keywords": "(a"},
            422,
            "keyword query",
        ),
        ({"name": "x", "topics": ["5g-security"], "webhook": "http://10.1.2.3/h"}, 422, "refused"),
        (
            {"name": "x", "topics": ["5g-security"], "webhook": "http://192.168.0.1/h"},
            422,
            "refused",
        ),
        ({"name": "x", "topics": ["5g-security"]}, 422, "channel"),
        ({"name": "x", "topics": "5g-security", "email": "a@b.org"}, 422, "topics"),
        ({"name": "x", "colour": "red", "email": "a@b.org"}, 422, "colour"),
    ],
)
async def test_subscriber_create_refuses_bad_input_with_the_reason(site, spec, status, says):
    async with site.client() as client:
        response = await client.post("/api/v1/subscribers", json=spec)
    assert response.status_code == status, response.text
    assert says in response.json()["error"]
    assert site.console.deliveries.subscriber("x") is None


async def test_malformed_and_oversized_bodies_are_refused(site):
    async with site.client() as client:
        not_json = await client.post("/api/v1/subscribers", content=b"{name: x")
        a_list = await client.post("/api/v1/subscribers", json=["x"])
        huge = await client.post("/api/v1/subscribers", json={"name": "x" * 10_000})
        silence = await client.post("/api/v1/silences", json={"subscriber": 3})
    assert not_json.status_code == 400 and "not JSON" in not_json.json()["error"]
    assert a_list.status_code == 400 and "object" in a_list.json()["error"]
    assert huge.status_code == 413
    assert silence.status_code == 400 and "subscriber" in silence.json()["error"]


async def test_silences_add_list_remove_and_refuse_unknowns(site):
    site.console.deliveries.add_subscriber(
        SubscriptionConfig(name="desk", topics=["5g-security"], email="desk@example.org")
    )
    body = {"subscriber": "desk", "key": "5g-security", "duration": "2h"}
    async with site.client() as client:
        added = await client.post("/api/v1/silences", json=body)
        assert added.status_code == 201
        listed = (await client.get("/api/v1/silences")).json()
        assert [s["key"] for s in listed] == ["5g-security"]
        nobody = await client.post("/api/v1/silences", json=body | {"subscriber": "nobody"})
        no_topic = await client.post("/api/v1/silences", json=body | {"key": "nope"})
        no_duration = await client.post("/api/v1/silences", json=body | {"duration": "soon"})
        removed = await client.delete(f"/api/v1/silences/{added.json()['id']}")
        gone = await client.delete(f"/api/v1/silences/{added.json()['id']}")
    assert nobody.status_code == 404 and no_topic.status_code == 422
    assert no_duration.status_code == 422
    assert removed.status_code == 204 and gone.status_code == 404


async def test_match_counts_the_last_7_days_and_reports_the_parsers_message(site):
    async with site.client() as client:
        matched = await client.post("/api/v1/match", json={"keywords": "huawei"})
        invalid = await client.post("/api/v1/match", json={"keywords": "huawei AND ("})
        unknown = await client.post("/api/v1/match", json={"keywords": "x", "topics": ["nope"]})
    assert matched.json() == {"keywords": "huawei", "matched": 4, "of": 9, "days": 7}
    assert invalid.status_code == 422 and "position" in invalid.json()["error"]
    assert unknown.status_code == 404


async def test_send_test_delivers_a_signed_webhook(site):
    from newsalert.localservers import WebhookReceiver

    receiver = WebhookReceiver("")
    await receiver.start()
    try:
        async with site.client() as client:
            created = await client.post(
                "/api/v1/subscribers",
                json={"name": "hook", "topics": ["5g-security"], "webhook": receiver.url("/h")},
            )
            receiver.secret = created.json()["webhook_secret"]
            result = await client.post("/api/v1/subscribers/hook/test")
            missing = await client.post("/api/v1/subscribers/nobody/test")
    finally:
        await receiver.stop()
    assert result.status_code == 200
    assert [r["outcome"] for r in result.json()["results"]] == ["delivered"]
    (hook,) = receiver.received
    assert hook.verified
    assert missing.status_code == 404


async def test_openapi_document_is_valid_and_lists_every_route(site):
    async with site.client() as client:
        served = (await client.get("/api/v1/openapi.json")).json()
    shipped = json.loads(
        resources.files("newsalert.web").joinpath("openapi.json").read_text("utf-8")
    )
    assert served == shipped
    assert served["openapi"].startswith("3.1") and served["info"]["title"]
    for method, path, _ in Api(site.console, None, 1).table():
        operation = served["paths"][PREFIX + path][method.lower()]
        assert operation["responses"], (method, path)
    documented = {
        (m.upper(), p) for p, ops in served["paths"].items() for m in ops if m != "parameters"
    }
    routed = {(m, PREFIX + p) for m, p, _ in Api(site.console, None, 1).table()}
    assert documented == routed
    # Every $ref resolves, and the schemas are valid JSON Schema (OpenAPI 3.1 = 2020-12).
    for schema in served["components"]["schemas"].values():
        jsonschema.Draft202012Validator.check_schema(schema)
    refs = re.findall(r'"\$ref": "#/components/(\w+)/(\w+)"', json.dumps(served))
    assert refs and all(name in served["components"][kind] for kind, name in refs)


async def test_a_config_file_subscriber_is_read_only_here(site):
    config = SubscriptionConfig(name="filed", topics=["5g-security"], email="f@example.org")
    site.console.deliveries.sync_config([config])
    async with site.client() as client:
        assert (await client.get("/api/v1/subscribers/filed")).json()["origin"] == "config"
        patched = await client.patch("/api/v1/subscribers/filed", json={"keywords": "x"})
        deleted = await client.delete("/api/v1/subscribers/filed")
        unknown = await client.patch("/api/v1/subscribers/nobody", json={"keywords": "x"})
        renamed = await client.patch("/api/v1/subscribers/filed", json={"name": "other"})
    assert patched.status_code == 409 and "config file" in patched.json()["error"]
    assert deleted.status_code == 409 and unknown.status_code == 404
    assert renamed.status_code == 422
    assert site.console.deliveries.subscriber("filed").keywords is None
