"""A signer whose request could not be taken sees why at once and loses nothing typed:
a lost session cookie (CSRF), a letter closed while the form was filled."""

from __future__ import annotations

import datetime as dt
import html
import re
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from test_public import GOOD, SLUG, link, make_campaign, outbox, post_sign, signatures

from campaign.db import session_scope
from campaign.models import Campaign

STALE_SIGN = (
    "Your page had been open a long time, so we could not take your signature: "
    "please press the button again."
)
STALE_BUTTON = (
    "Your page had been open a long time, so nothing was done yet: please press the button again."
)
NO_COOKIE = (
    "Your browser did not send back this site's cookie: it may have been cleared, or cookies "
    "may be blocked for this site. Please press the button again; if this message comes "
    "back, allow cookies for this site."
)
NO_COOKIE_SIGN = f"We could not take your signature yet. {NO_COOKIE}"
NO_COOKIE_BUTTON = f"Nothing was done yet. {NO_COOKIE}"
TOKEN = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"')


@pytest.fixture
def csrf_app(app_factory: Any) -> Flask:
    """An app checking CSRF tokens, as in production, with an open letter."""
    app = app_factory(WTF_CSRF_ENABLED=True)
    make_campaign(app)
    return app


def token_of(page: str) -> str:
    found = TOKEN.search(page) or re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page)
    assert found is not None, page
    return found.group(1)


def alert_of(page: str) -> str:
    """The text of the page's focused alert (role=alert, tabindex=-1, #error-summary)."""
    found = re.search(
        r'<div class="error-summary" role="alert" tabindex="-1" id="error-summary">(.*?)</div>',
        page,
        re.S,
    )
    assert found is not None, page
    return html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", found.group(1))).strip())


# --------------------------------------------------------------------------- lost session


def test_a_lost_session_shows_the_form_again_with_what_was_typed(csrf_app: Flask) -> None:
    token = token_of(csrf_app.test_client().get(f"/c/{SLUG}").text)
    browser = csrf_app.test_client()  # the cookies cleared: restarted, private, overnight
    typed = {**GOOD, "name": "Maria <Santos>", "country": "BR", "csrf_token": token}
    refused = browser.post(f"/c/{SLUG}/sign", data=typed)
    assert refused.status_code == 400
    page = refused.text
    assert alert_of(page) == f"There is a problem {NO_COOKIE_SIGN}"
    # Inside the section headed "Sign the letter" (h2): a heading of the level below.
    assert re.search(r'id="error-summary">\s*<h3>There is a problem</h3>', page)
    assert "CSRF" not in page and "session token" not in page
    # What was typed, every field, and no field error (nothing was wrong with it).
    assert 'value="Maria &lt;Santos&gt;"' in page
    assert 'value="MP"' in page and 'value="House of Representatives"' in page
    assert 'value="Independent"' in page and 'value="maria.santos@example.org"' in page
    assert '<option data-continent="South America" selected value="BR">Brazil</option>' in page
    assert "\nFor justice.</textarea>" in page
    assert re.search(r'<input[^>]*checked[^>]*name="public"', page)
    assert 'class="error"' not in page
    assert page.index('id="error-summary"') < page.index('name="name"')
    assert signatures(csrf_app) == [] and outbox(csrf_app) == []
    # A fresh token and the session cookie it needs: pressing the button again signs.
    assert browser.get_cookie("session") is not None
    fresh = token_of(page)
    assert fresh != token
    accepted = browser.post(f"/c/{SLUG}/sign", data={**typed, "csrf_token": fresh})
    assert accepted.status_code == 303
    assert [s.name for s in signatures(csrf_app)] == ["Maria <Santos>"]


def test_going_back_to_the_old_page_and_resubmitting_works_once_the_page_came_back(
    csrf_app: Flask,
) -> None:
    old = token_of(csrf_app.test_client().get(f"/c/{SLUG}").text)
    browser = csrf_app.test_client()
    assert post_sign(browser, csrf_token=old).status_code == 400
    # The back button shows the page of before, with its old token: the session the
    # refused answer started now holds that one's secret, not the old page's.
    again = post_sign(browser, csrf_token=old)
    assert again.status_code == 400 and STALE_SIGN in again.text
    assert post_sign(browser, csrf_token=token_of(again.text)).status_code == 303
    assert len(signatures(csrf_app)) == 1


def test_the_lost_session_message_is_in_the_signers_language(csrf_app: Flask) -> None:
    refused = csrf_app.test_client().post(f"/c/{SLUG}/sign?lang=es", data=GOOD)
    assert refused.status_code == 400
    assert '<html lang="es"' in refused.text
    assert alert_of(refused.text).startswith("Hay un problema Aún no pudimos recoger su firma.")


ACTION = re.compile(r'<form method="post" action="([^"]+)"')


@pytest.mark.parametrize("chosen_by", ["query", "cookie"])
def test_a_chosen_language_survives_the_lost_cookies(csrf_app: Flask, chosen_by: str) -> None:
    reader = csrf_app.test_client()
    if chosen_by == "query":
        page = reader.get(f"/c/{SLUG}?lang=fr", headers={"Accept-Language": "en"}).text
    else:
        reader.set_cookie("lang", "fr")
        page = reader.get(f"/c/{SLUG}", headers={"Accept-Language": "en"}).text
    action = ACTION.search(page)
    assert action is not None
    assert action.group(1) == f"/c/{SLUG}/sign?lang=fr#error-summary"
    # Every cookie lost (the language's too) before the button was pressed.
    browser = csrf_app.test_client()
    english = {"Accept-Language": "en"}
    refused = browser.post(action.group(1), data=GOOD, headers=english)
    assert refused.status_code == 400
    assert '<html lang="fr"' in refused.text
    assert alert_of(refused.text).startswith("Il y a un problème")
    again = ACTION.search(refused.text)
    assert again is not None and again.group(1) == action.group(1)
    signed = browser.post(
        again.group(1), data={**GOOD, "csrf_token": token_of(refused.text)}, headers=english
    )
    assert signed.status_code == 303
    assert signed.location == f"/c/{SLUG}/thanks?lang=fr#thank-you"
    thanks = browser.get(signed.location, headers=english)
    assert '<html lang="fr"' in thanks.text


