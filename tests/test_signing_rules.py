"""Signing's rules as QA found them wanting: notices per withdrawal, double taps, stacked
marks, file parts for text, email lengths, names without a letter."""

from __future__ import annotations

import datetime as dt
import io
import json
import os
import unicodedata
from typing import Any

import pytest
from admin_helpers import AuthActions, auth, campaign, logged_in, make_signature, reload, store
from email_validator import EmailNotValidError, validate_email
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import example, given, settings
from hypothesis import strategies as st
from sqlalchemy import select
from sqlalchemy.orm import Session
from test_public import GOOD, SLUG, link, make_campaign, outbox, post_sign, signatures
from test_signing import entry
from test_signing import make_campaign as make_letter
from werkzeug.datastructures import FileStorage

from campaign import signing
from campaign.db import session_scope, utcnow
from campaign.models import Campaign, OutboxMessage, Signature

__all__ = ["auth", "campaign", "logged_in", "store"]


def age_signatures(app: Flask, seconds: int = 3600) -> None:
    """Make every signature and mail older, as if they had been made that long ago."""
    with session_scope(app) as db:
        for message in db.scalars(select(OutboxMessage)):
            message.created_at -= dt.timedelta(seconds=seconds)
        age(db, seconds)


def age(db: Session, seconds: int = 3600) -> None:
    """The same on a test's session."""
    for signature in db.scalars(select(Signature)):
        signature.signed_at -= dt.timedelta(seconds=seconds)
    db.commit()


# --------------------------------------------------------------------------- 1. notices


def test_each_withdrawal_gets_its_own_already_signed_notices(db: Session) -> None:
    letter = make_letter(db)
    signature_id = signing.sign(db, letter, entry()).signer.id
    db.commit()
    age(db)
    # Someone spends the address's notices on purpose.
    spent = [signing.sign(db, letter, entry()).notify_existing for _ in range(4)]
    db.commit()
    assert spent == [True, True, True, False]
    signing.withdraw(db, signature_id)
    db.commit()
    # The signer withdrew, and signs again to get the link that counts the signature again.
    again = [signing.sign(db, letter, entry()).notify_existing for _ in range(4)]
    db.commit()
    assert again == [True, True, True, False]
    # Withdrawing again (idempotent) gives no more.
    signing.withdraw(db, signature_id)
    assert signing.sign(db, letter, entry()).notify_existing is False


def test_a_signature_back_on_the_letter_gets_notices_again(db: Session) -> None:
    letter = make_letter(db)
    signature_id = signing.sign(db, letter, entry()).signer.id
    signing.confirm(db, signature_id)
    db.commit()
    age(db)
    signing.withdraw(db, signature_id)
    db.commit()
    assert [signing.sign(db, letter, entry()).notify_existing for _ in range(4)] == [
        True,
        True,
        True,
        False,
    ]
    withdrawal = db.get_one(Signature, signature_id).withdrawn_at
    back = signing.confirm(db, signature_id, link=signing.Link(signature_id, utcnow(), withdrawal))
    assert back is not None and back.withdrawn_at is None
    db.commit()
    assert [signing.sign(db, letter, entry()).notify_existing for _ in range(4)] == [
        True,
        True,
        True,
        False,
    ]


def test_the_withdrawn_page_promise_holds_after_the_notices_were_spent(
    app: Flask, client: FlaskClient
) -> None:
    make_campaign(app)
    post_sign(client)
    for _ in range(4):  # each try long after the one before: no double tap
        age_signatures(app)
        assert post_sign(client).status_code == 303
    first = outbox(app)
    assert [m.kind for m in first] == ["confirm"] + ["already_signed"] * 3
    # The signer confirms, then withdraws through the first mail's links.
    client.post(link(first[0], "confirm"))
    withdraw = link(first[0], "withdraw")
    assert client.post(withdraw).status_code == 303
    assert "we will mail you a link" in client.get(withdraw).text
    # Signing again mails the link that counts the signature again, as the page says.
    assert post_sign(client).status_code == 303
    mails = outbox(app)
    assert [m.kind for m in mails[len(first) :]] == ["already_signed"]
    sign_again = link(mails[-1], "confirm")
    client.post(sign_again)
    (signature,) = signatures(app)
    assert (signature.withdrawn_at, signature.status) == (None, "confirmed")


