"""The browser-test harness: a real ``descent serve`` (the embedded default, as a newcomer runs
it) and the operating system's Chromium driven by Playwright (never a downloaded browser).

Fixtures: ``server`` (session; base URL, the serve key, data dir, log), ``other_key`` (session;
a key of a second tenant in the same database), ``browser`` (session), ``page`` (per test: a
fresh context, 1280x800; a full-page screenshot ``<test name>.png`` is saved on teardown),
``page_urls`` (every URL the page requested or navigated to) and ``console_errors`` (console
errors and uncaught exceptions). ``shot(page, name)`` saves a named screenshot mid-test.
Screenshots go to ``$DESCENT_UI_ARTIFACTS`` or ``<repo>/.artifacts/ui``.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Browser, ConsoleMessage, Frame, Page, Request, sync_playwright
from playwright.sync_api import Error as PlaywrightError

from descent.processes import clean_env
from tests.e2e.client_flow import descent_command
from tests.e2e.helpers import free_port, process, wait_for, wait_healthy

REPO = Path(__file__).resolve().parents[2]
OTHER_TENANT = "ui-other"  # `descent serve`'s own key belongs to the tenant "default"
_HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test under tests/ui carries the ``ui`` marker (``-m ui`` / ``-m "not ui"``)."""
    for item in items:
        if item.path.is_relative_to(_HERE):
            item.add_marker(pytest.mark.ui)


@dataclass(frozen=True)
class Server:
    base: str
    key: str
    data_dir: Path
    log: Path


def artifacts_dir() -> Path:
    path = Path(os.environ.get("DESCENT_UI_ARTIFACTS") or REPO / ".artifacts" / "ui")
    path.mkdir(parents=True, exist_ok=True)
    return path


def shot(page: Page, name: str) -> Path:
    """A full-page screenshot ``<name>.png`` in the artifacts dir; returns its path."""
    safe = re.sub(r"[^\w.\-\[\]]+", "_", name)  # a parametrized id may hold "/" or spaces
    path = artifacts_dir() / f"{safe}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def _env() -> dict[str, str]:
    """The caller's environment without any ``DESCENT_*`` setting, as a newcomer has it."""
    return clean_env(DESCENT_RECONCILE_EVERY_SECONDS="2")


def _key_from(log: Path) -> str:
    match = re.search(r"^API key: (\S+)$", log.read_text(), re.MULTILINE)
    return match.group(1) if match else ""


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """``descent serve --port P --data-dir D`` (API + worker on SQLite), up until the session
    ends; its key is read from the ``API key: ...`` line it prints."""
    tmp = tmp_path_factory.mktemp("ui-serve")
    port = free_port()
    data_dir = tmp / "descent-data"
    log = tmp / "serve.log"
    base = f"http://127.0.0.1:{port}"
    argv = [*descent_command(), "serve", "--port", str(port), "--data-dir", str(data_dir)]
    with process(argv, env=_env(), log=log, cwd=tmp) as serve:
        key = wait_for(lambda: _key_from(log), timeout=30, what="the API key line")
        wait_healthy(base, serve, log)
        yield Server(base=base, key=key, data_dir=data_dir, log=log)


@pytest.fixture(scope="session")
def other_key(server: Server) -> str:
    """A key of a second tenant (``ui-other``, created on the fly) in the server's database:
    ``descent keys create`` pointed at the same data dir (its SQLite file is the default)."""
    env = _env()
    env["DESCENT_DATA_DIR"] = str(server.data_dir)
    argv = [*descent_command(), "keys", "create", "--tenant", OTHER_TENANT, "--name", "tests/ui"]
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    key = re.search(r"^API key: (\S+)$", done.stdout, re.MULTILINE)
    assert key, done.stdout
    return key.group(1)


@pytest.fixture(scope="session", autouse=True)
def chromium() -> str:
    """The OS's Chromium; resolved first (autouse), so a missing one skips before the server
    starts (and fails in CI, where it must be installed: see .ci/run)."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found:
        return found
    message = "no Chromium: apt-get install chromium (tests/ui drive the OS's Chromium)"
    if os.environ.get("CI"):
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="session")
def browser(chromium: str) -> Iterator[Browser]:
    with sync_playwright() as playwright:
        # Playwright's default (chromium_sandbox=False) already passes --no-sandbox, which
        # Chromium needs when run as root (containers, CI); Debian's launcher adds its flags.
        browser = playwright.chromium.launch(
            executable_path=chromium, headless=True, chromium_sandbox=False
        )
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def page_urls() -> list[str]:
    """Every URL the test's page requested or navigated to, in order (filled by ``page``)."""
    return []


@pytest.fixture
def console_errors() -> list[str]:
    """Console errors and uncaught exceptions of the test's page (filled by ``page``)."""
    return []


@pytest.fixture
def page(
    browser: Browser,
    request: pytest.FixtureRequest,
    page_urls: list[str],
    console_errors: list[str],
) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    try:
        page = context.new_page()

        def on_request(req: Request) -> None:
            page_urls.append(req.url)

        def on_navigated(frame: Frame) -> None:
            page_urls.append(frame.url)

        def on_console(message: ConsoleMessage) -> None:
            # Chromium fetches /favicon.ico on its own (not the page's doing, not in page_urls);
            # the JSON routes have none, so its 404 is not an error of the page.
            automatic_favicon = message.location.get("url") == origin(page.url) + "/favicon.ico"
            if message.type == "error" and not automatic_favicon:
                console_errors.append(f"console: {message.text} ({message.location})")

        def on_page_error(error: PlaywrightError) -> None:
            console_errors.append(f"pageerror: {error.message}")

        page.on("request", on_request)
        page.on("framenavigated", on_navigated)
        page.on("console", on_console)
        page.on("pageerror", on_page_error)
        yield page
        try:
            shot(page, request.node.name)
        except PlaywrightError as exc:  # a crashed page must not hide the test's own result
            warnings.warn(f"no screenshot for {request.node.name}: {exc}", stacklevel=1)
    finally:
        context.close()
