"""Addresses people type or paste slightly differently still reach the page they meant."""

from __future__ import annotations

import re

import pytest
from flask import Flask
from flask.testing import FlaskClient
from test_public import SLUG, make_campaign


def html_lang(page: str) -> str:
    found = re.search(r'<html lang="([^"]+)"', page)
    assert found is not None
    return found.group(1)


@pytest.mark.parametrize(
    ("asked", "language"),
    [("FR", "fr"), ("fr-FR", "fr"), ("es_ES", "es"), ("ID", "id"), (" en-us ", "en")],
)
def test_a_language_in_another_spelling_is_understood_and_remembered(
    app: Flask, client: FlaskClient, asked: str, language: str
) -> None:
    make_campaign(app)
    page = client.get(f"/c/{SLUG}", query_string={"lang": asked}, headers={"Accept-Language": "de"})
    assert page.status_code == 200
    assert html_lang(page.text) == language
    cookie = client.get_cookie("lang")
    assert cookie is not None and cookie.value == language
    assert html_lang(client.get(f"/c/{SLUG}").text) == language


@pytest.mark.parametrize("asked", ["xx", "f", "frx", "x" * 500, "", "français"])
def test_an_unknown_language_falls_back_to_the_browsers(
    app: Flask, client: FlaskClient, asked: str
) -> None:
    make_campaign(app)
    page = client.get(f"/c/{SLUG}", query_string={"lang": asked}, headers={"Accept-Language": "es"})
    assert page.status_code == 200
    assert html_lang(page.text) == "es"
    assert client.get_cookie("lang") is None


@pytest.mark.parametrize(
    ("typed", "meant"),
    [
        ("/c/Free-Amara", f"/c/{SLUG}"),
        ("/c/FREE-AMARA/tally", f"/c/{SLUG}/tally"),
        (f"/c/{SLUG}/", f"/c/{SLUG}"),
        (f"/c/{SLUG}//", f"/c/{SLUG}"),
        ("/c/Free-Amara/signatories/?country=FR", f"/c/{SLUG}/signatories?country=FR"),
        (f"/c/{SLUG}/tally.json/", f"/c/{SLUG}/tally.json"),
    ],
)
def test_a_letters_address_typed_differently_leads_to_it(
    app: Flask, client: FlaskClient, typed: str, meant: str
) -> None:
    make_campaign(app)
    answer = client.get(typed)
    assert (answer.status_code, answer.headers.get("Location")) == (302, meant)
    assert client.get(meant).status_code == 200


@pytest.mark.parametrize("typed", ["/c/Nope", "/c/nope/", "/c/Secret/", "/c/SECRET/tally"])
def test_no_redirect_to_a_letter_that_is_not_there_or_not_public(
    app: Flask, client: FlaskClient, typed: str
) -> None:
    make_campaign(app, "secret", state="draft")
    assert client.get(typed).status_code == 404


def test_a_post_is_not_redirected(app: Flask, client: FlaskClient) -> None:
    make_campaign(app)
    assert client.post("/c/Free-Amara/sign", data={}).status_code == 404