# --------------------------------------------------------------------------- 2. double tap


def test_a_second_signing_moments_later_sends_no_notice(db: Session) -> None:
    letter = make_letter(db)
    assert signing.sign(db, letter, entry()).created
    db.commit()
    again = signing.sign(db, letter, entry())
    assert (again.created, again.notify_existing) == (False, False)
    db.commit()
    assert db.scalars(select(Signature)).one().duplicate_notices == 0
    # A minute on, it is someone signing with the address again: the address is told.
    age(db, signing.DUPLICATE_NOTICE_QUIET_SECONDS + 1)
    assert signing.sign(db, letter, entry()).notify_existing is True


def test_the_quiet_window_is_a_parameter(db: Session) -> None:
    letter = make_letter(db)
    signing.sign(db, letter, entry())
    assert signing.sign(db, letter, entry(), notice_quiet_seconds=0).notify_existing is True


def test_a_withdrawn_signature_made_moments_ago_is_still_told(db: Session) -> None:
    letter = make_letter(db, require_confirmation=False)
    signature_id = signing.sign(db, letter, entry()).signer.id
    signing.withdraw(db, signature_id)
    db.commit()
    assert signing.sign(db, letter, entry()).notify_existing is True


@pytest.mark.parametrize("confirmation", [True, False])
def test_a_double_tap_on_sign_sends_one_mail(
    app: Flask, client: FlaskClient, confirmation: bool
) -> None:
    make_campaign(app, require_confirmation=confirmation)
    first = post_sign(client)
    second = post_sign(client)
    assert (first.status_code, second.status_code) == (303, 303)
    assert first.headers["Location"] == second.headers["Location"]
    assert [m.kind for m in outbox(app)] == ["confirm" if confirmation else "receipt"]
    assert [s.duplicate_notices for s in signatures(app)] == [0]


def _chromium() -> str | None:
    """Why the browser test cannot run here, or None (as tests/browser/conftest.py)."""
    if not os.path.exists("/usr/bin/chromium"):
        return "Chromium not installed: apt-get install chromium"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "Playwright not installed: .venv/bin/pip install -e '.[test]'"
    return None


@pytest.mark.browser
@pytest.mark.skipif(_chromium() is not None, reason=str(_chromium()))
def _wait_for_a_post(page: Any, posts: list[Any]) -> None:
    """Until the browser's submission reaches the route (however busy the machine), then a
    little longer: a second one, sent with it, would have arrived by then."""
    for _ in range(150):
        if posts:
            break
        page.wait_for_timeout(100)  # the sync API hands requests to the route while it waits
    page.wait_for_timeout(300)


