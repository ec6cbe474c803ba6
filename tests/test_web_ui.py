"""The Temporal Web UI of the dev server, driven in headless Chromium.

The browser is Debian's ``chromium`` package, driven through Playwright's
Python API. Playwright never downloads a browser here. The screenshots land
in the test's temporary folder, or in docs/screenshots/ (which README.md
shows) when CASEDESK_UPDATE_SCREENSHOTS=1 is set, so an ordinary test run
leaves the working tree unchanged.
"""

import os
import socket
import sys
import tempfile
import urllib.parse
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from playwright.async_api import Error as PlaywrightError
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from activities.email import EmailSettings
from domain.case import CaseInput
from domain.statuses import Status
from starter import client as cases
from tests.helpers import assert_eventually, case_input, new_task_queue, set_status
from worker import build_worker
from workflows.search_attributes import ALL_SEARCH_ATTRIBUTES

BIN = Path(sys.executable).parent
CHROMIUM = Path("/usr/bin/chromium")
DOCS_SCREENSHOTS = Path(__file__).resolve().parents[1] / "docs" / "screenshots"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
WAITING = "00012345"
NEW = "00012346"
UI_WAIT_MS = 30_000
LIST_QUERY = 'CaseStatus = "Pending Customer Input"'
UI_UPDATE = '{"status": "In Progress", "actor": {"role": "support", "name": "Bob"}}'
POLL_MS = 250


