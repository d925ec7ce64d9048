"""Letters are written in Markdown and rendered safely: no raw HTML, only web and mail links."""

from __future__ import annotations

import re
from functools import cache

from markdown_it import MarkdownIt
from markupsafe import Markup

_SCHEMES = ("http://", "https://", "mailto:")


def _safe_link(url: str) -> bool:
    return url.strip().lower().startswith(_SCHEMES)


@cache
def _parser() -> MarkdownIt:
    # CommonMark with tables and strikethrough; raw HTML is escaped, and images are
    # off so that a letter cannot make every reader's browser call another server.
    parser = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False})
    parser.enable(["table", "strikethrough"])
    parser.disable("image")
    parser.validateLink = _safe_link  # type: ignore[method-assign]
    return parser


def render_markdown(text: str) -> Markup:
    """The letter as HTML safe to put in a page: escaped HTML, http/https/mailto links only."""
    return Markup(_parser().render(text or ""))  # noqa: S704 - markdown-it escapes raw HTML


_BLANK_LINE = re.compile(r"\n[ \t]*\n")


def paragraphs(text: str) -> list[list[str]]:
    """Plain text as paragraphs (blank lines separate them), each a list of its lines."""
    text = (text or "").replace("\r\n", "\n").replace("\r", "\n").strip()
    return [
        [line.rstrip() for line in block.strip("\n").split("\n")]
        for block in _BLANK_LINE.split(text)
        if block.strip()
    ]
