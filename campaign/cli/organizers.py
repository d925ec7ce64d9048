"""`campaign` commands: organizers."""

from __future__ import annotations

import sys

import click
from email_validator import EmailNotValidError, validate_email
from flask import Flask, current_app
from flask.cli import with_appcontext
from sqlalchemy import select

from campaign import audit, auth
from campaign.cli import errors
from campaign.db import reading, session_scope, utcnow
from campaign.mail import summary
from campaign.models import Organizer


def _stdin_is_terminal() -> bool:
    """Whether a person is typing (so the password is prompted, not read)."""
    return sys.stdin.isatty()


_NOT_UTF8 = "the password is not UTF-8 text"


def _read_password() -> str:
    """The first line of stdin when it is piped, else asked twice without echo."""
    if not _stdin_is_terminal():
        try:
            line = sys.stdin.readline()
        except UnicodeDecodeError:
            raise click.ClickException(_NOT_UTF8) from None
        if not line:
            raise click.ClickException("no password on standard input")
        password = line.rstrip("\r\n")
    else:
        password = str(click.prompt("Password", hide_input=True, confirmation_prompt=True))
    try:
        # Under a C locale stdin keeps the bytes that are not UTF-8 as surrogates.
        password.encode("utf-8")
    except UnicodeEncodeError:
        raise click.ClickException(_NOT_UTF8) from None
    return password


@click.command("create-organizer")
@click.argument("email")
@click.option(
    "--name",
    default="",
    help="The organizer's name, shown in the audit trail.",
    callback=errors.one_line_value("--name"),
)
@click.option("--admin", "is_admin", is_flag=True, help="Sees every campaign; manages organizers.")
@with_appcontext
def create_organizer(email: str, name: str, is_admin: bool) -> None:
    """Create an organizer; the password comes from stdin (first line) or a prompt."""
    try:
        address = validate_email(email, check_deliverability=False).normalized
    except EmailNotValidError as error:
        raise click.ClickException(f"invalid email address {email!r}: {error}") from None
    password = _read_password()
    try:
        auth.check_password_strength(password)
        with session_scope(current_app) as db:
            organizer = auth.create_organizer(db, address, password, name=name, is_admin=is_admin)
            audit.record(
                db,
                None,
                "organizer.create",
                after={"organizer": organizer.email, "is_admin": is_admin, "via": "cli"},
            )
            created = organizer.email
    except auth.AccountError as error:
        raise click.ClickException(str(error)) from None
    click.echo(f"organizer {created} created{' (admin)' if is_admin else ''}")


@click.command("set-password")
@click.argument("email")
@with_appcontext
def set_password(email: str) -> None:
    """Give an organizer a new password (stdin's first line, or a prompt); ends their sessions."""
    address = auth.normalize_email(email)
    # Asked before the password, and in a read-only transaction: nobody types into a lock.
    with reading(), session_scope(current_app) as db:
        known = auth.find_organizer(db, address) is not None
    if not known:
        raise click.ClickException(f"no organizer has the address {address}")
    password = _read_password()
    try:
        auth.check_password_strength(password)
        with session_scope(current_app) as db:
            organizer = auth.find_organizer(db, address)
            if organizer is None:
                raise click.ClickException(f"no organizer has the address {address}")
            auth.set_password(db, None, organizer, password)
    except auth.AccountError as error:
        raise click.ClickException(str(error)) from None
    click.echo(f"password of {address} set; every session of theirs is ended")


# What `send-digest` says of each organizer, by digest.Outcome.
DIGEST_LINES = {
    "sent": "sent",
    "nothing": "nothing to say",
    "done": "already sent today",
    "not_wanted": "not wanted",
    "inactive": "deactivated",
}


@click.command("send-digest")
@click.option("--dry-run", is_flag=True, help="Print each summary's text and send nothing.")
@click.option("--organizer", "email", default=None, help="Only this organizer (their address).")
@with_appcontext
def send_digest(dry_run: bool, email: str | None) -> None:
    """Mail today's daily summary to each organizer who asked for it (at most once a day)."""
    app: Flask = current_app._get_current_object()  # type: ignore[attr-defined]
    with reading(), session_scope(app) as db:
        if email is None:
            ids = list(db.scalars(select(Organizer.id).order_by(Organizer.id)))
        else:
            organizer = auth.find_organizer(db, auth.normalize_email(email))
            if organizer is None:
                raise click.ClickException(f"no organizer has the address {email}")
            ids = [organizer.id]
    try:
        results = summary.send_digests(app, utcnow(), dry_run=dry_run, organizer_ids=ids)
    except summary.DigestError as error:
        raise click.ClickException(str(error)) from None
    for result in results:
        if dry_run and result.mail is not None:
            click.echo(f"To: {result.email}\nSubject: {result.mail.subject}\n\n{result.mail.text}")
        line = DIGEST_LINES[result.outcome]
        if dry_run and result.outcome == "sent":
            line = "would be sent (dry run: nothing sent)"
        click.echo(f"{result.email}: {line}")


commands: list[click.Command] = [create_organizer, set_password, send_digest]
