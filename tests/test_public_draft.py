"""A draft letter's public pages: a 404 like an unknown slug, a preview for its organizers."""

from __future__ import annotations

import pytest
from admin_helpers import (  # noqa: F401 (fixtures)
    AuthActions,
    auth,
    make_campaign,
    make_organizer,
    make_signature,
    store,
)
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from campaign import signing
from campaign.models import Signature

BANNER = "Draft: only organizers see this page"
PAGES = ("", "/tally", "/tally.json", "/signatories", "/thanks", "/signatories?country=FR")


@pytest.fixture
def draft(store: Session) -> None:  # noqa: F811
    made = make_campaign(store, "secret-plan", state="draft")
    make_signature(store, made, "Ana Lopez", "ana@example.org", public=True)
    make_organizer(store, "alice@example.org", campaigns=(made,))
    make_organizer(store, "root@example.org", admin=True)
    make_organizer(store, "bob@example.org", campaigns=(make_campaign(store, "other"),))


@pytest.mark.parametrize("page", PAGES)
def test_a_drafts_page_is_the_same_404_as_an_unknown_letter(
    client: FlaskClient, draft: None, page: str
) -> None:
    hidden = client.get(f"/c/secret-plan{page}")
    unknown = client.get(f"/c/no-such-letter{page}")
    assert hidden.status_code == unknown.status_code == 404
    # The same page but for the address in its language links.
    assert hidden.get_data(as_text=True).replace("secret-plan", "X") == unknown.get_data(
        as_text=True
    ).replace("no-such-letter", "X")
    assert "Letter secret-plan" not in hidden.get_data(as_text=True)


def test_an_organizer_of_another_letter_gets_the_404_too(
    client: FlaskClient,
    auth: AuthActions,  # noqa: F811
    draft: None,
) -> None:
    assert auth.login("bob@example.org").status_code == 303
    for page in PAGES:
        assert client.get(f"/c/secret-plan{page}").status_code == 404, page


@pytest.mark.parametrize("who", ["alice@example.org", "root@example.org"])
def test_its_organizers_and_admins_preview_every_page_with_a_banner(
    client: FlaskClient,
    auth: AuthActions,  # noqa: F811
    draft: None,
    who: str,
) -> None:
    assert auth.login(who).status_code == 303
    for page in PAGES:
        answer = client.get(f"/c/secret-plan{page}")
        assert answer.status_code == 200, page
        assert answer.headers["Cache-Control"] == "private, no-store", page
        if page != "/tally.json":
            text = answer.get_data(as_text=True)
            assert BANNER in text, page
            assert "Letter secret-plan" in text, page
    assert client.get("/c/secret-plan/tally.json").get_json()["signatures"] == 1
    assert "Ana Lopez" in client.get("/c/secret-plan/signatories").get_data(as_text=True)
    # Still a draft to the organizer: no form to sign, no picture for link previews.
    letter = client.get("/c/secret-plan").get_data(as_text=True)
    assert 'name="email"' not in letter
    assert "This letter is a draft: it is not open for signing yet." in letter
    assert client.get("/c/secret-plan/share.png").status_code == 404


def test_an_open_letter_shows_no_banner_to_its_organizer(
    client: FlaskClient,
    auth: AuthActions,  # noqa: F811
    store: Session,  # noqa: F811
) -> None:
    made = make_campaign(store, "open-one")
    make_organizer(store, "alice@example.org", campaigns=(made,))
    assert auth.login("alice@example.org").status_code == 303
    answer = client.get("/c/open-one")
    assert answer.status_code == 200 and BANNER not in answer.get_data(as_text=True)
    assert "no-store" not in answer.headers.get("Cache-Control", "")


def test_signing_a_draft_is_still_a_409_that_shows_not_its_text(
    app: Flask,
    client: FlaskClient,
    draft: None,
    store: Session,  # noqa: F811
) -> None:
    form = {
        "name": "Maria Santos",
        "title": "MP",
        "parliament": "House",
        "country": "PH",
        "email": "maria@example.org",
    }
    for data in (form, {**form, "email": "not an address"}):
        refused = client.post("/c/secret-plan/sign", data=data)
        assert refused.status_code == 409
        text = refused.get_data(as_text=True)
        assert "This letter is a draft: it is not open for signing yet." in text
        assert "Letter secret-plan" not in text and "Release him" not in text
    assert store.scalar(select(func.count()).select_from(Signature)) == 1


def test_a_signers_link_on_a_draft_works_and_a_bad_one_is_the_404(
    app: Flask,
    client: FlaskClient,
    draft: None,
    store: Session,  # noqa: F811
) -> None:
    # Organizers may add a signature to a draft; its mail's links name it, so they work.
    signature_id = store.scalar(select(Signature.id))
    assert signature_id is not None
    token = signing.make_token(str(app.config["SECRET_KEY"]), signature_id, "withdraw")
    page = client.get(f"/c/secret-plan/withdraw/{token}")
    assert page.status_code == 200
    assert "Withdraw my signature" in page.get_data(as_text=True)
    assert BANNER not in page.get_data(as_text=True)
    forged = signing.make_token("another-secret", signature_id, "withdraw")
    for path in (f"/c/secret-plan/withdraw/{forged}", f"/c/secret-plan/confirm/{token}"):
        hidden = client.get(path)
        unknown = client.get(path.replace("secret-plan", "nope"))
        assert hidden.status_code == unknown.status_code == 404
        assert hidden.get_data(as_text=True).replace("secret-plan", "nope") == unknown.get_data(
            as_text=True
        )
