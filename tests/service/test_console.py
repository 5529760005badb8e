"""The supervisor console (service/console.py) on the real app: auth, listing, escaping, assets.

Real pack, real SQLite store, API-key auth on. The browser-level checks (1,000 rows, the
conversation page in under a second, screenshots) are in test_console_browser.py.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import TestClient

from service.app import create_app
from service.auth import ANONYMOUS, Authenticator
from service.console import Sessions, sparkline
from service.settings import ApiKey, Settings, hash_api_key

pytestmark = pytest.mark.pack

ROOT = Path(__file__).resolve().parents[2]
HOLDOUT_POLICY = ROOT / "tests" / "routing" / "policies" / "bot_holdout.toml"
KEY = "console-test-key"
BEARER = {"Authorization": f"Bearer {KEY}"}


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory, test_pack: Path) -> Iterator[TestClient[Any]]:
    folder = tmp_path_factory.mktemp("console")
    env = {
        "SWITCHBOARD_API_KEYS": f"supervisor={hash_api_key(KEY)}",
        "SWITCHBOARD_DATA_DIR": str(folder / "var"),
        "SWITCHBOARD_PACK": str(test_pack),
        "SWITCHBOARD_RATE_LIMIT": "0",
        "SWITCHBOARD_POLICY_RELOAD_INTERVAL": "0",
        "SWITCHBOARD_POLICY": str(HOLDOUT_POLICY),
    }
    with TestClient(create_app(Settings.from_env(env))) as test_client:
        deadline = time.monotonic() + 60
        while test_client.get("/readyz").status_code != 200:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        yield test_client


def append(client: TestClient[Any], conversation_id: str, *texts: str) -> None:
    turns = [{"speaker": "customer", "text": text} for text in texts]
    response = client.post(
        f"/v1/conversations/{conversation_id}/turns", json={"turns": turns}, headers=BEARER
    )
    assert response.status_code == 200, response.text


def login(client: TestClient[Any]) -> None:
    response = client.post("/console/login", data={"api_key": KEY}, follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == "/console"


def logout(client: TestClient[Any]) -> None:
    client.cookies.clear()


class TestAuth:
    def test_pages_redirect_to_login_and_the_poll_is_refused(self, client: TestClient[Any]) -> None:
        logout(client)
        for path in ("/console", "/console/conversations/c-1"):
            response = client.get(path, follow_redirects=False)
            assert response.status_code == 303 and response.headers["location"] == "/console/login"
        assert client.get("/console/live").status_code == 401
        form = client.get("/console/login")
        assert form.status_code == 200 and 'name="api_key"' in form.text

    def test_wrong_key_shows_the_form_again(self, client: TestClient[Any]) -> None:
        logout(client)
        response = client.post("/console/login", data={"api_key": "nope"}, follow_redirects=False)
        assert response.status_code == 401
        assert "not valid" in response.text and "set-cookie" not in response.headers

    def test_login_sets_a_strict_http_only_cookie_without_the_key(self, client: TestClient[Any]) -> None:
        logout(client)
        response = client.post("/console/login", data={"api_key": KEY}, follow_redirects=False)
        cookie = response.headers["set-cookie"]
        assert "HttpOnly" in cookie and "samesite=strict" in cookie.lower()
        assert "Path=/console" in cookie and KEY not in cookie
        assert client.get("/console").status_code == 200
        assert client.post("/console/logout", follow_redirects=False).status_code == 303

    def test_tampered_cookie_is_refused(self, client: TestClient[Any]) -> None:
        logout(client)
        login(client)
        value = client.cookies["switchboard_console"]
        name, expiry, mac = value.split(".")
        for forged in (
            f"{name}.{int(expiry) + 3600}.{mac}",
            f"other.{expiry}.{mac}",
            f"{name}.{expiry}.{'0' * 64}",
        ):
            client.cookies.clear()
            client.cookies.set("switchboard_console", forged, path="/console")
            assert client.get("/console", follow_redirects=False).status_code == 303
        logout(client)


def test_sessions_expire_and_follow_the_configured_keys() -> None:
    now = [1000.0]
    keys = (ApiKey("a", hash_api_key("k1")),)
    sessions = Sessions(Authenticator(keys, disabled=False), keys, ttl_s=60, clock=lambda: now[0])
    cookie = sessions.login("k1")
    assert sessions.check(cookie) == "a"
    now[0] += 61
    assert sessions.check(cookie) is None
    # Another deployment's key set (the key rotated away): the session does not verify there.
    rotated = (ApiKey("a", hash_api_key("k2")),)
    assert Sessions(Authenticator(rotated, disabled=False), rotated).check(sessions.login("k1")) is None
    assert Sessions(Authenticator((), disabled=True), ()).check(None) == ANONYMOUS


def test_sparkline_is_inline_svg_clamped_to_range() -> None:
    svg = sparkline([-3.0, 0.0, 0.5])
    assert svg.startswith("<svg") and 'class="spark pos"' in svg and "-1.00" in svg
    assert "svg" not in sparkline([])


class TestPages:
    def test_lists_open_conversations_with_their_decision(self, client: TestClient[Any]) -> None:
        login(client)
        append(client, "list-a", "I was charged twice for my order, please refund me")
        append(client, "list-b", "this is useless, I want to cancel my account now")
        append(client, "list-closed", "hello")
        assert client.post("/v1/conversations/list-closed/close", headers=BEARER).status_code == 200
        page = client.get("/console")
        assert page.status_code == 200
        ids = re.findall(r'<tr data-id="([^"]+)"', page.text)
        assert "list-a" in ids and "list-b" in ids and "list-closed" not in ids
        row = page.text.split('data-id="list-a"')[1].split("</tr>")[0]
        decision = client.get("/v1/conversations/list-a", headers=BEARER).json()["decision"]
        assert decision["queue"] in row and decision["route"] in row and "<svg" in row
        assert 'id="slos"' in page.text and "no SLOs declared" in page.text
        assert 'id="experiments"' in page.text

    def test_conversation_page_escapes_and_shows_redacted_text(self, client: TestClient[Any]) -> None:
        login(client)
        append(
            client,
            "esc-1",
            "<script>alert('x')</script> my card is 4111 1111 1111 1111, mail me at tom@example.com",
        )
        page = client.get("/console/conversations/esc-1")
        assert page.status_code == 200
        assert "<script>alert" not in page.text and "&lt;script&gt;alert" in page.text
        assert "4111 1111 1111 1111" not in page.text and "tom@example.com" not in page.text
        assert "[CARD_NUMBER]" in page.text and "[EMAIL]" in page.text
        explanation = client.get("/v1/conversations/esc-1", headers=BEARER).json()["decision"]["explanation"]
        assert explanation and all(
            line["text"].replace("'", "&#x27;").replace('"', "&quot;") in page.text for line in explanation
        )
        assert 'id="turns"' in page.text and 'id="handoff"' in page.text

    def test_unknown_conversation_is_a_404_page(self, client: TestClient[Any]) -> None:
        login(client)
        page = client.get("/console/conversations/never-was")
        assert page.status_code == 404 and "No live conversation" in page.text

    def test_poll_sends_rows_only_when_something_changed(self, client: TestClient[Any]) -> None:
        login(client)
        append(client, "poll-1", "where is my parcel")
        first = client.get("/console/live").json()
        assert first["changed"] is True and 'data-id="poll-1"' in first["rows"]
        same = client.get("/console/live", params={"stamp": first["stamp"]}).json()
        assert same == {"stamp": first["stamp"], "changed": False, "count": None, "rows": None, "more": False}
        append(client, "poll-1", "it is late again")
        assert client.get("/console/live", params={"stamp": first["stamp"]}).json()["changed"] is True

    def test_pages_fetch_nothing_from_elsewhere(self, client: TestClient[Any]) -> None:
        login(client)
        append(client, "assets-1", "hello there")
        for path in ("/console", "/console/conversations/assets-1", "/console/login"):
            response = client.get(path)
            assert "default-src 'none'" in response.headers["content-security-policy"]
            refs = re.findall(r'(?:src|href|action)="([^"]*)"', response.text)
            assert refs and all(ref.startswith("/console") for ref in refs), refs
        for asset, media in (("console.css", "text/css"), ("console.js", "text/javascript")):
            response = client.get(f"/console/static/{asset}")
            assert response.status_code == 200 and response.headers["content-type"].startswith(media)
            assert "http://" not in response.text and "https://" not in response.text
        assert client.get("/console/static/secret.py").status_code == 404

    def test_pages_of_the_list_follow_the_ids(self, client: TestClient[Any]) -> None:
        login(client)
        for n in range(3):
            append(client, f"page-{n}", "where is my parcel")
        first = client.get("/console", params={"after": "page-", "limit": 2})
        assert re.findall(r'<tr data-id="([^"]+)"', first.text) == ["page-0", "page-1"]
        assert 'href="/console?after=page-1&amp;limit=2"' in first.text
        second = client.get("/console", params={"after": "page-1", "limit": 1})
        assert re.findall(r'<tr data-id="([^"]+)"', second.text) == ["page-2"]

    def test_console_is_left_out_of_the_api_document(self, client: TestClient[Any]) -> None:
        paths = client.get("/schema/openapi.json").json()["paths"]
        assert not [path for path in paths if path.startswith("/console")]
