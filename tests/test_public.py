"""The public pages through HTTP: the letter, signing, every bad input, confirm, tally."""

from __future__ import annotations

import datetime as dt
import itertools
import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from babel.dates import format_date
from flask import Flask
from flask.testing import FlaskClient
from markupsafe import escape
from sqlalchemy import create_engine, func, select, update

from campaign import campaigns, signing, tally
from campaign.db import session_scope, utcnow
from campaign.mail import compose
from campaign.models import Campaign, LetterTranslation, OutboxMessage, Signature

SLUG = "free-amara"
LETTER = "# Dear President\n\nWe ask you to **release** her.\n\n<script>alert(1)</script>\n"

GOOD: dict[str, str] = {
    "name": "Maria Santos",
    "title": "MP",
    "parliament": "House of Representatives",
    "party": "Independent",
    "country": "PH",
    "email": "maria.santos@example.org",
    "comment": "For justice.",
    "public": "y",
}


def make_campaign(app: Flask, slug: str = SLUG, **values: Any) -> int:
    """Create a campaign (open, requiring confirmation unless told) and return its id."""
    settings: dict[str, Any] = {
        "title": "Release Amara",
        "letter": LETTER,
        "recipient": "The President of Veldoria",
        "state": "open",
    }
    settings.update(values)
    with app.app_context(), session_scope(app) as db:
        return campaigns.create_campaign(db, slug=slug, **settings).id


@pytest.fixture
def campaign_id(app: Flask) -> int:
    """An open campaign requiring confirmation."""
    return make_campaign(app)


def signatures(app: Flask) -> list[Signature]:
    """Every stored signature, oldest first."""
    with session_scope(app) as db:
        return list(db.scalars(select(Signature).order_by(Signature.id)))


@dataclass(frozen=True)
class QueuedMail:
    """A queued mail: its row's recipient and signature, its text as the sender composes it."""

    to_addr: str
    signature_id: int | None
    body_text: str
    kind: str | None = None


def outbox(app: Flask) -> list[QueuedMail]:
    """Every queued mail, oldest first."""
    with app.app_context(), session_scope(app) as db:
        rows = db.scalars(select(OutboxMessage).order_by(OutboxMessage.id))
        return [QueuedMail(r.to_addr, r.signature_id, compose(db, r).text, r.kind) for r in rows]


def total(app: Flask, slug: str = SLUG) -> int:
    """Counted signatures of a campaign, as the tally shows them."""
    with session_scope(app) as db:
        found = campaigns.get_by_slug(db, slug)
        assert found is not None
        return tally.total(db, found)


def post_sign(client: FlaskClient, slug: str = SLUG, **changes: str) -> Any:
    """Submit the sign form with good values, some changed."""
    return client.post(f"/c/{slug}/sign", data={**GOOD, **changes})


def link(message: QueuedMail, purpose: str) -> str:
    """The path of the confirm or withdraw link in a mail."""
    found = re.search(rf"http://campaign\.test(/c/\S+/{purpose}/\S+)", message.body_text)
    assert found is not None, message.body_text
    return found.group(1)


# --------------------------------------------------------------------------- the letter


def test_letter_page_shows_letter_recipient_count_and_form(
    client: FlaskClient, campaign_id: int
) -> None:
    page = client.get(f"/c/{SLUG}")
    html = page.text
    assert page.status_code == 200
    assert "<h1>Release Amara</h1>" in html
    assert "<strong>release</strong>" in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "The President of Veldoria" in html
    assert "No signatures yet." in html
    for name in ("name", "title", "parliament", "party", "country", "email"):
        assert f'name="{name}"' in html
    assert 'name="comment"' in html and 'name="public"' in html and 'name="website"' in html
    assert '<datalist id="title-suggestions">' in html and '<option value="Senator">' in html
    assert '<option data-continent="Asia" value="PH">Philippines</option>' in html
    assert '<option value="">Choose a country</option>' in html


def test_letter_page_has_no_inline_script(client: FlaskClient, campaign_id: int) -> None:
    html = client.get(f"/c/{SLUG}").text
    scripts = re.findall(r"<script[^>]*>", html)
    assert scripts == [
        '<script src="/static/sign.js" defer>',
        '<script src="/static/site.js" defer>',
    ]
    assert " style=" not in html and "onclick" not in html


def test_the_count_on_the_letter_page_is_pluralised(app: Flask, client: FlaskClient) -> None:
    make_campaign(app, require_confirmation=False)
    post_sign(client)
    assert "1 signature from 1 country on 1 continent" in client.get(f"/c/{SLUG}").text
    post_sign(client, name="Ana Reyes", email="ana@example.org", country="BR")
    assert "2 signatures from 2 countries on 2 continents" in client.get(f"/c/{SLUG}").text


def test_unknown_campaign_is_a_404_page(client: FlaskClient) -> None:
    for path in ("/c/nope", "/c/nope/tally", "/c/nope/tally.json", "/c/nope/signatories"):
        assert client.get(path).status_code == 404
    assert client.post("/c/nope/sign", data=GOOD).status_code == 404
    assert "not found" in client.get("/c/nope").text.lower()


def test_index_lists_open_letters_only(app: Flask, client: FlaskClient) -> None:
    make_campaign(app, "open-one", title="The open one")
    make_campaign(app, "draft-one", title="The draft one", state="draft")
    make_campaign(app, "closed-one", title="The closed one", state="closed")
    html = client.get("/").text
    assert "The open one" in html and 'href="/c/open-one"' in html
    assert "The draft one" not in html and "The closed one" not in html


def test_index_shows_each_open_letter_with_its_own_count(app: Flask, client: FlaskClient) -> None:
    first = make_campaign(app, "first", title="The first letter")
    make_campaign(app, "second", title="The second letter")
    third = make_campaign(app, "third", title="The third letter")
    with session_scope(app) as db:
        tally.bump(db, first, "FR", 3)
        tally.bump(db, first, "KE", 1)
        tally.bump(db, third, "JP", 1)
    html = re.sub(r"\s+", " ", client.get("/").text)
    assert 'The first letter</a> <span class="muted">4 signatures</span>' in html
    assert 'The second letter</a> <span class="muted">0 signatures</span>' in html
    assert 'The third letter</a> <span class="muted">1 signature</span>' in html


def test_letter_is_shown_in_the_readers_language(app: Flask, client: FlaskClient) -> None:
    campaign_id = make_campaign(app)
    with session_scope(app) as db:
        db.add(
            LetterTranslation(
                campaign_id=campaign_id, locale="fr", title="Libérez Amara", letter="*Cher*"
            )
        )
    french = client.get(f"/c/{SLUG}?lang=fr").text
    assert "Libérez Amara" in french and "<em>Cher</em>" in french
    assert '<option data-continent="Europe" value="DE">Allemagne</option>' in french
    assert "Release Amara" in client.get(f"/c/{SLUG}?lang=en").text


