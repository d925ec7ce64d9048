"""Item 6: what a browser downloads to show a page, and from which hosts."""

from __future__ import annotations

import html.parser
import os
import urllib.parse
import urllib.request
from dataclasses import dataclass, field

CHROMIUM = os.environ.get("BENCH_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


@dataclass
class Fetched:
    """One request the page made."""

    url: str
    status: int
    size: int  # response headers + body as transferred
    kind: str


@dataclass
class PageWeight:
    """Every request of one page load."""

    how: str
    requests: list[Fetched] = field(default_factory=list)
    foreign: list[str] = field(default_factory=list)  # URLs on another host
    failed: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        """Bytes transferred, all requests."""
        return sum(r.size for r in self.requests)


def measure(url: str) -> PageWeight:
    """Load url in headless Chromium; without Chromium, fetch it and its assets with urllib."""
    if os.path.exists(CHROMIUM):
        try:
            return _chromium(url)
        except ImportError:
            pass
    return _urllib(url)


def _same_origin(url: str, base: str) -> bool:
    a, b = urllib.parse.urlsplit(url), urllib.parse.urlsplit(base)
    return (a.scheme, a.netloc) == (b.scheme, b.netloc) or a.scheme in ("data", "blob")


def _chromium(url: str) -> PageWeight:
    from playwright.sync_api import Request, sync_playwright

    weight = PageWeight("Chromium via Playwright")
    finished: list[Request] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        try:
            page = browser.new_page()
            page.on("requestfinished", lambda request: finished.append(request))
            page.on("requestfailed", lambda request: weight.failed.append(request.url))
            page.goto(url, wait_until="networkidle")
            for request in finished:
                sizes = request.sizes()
                response = request.response()
                size = max(sizes["responseBodySize"], 0) + max(sizes["responseHeadersSize"], 0)
                weight.requests.append(
                    Fetched(
                        request.url, response.status if response else 0, size, request.resource_type
                    )
                )
        finally:
            browser.close()
    weight.foreign = [r.url for r in weight.requests if not _same_origin(r.url, url)] + [
        u for u in weight.failed if not _same_origin(u, url)
    ]
    return weight


class _Links(html.parser.HTMLParser):
    """Every URL the page would load: stylesheets, scripts, images, icons."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[tuple[str, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "link" and values.get("href"):
            rel = (values.get("rel") or "").lower()
            if any(word in rel for word in ("stylesheet", "icon", "preload", "manifest")):
                self.urls.append((str(values["href"]), rel))
        elif tag in ("script", "img", "source", "iframe") and values.get("src"):
            self.urls.append((str(values["src"]), tag))


def _get(url: str) -> tuple[int, int, bytes]:
    with urllib.request.urlopen(url, timeout=10) as response:
        body = response.read()
        head = sum(len(k) + len(v) + 4 for k, v in response.getheaders()) + 17
        return response.status, head + len(body), body


def _urllib(url: str) -> PageWeight:
    weight = PageWeight("urllib fallback: Chromium not found; HTML and linked assets only")
    status, size, body = _get(url)
    weight.requests.append(Fetched(url, status, size, "document"))
    parser = _Links()
    parser.feed(body.decode("utf-8", errors="replace"))
    for link, kind in parser.urls:
        absolute = urllib.parse.urljoin(url, link)
        if not _same_origin(absolute, url):
            weight.foreign.append(absolute)
            continue
        try:
            status, size, _ = _get(absolute)
        except OSError:
            weight.failed.append(absolute)
            continue
        weight.requests.append(Fetched(absolute, status, size, kind))
    return weight
