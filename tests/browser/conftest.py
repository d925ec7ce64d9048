"""Browser tests: the app served on a free port, driven by Debian's Chromium through Playwright.

Every test in this folder is marked ``browser`` and skipped, with the reason, when
Chromium (or Playwright) is missing. axe-core comes from node_modules (``npm ci``).
Screenshots go to test-artifacts/screenshots/ (git-ignored).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest

from campaign import auth, campaigns, create_app, signing
from campaign import db as dbmod

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
ROOT = Path(__file__).resolve().parents[2]
AXE = ROOT / "node_modules" / "axe-core" / "axe.min.js"
SCREENSHOTS = ROOT / "test-artifacts" / "screenshots"
HERE = Path(__file__).resolve().parent

# A letter with signers on four continents, one of them too small for the map's shapes.
DEMO_SLUG = "release-the-prisoners"
DEMO_TITLE = "Release the prisoners of conscience"
DEMO_SIGNERS = [
    ("Ana Lima", "BR"),
    ("Jean Dupont", "FR"),
    ("Marie Curie", "FR"),
    ("Hans Weber", "DE"),
    ("Siti Aminah", "ID"),
    ("Tan Wei Ming", "SG"),
    ("Kofi Mensah", "GH"),
]
# An organizer of the demo letter, for the dashboard's pages.
ORGANIZER_EMAIL = "organizer@example.org"
ORGANIZER_PASSWORD = "correct horse battery staple 42"


def _missing() -> str | None:
    """Why browser tests cannot run here, or None."""
    if not os.path.exists(CHROMIUM):
        return "Chromium not installed: apt-get install chromium"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "Playwright not installed: .venv/bin/pip install -e '.[test]'"
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark this folder's tests `browser`; skip them all, saying why, without Chromium."""
    reason = _missing()
    for item in items:
        if HERE in Path(str(item.path)).resolve().parents:
            item.add_marker(pytest.mark.browser)
            if reason:
                item.add_marker(pytest.mark.skip(reason=reason))


@dataclass(frozen=True)
class LiveServer:
    """The app serving on 127.0.0.1, and the demo letter in it."""

    url: str
    slug: str
    title: str
    app: Any = None
    # The demo letter's organizer (an admin), for logging in through the dashboard's form.
    login: tuple[str, str] = (ORGANIZER_EMAIL, ORGANIZER_PASSWORD)

    def __call__(self, path: str) -> str:
        """The absolute URL of a path on this server."""
        return self.url + path

    def log_in(self, page: Any) -> None:
        """Log the page in as the demo letter's organizer, through the dashboard's form."""
        page.goto(self("/admin/login"))
        email, password = self.login
        page.get_by_label("Email").fill(email)
        page.get_by_label("Password").fill(password)
        with page.expect_navigation():
            page.get_by_role("button", name="Log in").click()


def _seed(app: Any) -> None:
    """The demo letter, open, with its counted signers, made through the services."""
    with dbmod.session_scope(app) as session:
        letter = campaigns.create_campaign(
            session,
            slug=DEMO_SLUG,
            title=DEMO_TITLE,
            letter="Dear Minister,\n\nWe, members of parliament, ask you to release them.",
            recipient="The Minister of Justice",
            state="open",
        )
        for index, (name, country) in enumerate(DEMO_SIGNERS):
            entry = signing.SignatureEntry(
                name=name,
                title="MP",
                parliament="National Assembly",
                party="",
                country_code=country,
                email=f"signer{index}@example.org",
                public=True,
            )
            signing.sign(session, campaign=letter, entry=entry, confirmed=True)
        organizer = auth.create_organizer(
            session, ORGANIZER_EMAIL, ORGANIZER_PASSWORD, name="Olga Organizer", is_admin=True
        )
        auth.add_to_campaign(session, organizer, letter)


def _closing_when_done(app: Any) -> Any:
    """The app, its responses closed as soon as they are sent.

    werkzeug's development server closes a response after draining the request socket;
    when the browser has already dropped the connection (a cancelled favicon fetch) that
    read raises first, the close is skipped, and the static file's handle is left for the
    garbage collector: a ResourceWarning that fails whichever test happens to run then.
    """

    def wrapped(environ: Any, start_response: Any) -> Iterator[bytes]:
        inner = app(environ, start_response)

        def body() -> Iterator[bytes]:
            try:
                yield from inner
            finally:
                close = getattr(inner, "close", None)
                if close is not None:
                    close()

        return body()

    return wrapped


