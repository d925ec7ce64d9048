"""The baseline of benchmark 1: a bare Flask app that inserts one row per POST.

It answers the same URLs as the real app so the same load generator drives both:
``GET /c/<slug>`` gives a form with a csrf_token field and a cookie (nothing checks
them), ``POST /c/<slug>/sign`` inserts the posted name, email and country in one
transaction and answers 303 to the thanks page. No validation, no CSRF check, no
deduplication, no mail, no counters: what is left is Flask, gunicorn and one INSERT.

With ``--forms`` it is the *forms floor*: the same app plus
Flask-WTF's CSRF check (the token kept in Flask's signed session cookie) and a WTForms
form with the signing form's nine fields whose address is checked by email-validator,
still with no database read, no deduplication, no mail and no counters. The design card
asks for those libraries, so no version of the real app can cost less than the floor;
benchmark 1 reports it beside the bare app to show where the ratio's ceiling is.

Served by ``python -m bench.bare_app --port P`` through campaign.server's own
gunicorn runner, so the server settings are exactly those of ``campaign serve``.
The database comes from ``BENCH_BARE_DATABASE_URL``: ``sqlite:///<path>`` (WAL,
``synchronous=NORMAL``, ``BEGIN IMMEDIATE``: the settings of campaign.db) or a
``postgresql://`` URL (psycopg, autocommit off).
"""

from __future__ import annotations

import argparse
import os
import secrets
import sqlite3
import threading
from typing import Any

from flask import Flask, Response, redirect, request

SCHEMA = (
    "CREATE TABLE IF NOT EXISTS bare_signature ("
    " id {pk}, name VARCHAR(200) NOT NULL, email VARCHAR(254) NOT NULL,"
    " country_code VARCHAR(2) NOT NULL, signed_at VARCHAR(40) NOT NULL)"
)

FORM = """<!doctype html><html><head><meta charset="utf-8"><title>Sign</title></head><body>
<form method="post" action="/c/{slug}/sign">
<input type="hidden" name="csrf_token" value="{token}">
<input name="name"><input name="email"><input name="country"><button>Sign</button>
</form></body></html>"""


def database_url() -> str:
    """The bare app's database URL from the environment."""
    return os.environ.get("BENCH_BARE_DATABASE_URL", "sqlite:///bare.sqlite3")


def _sqlite_path(url: str) -> str:
    return url.removeprefix("sqlite:///")