def test_a_language_nobody_chose_stays_out_of_the_forms_address(csrf_app: Flask) -> None:
    page = csrf_app.test_client().get(f"/c/{SLUG}", headers={"Accept-Language": "fr"}).text
    assert '<html lang="fr"' in page
    action = ACTION.search(page)
    assert action is not None and action.group(1) == f"/c/{SLUG}/sign#error-summary"


def test_a_lost_session_on_a_closed_letter_says_it_is_closed(csrf_app: Flask) -> None:
    with session_scope(csrf_app) as db:
        db.query(Campaign).update({"state": "closed"})
    refused = csrf_app.test_client().post(f"/c/{SLUG}/sign", data=GOOD)
    assert refused.status_code == 409
    assert "This letter is closed: it no longer takes signatures." in alert_of(refused.text)


@pytest.mark.parametrize("purpose", ["confirm", "withdraw"])
def test_a_lost_session_on_a_signers_link_page_shows_its_button_again(
    csrf_app: Flask, purpose: str
) -> None:
    signer = csrf_app.test_client()
    token = token_of(signer.get(f"/c/{SLUG}").text)
    assert post_sign(signer, csrf_token=token).status_code == 303
    [mail] = outbox(csrf_app)
    path = link(mail, purpose)
    page_token = token_of(csrf_app.test_client().get(path).text)
    browser = csrf_app.test_client()  # the mail app's browser, its cookie gone
    refused = browser.post(path, data={"csrf_token": page_token})
    assert refused.status_code == 400
    assert alert_of(refused.text) == f"There is a problem {NO_COOKIE_BUTTON}"
    assert "CSRF" not in refused.text
    assert "<title>Error: " in refused.text  # the title says it too, as the sign form's does
    assert '<script src="/static/site.js" defer>' in refused.text  # focuses the alert
    assert [s.status for s in signatures(csrf_app)] == ["pending"]
    done = browser.post(path, data={"csrf_token": token_of(refused.text)})
    assert done.status_code == 303
    assert [s.status for s in signatures(csrf_app)] == [
        "confirmed" if purpose == "confirm" else "withdrawn"
    ]


def test_a_link_page_kept_open_too_long_says_so_when_the_cookie_came_back(csrf_app: Flask) -> None:
    signer = csrf_app.test_client()
    assert post_sign(signer, csrf_token=token_of(signer.get(f"/c/{SLUG}").text)).status_code == 303
    path = link(outbox(csrf_app)[0], "confirm")
    browser = csrf_app.test_client()
    assert browser.get(path).status_code == 200  # its session cookie kept
    refused = browser.post(path, data={"csrf_token": "a token from long ago"})
    assert refused.status_code == 400
    assert alert_of(refused.text) == f"There is a problem {STALE_BUTTON}"
    assert [s.status for s in signatures(csrf_app)] == ["pending"]


def test_other_forms_refuse_a_lost_session_in_plain_words(csrf_app: Flask) -> None:
    refused = csrf_app.test_client().post(
        "/admin/login", data={"email": "a@example.org", "password": "x" * 12}
    )
    assert refused.status_code == 400
    assert "CSRF" not in refused.text and "session token" not in refused.text
    assert "This page had been open a long time, so nothing was done." in refused.text
    as_json = csrf_app.test_client().post(
        "/admin/login", data={"email": "a@example.org"}, headers={"Accept": "application/json"}
    )
    assert as_json.status_code == 400
    assert "CSRF" not in as_json.get_json()["message"]


# --------------------------------------------------------------------------- closed meanwhile


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"state": "closed"}, "This letter is closed: it no longer takes signatures."),
        (
            {"closes_at": dt.datetime(2000, 1, 1, tzinfo=dt.UTC)},
            "This letter is closed: it no longer takes signatures.",
        ),
    ],
)
@pytest.mark.parametrize("typed", [GOOD, {**GOOD, "email": "not an address"}])
def test_a_letter_closed_while_the_form_was_filled_says_so_first(
    app: Flask,
    client: FlaskClient,
    change: dict[str, Any],
    message: str,
    typed: dict[str, str],
) -> None:
    make_campaign(app)
    assert 'name="email"' in client.get(f"/c/{SLUG}").text
    with session_scope(app) as db:
        db.query(Campaign).update(change)
    refused = client.post(f"/c/{SLUG}/sign", data=typed)
    assert refused.status_code == 409
    page = refused.text
    assert alert_of(page) == f"We could not take your signature {message}"
    # At the top, before the letter; the sign form's action (#error-summary) leads there
    # and site.js focuses it.
    assert page.index('id="error-summary"') < page.index("<h1>")
    assert '<script src="/static/site.js" defer>' in page
    assert page.count(message) == 1
    assert page.startswith("<!doctype html>") and "<title>Error: " in page
    assert signatures(app) == []


def test_a_closed_letters_page_keeps_its_notice_below_and_no_alert(
    app: Flask, client: FlaskClient
) -> None:
    make_campaign(app, state="closed")
    page = client.get(f"/c/{SLUG}").text
    assert 'id="error-summary"' not in page
    assert '<p class="notice" role="status">This letter is closed' in page