@pytest.mark.parametrize(
    ("values", "message"),
    [
        # A draft's page is a 404 but to its organizers: tests/test_public_draft.py.
        ({"state": "closed"}, "This letter is closed: it no longer takes signatures."),
        (
            {"opens_at": utcnow() + dt.timedelta(days=1)},
            "This letter opens for signing on ",
        ),
        (
            {"closes_at": utcnow() - dt.timedelta(days=1)},
            "This letter is closed: it no longer takes signatures.",
        ),
    ],
)
def test_a_campaign_not_taking_signatures_shows_why_and_stores_nothing(
    app: Flask, client: FlaskClient, values: dict[str, Any], message: str
) -> None:
    make_campaign(app, **values)
    page = client.get(f"/c/{SLUG}")
    assert page.status_code == 200
    assert message in page.text
    assert 'name="email"' not in page.text
    refused = post_sign(client)
    assert refused.status_code == 409
    assert message in refused.text
    assert signatures(app) == [] and outbox(app) == []


OPENS = dt.datetime(2030, 3, 5, 9, 30, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    ("language", "message"),
    [
        ("en", "This letter opens for signing on March 5, 2030 at 9:30\u202fAM (UTC)."),
        ("fr", "Cette lettre sera ouverte aux signatures le 5 mars 2030 à 09:30 (UTC)."),
    ],
)
def test_a_letter_not_yet_open_says_when_it_opens_at_the_top(
    app: Flask, client: FlaskClient, language: str, message: str
) -> None:
    """A signer on a phone learns at once that they cannot sign yet, and when they can:
    before the letter's text, not only where the form would be, under it."""
    make_campaign(app, opens_at=OPENS)
    page = client.get(f"/c/{SLUG}?lang={language}").text
    top = page.index(f'<p class="notice" role="status">{message}</p>')
    assert top < page.index('<div class="letter"')
    below = page.index(f'<p class="notice">{message}</p>')  # where the form would be
    assert below > page.index("</article>")
    refused = client.post(f"/c/{SLUG}/sign?lang={language}", data=GOOD)
    assert refused.status_code == 409
    assert message in refused.text


def test_a_closed_letter_says_so_before_its_text(app: Flask, client: FlaskClient) -> None:
    make_campaign(app, state="closed")
    page = client.get(f"/c/{SLUG}").text
    message = "This letter is closed: it no longer takes signatures."
    assert page.index(message) < page.index('<div class="letter"')
    assert 'class="jump"' not in page


# --------------------------------------------------------------------------- signing


def test_signing_stores_a_pending_signature_and_queues_the_confirmation(
    app: Flask, client: FlaskClient, campaign_id: int
) -> None:
    response = client.post(
        f"/c/{SLUG}/sign?lang=fr",
        data={**GOOD, "email": "Maria.Santos@EXAMPLE.org"},
        environ_base={"REMOTE_ADDR": "203.0.113.7"},
    )
    assert response.status_code == 303
    # The language chosen for the form goes on to the thanks page, cookie or not.
    assert response.headers["Location"] == f"/c/{SLUG}/thanks?lang=fr#thank-you"
    [sig] = signatures(app)
    assert (sig.name, sig.title, sig.parliament, sig.party) == (
        "Maria Santos",
        "MP",
        "House of Representatives",
        "Independent",
    )
    assert (sig.country_code, sig.continent_code, sig.email) == (
        "PH",
        "AS",
        "Maria.Santos@example.org",
    )
    assert (sig.status, sig.counted, sig.public, sig.locale, sig.source) == (
        "pending",
        False,
        True,
        "fr",
        "form",
    )
    # The client address is kept only as a keyed hash.
    assert sig.client_hash == signing.client_hash(app.config["SECRET_KEY"], "203.0.113.7")
    stored = json.dumps([str(v) for v in vars(sig).values()])
    assert "203.0.113.7" not in stored
    [mail] = outbox(app)
    assert mail.to_addr == "Maria.Santos@example.org"
    assert mail.signature_id == sig.id
    assert link(mail, "confirm").startswith(f"/c/{SLUG}/confirm/")
    assert link(mail, "withdraw").startswith(f"/c/{SLUG}/withdraw/")
    assert total(app) == 0


def test_links_fall_back_to_the_request_host_without_base_url(app_factory: Any) -> None:
    app = app_factory(BASE_URL=None)
    make_campaign(app)
    post_sign(app.test_client())
    [mail] = outbox(app)
    assert f"http://localhost/c/{SLUG}/confirm/" in mail.body_text


def test_thanks_page_asks_to_check_the_mail(client: FlaskClient, campaign_id: int) -> None:
    page = client.get(f"/c/{SLUG}/thanks")
    assert page.status_code == 200
    assert "Please check your email" in page.text


def test_thanks_page_of_a_letter_without_confirmation_tells_of_the_receipt(app: Flask) -> None:
    make_campaign(app, require_confirmation=False)
    page = app.test_client().get(f"/c/{SLUG}/thanks")
    assert page.status_code == 200
    assert "Your signature has been recorded." in page.text
    assert "We have mailed you a receipt" in page.text
    assert "Please check your email" not in page.text
    french = app.test_client().get(f"/c/{SLUG}/thanks?lang=fr")
    assert "Nous vous avons envoyé un reçu" in french.text


def answer(response: Any) -> tuple[int, str | None, bytes]:
    """What a client learns from an answer to the sign form."""
    return response.status_code, response.headers.get("Location"), response.data


def test_new_duplicate_and_bot_submissions_get_the_same_answer(
    app: Flask, client: FlaskClient, campaign_id: int
) -> None:
    new = answer(post_sign(client))
    duplicate = answer(post_sign(client, email="MARIA.SANTOS+again@example.org"))
    bot = answer(post_sign(client, email="bot@example.org", website="http://spam"))
    assert new == duplicate == bot
    assert new[:2] == (303, f"/c/{SLUG}/thanks#thank-you")
    assert len(signatures(app)) == 1


def test_honeypot_stores_nothing_and_sends_nothing(
    app: Flask, client: FlaskClient, campaign_id: int
) -> None:
    response = post_sign(client, website="anything")
    assert response.status_code == 303
    assert response.headers["Location"] == f"/c/{SLUG}/thanks#thank-you"
    assert signatures(app) == [] and outbox(app) == []


def test_a_bot_that_fills_the_form_badly_is_still_thanked(
    app: Flask, client: FlaskClient, campaign_id: int
) -> None:
    # A refused form would tell the bot which fields it got wrong.
    response = post_sign(client, email="not an address", name="", website="anything")
    assert response.status_code == 303
    assert response.headers["Location"] == f"/c/{SLUG}/thanks#thank-you"
    assert signatures(app) == [] and outbox(app) == []


def test_duplicate_mails_the_owner_the_confirm_link_again_at_most_three_times(
    app: Flask, client: FlaskClient, campaign_id: int
) -> None:
    app.config["DUPLICATE_NOTICE_QUIET_SECONDS"] = 0  # not a double tap: later tries
    post_sign(client)
    for _ in range(5):
        assert post_sign(client, email="maria.santos+x@example.org").status_code == 303
    mails = outbox(app)
    assert len(signatures(app)) == 1
    assert len(mails) == 1 + 3
    assert all(m.to_addr == "maria.santos@example.org" for m in mails)
    assert all("/confirm/" in m.body_text for m in mails[1:])
    assert signatures(app)[0].duplicate_notices == 3


