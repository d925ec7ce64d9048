"""The `campaign` command: a Flask CLI group with this project's commands.

Each command fails with one clear line and a non-zero exit on bad input: click's
usage errors for arguments, ``click.ClickException`` for everything else.
"""

from __future__ import annotations

import click
from flask import Flask, current_app
from flask.cli import FlaskGroup, with_appcontext

from campaign import db


@click.group("db")
def db_group() -> None:
    """Database schema."""


@db_group.command("upgrade")
@click.option("--revision", default="head", show_default=True, help="Target revision.")
def db_upgrade(revision: str) -> None:
    """Apply migrations (idempotent)."""
    url = db.database_url(current_app)
    try:
        db.upgrade(url, revision)
    except Exception as error:
        raise click.ClickException(f"could not upgrade the database: {error}") from None
    click.echo(f"database is at revision {revision}: {db.describe_url(url)}")


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535))
@click.option("--workers", default=2, show_default=True, type=click.IntRange(1, 64))
@click.option("--threads", default=4, show_default=True, type=click.IntRange(1, 64))
@with_appcontext
def serve(host: str, port: int, workers: int, threads: int) -> None:
    """Serve the app with gunicorn (production)."""
    from campaign.server import run_gunicorn

    config = current_app.config
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

    app.cli.add_command(db_group)
    app.cli.add_command(serve)
    for module in (campaigns, organizers, transfer, privacy):
        for command in module.commands:
            app.cli.add_command(command)


def main() -> None:
    """Entry point of the `campaign` console script."""
    from campaign import create_app

    FlaskGroup(create_app=create_app, help="Open-letter signature campaigns.")()