def test_the_sign_button_sends_a_filled_form_once(app: Flask) -> None:
    from playwright.sync_api import Route, sync_playwright

    make_campaign(app)
    client = app.test_client()
    base = "http://campaign.test"
    posts: list[Route] = []

    def fetch(method: str, path: str, **data: str) -> Any:
        """The app's answer, read and closed (a static file's handle with it)."""
        answer = client.open(path, method=method, data=data)
        answer.get_data()
        answer.close()
        return answer

    def serve(route: Route) -> None:
        request = route.request
        if request.method == "POST":
            posts.append(route)  # answered later: the submission is on its way meanwhile
            return
        answer = fetch("GET", request.url.removeprefix(base))
        route.fulfill(status=answer.status_code, headers=dict(answer.headers), body=answer.data)

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path="/usr/bin/chromium", args=["--no-sandbox", "--disable-gpu"]
        )
        try:
            page = browser.new_page()
            page.route(f"{base}/**", serve)
            page.goto(f"{base}/c/{SLUG}")
            button = page.locator("#sign button[type=submit]")
            # An incomplete form is left usable: the server's answer lists what is missing.
            disabled = page.evaluate(
                "() => { const form = document.querySelector('#sign form');"
                " form.requestSubmit(); return form.querySelector('button').disabled; }"
            )
            _wait_for_a_post(page, posts)
            assert (len(posts), disabled) == (1, False)
            refused = fetch("POST", f"/c/{SLUG}/sign")
            posts.pop().fulfill(status=400, headers=dict(refused.headers), body=refused.data)
            page.wait_for_url(f"{base}/c/{SLUG}/sign#error-summary")
            page.goto(f"{base}/c/{SLUG}")
            page.fill("#name", GOOD["name"])
            page.fill("#title", GOOD["title"])
            page.fill("#parliament", GOOD["parliament"])
            page.select_option("#country", GOOD["country"])
            page.fill("#email", GOOD["email"])
            # A double tap, then Enter in a field, while the first submission is on its way.
            disabled = page.evaluate(
                "() => { const form = document.querySelector('#sign form');"
                " const button = form.querySelector('button'); button.click();"
                " const after = button.disabled; button.click(); form.requestSubmit();"
                " return after; }"
            )
            _wait_for_a_post(page, posts)
            assert (len(posts), disabled) == (1, True)
            thanks = fetch("GET", f"/c/{SLUG}/thanks")
            posts.pop().fulfill(status=200, headers=dict(thanks.headers), body=thanks.data)
            page.wait_for_selector("#thank-you")
            # Back on the letter (from the browser's cache or not) the form works again.
            page.go_back()
            page.wait_for_load_state()
            assert button.is_enabled()
        finally:
            browser.close()


# --------------------------------------------------------------------------- 3. marks

STACKED = "a" + "\u0301" * 90
MARKS = "Use at most 5 accents or marks on one letter."


@pytest.mark.parametrize("field", ["name", "title", "parliament", "party", "comment"])
@pytest.mark.parametrize(
    "value",
    [
        STACKED,
        "Maria Santos" + "\u0301" * 6,
        "Ana " + "e" + "\u20dd" * 6,  # enclosing marks (Me)
        "\u0301" * 6 + "Ana",  # no base character at all
    ],
)
def test_stacked_marks_are_refused(field: str, value: str) -> None:
    with pytest.raises(signing.InvalidEntry) as caught:
        entry(**{field: value})
    assert caught.value.errors == {field: MARKS}


@pytest.mark.parametrize(
    "name",
    [
        unicodedata.normalize("NFD", "Nguy\u1ec5n Th\u1ecb Minh Khai"),  # Vietnamese, 2 marks
        unicodedata.normalize("NFD", "\u1fa8\u03bd\u03bd\u03b1 \u1f08\u03b8\u1fc6\u03bd\u03b1"),
        "\u05e9\u05c1\u05bc\u05b8\u0591\u05dc\u05d5\u05b9\u05dd",  # Hebrew: shin, 4 marks
        "\u0f67\u0fa8\u0fb1\u0f71\u0f74\u0f83 \u0f54\u0f51\u0fa8",  # Tibetan: 5 marks
        "\u0e01\u0e38\u0e49\u0e07 \u0e28\u0e23\u0e35",  # Thai: vowel and tone marks
        "\u0645\u064f\u062d\u064e\u0645\u0651\u064e\u062f",  # Arabic with harakat
        "\u0926\u0947\u0935\u0928\u093e\u0917\u0930\u0940\u0902 \u0915\u093c\u094d",
        "Ana 1\ufe0f\u20e3",  # a keycap emoji: a selector and an enclosing mark
    ],
)
def test_real_scripts_keep_their_marks(name: str) -> None:
    assert entry(name=name, comment=name).name == name