def signed_long_ago(app: Flask, hours: int = 1) -> None:
    """Move every signature's signing time back: a signing again is no double tap."""
    with session_scope(app) as db:
        for sig in db.scalars(select(Signature)):
            sig.signed_at -= dt.timedelta(hours=hours)


def notices(app: Flask) -> int:
    return sum(m.kind == "already_signed" for m in outbox(app))


def test_signing_again_twice_in_a_second_long_after_signing_mails_one_notice(
    any_app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The quiet window (60 s) counts from the last notice too, not only from the signature:
    a second tap on Sign a second after the first sends no second, identical, mail."""
    app = any_app
    make_campaign(app)
    client = app.test_client()
    post_sign(client)
    signed_long_ago(app)
    assert post_sign(client).status_code == 303
    assert notices(app) == 1
    later(monkeypatch, 1)
    assert post_sign(client).status_code == 303
    assert notices(app) == 1
    assert signatures(app)[0].duplicate_notices == 1
    later(monkeypatch, 60)  # 61 s after the notice: another try, another notice
    post_sign(client)
    assert notices(app) == 2


def test_a_notice_before_a_withdrawal_does_not_quiet_the_mail_to_sign_again(
    app: Flask, client: FlaskClient, signed: QueuedMail, monkeypatch: pytest.MonkeyPatch
) -> None:
    signed_long_ago(app)
    post_sign(client)
    assert notices(app) == 1
    withdrawn(app, client, signed)
    later(monkeypatch, 2)
    post_sign(client)
    assert notices(app) == 2
    assert "/confirm/" in outbox(app)[-1].body_text  # the link to sign again
    later(monkeypatch, 1)
    post_sign(client)  # a second tap on it: quiet
    assert notices(app) == 2


def test_duplicate_of_a_confirmed_signature_sends_no_confirm_link(
    app: Flask, client: FlaskClient, campaign_id: int
) -> None:
    app.config["DUPLICATE_NOTICE_QUIET_SECONDS"] = 0  # not a double tap: a later try
    post_sign(client)
    client.post(link(outbox(app)[0], "confirm"))
    post_sign(client)
    notice = outbox(app)[-1]
    assert len(outbox(app)) == 2
    assert "/confirm/" not in notice.body_text
    assert "/withdraw/" in notice.body_text


def test_same_person_under_another_address_is_held_and_not_counted(
    app: Flask, client: FlaskClient
) -> None:
    make_campaign(app, require_confirmation=False)
    post_sign(client)
    response = post_sign(client, name="Hon. MARÍA SANTOS", email="m.santos@parliament.example")
    assert response.status_code == 303
    first, second = signatures(app)
    assert (first.status, second.status) == ("confirmed", "held")
    assert (second.duplicate_of_id, second.counted) == (first.id, False)
    assert total(app) == 1
    assert "Signed by 1 MP from 1 country" in client.get(f"/c/{SLUG}/tally").text


def test_no_confirmation_campaign_counts_at_once_and_mails_a_receipt(
    app: Flask, client: FlaskClient
) -> None:
    make_campaign(app, require_confirmation=False)
    assert post_sign(client).status_code == 303
    [sig] = signatures(app)
    assert (sig.status, sig.counted) == ("confirmed", True)
    assert total(app) == 1
    # The receipt is the only word the address's owner gets of a signature in their name.
    [receipt] = outbox(app)
    assert (receipt.kind, receipt.to_addr, receipt.signature_id) == (
        "receipt",
        "maria.santos@example.org",
        sig.id,
    )
    assert "/confirm/" not in receipt.body_text
    assert link(receipt, "withdraw").startswith(f"/c/{SLUG}/withdraw/")
    assert "Your signature has been recorded." in client.get(f"/c/{SLUG}/thanks").text


def test_the_receipts_withdraw_link_takes_the_signature_off_the_count(
    app: Flask, client: FlaskClient
) -> None:
    make_campaign(app, require_confirmation=False)
    post_sign(client)
    withdraw = link(outbox(app)[0], "withdraw")
    assert client.get(withdraw).status_code == 200
    assert total(app) == 1
    assert client.post(withdraw).status_code == 303
    assert [s.status for s in signatures(app)] == ["withdrawn"]
    assert total(app) == 0


def test_signing_again_without_confirmation_sends_the_notice_not_another_receipt(
    app: Flask, client: FlaskClient
) -> None:
    make_campaign(app, require_confirmation=False)
    app.config["DUPLICATE_NOTICE_QUIET_SECONDS"] = 0  # not a double tap: a later try
    post_sign(client)
    for _ in range(5):
        assert post_sign(client, email="maria.santos+x@example.org").status_code == 303
    mails = outbox(app)
    assert [m.kind for m in mails] == ["receipt"] + ["already_signed"] * 3
    assert all(m.to_addr == "maria.santos@example.org" for m in mails)
    assert all("/confirm/" not in m.body_text for m in mails)
    assert total(app) == 1


def test_a_held_signer_without_confirmation_gets_a_receipt_saying_it_waits_for_review(
    app: Flask, client: FlaskClient
) -> None:
    make_campaign(app, require_confirmation=False)
    post_sign(client)
    post_sign(client, name="Hon. MARÍA SANTOS", email="m.santos@parliament.example")
    first, second = outbox(app)
    assert (first.kind, second.kind) == ("receipt", "receipt")
    assert second.to_addr == "m.santos@parliament.example"
    assert "once the organizers have checked it" in second.body_text
    assert "counts now" not in second.body_text
    assert "counts now" in first.body_text


def test_the_sign_rate_limit_applies(app_factory: Any) -> None:
    app = app_factory(RATELIMIT_ENABLED=True, SIGN_RATE_LIMIT="2 per minute")
    make_campaign(app)
    client = app.test_client()
    codes = [post_sign(client, email=f"s{n}@example.org").status_code for n in range(3)]
    assert codes == [303, 303, 429]
    assert len(signatures(app)) == 2


# --------------------------------------------------------------------------- bad input

BAD_INPUT = [
    ("name", "", "This field is required."),
    ("name", "    ", "This field is required."),
    ("name", "N" * 201, "Use at most 200 characters."),
    ("name", "Maria http://spam.example/x", "Remove the link."),
    ("name", "Maria www.casino", "Remove the link."),
    ("name", "Maria buy-now.com", "Remove the link."),
    ("name", "Maria\x00Santos", "Remove the control characters."),
    ("name", "Maria\x1bSantos", "Remove the control characters."),
    ("name", "\u200b", "This field is required."),
    (
        "name",
        "\uff2a\uff4f\uff48\uff4e\u202eevil",
        "Remove the invisible text direction characters.",
    ),
    ("title", "", "This field is required."),
    ("title", "\u200b", "This field is required."),
    ("title", "T" * 101, "Use at most 100 characters."),
    ("parliament", "", "This field is required."),
    ("parliament", "\u2060", "This field is required."),
    ("party", "\u2066Greens\u2069", "Remove the invisible text direction characters."),
    ("party", "P" * 201, "Use at most 200 characters."),
    ("email", "", "Enter your email address."),
    ("email", "maria", "Enter a valid email address, like name@example.org."),
    ("email", "maria@@example.org", "Enter a valid email address, like name@example.org."),
    ("email", "maria@example", "Enter a valid email address, like name@example.org."),
    ("email", "maria@exa mple.org", "Enter a valid email address, like name@example.org."),
    ("email", "a" * 64 + "@" + ("b" * 60 + ".") * 3 + "ccc.org", "Use at most 254 characters."),
    ("country", "", "Choose a country."),
    ("country", "XX", "Choose a country from the list."),
    ("country", "Philippines", "Choose a country from the list."),
    ("comment", "C" * 1001, "Use at most 1000 characters."),
    ("comment", "bad\x00", "Remove the control characters."),
]


@pytest.mark.parametrize(("field", "value", "message"), BAD_INPUT)
def test_bad_input_is_refused_beside_its_field_and_what_was_typed_is_kept(
    app: Flask, client: FlaskClient, campaign_id: int, field: str, value: str, message: str
) -> None:
    if field == "email" and value.startswith("a" * 64):
        assert len(value) == 255
    typed = {**GOOD, field: value, "name": GOOD["name"] if field != "name" else value}
    response = client.post(f"/c/{SLUG}/sign", data=typed)
    html = response.text
    assert response.status_code == 400
    assert 'class="error-summary"' in html
    assert f'<p class="error" id="{field}-error">{escape(message)}</p>' in html
    assert f'href="#{field}"' in html
    # What was typed comes back, in every other field too.
    if field == "comment":
        assert escape(value) in html
    elif field != "country":
        assert f'value="{escape(value)}"' in html or value.strip() == ""
    assert 'value="House of Representatives"' in html or field == "parliament"
    assert signatures(app) == [] and outbox(app) == []


def test_a_signer_of_nothing_visible_is_asked_for_each_field_and_not_counted(
    app: Flask, client: FlaskClient, campaign_id: int
) -> None:
    response = post_sign(client, name="\u200b", title="\u200b", parliament="\u2060")
    assert response.status_code == 400
    for field in ("name", "title", "parliament"):
        assert f'<p class="error" id="{field}-error">This field is required.</p>' in response.text
    assert signatures(app) == [] and outbox(app) == []


def test_invisible_characters_around_the_details_are_not_stored(
    app: Flask, client: FlaskClient, campaign_id: int
) -> None:
    response = post_sign(
        client,
        name="\u200bMaria Santos\u2060",
        title="MP\u200b",
        parliament="\ufeffHouse of Representatives",
        party="\u200b\u200d",
        email="maria.santos@example.org\u200b",
    )
    assert response.status_code == 303
    [sig] = signatures(app)
    assert (sig.name, sig.title, sig.parliament, sig.party, sig.email) == (
        "Maria Santos",
        "MP",
        "House of Representatives",
        "",
        "maria.santos@example.org",
    )


@pytest.mark.parametrize(
    ("lang", "message"),
    [
        ("es", "Quite los caracteres invisibles de dirección del texto."),
        ("fr", "Retirez les caractères invisibles de direction du texte."),
        ("id", "Hapus karakter arah teks yang tidak terlihat."),
    ],
)
def test_the_direction_characters_error_is_in_the_readers_language(
    client: FlaskClient, campaign_id: int, lang: str, message: str
) -> None:
    response = client.post(f"/c/{SLUG}/sign?lang={lang}", data={**GOOD, "name": "Ana\u202eLopez"})
    assert response.status_code == 400
    assert f'<p class="error" id="name-error">{escape(message)}</p>' in response.text


def outline(page: str) -> list[tuple[int, str]]:
    """The page's headings in order: (level, text)."""
    return [
        (int(level), re.sub(r"<[^>]+>", "", text).strip())
        for level, text in re.findall(r"<h([1-6])[^>]*>(.*?)</h\1>", page, re.S)
    ]


def assert_no_level_skipped(headings: list[tuple[int, str]]) -> None:
    """Each heading at most one level below the one before it (the first an h1 or h2)."""
    previous = 1
    for level, text in headings:
        assert level <= previous + 1, (text, headings)
        previous = level


def test_the_sign_forms_error_summary_is_headed_under_sign_the_letter(
    client: FlaskClient, campaign_id: int
) -> None:
    page = post_sign(client, email="bad", name="").text
    headings = outline(page)
    assert_no_level_skipped(headings)
    sign = headings.index((2, "Sign the letter"))
    assert headings[sign + 1] == (3, "There is a problem")


@pytest.mark.parametrize(
    ("values", "first"),
    [
        # The letter closed meanwhile: the alert before the letter's h1, GOV.UK's pattern.
        ({"state": "closed"}, (2, "We could not take your signature")),
        # A draft's page is not shown: the alert is the page's one heading.
        ({"state": "draft"}, (1, "We could not take your signature")),
    ],
)
def test_a_refused_signatures_page_keeps_a_sound_outline(
    app: Flask, client: FlaskClient, values: dict[str, Any], first: tuple[int, str]
) -> None:
    make_campaign(app, **values)
    refused = post_sign(client)
    assert refused.status_code == 409
    headings = outline(refused.text)
    assert headings[0] == first
    assert_no_level_skipped(headings)


@pytest.mark.parametrize("field", ["name", "title", "parliament", "party", "comment"])
def test_the_sign_forms_text_fields_follow_the_direction_of_what_is_typed(
    client: FlaskClient, campaign_id: int, field: str
) -> None:
    """Arabic or Hebrew typed in a field reads right to left, Latin left to right."""
    page = client.get(f"/c/{SLUG}").text
    tag = re.search(rf'<(?:input|textarea)[^>]*\bname="{field}"[^>]*>', page)
    assert tag is not None and ' dir="auto"' in tag.group(0)


def test_every_error_is_reported_at_once(app: Flask, client: FlaskClient, campaign_id: int) -> None:
    response = client.post(f"/c/{SLUG}/sign", data={"public": "y"})
    assert response.status_code == 400
    for field in ("name", "title", "parliament", "country", "email"):
        assert f'id="{field}-error"' in response.text
    assert 'id="party-error"' not in response.text
    assert signatures(app) == []


def test_the_chosen_country_and_its_continent_are_kept_after_an_error(
    client: FlaskClient, campaign_id: int
) -> None:
    html = post_sign(client, name="", country="KE").text
    assert '<option data-continent="Africa" selected value="KE">Kenya</option>' in html
    assert "Continent: Africa" in html


def test_a_body_that_is_not_utf8_is_a_form_error(
    app: Flask, client: FlaskClient, campaign_id: int
) -> None:
    body = (
        b"name=Mar%EDa+Santos&title=MP&parliament=Senado&country=PH"
        b"&email=maria%40example.org&public=y"
    )
    response = client.post(
        f"/c/{SLUG}/sign", data=body, content_type="application/x-www-form-urlencoded"
    )
    assert response.status_code == 400
    assert "This is not valid text (UTF-8)." in response.text
    assert 'id="name-error"' in response.text
    assert signatures(app) == [] and outbox(app) == []


def test_a_raw_body_that_is_not_utf8_stores_nothing(
    app: Flask, client: FlaskClient, campaign_id: int
) -> None:
    body = "name=María&title=MP&parliament=S&country=PH&email=m@example.org".encode("latin-1")
    response = client.post(
        f"/c/{SLUG}/sign", data=body, content_type="application/x-www-form-urlencoded"
    )
    assert response.status_code == 400
    assert 'class="error-summary"' in response.text
    assert signatures(app) == [] and outbox(app) == []


def test_multipart_text_that_is_not_utf8_is_a_form_error(
    app: Flask, client: FlaskClient, campaign_id: int
) -> None:
    boundary = "XyZ"
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n'.encode()
        + (v.encode("latin-1") if k == "name" else v.encode())
        + b"\r\n"
        for k, v in {**GOOD, "name": "María"}.items()
    ]
    body = b"".join(parts) + f"--{boundary}--\r\n".encode()
    response = client.post(
        f"/c/{SLUG}/sign",
        data=body,
        content_type=f"multipart/form-data; boundary={boundary}",
    )
    assert response.status_code == 400
    assert "This is not valid text (UTF-8)." in response.text
    assert signatures(app) == []


