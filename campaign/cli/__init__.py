"""The `campaign` command: a Flask CLI group with this project's commands.

Each command fails with one clear line and a non-zero exit on bad input: click's
usage errors for arguments, ``click.ClickException`` for everything else; a database
error a command does not handle itself is turned into one such line (cli.errors).
"""

from __future__ import annotations

import click
from flask import Flask, current_app
from flask.cli import FlaskGroup, with_appcontext
from sqlalchemy.exc import SQLAlchemyError

from campaign import db
from campaign.cli import errors


@click.group("db")
def db_group() -> None:
    """Database schema."""


@db_group.command("upgrade")
@click.option("--revision", default="head", show_default=True, help="Target revision.")
@with_appcontext
def db_upgrade(revision: str) -> None:
    """Apply migrations (idempotent); never downgrades."""
    from alembic.script import ScriptDirectory
    from alembic.util import CommandError

    url = db.database_url(current_app)
    script = ScriptDirectory.from_config(db.alembic_config(url))
    try:
        target = script.get_revision(revision)
    except (CommandError, AssertionError):
        # Alembic asserts on an empty identifier ('' or '@') where it raises for others.
        target = None
    if target is None:
        known = ", ".join(reversed([r.revision for r in script.walk_revisions()]))
        raise click.ClickException(f"no revision {revision!r}: use head or one of {known}")
    try:
        current, _head = errors.revisions(url)
        order = [r.revision for r in script.walk_revisions()]  # newest first
        if current in order and order.index(current) < order.index(target.revision):
            raise click.ClickException(
                f"the database is at revision {current}, newer than {target.revision}: "
                "`db upgrade` does not downgrade (restore a backup taken before instead)"
            )
        db.upgrade(url, target.revision)
    except SQLAlchemyError as error:
        raise click.ClickException(errors.describe(error, url)) from None
    except click.ClickException:
        raise
    except Exception as error:
        raise click.ClickException(
            f"could not upgrade the database: {errors.first_line(error)}"
        ) from None
    now, _head = errors.revisions(url)
    click.echo(f"database is at revision {now}: {db.describe_url(url)}")


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535))
@click.option("--workers", default=2, show_default=True, type=click.IntRange(1, 64))
@click.option("--threads", default=4, show_default=True, type=click.IntRange(1, 64))
@with_appcontext
def serve(host: str, port: int, workers: int, threads: int) -> None:
    """Serve the app with gunicorn (production); needs CAMPAIGN_BASE_URL."""
    from campaign.server import cannot_listen, run_gunicorn

    config = current_app.config
    if not config.get("BASE_URL"):
        # Links in mail would otherwise follow the request's Host header (campaign/hosts.py).
        raise click.ClickException(
            "set CAMPAIGN_BASE_URL to the site's public address (e.g. https://letters.example.org):"
            " links in mail and on the letter start with it"
        )
    problem = cannot_listen(host, port)
    if problem is not None:
        raise click.ClickException(problem)  # "address already in use": say so once
    storage = str(config.get("RATELIMIT_STORAGE_URI") or "memory://")
    if workers > 1 and config.get("RATELIMIT_ENABLED", True) and storage.startswith("memory://"):
        click.echo(
            "warning: rate limits are kept in each worker's memory, so a client gets up to"
            f" {workers}x each limit; set CAMPAIGN_RATELIMIT_STORAGE_URI=redis://... to share them",
            err=True,
        )
    run_gunicorn(host=host, port=port, workers=workers, threads=threads)


def init_app(app: Flask) -> None:
    """Register the project's commands on the app's CLI."""
    from campaign.cli import campaigns, organizers, privacy, transfer

    for command in db_group.commands.values():
        errors.one_line(command)
    app.cli.add_command(db_group)
    app.cli.add_command(serve)
    for module in (campaigns, organizers, transfer, privacy):
        for command in module.commands:
            # A database error a command leaves is one line, not a traceback (cli.errors).
            app.cli.add_command(errors.one_line(command))


def _create_app() -> Flask:
    """The app; a bad configuration value ends the command with one line, exit status 1."""
    from campaign import create_app
    from campaign.config import ConfigError

    try:
        return create_app()
    except ConfigError as error:
        click.echo(f"Error: {error}", err=True)
        # SystemExit, not a ClickException: Flask's CLI prints a traceback for any
        # exception raised while it lists the commands (`campaign --help`).
        raise SystemExit(1) from None


def main() -> None:
    """Entry point of the `campaign` console script."""
    group = FlaskGroup(create_app=_create_app, help="Open-letter signature campaigns.")
    try:
        # Our commands say so themselves (errors.one_line); this is for --help and Flask's.
        with errors.guarded_stdout():
            group.main()
    except errors.OutputError as error:
        errors.output_failure(error).show()
        raise SystemExit(1) from None