def test_the_marks_are_every_mn_and_me_character() -> None:
    expected = frozenset(
        chr(code) for code in range(0x110000) if unicodedata.category(chr(code)) in ("Mn", "Me")
    )
    assert signing._marks() == expected


def test_stacked_marks_get_a_field_error_in_the_readers_language(
    app: Flask, client: FlaskClient
) -> None:
    make_campaign(app)
    response = client.post(
        f"/c/{SLUG}/sign", data={**GOOD, "name": STACKED}, headers={"Accept-Language": "es"}
    )
    assert response.status_code == 400
    assert "Use 5 acentos o signos como máximo sobre una letra." in response.text
    assert signatures(app) == []


# --------------------------------------------------------------------------- 4. file parts

TEXT_FIELDS = ["name", "title", "parliament", "party", "comment"]


@pytest.mark.parametrize("field", TEXT_FIELDS)
def test_a_file_part_is_not_taken_for_a_sign_form_field(
    app: Flask, client: FlaskClient, field: str
) -> None:
    make_campaign(app)
    data: dict[str, Any] = {**GOOD, field: (io.BytesIO(b"Maria Santos"), "x.txt", "text/plain")}
    response = client.post(f"/c/{SLUG}/sign", data=data, content_type="multipart/form-data")
    assert "FileStorage" not in response.text
    stored = signatures(app)
    assert all("FileStorage" not in repr(vars(s)) for s in stored)
    if field in ("party", "comment"):
        # Optional: the form is read without it, as if it had not been sent.
        assert response.status_code == 303
        assert [getattr(s, field) for s in stored] == [""]
    else:
        assert response.status_code == 400
        assert "This field is required." in response.text
        assert stored == []


def test_a_json_body_is_not_taken_for_the_sign_form(app: Flask, client: FlaskClient) -> None:
    make_campaign(app)
    response = client.post(
        f"/c/{SLUG}/sign",
        data=json.dumps({**GOOD, "name": {"a": 1}}),
        content_type="application/json",
    )
    assert response.status_code == 400
    assert signatures(app) == []


@pytest.mark.parametrize("value", [FileStorage(io.BytesIO(b"x"), "x.txt"), 5, ["Maria"], b"Maria"])
def test_signings_rules_take_text_only(value: object) -> None:
    for field in [*TEXT_FIELDS, "country", "email"]:
        with pytest.raises(signing.InvalidEntry) as caught:
            signing.validate_entry({**GOOD_ENTRY, field: value})  # type: ignore[dict-item]
        assert caught.value.errors == {field: "Enter text."}


GOOD_ENTRY: dict[str, Any] = {**GOOD, "public": True}


def test_the_dashboard_forms_take_no_file_part(
    client: FlaskClient, logged_in: AuthActions, store: Session, campaign: Campaign
) -> None:
    signature = make_signature(store, campaign, "Ann Lee", "ann@parl.example")
    edit = client.post(
        f"/admin/c/kem/signatures/{signature.id}/details",
        data={
            "name": (io.BytesIO(b"Eve"), "x.txt"),
            "title": "MP",
            "parliament": "Senate",
            "country": "FR",
        },
        content_type="multipart/form-data",
    )
    assert edit.status_code == 400 and "FileStorage" not in edit.text
    assert reload(store, signature).name == "Ann Lee"
    add = client.post(
        "/admin/c/kem/signatures/new",
        data={
            "name": (io.BytesIO(b"Eve"), "x.txt"),
            "title": "MP",
            "parliament": "Senate",
            "country": "FR",
            "email": "eve@parl.example",
            "mode": "count_now",
        },
        content_type="multipart/form-data",
    )
    assert add.status_code == 400 and "FileStorage" not in add.text
    store.expire_all()
    assert [s.name for s in store.scalars(select(Signature))] == ["Ann Lee"]


