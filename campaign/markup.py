"""Letters are written in Markdown and rendered safely: no raw HTML, only web and mail links.

Updates are plain text: escaped, with their web addresses made into links (linkify).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import cache
from typing import Any
from urllib.parse import urlsplit

from markdown_it import MarkdownIt
from markdown_it.rules_core import StateCore
from markdown_it.token import Token
from markdown_it.utils import OptionsDict
from markupsafe import Markup, escape

_SCHEMES = ("http://", "https://", "mailto:")


def _safe_link(url: str) -> bool:
    return url.strip().lower().startswith(_SCHEMES)


@cache
def _parser() -> MarkdownIt:
    # CommonMark with tables and strikethrough; raw HTML is escaped. An image is shown as a
    # link to it, named by its description, so that a letter cannot make every reader's
    # browser call another server (and "![map](url)" leaves no stray "!").
    parser = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False})
    parser.enable(["table", "strikethrough"])
    parser.validateLink = _safe_link  # type: ignore[method-assign]
    parser.add_render_rule("image", _image_as_link)
    parser.core.ruler.push("shift_headings", _shift_headings)
    return parser


def _shift_headings(state: StateCore) -> None:
    """A letter's headings one level down: its "#" is an <h2> under the page's title, the
    page's one <h1> (an "#####" and an "######" both <h6>)."""
    for token in state.tokens:
        if token.type in ("heading_open", "heading_close"):
            token.tag = f"h{min(int(token.tag[1:]) + 1, 6)}"


def _image_as_link(
    renderer: Any, tokens: Sequence[Token], idx: int, options: OptionsDict, env: Any
) -> str:
    token = tokens[idx]
    source = str(token.attrGet("src") or "")
    text = renderer.renderInlineAsText(token.children or [], options, env) or source
    return f'<a href="{escape(source)}">{escape(text)}</a>'


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


# A web address in plain text: http or https, then everything up to a space, a quote or an
# angle bracket (which no address written in a sentence contains unescaped).
_WEB_ADDRESS = re.compile(r"\bhttps?://[^\s<>\"]+", re.IGNORECASE)
# What ends a sentence or a clause after an address rather than belonging to it.
_TRAILING = ".,;:!?'*_"
_CLOSING = {")": "(", "]": "[", "}": "{"}


def _address_end(url: str) -> str:
    """The address without the sentence's punctuation after it.

    A closing bracket stays only when the address opened it ("/wiki/Foo_(bar)"); one
    that opened before the address, as in "(see https://x.org/a)", is the sentence's.
    """
    while url:
        last = url[-1]
        if last in _TRAILING or (last in _CLOSING and url.count(last) > url.count(_CLOSING[last])):
            url = url[:-1]
        else:
            break
    return url


def _is_web_address(url: str) -> bool:
    """Whether the text is an http(s) address with a host."""
    try:
        parts = urlsplit(url)
    except ValueError:  # e.g. "http://[oops/": an unbalanced IPv6 bracket
        return False
    return parts.scheme.lower() in ("http", "https") and bool(parts.hostname)


def linkify(text: str, style: str | None = None) -> Markup:
    """Plain text escaped, its http and https addresses made into links to themselves.

    No other scheme becomes a link; punctuation ending the sentence stays outside the link.
    `style`, for mail (whose clients know no style sheet), goes on each link as written.
    """
    attributes = Markup(' style="{}"').format(style) if style else Markup()
    pieces: list[Markup] = []
    done = 0
    for found in _WEB_ADDRESS.finditer(text or ""):
        url = _address_end(found.group(0))
        if not _is_web_address(url):
            continue
        start, end = found.start(), found.start() + len(url)
        pieces.append(escape(text[done:start]))
        pieces.append(Markup('<a href="{0}"{1}>{0}</a>').format(url, attributes))
        done = end
    pieces.append(escape((text or "")[done:]))
    return Markup("").join(pieces)


def breakable_address(address: str | None) -> Markup:
    """An email address, escaped, that a narrow column may wrap after its "@" rather than
    mid-word (a <wbr> there)."""
    local, at, domain = (address or "").rpartition("@")
    if not at:
        return escape(domain)
    return escape(local) + Markup("@<wbr>") + escape(domain)
