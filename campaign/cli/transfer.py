"""`campaign` commands: export-csv and import-csv."""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Iterator

import click
from flask import current_app
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from campaign import export
from campaign.campaigns import get_by_slug
from campaign.db import new_session
from campaign.models import Campaign


def _campaign(db: Session, slug: str) -> Campaign:
    """The campaign with this slug, or one clear line."""
    try:
        campaign = get_by_slug(db, slug)
    except DBAPIError as error:
        raise click.ClickException(
            f"the database is not ready ({type(error.orig).__name__}); "
            "run `campaign db upgrade` first"
        ) from None
    if campaign is None:
        raise click.ClickException(f"no campaign with the slug {slug!r}")
    return campaign


def _write_file(path: str, pieces: Iterator[str]) -> None:
    """Write the CSV beside its destination, then rename: never a half-written file."""
    directory = os.path.dirname(os.path.abspath(path))
    try:
        handle = tempfile.NamedTemporaryFile(  # noqa: SIM115 - renamed or removed below
            "w", encoding="utf-8", newline="", dir=directory, suffix=".partial", delete=False
        )
    except OSError as error:
        raise click.ClickException(f"cannot write {path}: {error.strerror}") from None
    try:
        with handle:
            for piece in pieces:
                handle.write(piece)
        os.replace(handle.name, path)
    except OSError as error:
        os.unlink(handle.name)
        raise click.ClickException(f"cannot write {path}: {error.strerror}") from None
    except BaseException:
        os.unlink(handle.name)
        raise


@click.command("export-csv")
@click.argument("slug")
@click.option("--output", "-o", help="Write to this file instead of standard output.")
@click.option(
    "--status",
    type=click.Choice(["counted", "all"]),
    default="all",
    show_default=True,
    help="counted: only the signatures the public numbers count.",
)
@click.option("--bom", is_flag=True, help="Start with a UTF-8 byte order mark (for Excel).")
def export_csv(slug: str, output: str | None, status: str, bom: bool) -> None:
    """Write a campaign's signatures as CSV (the dashboard export's columns)."""
    db = new_session(current_app)
    try:
        campaign = _campaign(db, slug)
        signature_filter = export.SignatureFilter(status="counted" if status == "counted" else "")
        pieces = export.csv_lines(db, campaign, signature_filter, bom=bom)
        if output is None:
            try:
                for piece in pieces:
                    # Bytes: UTF-8 whatever the terminal's locale says.
                    click.echo(piece.encode("utf-8"), nl=False)
            except BrokenPipeError:
                # The reader stopped early (`| head`): not an error of the export; point
                # stdout at /dev/null so the interpreter's final flush fails no more.
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        else:
            _write_file(output, pieces)
            click.echo(f"exported the signatures of {slug} to {output}", err=True)
    finally:
        db.close()


commands: list[click.Command] = [export_csv]
