"""`campaign` commands: organizers."""

from __future__ import annotations

import sys

import click
from email_validator import EmailNotValidError, validate_email
from flask import current_app
from flask.cli import with_appcontext

from campaign import audit, auth
from campaign.db import reading, session_scope


def _stdin_is_terminal() -> bool:
    """Whether a person is typing (so the password is prompted, not read)."""
    return sys.stdin.isatty()


def _read_password() -> str:
    """The first line of stdin when it is piped, else asked twice without echo."""
    if not _stdin_is_terminal():
        line = sys.stdin.readline()
        if not line:
            raise click.ClickException("no password on standard input")
        return line.rstrip("\r\n")
    return str(click.prompt("Password", hide_input=True, confirmation_prompt=True))


@click.command("create-organizer")
@click.argument("email")
@click.option("--name", default="", help="The organizer's name, shown in the audit trail.")
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


commands: list[click.Command] = [create_organizer, set_password]