def test_a_body_over_the_size_limit_is_a_413_page(app_factory: Any) -> None:
    app = app_factory(PUBLIC_MAX_CONTENT_LENGTH=4096)
    make_campaign(app)
    response = app.test_client().post(f"/c/{SLUG}/sign", data={**GOOD, "comment": "x" * 10_000})
    assert response.status_code == 413
    assert response.mimetype == "text/html"
    assert "<h1>" in response.text
    assert signatures(app) == []


def test_csrf_token_is_required(app_factory: Any) -> None:
    app = app_factory(WTF_CSRF_ENABLED=True)
    make_campaign(app)
    client = app.test_client()
    refused = post_sign(client)
    assert refused.status_code == 400
    # The form again, in plain words (tests/test_signer_recovery.py), never Flask-WTF's.
    assert "We could not take your signature yet." in refused.text
    assert "CSRF" not in refused.text
    assert signatures(app) == []
    page = client.get(f"/c/{SLUG}").text
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page)
    assert token is not None
    accepted = client.post(f"/c/{SLUG}/sign", data={**GOOD, "csrf_token": token.group(1)})
    assert accepted.status_code == 303
    assert len(signatures(app)) == 1


def test_a_refused_form_comes_back_with_a_token_that_signs(app_factory: Any) -> None:
    # The form does not check the token itself (CSRFProtect did, before the view): the page
    # it comes back on still carries one, and the corrected form goes through with it.
    app = app_factory(WTF_CSRF_ENABLED=True)
    make_campaign(app)
    client = app.test_client()
    first = re.search(
        r'name="csrf_token" type="hidden" value="([^"]+)"', client.get(f"/c/{SLUG}").text
    )
    assert first is not None
    refused = client.post(
        f"/c/{SLUG}/sign", data={**GOOD, "email": "not an address", "csrf_token": first.group(1)}
    )
    assert refused.status_code == 400
    assert "CSRF" not in refused.text
    again = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', refused.text)
    assert again is not None
    accepted = client.post(f"/c/{SLUG}/sign", data={**GOOD, "csrf_token": again.group(1)})
    assert accepted.status_code == 303
    assert len(signatures(app)) == 1