def require_chromium() -> None:
    """Skip without Chromium on a developer's machine. Under CI its absence is a failure."""
    if CHROMIUM.exists():
        return
    message = (
        f"{CHROMIUM} is missing; install it with: apt-get update && apt-get install -y "
        "chromium"
    )
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def expect_in_frames(page: Any, *texts: str) -> None:
    """Wait until one frame of ``page`` shows every one of ``texts``."""
    frame_texts: list[str] = []
    for _ in range(UI_WAIT_MS // POLL_MS):
        frame_texts = []
        for frame in page.frames:
            try:
                frame_texts.append(await frame.inner_text("body"))
            except PlaywrightError:
                # A frame can detach while the page renders.
                continue
        if any(all(text in body for text in texts) for body in frame_texts):
            return
        await page.wait_for_timeout(POLL_MS)
    raise AssertionError(f"no frame shows {texts!r}; the frames show: {frame_texts!r}")


@pytest_asyncio.fixture
async def ui_env(tmp_path: Path) -> AsyncIterator[tuple[WorkflowEnvironment, int]]:
    """A dev server of its own with the Web UI on a free loopback port."""
    ui_port = free_port()
    env = await WorkflowEnvironment.start_local(
        data_converter=pydantic_data_converter,
        dev_server_existing_path=str(BIN / "temporal"),
        search_attributes=ALL_SEARCH_ATTRIBUTES,
        ui=True,
        ui_port=ui_port,
    )
    async with env:
        yield env, ui_port


async def test_web_ui_shows_case_pending_customer(
    ui_env: tuple[WorkflowEnvironment, int], tmp_path: Path
) -> None:
    require_chromium()
    from playwright.async_api import async_playwright, expect

    env, ui_port = ui_env
    queue = new_task_queue()
    settings = EmailSettings(outbox_dir=tmp_path / "outbox")
    async with build_worker(env.client, task_queue=queue, email_settings=settings):
        for number in (WAITING, NEW):
            request = CaseInput.model_validate(case_input(number))
            await cases.open_case(env.client, request, task_queue=queue)
        await cases.change_status(
            env.client, WAITING, set_status(Status.PENDING_CUSTOMER_INPUT)
        )

        # The list page loads once, so the visibility store must have the
        # status change before the browser opens it.
        async def indexed() -> None:
            count = await env.client.count_workflows(LIST_QUERY)
            assert count.count == 1

        await assert_eventually(indexed, within=timedelta(seconds=30))
        expect.set_options(timeout=UI_WAIT_MS)
        screenshots = (
            DOCS_SCREENSHOTS
            if os.environ.get("CASEDESK_UPDATE_SCREENSHOTS") == "1"
            else tmp_path / "screenshots"
        )
        screenshots.mkdir(parents=True, exist_ok=True)
        profile = tempfile.mkdtemp(dir=tmp_path)

        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch_persistent_context(
                profile,
                executable_path=str(CHROMIUM),
                headless=True,
                args=CHROMIUM_ARGS,
                viewport={"width": 1400, "height": 900},
            )
            try:
                page = await browser.new_page()
                page.set_default_timeout(UI_WAIT_MS)

                # The list filter, as an operator types it; the UI keeps it in the URL.
                query = urllib.parse.quote(LIST_QUERY)
                await page.goto(
                    f"http://127.0.0.1:{ui_port}/namespaces/default/workflows?query={query}"
                )
                waiting_link = page.get_by_role("link", name=f"case-{WAITING}")
                await expect(waiting_link.first).to_be_visible()
                await expect(
                    page.get_by_role("link", name=f"case-{NEW}")
                ).to_have_count(0)
                await page.screenshot(path=str(screenshots / "workflow-list.png"))

                await waiting_link.first.click()
                timer = page.get_by_text(
                    "reminder email 7 days after Pending Customer Input"
                )
                await expect(timer.first).to_be_visible()
                await page.screenshot(path=str(screenshots / "case-timeline.png"))

                await page.get_by_role("tab", name="User Metadata").click()
                # The UI renders summaries and details as Markdown, each in an iframe.
                await expect_in_frames(page, f"Case {WAITING}: Search returns")
                await expect_in_frames(page, "Institution: inst-0042")
                await expect_in_frames(
                    page, "Pending Customer Input since", "waiting on customer"
                )
                await expect_in_frames(
                    page,
                    "Next deadline: reminder email 7 days after Pending Customer Input",
                )
                await expect_in_frames(page, "Last action: status changed by support")
                await page.screenshot(path=str(screenshots / "case-details.png"))

                # An operator acts on the case from the UI: More Actions, Send an Update.
                await page.get_by_role("button", name="More Actions").click()
                await (
                    page.locator("#workflow-actions.visible")
                    .get_by_text("Send an Update")
                    .click()
                )
                dialog = page.locator("dialog[open]")
                await dialog.get_by_test_id("update-select-button").click()
                await (
                    dialog.get_by_role("option")
                    .filter(has_text="change_status")
                    .click()
                )
                await dialog.get_by_role("textbox", name="Data").click()
                await page.keyboard.insert_text(UI_UPDATE)
                # The Data editor of UI 2.54.1 hands its text to the form only when
                # it loses focus, so another click must come before Submit.
                await dialog.get_by_role("button", name="Random UUID").click()
                await page.screenshot(path=str(screenshots / "send-update.png"))
                await dialog.get_by_role("button", name="Submit").click()
                await expect(dialog).to_have_count(0)
            finally:
                await browser.close()

        case = await cases.get_case(env.client, WAITING)
        assert case.status is Status.IN_PROGRESS
        assert case.history[-1].actor_name == "Bob"

        for number in (WAITING, NEW):
            await cases.change_status(env.client, number, set_status(Status.CLOSED))


def test_missing_chromium_fails_under_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        sys.modules[__name__], "CHROMIUM", Path("/nonexistent/chromium")
    )
    monkeypatch.setenv("CI", "true")

    with pytest.raises(pytest.fail.Exception) as caught:
        require_chromium()

    assert "apt-get install -y chromium" in str(caught.value)


def test_missing_chromium_skips_outside_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        sys.modules[__name__], "CHROMIUM", Path("/nonexistent/chromium")
    )
    monkeypatch.delenv("CI", raising=False)

    with pytest.raises(pytest.skip.Exception) as caught:
        require_chromium()

    assert "apt-get install -y chromium" in str(caught.value)