def _postgres_conninfo(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


def connect(url: str) -> Any:
    """A DB-API connection with the same settings the real app uses for its backend."""
    if url.startswith("sqlite:"):
        conn = sqlite3.connect(_sqlite_path(url), timeout=30, check_same_thread=False)
        conn.isolation_level = None  # explicit BEGIN IMMEDIATE, as campaign.db does
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA busy_timeout=30000")
        conn.execute("PRAGMA synchronous=NORMAL")
        return conn
    import psycopg

    return psycopg.connect(_postgres_conninfo(url))


def create_schema(url: str) -> None:
    """Create the one table (idempotent)."""
    conn = connect(url)
    try:
        if url.startswith("sqlite:"):
            conn.execute(SCHEMA.format(pk="INTEGER PRIMARY KEY"))
        else:
            conn.execute(SCHEMA.format(pk="SERIAL PRIMARY KEY"))
            conn.commit()
    finally:
        conn.close()


def count_rows(url: str) -> int:
    """How many rows the bare app has inserted."""
    conn = connect(url)
    try:
        row = conn.execute("SELECT count(*) FROM bare_signature").fetchone()
        return int(row[0])
    finally:
        conn.close()


def _floor_form_class() -> type[Any]:
    """A FlaskForm with the signing form's fields; only the address is really checked."""
    from email_validator import EmailNotValidError, validate_email
    from flask_wtf import FlaskForm
    from wtforms import BooleanField, EmailField, SelectField, StringField, TextAreaField
    from wtforms.validators import DataRequired, ValidationError

    def deliverable_syntax(form: Any, field: Any) -> None:
        try:
            validate_email(field.data or "", check_deliverability=False)
        except EmailNotValidError as error:
            raise ValidationError(str(error)) from None

    class FloorForm(FlaskForm):  # type: ignore[misc]
        name = StringField(validators=[DataRequired()])
        title = StringField()
        parliament = StringField()
        party = StringField()
        country = SelectField(choices=[], validate_choice=False)
        email = EmailField(validators=[deliverable_syntax])
        comment = TextAreaField()
        public = BooleanField()
        website = StringField()

    return FloorForm


def create_bare_app(
    url: str | None = None, *, forms: bool = False, secret: str | None = None
) -> Flask:
    """The bare app on the given database URL (default: the environment's).

    forms makes it the forms floor (see the module's doc), its sessions signed with secret
    (default: a random one; every worker of one server must be given the same).
    """
    url = url or database_url()
    app = Flask(__name__)
    floor_form: type[Any] | None = None
    if forms:
        from flask_wtf.csrf import CSRFProtect

        app.config["SECRET_KEY"] = secret or secrets.token_hex(32)
        CSRFProtect(app)
        floor_form = _floor_form_class()
    local = threading.local()
    is_sqlite = url.startswith("sqlite:")

    def conn() -> Any:
        # One connection per thread, kept: the real app pools its connections too.
        if getattr(local, "conn", None) is None:
            local.conn = connect(url)
        return local.conn

    @app.get("/c/<slug>")
    def form(slug: str) -> Response:
        if floor_form is not None:
            from flask_wtf.csrf import generate_csrf

            # The token goes into Flask's session cookie, checked on every POST.
            return Response(FORM.format(slug=slug, token=generate_csrf()))
        response = Response(FORM.format(slug=slug, token=secrets.token_hex(16)))
        response.set_cookie("session", secrets.token_hex(16), httponly=True)
        return response

    @app.post("/c/<slug>/sign")
    def sign(slug: str) -> Response:
        if floor_form is not None:
            submitted = floor_form()
            if not submitted.validate():
                return Response(repr(submitted.errors), 400)
        values = (
            request.form.get("name", ""),
            request.form.get("email", ""),
            request.form.get("country", ""),
        )
        db = conn()
        if is_sqlite:
            db.execute("BEGIN IMMEDIATE")
            db.execute(
                "INSERT INTO bare_signature (name, email, country_code, signed_at)"
                " VALUES (?, ?, ?, datetime('now'))",
                values,
            )
            db.execute("COMMIT")
        else:
            db.execute(
                "INSERT INTO bare_signature (name, email, country_code, signed_at)"
                " VALUES (%s, %s, %s, now()::text)",
                values,
            )
            db.commit()
        return redirect(f"/c/{slug}/thanks", code=303)

    @app.get("/c/<slug>/thanks")
    def thanks(slug: str) -> str:
        return "Thank you."

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app


def serve(host: str, port: int, workers: int, threads: int, *, forms: bool = False) -> None:
    """Serve the bare app (or the forms floor) with campaign serve's gunicorn settings."""
    from campaign import server

    # Chosen before the workers fork: a cookie signed by one is read by the other.
    secret = secrets.token_hex(32)

    class BareServer(server._Server):  # type: ignore[misc,name-defined]
        def load(self) -> Flask:
            return create_bare_app(forms=forms, secret=secret)

    # run_gunicorn builds server._Server with the options campaign serve uses; swapping the
    # class keeps those options identical without copying them here.
    server._Server = BareServer  # type: ignore[misc]
    server.run_gunicorn(host=host, port=port, workers=workers, threads=threads)


def main() -> None:
    """Command line: create the table, then serve."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument(
        "--forms", action="store_true", help="the forms floor: CSRF and a WTForms form too"
    )
    args = parser.parse_args()
    create_schema(database_url())
    serve(args.host, args.port, args.workers, args.threads, forms=args.forms)


if __name__ == "__main__":
    main()
