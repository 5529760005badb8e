"""The supervisor console in a real headless browser (Playwright driving Debian's chromium).

1,000 live conversations are created through the real app (real pack, SQLite, API keys on);
the test logs in through the form, checks that every conversation is listed, that the list
follows a change without a reload, and that a conversation opens in at most 1 s (navigation
timing of the page load). ``SWITCHBOARD_UPDATE_SCREENSHOTS=1`` rewrites docs/console-*.png;
otherwise the screenshots are taken to a temporary folder and the committed ones must exist.

The browser is the system ``chromium`` (``apt-get install chromium``): Playwright's own
browser download needs the internet, which CI does not have.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from service.app import create_app
from service.settings import Settings, hash_api_key
from tests.service.conftest import ThreadedServer

pytestmark = pytest.mark.pack

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
POLICY = ROOT / "tests" / "routing" / "policies" / "bot_holdout.toml"
KEY = "console-browser-key"
CONVERSATIONS = 1000
SCREENSHOTS = ("console-login.png", "console-live.png", "console-conversation.png")
TEXTS = (
    ("customer", "I was charged twice for my order, please refund me"),
    ("customer", "this is the third time I call, I want to cancel my account"),
    ("customer", "thanks, that fixed it, have a nice day"),
    ("customer", "my parcel has not arrived and nobody answers, let me talk to a person"),
    ("customer", "how do I change the email on my account? it is tom@example.com"),
)

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is in the test extra")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
if CHROMIUM is None:
    pytest.skip(
        "no chromium on PATH (apt-get install chromium; .ci/run installs it)", allow_module_level=True
    )


def conversation_id(n: int) -> str:
    return f"conv-{n:04d}"


def create(client: httpx.Client, n: int) -> None:
    """Conversation ``n``: two to four turns, so sparklines, reasons and flags differ by row."""
    turns = [{"speaker": s, "text": t} for s, t in (TEXTS[(n + i) % len(TEXTS)] for i in range(2 + n % 3))]
    for _ in range(20):  # a loaded machine sheds with 429 + Retry-After: do what a client should
        response = client.post(f"/v1/conversations/{conversation_id(n)}/turns", json={"turns": turns})
        if response.status_code != 429:
            break
        time.sleep(float(response.headers.get("retry-after", "0.1")))
    assert response.status_code == 200, response.text


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, test_pack: Path) -> Iterator[ThreadedServer]:
    folder = tmp_path_factory.mktemp("console-browser")
    env = {
        "SWITCHBOARD_API_KEYS": f"supervisor={hash_api_key(KEY)}",
        "SWITCHBOARD_DATA_DIR": str(folder / "var"),
        "SWITCHBOARD_PACK": str(test_pack),
        "SWITCHBOARD_RATE_LIMIT": "0",
        "SWITCHBOARD_POLICY_RELOAD_INTERVAL": "0",
        "SWITCHBOARD_POLICY": str(POLICY),
        "SWITCHBOARD_LOG_LEVEL": "WARNING",
    }
    with ThreadedServer(create_app(Settings.from_env(env))) as running:
        headers = {"Authorization": f"Bearer {KEY}"}
        with (
            httpx.Client(base_url=running.url, headers=headers, timeout=60) as client,
            ThreadPoolExecutor(max_workers=8) as pool,
        ):
            list(pool.map(lambda n: create(client, n), range(CONVERSATIONS)))
        yield running


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[[Any, str], None]]:
    """``shot(page, name)``: into docs/ when updating, else into a temporary folder."""
    update = os.environ.get("SWITCHBOARD_UPDATE_SCREENSHOTS") == "1"
    folder = DOCS if update else tmp_path_factory.mktemp("shots")
    folder.mkdir(exist_ok=True)

    def shot(page: Any, name: str) -> None:
        page.screenshot(path=str(folder / name))
        assert (folder / name).stat().st_size > 10_000

    yield shot
    missing = [name for name in SCREENSHOTS if not (DOCS / name).is_file()]
    assert not missing, f"run with SWITCHBOARD_UPDATE_SCREENSHOTS=1 to write {missing}"


def test_console_lists_1000_conversations_and_opens_one_within_a_second(
    server: ThreadedServer, browser: Any, shots: Callable[[Any, str], None]
) -> None:
    page = browser.new_page(viewport={"width": 1440, "height": 900})
    external: list[str] = []
    page.on("request", lambda r: None if r.url.startswith(server.url) else external.append(r.url))

    page.goto(f"{server.url}/console")
    assert page.url == f"{server.url}/console/login"
    shots(page, "console-login.png")
    page.fill("#api_key", "wrong")
    page.click("button[type=submit]")
    assert page.locator(".error").inner_text() == "That API key is not valid."
    page.fill("#api_key", KEY)
    page.click("button[type=submit]")
    page.wait_for_url(f"{server.url}/console")

    rows = page.locator("#conversations tbody tr")
    assert rows.count() == CONVERSATIONS
    assert page.locator("#count").inner_text() == str(CONVERSATIONS)
    assert page.locator("#conversations tbody svg.spark").count() == CONVERSATIONS
    shots(page, "console-live.png")

    # The list follows the store without a reload: a closed conversation leaves it.
    page.evaluate("window.__notReloaded = true")
    closed = httpx.post(
        f"{server.url}/v1/conversations/{conversation_id(0)}/close",
        headers={"Authorization": f"Bearer {KEY}"},
    )
    assert closed.status_code == 200
    # A locator assertion, not wait_for_function: the console's CSP forbids eval in the page.
    sync_api.expect(page.locator("#count")).to_have_text(str(CONVERSATIONS - 1), timeout=6000)
    assert page.evaluate("window.__notReloaded") is True
    assert page.locator(f'tr[data-id="{conversation_id(0)}"]').count() == 0

    target = conversation_id(7)
    started = time.perf_counter()
    page.click(f'tr[data-id="{target}"] a')
    page.wait_for_url(f"{server.url}/console/conversations/{target}")
    page.wait_for_load_state("load")
    wall_s = time.perf_counter() - started
    load_ms = page.evaluate(
        "(() => { const n = performance.getEntriesByType('navigation')[0];"
        " return n.loadEventEnd - n.startTime; })()"
    )
    assert 0 < load_ms <= 1000, f"conversation page loaded in {load_ms:.0f} ms"
    assert wall_s <= 1.5, f"click to loaded page took {wall_s:.2f} s"
    assert page.locator("#turns tbody tr").count() == 2 + 7 % 3
    assert page.locator("#decision ol.explanation li").count() > 0
    assert "tom@example.com" not in page.content()
    shots(page, "console-conversation.png")

    assert not external, f"the console fetched from elsewhere: {external[:3]}"
    page.close()
