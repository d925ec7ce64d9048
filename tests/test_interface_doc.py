"""docs/interface.md lists every route and every command the app has (DESIGN.md is not ours)."""

from __future__ import annotations

import re
from pathlib import Path

from flask import Flask

DOC = Path(__file__).resolve().parent.parent / "docs" / "interface.md"
# Commands that Flask and Flask-Limiter bring, named on the page in a sentence of their own.
BORROWED = {"run", "shell", "routes", "limiter"}


def _doc() -> str:
    return DOC.read_text(encoding="utf-8")


def _rule_text(rule: str) -> str:
    """A rule as the page writes it: converters other than int shown bare (<slug>, <token>)."""
    return re.sub(r"<(?!int:)[a-z]+:([a-z_]+)>", r"<\1>", rule)


def test_every_route_is_on_the_interface_page(app: Flask) -> None:
    doc = _doc()
    missing = [
        f"{method} {_rule_text(rule.rule)}"
        for rule in app.url_map.iter_rules()
        if rule.endpoint != "static"
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"})
        if f"`{method} {_rule_text(rule.rule)}`" not in doc
        and not (method == "POST" and f"`GET {_rule_text(rule.rule)}`, `POST` the same" in doc)
    ]
    assert missing == [], f"docs/interface.md does not list: {missing}"


def test_every_command_is_on_the_interface_page(app: Flask) -> None:
    doc = _doc()
    commands = set(app.cli.list_commands(app.app_context()))  # type: ignore[arg-type]
    missing = [
        name
        for name in sorted(commands - BORROWED)
        if not re.search(rf"^campaign {re.escape(name)}\b", doc, re.MULTILINE)
    ]
    assert missing == [], f"docs/interface.md does not list: {missing}"
    for name in BORROWED:
        assert f"`campaign {name}`" in doc


def test_the_interface_page_lists_no_route_that_is_gone(app: Flask) -> None:
    routes = {
        f"{method} {_rule_text(rule.rule)}"
        for rule in app.url_map.iter_rules()
        for method in (rule.methods or set())
    }
    listed = re.findall(r"`((?:GET|POST) /[^`]*)`", _doc())
    assert [route for route in listed if route not in routes] == []
