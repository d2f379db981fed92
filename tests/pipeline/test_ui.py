"""The dashboard (/ui) in headless Chromium (Debian's /usr/bin/chromium driven by Playwright) against a
real worker with a tokens file: log in, watch a run arrive live, open it, silence it, replay a dead
letter, read the chart. Each test saves screenshots under build/ui-screenshots/ and asserts on what the
page shows."""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from runherald.broker import EmbeddedBroker
from runherald.testing._server import Reply
from runherald.testing.webhook import WebhookReceiver

from .harness import WorkerProcess, own_worker, request, run_dict, tokens_file, unique, wait_for, webhook

playwright_api = pytest.importorskip("playwright.async_api")

CHROMIUM = os.environ.get("RUNHERALD_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]
SHOTS = Path(__file__).resolve().parents[2] / "build" / "ui-screenshots"
TOKENS = {
    "ops": ("rh_ui-admin-token-3c1f9a", ["admin"]),
    "reader": ("rh_ui-reader-token-77d2e0", ["read"]),
    "pub": ("rh_ui-publish-token-a41b55", ["publish"]),
}
TIMEOUT_MS = 20_000

pytestmark = pytest.mark.skipif(shutil.which(CHROMIUM) is None, reason=f"no Chromium at {CHROMIUM}")


@pytest.fixture(scope="module")
def secured(
    broker: EmbeddedBroker, worker_logs: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[WorkerProcess]:
    path = tokens_file(tmp_path_factory.mktemp("ui-tokens"), *[(n, t, s) for n, (t, s) in TOKENS.items()])
    with own_worker(broker.url, worker_logs, RUNHERALD_API_TOKENS_FILE=str(path)) as process:
        yield process


@contextlib.asynccontextmanager
async def browser_page(worker: WorkerProcess) -> AsyncIterator[Any]:
    """A fresh headless Chromium page (its own cookies) on the worker's address."""
    async with playwright_api.async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        try:
            context = await browser.new_context(base_url=worker.api, viewport={"width": 1280, "height": 900})
            page = await context.new_page()
            page.set_default_timeout(TIMEOUT_MS)
            yield page
        finally:
            await browser.close()


async def shot(page: Any, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


async def log_in(page: Any, token_name: str, next_page: str = "/ui/runs") -> None:
    await page.goto(next_page)
    assert "/ui/login" in page.url
    await page.fill("#token", TOKENS[token_name][0])
    await page.click("#login")
    await page.wait_for_url(f"**{next_page}")
    assert token_name in await page.text_content("#who")


async def publish(worker: WorkerProcess, run: dict[str, Any]) -> None:
    code, body = await request(worker, "POST", "/api/v1/runs", run, TOKENS["pub"][0])
    assert code == 202, body


async def test_login_live_run_its_attempts_and_silence_this(
    secured: WorkerProcess, receiver: WebhookReceiver
) -> None:
    project, uid = unique("p"), unique("u")
    name = "train<script>window.pwned=1</script>"
    async with browser_page(secured) as page:
        response = await page.goto("/ui/runs")  # without the cookie: the login page
        assert "/ui/login" in page.url and response.status == 200
        await page.fill("#token", "rh_not-a-token-of-this-worker")
        await page.click("#login")
        assert "That token is not valid." in await page.text_content("#login-error")
        await shot(page, "login-refused")

        # A run recorded before the page opens comes from the runs list, with its notifications counted.
        earlier = unique("u")
        await publish(secured, run_dict(project, earlier, "error", [webhook("hook", receiver.url("/ui"))]))
        await receiver.wait_for_requests(1, path="/ui", within=20)
        await wait_for(lambda: _listed(secured, project, earlier), timeout=20)

        await page.fill("#token", TOKENS["ops"][0])
        await page.click("#login")
        await page.wait_for_url("**/ui/runs")
        listed = page.locator(f"#runs tbody tr[data-key='{project}/{earlier}']", has_text="1 sent")
        await listed.wait_for()
        assert "error" in await listed.inner_text()
        [cookie] = [c for c in await page.context.cookies() if c["name"] == "runherald_ui"]
        assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and cookie["path"] == "/"
        assert TOKENS["ops"][0] not in await page.content() and TOKENS["ops"][0] not in page.url
        await page.wait_for_selector("#live.live")

        await publish(
            secured,
            run_dict(
                project,
                uid,
                "completed",
                [webhook("hook", receiver.url("/ui"))],
                name=name,
                labels={"team": "ml"},
                last_update=datetime.now(UTC).isoformat(),
            ),
        )
        row = page.locator(f"#runs tbody tr[data-key='{project}/{uid}']")
        await row.wait_for()
        assert name in await row.inner_text() and "completed" in await row.inner_text()
        assert await page.evaluate("window.pwned") is None  # the name is text, never markup
        await shot(page, "runs-live")

        await receiver.wait_for_requests(2, path="/ui", within=20)
        await row.locator("a").click()
        await page.wait_for_url(f"**/ui/runs/{project}/{uid}")
        await page.wait_for_selector("#notifications .attempts tbody tr")
        assert await page.text_content("#run-name") == name
        assert await page.text_content("#run-state") == "completed"
        assert await page.text_content("#run-labels") == "team=ml"
        assert await page.text_content("#run-updated") not in ("", "\u2014")
        assert await page.text_content("#run-error") == "\u2014"  # none: a dash, not an empty cell
        block = await page.inner_text("#notifications .notification[data-name='hook']")
        assert "sent" in block and "200" in block
        assert await page.evaluate("window.pwned") is None
        matchers = await page.input_value("#silence-matchers")
        assert f'project="{project}"' in matchers and 'name="train<script>' in matchers
        await shot(page, "run")

        await page.fill("#silence-comment", "maintenance of the hook")
        await page.click("#silence-add")
        result = page.locator("#silence-result.ok")
        await result.wait_for()
        silence_id = (await result.inner_text()).split()[1]
        await shot(page, "run-silenced")

        await page.goto("/ui/config")
        listed = page.locator(f"#silences tbody tr[data-id='{silence_id}']")
        await listed.wait_for()
        assert f'project="{project}"' in await listed.inner_text()
        assert "maintenance of the hook" in await listed.inner_text()
        await shot(page, "config")
        await listed.locator("button.expire").click()
        await page.locator("#silences-result.ok", has_text=f"Silence {silence_id} expired.").wait_for()
        await listed.wait_for(state="detached")  # the list shows the silences not expired

        await page.click("#logout")
        await page.wait_for_url("**/ui/login")
        await page.goto("/ui/config")
        assert "/ui/login" in page.url
    log = secured.log_path.read_text(errors="replace")
    assert "a login with an unknown token was refused" in log
    assert not [token for token, _ in TOKENS.values() if token in log]
    assert "rh_not-a-token-of-this-worker" not in log


async def _listed(worker: WorkerProcess, project: str, uid: str) -> bool:
    code, body = await request(worker, "GET", f"/api/v1/runs?project={project}", token=TOKENS["reader"][0])
    return code == 200 and any(
        item["uid"] == uid and item["notifications"].get("sent") for item in body["items"]
    )


async def test_a_cookie_change_needs_the_dashboard_header_and_pages_carry_a_csp(
    secured: WorkerProcess,
) -> None:
    async with browser_page(secured) as page:
        await log_in(page, "ops", "/ui/config")
        response = await page.goto("/ui/config")
        assert "script-src 'self'" in response.headers["content-security-policy"]
        without = await page.evaluate(
            """async () => { const r = await fetch('/api/v1/silences', {method: 'POST', body: '{}',
            headers: {'Content-Type': 'application/json'}}); return [r.status, await r.text()]; }"""
        )
        assert without[0] == 403 and "X-Runherald-UI" in without[1]
        listed = await page.evaluate("async () => (await fetch('/api/v1/silences')).status")
        assert listed == 200  # reads need no header


async def test_rules_dry_run_from_the_form(secured: WorkerProcess) -> None:
    rule = unique("r")
    code, body = await request(
        secured,
        "PUT",
        "/api/v1/receivers/ui-hook",
        {"kind": "webhook", "params": {"url": "http://127.0.0.1:9/never"}},
        TOKENS["ops"][0],
    )
    assert code in (200, 201), body
    code, body = await request(
        secured,
        "PUT",
        f"/api/v1/rules/{rule}",
        {"matchers": ['state="error"'], "when": ["error"], "receivers": ["ui-hook"]},
        TOKENS["ops"][0],
    )
    assert code in (200, 201), body
    async with browser_page(secured) as page:
        await log_in(page, "reader", "/ui/config")
        await page.locator(f"#rules tbody tr:has-text('{rule}')").wait_for()
        await page.fill("#dry-run-rules", rule)
        await page.click("#dry-run")
        await page.locator("#dry-run-result.ok").wait_for()
        assert f"Would fire: {rule}." in await page.text_content("#dry-run-result")
        fired = await page.inner_text(f"#dry-run-table tr[data-rule='{rule}']")
        assert "ui-hook" in fired and "yes" in fired
        await shot(page, "dry-run")


async def test_dead_letter_replay_refused_to_a_reader_and_done_for_an_admin(
    secured: WorkerProcess, receiver: WebhookReceiver
) -> None:
    project, uid = unique("p"), unique("u")
    receiver.fail("/dead", 400)
    await publish(secured, run_dict(project, uid, "completed", [webhook("hook", receiver.url("/dead"))]))
    await receiver.wait_for_requests(1, path="/dead", within=20)
    key = f"{project}/{uid}"

    async with browser_page(secured) as page:
        await log_in(page, "reader", "/ui/dead-letter")
        row = page.locator(f"#dead-letter tbody tr:has-text('{key}')")
        await wait_for(lambda: _reloaded_shows(page, row), timeout=30, interval=1)
        await row.locator("button.replay").click()
        refused = page.locator("#replay-result.error")
        await refused.wait_for()
        assert "admin" in await refused.inner_text()
        await shot(page, "dead-letter-refused")

    receiver.reply("/dead", Reply())  # the endpoint is fixed
    async with browser_page(secured) as page:
        await log_in(page, "ops", "/ui/dead-letter")
        row = page.locator(f"#dead-letter tbody tr:has-text('{key}')")
        await row.wait_for()
        await row.locator("button.replay").click()
        done = page.locator("#replay-result.ok")
        await done.wait_for()
        assert "Replayed 1." in await done.inner_text()
        await shot(page, "dead-letter-replayed")

        # Replay all asks first: dismissed, nothing is sent; accepted, every letter is replayed.
        page.once("dialog", lambda dialog: dialog.dismiss())
        await page.evaluate("document.getElementById('replay-result').textContent = ''")
        await page.click("#replay-all")
        await page.wait_for_timeout(500)
        assert await page.text_content("#replay-result") == ""
        page.once("dialog", lambda dialog: dialog.accept())
        await page.click("#replay-all")
        await page.locator("#replay-result", has_text="Replayed").wait_for()
        assert "Replayed " in await page.text_content("#replay-result")
    await receiver.wait_for_requests(2, path="/dead", within=20)


async def _reloaded_shows(page: Any, row: Any) -> bool:
    if await row.count():
        return True
    await page.reload()
    await page.wait_for_load_state("networkidle")
    return bool(await row.count())


async def test_chart_draws_bars_for_the_deliveries(secured: WorkerProcess, receiver: WebhookReceiver) -> None:
    project = unique("p")
    receiver.fail("/c-bad", 400)  # a permanent failure: one attempt
    for _ in range(3):
        await publish(
            secured, run_dict(project, unique("u"), "completed", [webhook("hook", receiver.url("/c"))])
        )
    await publish(
        secured, run_dict(project, unique("u"), "completed", [webhook("bad", receiver.url("/c-bad"))])
    )
    await receiver.wait_for_requests(3, path="/c", within=20)
    await receiver.wait_for_requests(1, path="/c-bad", within=20)
    async with browser_page(secured) as page:
        await log_in(page, "reader", "/ui/deliveries")
        await page.fill("#chart-project", project)

        async def drawn() -> bool:
            await page.click("#chart-form button")
            await page.wait_for_timeout(500)
            legend = await page.text_content("#chart-legend") or ""
            return "sent: 3" in legend and "permanent: 1" in legend

        await wait_for(drawn, timeout=30, interval=0.5)
        for outcome, expected in (("sent", 3), ("permanent", 1), ("retryable", 0)):
            bars = page.locator(f"#chart svg rect.bar[data-outcome='{outcome}']")
            counted = [
                int(await bars.nth(i).get_attribute("data-count") or 0) for i in range(await bars.count())
            ]
            assert sum(counted) == expected, (outcome, counted)
            assert all(height > 0 for height in [await _height(bars.nth(i)) for i in range(len(counted))])
        await shot(page, "deliveries-chart")


async def _height(bar: Any) -> float:
    return float(await bar.get_attribute("height") or 0)


async def test_without_a_tokens_file_the_dashboard_is_open(worker: WorkerProcess) -> None:
    async with browser_page(worker) as page:
        await page.goto("/ui")
        await page.wait_for_url("**/ui/runs")  # no login page: the worker's API is open
        assert "no tokens file" in await page.text_content("#who")
        await page.wait_for_selector("#live.live")
        assert await page.locator("#logout").count() == 0
        await page.goto("/ui/login")
        await page.wait_for_url("**/ui/runs")
        await shot(page, "runs-open")