# --------------------------------------------------------------------------- confirm, withdraw


@pytest.fixture
def signed(app: Flask, client: FlaskClient, campaign_id: int) -> QueuedMail:
    """Maria signed; her confirmation mail."""
    post_sign(client)
    [mail] = outbox(app)
    return mail


def test_confirm_get_changes_nothing_and_shows_a_button(
    app: Flask, client: FlaskClient, signed: QueuedMail
) -> None:
    for _ in range(2):
        page = client.get(link(signed, "confirm"))
        assert page.status_code == 200
        assert "Maria Santos" in page.text and "Release Amara" in page.text
        assert "Confirm my signature" in page.text and 'method="post"' in page.text
        assert "maria.santos@example.org" not in page.text
    assert signatures(app)[0].status == "pending"
    assert total(app) == 0


def test_a_signature_made_while_open_counts_when_confirmed_after_the_letter_closed(
    app: Flask, client: FlaskClient, signed: QueuedMail
) -> None:
    path = link(signed, "confirm")
    assert "has closed since" not in client.get(path).text
    with session_scope(app) as db:
        db.execute(update(Campaign).values(state="closed"))
    page = client.get(path).text
    assert "This letter has closed since it was signed: a signature made while it was open" in page
    assert client.post(path).status_code == 303
    assert signatures(app)[0].status == "confirmed"
    assert total(app) == 1


def test_confirm_post_counts_and_can_be_repeated(
    app: Flask, client: FlaskClient, signed: QueuedMail
) -> None:
    path = link(signed, "confirm")
    first = client.post(path)
    assert first.status_code == 303 and first.headers["Location"] == path
    page = client.post(path, follow_redirects=True)
    assert page.status_code == 200
    assert "your signature counts" in page.text
    assert f'href="/c/{SLUG}/tally"' in page.text
    assert "Confirm my signature" not in page.text
    assert [s.status for s in signatures(app)] == ["confirmed"]
    assert total(app) == 1
    assert "Signed by 1 MP from 1 country on 1 continent" in client.get(f"/c/{SLUG}/tally").text


@pytest.mark.parametrize("purpose", ["confirm", "withdraw"])
def test_forged_links_give_a_clear_page_and_no_button(
    app: Flask, client: FlaskClient, signed: QueuedMail, purpose: str
) -> None:
    good = link(signed, purpose)
    token = good.rsplit("/", 1)[1]
    forged = signing.make_token("another-secret", signed.signature_id or 0, purpose)
    other_purpose = signing.make_token(
        app.config["SECRET_KEY"],
        signed.signature_id or 0,
        "withdraw" if purpose == "confirm" else "confirm",
    )
    for bad in (token[:-2] + "xx", forged, other_purpose, "nonsense"):
        for method in (client.get, client.post):
            page = method(f"/c/{SLUG}/{purpose}/{bad}")
            assert page.status_code == 400
            assert "This link is not valid" in page.text
            assert "<form" not in page.text
    assert [s.status for s in signatures(app)] == ["pending"]