@pytest.fixture(scope="session")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """The app on a fresh SQLite database, served by werkzeug in a background thread."""
    from werkzeug.serving import make_server

    folder = tmp_path_factory.mktemp("browser")
    url = f"sqlite:///{folder}/browser.sqlite3"
    dbmod.upgrade(url)
    previous = os.environ.get("CAMPAIGN_INSTANCE_PATH")
    os.environ["CAMPAIGN_INSTANCE_PATH"] = str(folder / "instance")
    app = create_app(
        {
            "TESTING": True,
            "SECRET_KEY": "browser-test-secret-key-not-for-production",
            "DATABASE_URL": url,
            "RATELIMIT_ENABLED": False,
            "MAIL_SENDER": False,
            # The page script re-reads the count every second, so a test sees it change soon.
            "LIVE_REFRESH_SECONDS": 1,
        }
    )
    _seed(app)
    server = make_server("127.0.0.1", 0, _closing_when_done(app), threaded=True)
    base = f"http://127.0.0.1:{server.server_port}"
    app.config["BASE_URL"] = base
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield LiveServer(base, DEMO_SLUG, DEMO_TITLE, app)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
        app.extensions["engine"].dispose()
        if previous is None:
            os.environ.pop("CAMPAIGN_INSTANCE_PATH", None)
        else:
            os.environ["CAMPAIGN_INSTANCE_PATH"] = previous


class _AllyHandler(BaseHTTPRequestHandler):
    """Serves the pages an ally's site would have (set by the tests), nothing else."""

    pages: ClassVar[dict[str, str]] = {}

    def do_GET(self) -> None:
        body = self.pages.get(self.path)
        if body is None:
            self.send_error(404)
            return
        data = body.encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the test output is for the app's log."""


@pytest.fixture(scope="session")
def ally_site() -> Iterator[Callable[[str], str]]:
    """Another site (another origin on loopback, as Chromium lets a local page frame a local
    one); ally_site(body) publishes a page holding body and returns its URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _AllyHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()

    def publish(body: str) -> str:
        path = f"/page{len(_AllyHandler.pages)}"
        _AllyHandler.pages[path] = (
            f"<!doctype html><html lang='en'><title>Ally</title><body>{body}</body></html>"
        )
        return f"http://127.0.0.1:{server.server_port}{path}"

    yield publish
    server.shutdown()
    server.server_close()
    thread.join(timeout=10)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Debian's Chromium, headless, driven by Playwright.

    Module-scoped: Playwright's sync API keeps an asyncio loop running on the main
    thread while it is open, which would make asyncio.run() fail in later test files.
    """
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A phone-sized page in a fresh context that lets axe be injected despite the CSP."""
    context = browser.new_context(viewport={"width": 360, "height": 780}, bypass_csp=True)
    page = context.new_page()
    yield page
    context.close()


@pytest.fixture
def strict_page(browser: Any) -> Iterator[Any]:
    """A page whose context enforces every CSP, for checks of the site's own headers."""
    context = browser.new_context(viewport={"width": 800, "height": 600})
    page = context.new_page()
    yield page
    context.close()


@pytest.fixture
def screenshot(request: pytest.FixtureRequest) -> Callable[..., Path]:
    """Save a screenshot as test-artifacts/screenshots/<test>-<name>.png; returns the path."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    test = re.sub(r"[^A-Za-z0-9_.-]+", "-", request.node.name).strip("-")

    def take(page: Any, name: str, *, full_page: bool = True) -> Path:
        path = SCREENSHOTS / f"{test}-{name}.png"
        page.screenshot(path=str(path), full_page=full_page)
        return path

    return take


@pytest.fixture(scope="session")
def axe_source() -> str:
    """axe-core's script from node_modules; the tests skip, saying why, until `npm ci` ran."""
    if not AXE.exists():
        npm = shutil.which("npm") or "npm (Node.js)"
        pytest.skip(f"axe-core not installed: run `{os.path.basename(npm)} ci` in {ROOT}")
    return AXE.read_text(encoding="utf-8")


@pytest.fixture
def axe(axe_source: str) -> Callable[[Any], list[str]]:
    """Run axe-core's default rules on a page; returns its violations, one line each."""

    def run(page: Any) -> list[str]:
        page.add_script_tag(content=axe_source)
        result: dict[str, Any] = page.evaluate(
            "async () => await axe.run(document, {resultTypes: ['violations']})"
        )
        return [
            f"{v['id']} ({v['impact']}): {v['help']} at "
            + json.dumps([node["target"] for node in v["nodes"]][:5], ensure_ascii=False)
            for v in result["violations"]
        ]

    return run
