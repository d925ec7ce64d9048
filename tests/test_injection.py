"""A hostile signer's text comes back escaped on every page that shows it."""

from __future__ import annotations

import pytest
from admin_helpers import AuthActions, auth, make_campaign, make_organizer, store
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

__all__ = ["auth", "store"]

# A right-to-left mark is allowed (direction overrides are refused: tests/test_signing.py).
HOSTILE_NAME = "Ana \"Bobby\" <script>alert('x')</script> az\u200feb"
HOSTILE_PARTY = "<img src=x onerror=alert(1)>"


@pytest.fixture
def hostile(client: FlaskClient, store: Session, auth: AuthActions) -> None:
    """An open letter signed through the form by someone with markup in every field."""
    campaign = make_campaign(store, "free-her", require_confirmation=False)
    make_organizer(store, "admin@example.org", admin=True)
    response = client.post(
        "/c/free-her/sign",
        data={
            "name": HOSTILE_NAME,
            "title": "MP <b>",
            "parliament": "Assembly \"'<>",
            "party": HOSTILE_PARTY,
            "country": "FR",
            "email": "ana@example.org",
            "comment": "<script>alert(2)</script>",
            "public": "y",
        },
    )
    assert response.status_code == 303, response.get_data(as_text=True)[:500]
    assert campaign.id
    auth.login("admin@example.org")


@pytest.mark.usefixtures("hostile")
@pytest.mark.parametrize(
    "path",
    [
        "/c/free-her/signatories",
        "/admin/c/free-her/signatures",
        "/admin/c/free-her/signatures/1",
        "/admin/c/free-her/letter",
    ],
)
def test_markup_typed_by_a_signer_is_shown_as_text(client: FlaskClient, path: str) -> None:
    page = client.get(path).get_data(as_text=True)
    assert "<script>alert" not in page
    assert "<img src=x" not in page
    assert "&lt;script&gt;alert(" in page
    # Bidi marks are text: kept, and isolated with the name they are in (<bdi>).
    assert "az\u200feb</bdi>" in page