def test_an_expired_link_says_so(app_factory: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    app = app_factory(CONFIRM_MAX_AGE_SECONDS=60)
    make_campaign(app)
    client = app.test_client()
    post_sign(client)
    path = link(outbox(app)[0], "confirm")
    later(monkeypatch, 61)
    for page in (client.get(path), client.post(path)):
        assert page.status_code == 400
        assert "This link has expired." in page.text
        assert "<form" not in page.text
    assert [s.status for s in signatures(app)] == ["pending"]


def test_a_link_for_another_campaign_is_refused(
    app: Flask, client: FlaskClient, signed: QueuedMail
) -> None:
    make_campaign(app, "other-letter")
    path = link(signed, "confirm").replace(f"/c/{SLUG}/", "/c/other-letter/")
    assert client.post(path).status_code == 400
    assert signatures(app)[0].status == "pending"


def test_withdraw_drops_the_count(app: Flask, client: FlaskClient, signed: QueuedMail) -> None:
    client.post(link(signed, "confirm"))
    assert total(app) == 1
    path = link(signed, "withdraw")
    page = client.get(path)
    assert "Withdraw my signature" in page.text and "Maria Santos" in page.text
    assert total(app) == 1
    done = client.post(path, follow_redirects=True)
    assert "Your signature has been withdrawn" in done.text
    assert "It no longer counts on this letter." in done.text
    assert client.post(path).status_code == 303
    assert [s.status for s in signatures(app)] == ["withdrawn"]
    assert total(app) == 0
    assert "No signatures yet." in client.get(f"/c/{SLUG}/tally").text
    confirm_again = client.post(link(signed, "confirm"), follow_redirects=True)
    assert "This signature was withdrawn" in confirm_again.text
    assert total(app) == 0


def test_withdrawing_an_unconfirmed_signature_says_it_will_not_count(
    app: Flask, client: FlaskClient, signed: QueuedMail
) -> None:
    done = client.post(link(signed, "withdraw"), follow_redirects=True)
    assert "It will not count on this letter." in done.text  # it never did
    assert "no longer counts" not in done.text


def later(monkeypatch: pytest.MonkeyPatch, seconds: int) -> None:
    """Move on the clocks of link tokens (whole seconds) and of signing's changes."""
    clock, stamp = time.time, signing.utcnow
    monkeypatch.setattr(time, "time", lambda: clock() + seconds)
    monkeypatch.setattr(signing, "utcnow", lambda: stamp() + dt.timedelta(seconds=seconds))


def withdrawn(app: Flask, client: FlaskClient, signed: QueuedMail) -> None:
    """Maria confirms, then withdraws with her mail's links."""
    client.post(link(signed, "confirm"))
    assert total(app) == 1
    client.post(link(signed, "withdraw"))
    assert total(app) == 0


def test_signing_again_after_withdrawing_mails_a_link_that_counts_again(
    app: Flask, client: FlaskClient, signed: QueuedMail, monkeypatch: pytest.MonkeyPatch
) -> None:
    withdrawn(app, client, signed)
    later(monkeypatch, 2)
    assert post_sign(client, email="Maria.Santos+again@EXAMPLE.org").status_code == 303
    assert "Please check your email" in client.get(f"/c/{SLUG}/thanks").text
    [_, notice] = outbox(app)
    [sig] = signatures(app)
    # Only ever to the address that signed: whoever typed this one learns nothing.
    assert (notice.kind, notice.to_addr, notice.signature_id) == (
        "already_signed",
        "maria.santos@example.org",
        sig.id,
    )
    assert sig.withdrawn_at is not None
    withdrawn_on = format_date(sig.withdrawn_at, format="long", locale="en")
    assert f"Your signature was withdrawn on {withdrawn_on}" in notice.body_text
    assert "/withdraw/" not in notice.body_text
    path = link(notice, "confirm")
    for _ in range(2):
        page = client.get(path)
        assert page.status_code == 200
        assert "Sign this letter again" in page.text and "Maria Santos" in page.text
        assert "Count my signature again" in page.text and 'method="post"' in page.text
    assert total(app) == 0
    done = client.post(path)
    assert done.status_code == 303 and done.headers["Location"] == path
    page = client.get(path)
    assert "Your signature counts again." in page.text
    assert "your signature counts" in page.text
    assert "Count my signature again" not in page.text
    assert [(s.status, s.withdrawn_at) for s in signatures(app)] == [("confirmed", None)]
    assert total(app) == 1
    assert client.post(path).status_code == 303
    assert total(app) == 1
    assert "Signed by 1 MP from 1 country on 1 continent" in client.get(f"/c/{SLUG}/tally").text


def test_signing_again_after_withdrawing_a_signature_that_needed_no_confirmation(
    app: Flask, client: FlaskClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_campaign(app, require_confirmation=False)
    post_sign(client)
    client.post(link(outbox(app)[0], "withdraw"))
    assert total(app) == 0
    later(monkeypatch, 2)
    post_sign(client)
    [receipt, notice] = outbox(app)
    assert (receipt.kind, notice.kind) == ("receipt", "already_signed")
    client.post(link(notice, "confirm"))
    assert [s.status for s in signatures(app)] == ["confirmed"]
    assert total(app) == 1


def test_the_first_mails_confirm_link_cannot_undo_a_withdrawal(
    app: Flask, client: FlaskClient, signed: QueuedMail, monkeypatch: pytest.MonkeyPatch
) -> None:
    withdrawn(app, client, signed)
    later(monkeypatch, 2)
    post_sign(client)
    old = link(signed, "confirm")
    for page in (client.get(old), client.post(old, follow_redirects=True)):
        assert "This signature was withdrawn" in page.text
        assert "Count my signature again" not in page.text
        # It says how to sign again, as the withdrawal's own page does.
        assert SIGN_AGAIN in page.text
    assert [s.status for s in signatures(app)] == ["withdrawn"]
    assert total(app) == 0
    assert SIGN_AGAIN in client.get(link(signed, "withdraw")).text


def test_a_link_to_sign_again_made_in_the_withdrawals_second_counts_again(
    app: Flask, client: FlaskClient, signed: QueuedMail, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The link names the withdrawal it answers, so link times in whole seconds do not matter."""
    second = float(int(time.time()) + 5)
    moments = itertools.count(second + 0.1, 1e-6)
    # Every clock in one wall-clock second, later at each call: confirm, withdraw, sign, mail.
    monkeypatch.setattr(time, "time", lambda: next(moments))
    monkeypatch.setattr(signing, "utcnow", lambda: dt.datetime.fromtimestamp(next(moments), dt.UTC))
    withdrawn(app, client, signed)
    post_sign(client)
    client.post(link(outbox(app)[-1], "confirm"))
    assert [(s.status, s.withdrawn_at) for s in signatures(app)] == [("confirmed", None)]
    assert total(app) == 1
    assert next(moments) < second + 1


SIGN_AGAIN = (
    "To sign again, sign the letter with the same address: we will mail you a link that counts"
    " your signature again."
)


def test_a_link_to_sign_again_is_spent_by_a_later_withdrawal(
    app: Flask, client: FlaskClient, signed: QueuedMail, monkeypatch: pytest.MonkeyPatch
) -> None:
    withdrawn(app, client, signed)
    later(monkeypatch, 2)
    post_sign(client)
    again = link(outbox(app)[-1], "confirm")
    client.post(again)
    assert total(app) == 1
    later(monkeypatch, 4)
    client.post(link(signed, "withdraw"))
    assert total(app) == 0
    assert "This signature was withdrawn" in client.post(again, follow_redirects=True).text
    assert total(app) == 0


def test_signing_again_on_a_letter_closed_since_counts_as_confirming_does(
    app: Flask, client: FlaskClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_campaign(app)
    post_sign(client)
    post_sign(client, name="Ana Reyes", email="ana@example.org")
    maria, ana = outbox(app)
    withdrawn(app, client, maria)
    later(monkeypatch, 2)
    post_sign(client)
    again = link(outbox(app)[-1], "confirm")
    with session_scope(app) as db:
        found = campaigns.get_by_slug(db, SLUG)
        assert found is not None
        found.state = "closed"
    # A letter closed after the mail was sent: its link counts, as a confirm link does.
    client.post(link(ana, "confirm"))
    assert total(app) == 1
    assert "your signature counts" in client.post(again, follow_redirects=True).text
    assert total(app) == 2


def test_a_rejected_signer_signing_again_gets_no_mail(
    app: Flask, client: FlaskClient, signed: QueuedMail
) -> None:
    with session_scope(app) as db:
        sig = db.scalars(select(Signature)).one()
        sig.rejected_at = utcnow()
        tally.refresh(db, sig)
    assert post_sign(client).status_code == 303
    assert [m.kind for m in outbox(app)] == ["confirm"]


def test_the_bad_link_page_promises_only_what_signing_again_does(
    client: FlaskClient, signed: QueuedMail
) -> None:
    page = client.get(f"/c/{SLUG}/confirm/nonsense")
    assert page.status_code == 400
    assert "we mail the link to it again" not in page.text
    assert "we mail it a new link" in page.text
    # Signing again mails no link to stop updates: each update carries one.
    stop = client.get(f"/c/{SLUG}/updates/stop/nonsense")
    assert stop.status_code == 400
    assert "sign the letter again" not in stop.text
    assert "use the one in the most recent update" in stop.text


def title_and_heading(page: Any) -> tuple[str, str]:
    """A page's <title> and its <h1>, as the page's source holds them."""
    title = re.search(r"<title>(.*?)</title>", page.text, re.S)
    heading = re.search(r"<h1[^>]*>(.*?)</h1>", page.text, re.S)
    assert title is not None and heading is not None
    return title.group(1).strip(), heading.group(1).strip()


def set_signature(app: Flask, **values: Any) -> None:
    """Change the one signature's columns, its tally following."""
    with session_scope(app) as db:
        sig = db.scalars(select(Signature)).one()
        for key, value in values.items():
            setattr(sig, key, value)
        tally.refresh(db, sig)


@pytest.mark.parametrize("language", ["en", "fr"])
def test_a_signers_link_page_is_titled_as_its_heading_in_every_state(
    app: Flask,
    client: FlaskClient,
    signed: QueuedMail,
    monkeypatch: pytest.MonkeyPatch,
    language: str,
) -> None:
    """The <title> says what the page says (WCAG 2.4.2): "Confirm your signature" only while
    there is a signature to confirm, not once it counts, was withdrawn or refused; the same
    for the withdraw and stop-updates pages."""
    confirm, withdraw = link(signed, "confirm"), link(signed, "withdraw")
    seen: list[str] = []

    def check(path: str) -> None:
        page = client.get(f"{path}?lang={language}")
        assert page.status_code == 200
        title, heading = title_and_heading(page)
        assert title == f"{heading} · Release Amara"
        seen.append(heading)

    check(confirm)  # to confirm
    check(withdraw)  # to withdraw
    client.post(confirm)
    check(confirm)  # it counts
    token = signing.make_token(app.config["SECRET_KEY"], signed.signature_id or 0, "stop_updates")
    stop = f"/c/{SLUG}/updates/stop/{token}"
    check(stop)  # to stop the updates
    client.post(stop)
    check(stop)  # stopped
    set_signature(app, status="held", duplicate_state="held")
    check(confirm)  # its address confirmed, held for review
    client.post(withdraw)
    check(withdraw)  # withdrawn
    check(confirm)  # withdrawn, seen from the old confirm link
    later(monkeypatch, 2)
    post_sign(client)
    again = link(outbox(app)[-1], "confirm")
    check(again)  # a link to sign again
    client.post(again)
    set_signature(app, rejected_at=utcnow())
    check(confirm)  # the organizers refused it
    assert len(set(seen)) == len(seen) == 10


# --------------------------------------------------------------------------- tally


@pytest.fixture
def signers(app: Flask) -> Iterator[None]:
    """Five counted signers in 4 countries on 3 continents, and some who do not count."""
    make_campaign(app)
    people = [
        ("Ana Lima", "BR", True, "ana@example.org"),
        ("Ben Cole", "GB", True, "ben@example.org"),
        ("Cara Diaz", "GB", False, "cara@example.org"),
        ("Dan Ochieng", "KE", True, "dan@example.org"),
        ("Eva Horn", "DE", True, "eva@example.org"),
    ]
    with session_scope(app) as db:
        found = campaigns.get_by_slug(db, SLUG)
        assert found is not None
        for name, country, public, email in people:
            entry = signing.validate_entry(
                {
                    "name": name,
                    "title": "MP",
                    "parliament": "Parliament",
                    "party": "Greens" if name == "Eva Horn" else "",
                    "country": country,
                    "email": email,
                    "public": public,
                }
            )
            sig = signing.sign(db, found, entry, confirmed=True).signature
            if name == "Ben Cole":
                sig.verified_at = utcnow()
        # Not counted: pending, held, withdrawn.
        for name, email in (
            ("Pia Pending", "pia@example.org"),
            ("Ana Lima", "ana.other@example.org"),
            ("Wes Withdrawn", "wes@example.org"),
        ):
            entry = signing.validate_entry(
                {
                    "name": name,
                    "title": "MP",
                    "parliament": "P",
                    "country": "BR",
                    "email": email,
                    "public": True,
                }
            )
            sig = signing.sign(db, found, entry, confirmed=name != "Pia Pending").signature
            if name == "Wes Withdrawn":
                signing.withdraw(db, sig.id)
    yield


def test_tally_page_says_signed_by_n_mps(client: FlaskClient, signers: None) -> None:
    page = client.get(f"/c/{SLUG}/tally")
    html = page.text
    assert page.status_code == 200
    assert "Signed by 5 MPs from 4 countries on 3 continents" in html
    assert re.search(
        r"<th scope=\"row\">Europe</th><td class=\"num\">2</td><td class=\"num\">3</td>", html
    )
    assert re.search(
        r"<th scope=\"row\">United Kingdom</th><td>Europe</td><td class=\"num\">2</td>", html
    )
    assert "Kenya" in html and "Africa" in html and "Brazil" in html
    assert "@" not in html.replace("mailto:", "")


@pytest.mark.parametrize(
    ("values", "offer"),
    [
        ({}, "Read and sign the letter"),
        ({"state": "closed"}, "Read the letter"),
        ({"closes_at": utcnow() - dt.timedelta(days=1)}, "Read the letter"),
        ({"opens_at": utcnow() + dt.timedelta(days=1)}, "Read the letter"),
    ],
)
def test_the_tally_offers_to_sign_only_a_letter_that_takes_signatures(
    app: Flask, values: dict[str, Any], offer: str
) -> None:
    make_campaign(app, **values)
    page = app.test_client().get(f"/c/{SLUG}/tally")
    assert page.status_code == 200
    actions = re.search(r'<p class="actions">(.*?)</p>', page.text, re.S)
    assert actions is not None
    first = re.search(r'<a class="button" href="/c/free-amara">([^<]*)</a>', actions.group(1))
    assert first is not None and first.group(1) == offer


def test_tally_json_has_exactly_the_contract_keys(client: FlaskClient, signers: None) -> None:
    response = client.get(f"/c/{SLUG}/tally.json")
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    data = response.get_json()
    assert set(data) == {
        "slug",
        "signatures",
        "countries",
        "continents",
        "by_continent",
        "by_country",
        "updated_at",
    }
    assert (data["slug"], data["signatures"], data["countries"], data["continents"]) == (
        SLUG,
        5,
        4,
        3,
    )
    assert data["by_continent"][0] == {
        "code": "EU",
        "name": "Europe",
        "signatures": 3,
        "countries": 2,
    }
    assert {c["code"]: c["signatures"] for c in data["by_continent"]} == {
        "EU": 3,
        "SA": 1,
        "AF": 1,
    }
    assert data["by_country"][0] == {
        "code": "GB",
        "name": "United Kingdom",
        "continent": "EU",
        "signatures": 2,
    }
    assert all(set(c) == {"code", "name", "continent", "signatures"} for c in data["by_country"])
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", data["updated_at"])
    assert "@" not in response.text


def test_tally_json_of_an_empty_campaign(app: Flask, client: FlaskClient) -> None:
    make_campaign(app)
    data = client.get(f"/c/{SLUG}/tally.json").get_json()
    assert (data["signatures"], data["countries"], data["continents"]) == (0, 0, 0)
    assert data["by_continent"] == [] and data["by_country"] == []


def test_signatories_lists_counted_public_signers_by_country(
    client: FlaskClient, signers: None
) -> None:
    page = client.get(f"/c/{SLUG}/signatories")
    html = page.text
    assert page.status_code == 200
    headings = re.findall(r"<h2>([^<]+)</h2>", html)
    assert headings == ["Brazil", "Germany", "Kenya", "United Kingdom"]
    for name in ("Ana Lima", "Ben Cole", "Dan Ochieng", "Eva Horn"):
        assert name in html
    for hidden in ("Cara Diaz", "Pia Pending", "Wes Withdrawn"):
        assert hidden not in html
    assert html.count("Ana Lima") == 1  # the held second Ana is not listed
    assert "(<bdi>Greens</bdi>)" in html
    assert html.count("verified</span>") == 1
    assert re.search(r"Ben Cole</bdi></strong> <span class=\"badge verified\"", html)
    assert "@" not in html


def test_tally_counters_match_a_fresh_count(app: Flask, signers: None) -> None:
    with session_scope(app) as db:
        found = db.scalars(select(Campaign)).one()
        assert tally.recount(db, found) == {}
        counted = db.scalar(
            select(func.count()).where(Signature.campaign_id == found.id, Signature.counted)
        )
        assert counted == tally.total(db, found) == 5


# --------------------------------------------------------------------------- health


def test_healthz_answers_ok(client: FlaskClient) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok"}


def test_healthz_answers_503_when_the_database_fails(app: Flask, tmp_path: Any) -> None:
    broken = create_engine(f"sqlite:///{tmp_path}/missing/dir/db.sqlite3")
    app.extensions["sessionmaker"].configure(bind=broken)
    response = app.test_client().get("/healthz")
    broken.dispose()
    assert response.status_code == 503
    assert response.mimetype == "application/json"
    assert response.get_json()["status"] != "ok"


def test_the_whole_flow_on_each_backend(app_factory: Any, backend: str) -> None:
    app = app_factory(backend)
    make_campaign(app)
    client = app.test_client()
    assert post_sign(client).status_code == 303
    assert post_sign(client, email="MARIA.SANTOS@example.org").status_code == 303
    assert post_sign(client, email="other@example.org", name="Dr Maria Santos").status_code == 303
    first, held = signatures(app)
    assert (first.status, held.status) == ("pending", "held")
    confirm_path = link(outbox(app)[0], "confirm")
    assert client.get(confirm_path).status_code == 200
    assert total(app) == 0
    assert client.post(confirm_path).status_code == 303
    assert client.post(confirm_path).status_code == 303
    assert client.get(f"/c/{SLUG}/tally.json").get_json()["signatures"] == 1
    assert "Maria Santos" in client.get(f"/c/{SLUG}/signatories").text
    assert client.post(link(outbox(app)[0], "withdraw")).status_code == 303
    assert client.get(f"/c/{SLUG}/tally.json").get_json()["signatures"] == 0
    assert client.get("/healthz").get_json() == {"status": "ok"}


# --------------------------------------------------------------------------- a changed slug


def rename(app: Flask, old: str, new: str) -> None:
    with app.app_context(), session_scope(app) as db:
        found = campaigns.get_by_slug(db, old)
        assert found is not None
        campaigns.update_campaign(db, found, slug=new)


def test_links_to_a_letters_old_address_lead_to_its_new_one(
    app: Flask, client: FlaskClient, campaign_id: int
) -> None:
    assert post_sign(client).status_code == 303
    [mail] = outbox(app)
    confirm = link(mail, "confirm")
    rename(app, SLUG, "free-amara-now")
    # A shared link, with its query string.
    answer = client.get(f"/c/{SLUG}?lang=fr")
    assert (answer.status_code, answer.headers["Location"]) == (302, "/c/free-amara-now?lang=fr")
    assert client.get(f"/c/{SLUG}/tally.json").headers["Location"] == "/c/free-amara-now/tally.json"
    # The confirmation link mailed before the change: its page, then its button.
    page = client.get(confirm, follow_redirects=True)
    assert page.status_code == 200 and page.request.path.startswith("/c/free-amara-now/confirm/")
    answer = client.post(confirm)
    assert answer.status_code == 307
    assert client.post(answer.headers["Location"]).status_code == 303
    assert total(app, "free-amara-now") == 1
    # A form loaded before the change still signs (307 keeps the POST and its fields).
    answer = post_sign(client, email="other@example.org")
    assert answer.status_code == 307
    assert (
        client.post(answer.headers["Location"], data={**GOOD, "email": "b@example.org"}).status_code
        == 303
    )
    # An address no letter ever had is still a 404.
    assert client.get("/c/never-was").status_code == 404


def test_a_letter_may_take_back_its_old_address_but_no_other_letter_may(
    app: Flask, client: FlaskClient, campaign_id: int
) -> None:
    rename(app, SLUG, "second")
    rename(app, "second", SLUG)
    assert client.get(f"/c/{SLUG}").status_code == 200
    assert client.get("/c/second").headers["Location"] == f"/c/{SLUG}"
    with (
        app.app_context(),
        session_scope(app) as db,
        pytest.raises(campaigns.CampaignError, match="another letter had it"),
    ):
        campaigns.create_campaign(db, slug="second", title="Another letter")
    with app.app_context(), session_scope(app) as db:
        other = campaigns.create_campaign(db, slug="third", title="Another letter")
        with pytest.raises(campaigns.CampaignError, match="another letter had it"):
            campaigns.update_campaign(db, other, slug="second")


def test_a_translation_stored_without_text_leaves_readers_the_original_letter(
    app: Flask, client: FlaskClient
) -> None:
    campaign_id = make_campaign(app)
    with session_scope(app) as db:
        db.add(LetterTranslation(campaign_id=campaign_id, locale="es", title="Liberen", letter=""))
    spanish = client.get(f"/c/{SLUG}?lang=es").text
    assert "Release Amara" in spanish
    assert "Liberen" not in spanish
