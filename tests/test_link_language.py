"""The pages a signer's mailed links open speak the language they signed in, in any browser."""

from __future__ import annotations

import re

import pytest
from flask import Flask
from flask.testing import FlaskClient
from test_public import GOOD, SLUG, make_campaign, signatures

from campaign import signing

HEADINGS = {
    "confirm": {"en": "Confirm your signature", "es": "Confirme su firma", "fr": "Confirmez"},
    "withdraw": {"en": "Withdraw your signature", "es": "Retirar su firma", "fr": "Retirer"},
    "stop_updates": {
        "en": "Stop the updates about this letter",
        "es": "Dejar de recibir",
        "fr": "Ne plus recevoir",
    },
}
PATHS = {"confirm": "confirm", "withdraw": "withdraw", "stop_updates": "updates/stop"}


def heading(page: str) -> str:
    found = re.search(r"<h1[^>]*>([^<]*)</h1>", page)
    assert found is not None, page
    return found.group(1)


def html_lang(page: str) -> str:
    found = re.search(r'<html lang="([^"]+)"', page)
    assert found is not None
    return found.group(1)


@pytest.fixture
def spanish_link(app: Flask, client: FlaskClient) -> dict[str, str]:
    """Maria signed in Spanish: the path of each of her links."""
    make_campaign(app)
    assert client.post(f"/c/{SLUG}/sign?lang=es", data=GOOD).status_code == 303
    [signature] = signatures(app)
    assert signature.locale == "es"
    secret = str(app.config["SECRET_KEY"])
    return {
        purpose: f"/c/{SLUG}/{path}/{signing.make_token(secret, signature.id, purpose)}"
        for purpose, path in PATHS.items()
    }


@pytest.mark.parametrize("purpose", list(PATHS))
def test_a_link_opened_in_a_fresh_browser_is_in_the_signers_language(
    app: Flask, spanish_link: dict[str, str], purpose: str
) -> None:
    fresh = app.test_client()  # another device: no cookie, an English browser
    page = fresh.get(spanish_link[purpose], headers={"Accept-Language": "en-GB,en;q=0.9"}).text
    assert html_lang(page) == "es"
    assert heading(page).startswith(HEADINGS[purpose]["es"])


def test_the_page_after_pressing_the_button_stays_in_the_signers_language(
    app: Flask, spanish_link: dict[str, str]
) -> None:
    fresh = app.test_client()
    done = fresh.post(spanish_link["confirm"], follow_redirects=True)
    assert html_lang(done.text) == "es"
    assert "Gracias" in heading(done.text)


@pytest.mark.parametrize("purpose", list(PATHS))
def test_a_visitors_own_choice_wins(app: Flask, spanish_link: dict[str, str], purpose: str) -> None:
    fresh = app.test_client()
    chosen = fresh.get(f"{spanish_link[purpose]}?lang=fr").text
    assert html_lang(chosen) == "fr"
    assert heading(chosen).startswith(HEADINGS[purpose]["fr"])
    # The choice is remembered (the cookie): the same link without ?lang= stays in French.
    again = fresh.get(spanish_link[purpose]).text
    assert html_lang(again) == "fr"
    english = app.test_client()
    english.set_cookie("lang", "en")
    kept = english.get(spanish_link[purpose]).text
    assert html_lang(kept) == "en" and heading(kept).startswith(HEADINGS[purpose]["en"])


def test_an_english_signers_link_is_english_in_a_french_browser(
    app: Flask, client: FlaskClient
) -> None:
    make_campaign(app)
    assert client.post(f"/c/{SLUG}/sign", data=GOOD).status_code == 303
    [signature] = signatures(app)
    token = signing.make_token(str(app.config["SECRET_KEY"]), signature.id, "confirm")
    page = app.test_client().get(
        f"/c/{SLUG}/confirm/{token}", headers={"Accept-Language": "fr-FR,fr;q=0.9"}
    )
    # Signed in English (the browser's then), so the page is English whatever this one says.
    assert html_lang(page.text) == signature.locale == "en"