# --------------------------------------------------------------------------- 5. email lengths


def _by_email_validator(address: str) -> bool:
    try:
        validate_email(address, check_deliverability=False, strict=True)
    except EmailNotValidError:
        return False
    return True


def _by_signing(address: str) -> bool:
    signing._checked_domain.cache_clear()
    try:
        first = signing._normalized_email(address, False)
    except EmailNotValidError:
        first = None
    # The second time, the domain's check comes from the cache.
    try:
        second = signing._normalized_email(address, False)
    except EmailNotValidError:
        second = None
    assert first == second
    return first is not None


@pytest.mark.parametrize(
    ("address", "valid"),
    [
        ("x" * 64 + "@example.org", True),
        ("x" * 65 + "@example.org", False),
        ('"' + "x" * 65 + '"@example.org', False),
        ("\u00e9" * 65 + "@example.org", False),
        ("a@" + "x" * 63 + ".org", True),
        ("a@" + "x" * 64 + ".org", False),
        ("x" * 64 + "@" + ".".join(["y" * 63] * 2) + "." + "z" * 57 + ".org", True),  # 254
        ("x" * 64 + "@" + ".".join(["y" * 63] * 2) + "." + "z" * 58 + ".org", False),  # 255
    ],
)
def test_email_lengths_are_email_validators(address: str, valid: bool) -> None:
    assert _by_email_validator(address) is valid
    assert _by_signing(address) is valid


def test_a_65_character_local_part_gets_a_clear_error() -> None:
    with pytest.raises(signing.InvalidEntry) as caught:
        entry(email="x" * 65 + "@example.org")
    assert caught.value.errors == {"email": "Use at most 64 characters before the @."}


_LABEL = st.integers(min_value=1, max_value=66).map(lambda n: "d" * n)


@given(
    local=st.integers(min_value=1, max_value=70).flatmap(
        lambda n: st.text(alphabet=st.sampled_from(list("ab.+Z9-\u00e9")), min_size=n, max_size=n)
    ),
    labels=st.lists(_LABEL, min_size=1, max_size=5),
    tld=st.sampled_from(["org", "de", "m\u00fcnchen", "c1", "x"]),
)
@example(local="a" * 65, labels=["example"], tld="org")
@example(local="a" * 64, labels=["d" * 63, "d" * 63, "d" * 58], tld="org")
@settings(max_examples=400, deadline=None)
def test_signings_fast_path_agrees_with_email_validator_on_lengths(
    local: str, labels: list[str], tld: str
) -> None:
    address = f"{local}@{'.'.join(labels)}.{tld}"
    assert _by_signing(address) is _by_email_validator(address)


# --------------------------------------------------------------------------- 6. a letter

LETTERLESS = "Enter a name with at least one letter."


@pytest.mark.parametrize(
    "name", [".", "\U0001f600\U0001f600", "123", "- -", "\u0301\u0301", "\u2460"]
)
def test_a_name_needs_a_letter(name: str) -> None:
    with pytest.raises(signing.InvalidEntry) as caught:
        entry(name=name)
    assert caught.value.errors == {"name": LETTERLESS}


@pytest.mark.parametrize(
    "name", ["\u674e", "X \u00c6 A-12", "\u0905\u0928\u0941", "O'Brien", "\U0001f600 Ana", "\u01c5"]
)
def test_a_name_of_any_script_has_its_letter(name: str) -> None:
    assert entry(name=name).name == name


def test_a_name_without_a_letter_gets_a_field_error_in_the_readers_language(
    app: Flask, client: FlaskClient
) -> None:
    make_campaign(app)
    response = client.post(
        f"/c/{SLUG}/sign", data={**GOOD, "name": "."}, headers={"Accept-Language": "fr"}
    )
    assert response.status_code == 400
    assert "Saisissez un nom avec au moins une lettre." in response.text
    assert signatures(app) == []
