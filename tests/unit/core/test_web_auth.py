"""The pages' session cookie and CSRF tokens, and the bearer check (newsalert/web/auth.py)."""

from __future__ import annotations

from newsalert.web.auth import SESSION_SECONDS, Guard
from newsalert.web.charts import bar_chart


def test_a_session_cookie_is_valid_until_it_expires_or_is_altered():
    now = [1000.0]
    guard = Guard("token", clock=lambda: now[0])
    cookie = guard.new_session()
    session = guard.session_of(cookie)
    assert session is not None
    assert guard.session_of(cookie[:-1] + ("0" if cookie[-1] != "0" else "1")) is None
    assert guard.session_of("a.b") is None and guard.session_of(None) is None
    assert Guard("another token", clock=lambda: now[0]).session_of(cookie) is None
    now[0] += SESSION_SECONDS + 1
    assert guard.session_of(cookie) is None


def test_csrf_tokens_are_bound_to_the_session():
    guard = Guard("token")
    one, two = (guard.session_of(guard.new_session()) for _ in range(2))
    assert guard.csrf_ok(one, guard.csrf_token(one))
    assert not guard.csrf_ok(one, guard.csrf_token(two))
    assert not guard.csrf_ok(one, None)


def test_bearer_header():
    guard = Guard("token")
    assert guard.bearer_ok("Bearer token") and guard.bearer_ok("bearer token")
    assert not guard.bearer_ok("Bearer tokenx") and not guard.bearer_ok("token")
    assert not guard.bearer_ok(None) and not guard.bearer_ok("Basic token")


def test_chart_marks_the_buckets_of_a_spike_and_escapes_its_label():
    series = [{"start": 0.0, "count": 1}, {"start": 3600.0, "count": 9}]
    svg = str(bar_chart(series, 3600.0, [(3600.0, 7200.0)], label="<b>"))
    assert svg.count('class="bar"') == 1 and svg.count('class="spike"') == 1
    assert "&lt;b&gt;" in svg and "<b>" not in svg
