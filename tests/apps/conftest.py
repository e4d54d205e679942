"""Fixtures for the apps' tests: browser pages opened at any URL (the hubbub server's own
/spaces UI rather than tests/e2e/pages), one fresh context per participant."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from playwright.async_api import Browser, BrowserContext, ConsoleMessage, Page

from tests.helpers.browser import ARTIFACTS_DIR


class UrlPages:
    """`await pages("http://127.0.0.1:p/spaces/", "ann")`: a page in a new browser context
    (its own localStorage: a separate person). Console output and page errors are kept and
    written to test-artifacts/browser/<test>.log on close."""

    def __init__(self, browser: Browser, name: str) -> None:
        self.browser = browser
        self.name = re.sub(r"[^A-Za-z0-9_.-]+", "_", name)[:100]
        self.logs: list[str] = []
        self.contexts: list[BrowserContext] = []

    async def __call__(
        self, url: str, label: str, viewport: tuple[int, int] = (1280, 860),
        init_script: str | None = None,
    ) -> Page:
        context = await self.browser.new_context(
            viewport={"width": viewport[0], "height": viewport[1]}
        )
        self.contexts.append(context)
        if init_script is not None:
            await context.add_init_script(init_script)
        page = await context.new_page()

        def on_console(msg: ConsoleMessage) -> None:
            self.logs.append(f"[{label}] {msg.type}: {msg.text}")

        def on_error(err: Exception) -> None:
            self.logs.append(f"[{label}] pageerror: {err}")

        page.on("console", on_console)
        page.on("pageerror", on_error)
        await page.goto(url)
        return page

    def errors(self) -> list[str]:
        return [line for line in self.logs if "pageerror" in line]

    async def close(self) -> None:
        for context in self.contexts:
            try:
                await context.close()
            except Exception as exc:  # the browser may be gone already
                self.logs.append(f"[pages] context close failed: {exc}")
        self.contexts.clear()
        ARTIFACTS_DIR.mkdir(parents=True, exist_ok=True)
        (ARTIFACTS_DIR / f"{self.name}.log").write_text("\n".join(self.logs) + "\n")


@pytest_asyncio.fixture
async def url_pages(browser: Browser, request: pytest.FixtureRequest) -> AsyncIterator[UrlPages]:
    pages = UrlPages(browser, request.node.name)
    yield pages
    await pages.close()


@pytest.fixture(scope="session")
def screenshots_dir() -> Path:
    path = Path(__file__).resolve().parents[2] / "test-artifacts" / "spaces"
    path.mkdir(parents=True, exist_ok=True)
    return path
