"""Sign in the browser's place, get the mail from a real SMTP server, follow its links."""

from __future__ import annotations

import datetime as dt
import re
from email.message import EmailMessage
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from test_mail import SmtpServer, outbox, text_and_html

from campaign import mail
from campaign.campaigns import create_campaign
from campaign.db import new_session, utcnow
from campaign.models import Signature

SLUG = "free-the-press"
FORM = {
    "name": "Hon. Ada Lovelace",
    "title": "MP",
    "parliament": "House of Commons",
    "party": "",
    "country": "GB",
    "email": "ada@example.org",
    "comment": "",
    "public": "y",
    "website": "",
}


def open_campaign(app: Flask, *, require_confirmation: bool = True) -> None:
    """An open campaign, requiring confirmation by email unless told."""
    with app.app_context(), new_session(app) as db:
        create_campaign(
            db,
            slug=SLUG,
            title="Free the press",
            letter="We ask you.",
            state="open",
            require_confirmation=require_confirmation,
        )
        db.commit()


def sign(client: FlaskClient, **changes: str) -> None:
    response = client.post(f"/c/{SLUG}/sign", data={**FORM, **changes})
    assert response.status_code == 303
    assert response.headers["Location"].endswith(f"/c/{SLUG}/thanks#thank-you")


def counted(client: FlaskClient) -> int:
    response = client.get(f"/c/{SLUG}/tally.json")
    assert response.status_code == 200
    return int(response.get_json()["signatures"])


def statuses(app: Flask) -> list[str]:
    with new_session(app) as db:
        return list(db.scalars(select(Signature.status).order_by(Signature.id)))


def link(message: EmailMessage, purpose: str) -> str:
    """The path of the confirm or withdraw link in a mail's text, checked against its HTML."""
    text, html = text_and_html(message)
    pattern = rf"http://campaign\.test(/c/{SLUG}/{purpose}/[A-Za-z0-9._-]+)"
    [url] = re.findall(pattern, text)
    assert f'href="http://campaign.test{url}"' in html
    return url


def test_sign_then_confirm_from_the_mail(
    app_factory: Any, backend: str, smtp_server: SmtpServer
) -> None:
    app = app_factory(backend, **smtp_server.config())
    open_campaign(app)
    client = app.test_client()
    sign(client)
    assert statuses(app) == ["pending"]
    assert mail.deliver_due(app) == 1

    [envelope] = smtp_server.envelopes
    assert envelope.rcpt_tos == ["ada@example.org"]
    [message] = smtp_server.messages()
    assert message["Subject"] == "Please confirm your signature: Free the press"
    confirm = link(message, "confirm")

    page = client.get(confirm)  # what a mail scanner prefetching the link does
    assert page.status_code == 200
    assert "Hon. Ada Lovelace" in page.get_data(as_text=True)
    assert statuses(app) == ["pending"]
    assert counted(client) == 0

    response = client.post(confirm)
    assert response.status_code == 303
    assert statuses(app) == ["confirmed"]
    assert counted(client) == 1
    assert client.post(confirm).status_code == 303  # a second click changes nothing
    assert counted(client) == 1


def test_withdraw_link_in_the_mail_takes_the_signature_off_the_count(
    app_factory: Any, backend: str, smtp_server: SmtpServer
) -> None:
    app = app_factory(backend, **smtp_server.config())
    open_campaign(app)
    client = app.test_client()
    sign(client)
    mail.deliver_due(app)
    [message] = smtp_server.messages()
    client.post(link(message, "confirm"))
    assert counted(client) == 1

    withdraw = link(message, "withdraw")
    assert client.get(withdraw).status_code == 200
    assert counted(client) == 1
    assert client.post(withdraw).status_code == 303
    assert statuses(app) == ["withdrawn"]
    assert counted(client) == 0


def test_without_confirmation_the_receipt_arrives_and_its_link_withdraws(
    app_factory: Any, backend: str, smtp_server: SmtpServer
) -> None:
    app = app_factory(backend, **smtp_server.config())
    open_campaign(app, require_confirmation=False)
    client = app.test_client()
    sign(client)
    assert statuses(app) == ["confirmed"]
    assert counted(client) == 1
    assert mail.deliver_due(app) == 1

    [envelope] = smtp_server.envelopes
    assert envelope.rcpt_tos == ["ada@example.org"]
    [message] = smtp_server.messages()
    assert message["Subject"] == "Receipt for your signature: Free the press"
    text, _html = text_and_html(message)
    assert "your signature counts now" in text
    assert f"/c/{SLUG}/confirm/" not in text
    withdraw = link(message, "withdraw")

    page = client.get(withdraw)  # what a mail scanner prefetching the link does
    assert page.status_code == 200
    assert "Hon. Ada Lovelace" in page.get_data(as_text=True)
    assert counted(client) == 1
    response = client.post(withdraw)
    assert response.status_code == 303
    assert statuses(app) == ["withdrawn"]
    assert counted(client) == 0
    assert "Your signature has been withdrawn" in client.get(withdraw).get_data(as_text=True)
    assert mail.deliver_due(app) == 0  # withdrawing sends nothing more


def test_signing_again_mails_the_confirm_link_again(
    app_factory: Any, backend: str, smtp_server: SmtpServer
) -> None:
    # Not a double tap (no notice within DUPLICATE_NOTICE_QUIET_SECONDS): a later try.
    app = app_factory(backend, DUPLICATE_NOTICE_QUIET_SECONDS=0, **smtp_server.config())
    open_campaign(app)
    client = app.test_client()
    sign(client)
    sign(client, email="Ada+letters@Example.org")  # the same mailbox
    assert mail.deliver_due(app) == 2
    first, second = smtp_server.messages()
    assert first["Subject"] == "Please confirm your signature: Free the press"
    assert second["Subject"] == "You have already signed: Free the press"
    assert [e.rcpt_tos for e in smtp_server.envelopes] == [["ada@example.org"]] * 2
    again = link(second, "confirm")
    assert client.post(again).status_code == 303
    assert statuses(app) == ["confirmed"]
    assert counted(client) == 1


def test_smtp_down_then_up_the_mail_arrives_and_confirms(app_factory: Any, backend: str) -> None:
    server = SmtpServer()  # nothing listens yet
    app = app_factory(backend, **server.config())
    open_campaign(app)
    client = app.test_client()
    sign(client)
    t0 = utcnow()
    assert mail.deliver_due(app, t0) == 0
    assert mail.deliver_due(app, t0 + dt.timedelta(seconds=6)) == 0
    [row] = outbox(app)
    assert row.attempts == 2 and row.sent_at is None
    assert statuses(app) == ["pending"]  # the signature stays, waiting for its mail

    server.start()
    try:
        assert mail.deliver_due(app, t0 + dt.timedelta(minutes=1)) == 1
        assert mail.deliver_due(app, t0 + dt.timedelta(hours=1)) == 0
        [message] = server.messages()
    finally:
        server.stop()
    assert len(server.envelopes) == 1
    assert client.post(link(message, "confirm")).status_code == 303
    assert counted(client) == 1


def test_invalid_signature_queues_no_mail(app_factory: Any, smtp_server: SmtpServer) -> None:
    app = app_factory(**smtp_server.config())
    open_campaign(app)
    client = app.test_client()
    response = client.post(f"/c/{SLUG}/sign", data={**FORM, "email": "not an address"})
    assert response.status_code in (200, 400)
    assert outbox(app) == []
    assert mail.deliver_due(app) == 0
    assert smtp_server.envelopes == []
