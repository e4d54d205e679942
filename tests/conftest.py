"""Fixtures every test directory may use: real servers and the shared headless Chromium.

Keep this file generic; fixtures for one area belong in that area's own conftest.py.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
import pytest_asyncio
from playwright.async_api import Browser, async_playwright

from tests.helpers.browser import (
    ChromiumProcess,
    PageFactory,
    StaticServer,
    connect_browser,
    require_chromium,
    skip_reason,
)
from tests.helpers.server import RunningServer, start_server

ServerFactory = Callable[..., RunningServer]


@pytest.fixture
def server_factory(request: pytest.FixtureRequest) -> Iterator[ServerFactory]:
    """`server_factory(**options)` (keywords of `start_server`) starts `hubbub serve` and blocks
    until /healthz is 200; every server it started is stopped after the test. Inside async code
    that must keep its loop running meanwhile, use `async with start_server(...)` instead."""
    started: list[RunningServer] = []

    def factory(**options: Any) -> RunningServer:
        srv = start_server(name=f"{request.node.name}-{len(started)}", **options)
        started.append(srv)
        return srv.start()

    yield factory
    for srv in reversed(started):
        srv.stop()


@pytest.fixture
def server(server_factory: ServerFactory) -> RunningServer:
    """A `hubbub serve` with default options and `--allow-any-stream`, on free ports."""
    return server_factory()


@pytest.fixture(scope="session")
def chromium() -> Iterator[ChromiumProcess]:
    """One headless Chromium for the session (fake camera and microphone)."""
    reason = skip_reason()
    if reason:
        pytest.skip(f"browser tests skipped: {reason}")
    try:
        executable = require_chromium()
    except RuntimeError as exc:
        pytest.fail(str(exc), pytrace=False)
    proc = ChromiumProcess(executable).start()
    yield proc
    proc.stop()


@pytest.fixture(scope="session")
def static_pages() -> Iterator[StaticServer]:
    """`tests/e2e/pages/` served at `static_pages.url` (http://127.0.0.1:<port>)."""
    srv = StaticServer().start()
    yield srv
    srv.stop()


@pytest_asyncio.fixture
async def browser(chromium: ChromiumProcess) -> AsyncIterator[Browser]:
    """Playwright Browser on the session's Chromium, bound to this test's event loop."""
    async with async_playwright() as playwright:
        connected = await connect_browser(playwright, chromium)
        yield connected
        await connected.close()


@pytest_asyncio.fixture
async def page_factory(
    browser: Browser, static_pages: StaticServer, request: pytest.FixtureRequest
) -> AsyncIterator[PageFactory]:
    """`await page_factory("viewer.html", ws=..., stream=...)`: a page in a fresh context."""
    factory = PageFactory(browser, static_pages.url, name=request.node.name)
    yield factory
    await factory.close()
