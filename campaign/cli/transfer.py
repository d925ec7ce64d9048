"""`campaign` commands: export-csv and import-csv (the dashboard's export and import)."""

from __future__ import annotations

import errno
import os
import stat
import sys
import tempfile
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import BinaryIO

import click
from flask import current_app
from flask.cli import with_appcontext
from sqlalchemy.orm import Session

from campaign import audit, export, imports, mail, tally
from campaign.campaigns import get_by_slug
from campaign.cli import errors
from campaign.db import new_session
from campaign.models import Campaign

# Symbolic links followed to find where the export goes, as the kernel's own limit.
_MAX_LINKS = 40


def _campaign(db: Session, slug: str) -> Campaign:
    """The campaign with this slug, or one clear line (a database error's too: cli.errors)."""
    campaign = get_by_slug(db, slug)
    if campaign is None:
        raise click.ClickException(f"no campaign with the slug {slug!r}")
    return campaign


def _replaceable(path: str) -> str | None:
    """The file to write by rename: path, or the file its symbolic links lead to, when that is
    a regular file or nothing yet; None when it is anything else (a FIFO, a device, a
    directory) or is reached through /proc (/dev/stdout, /dev/fd/N: an open descriptor,
    whose pipe or file the shell opened), which is written in place, as a shell's ``>`` does.
    """
    current = os.path.abspath(path)
    for _ in range(_MAX_LINKS):
        directory = os.path.realpath(os.path.dirname(current))
        if directory == "/proc" or directory.startswith("/proc/"):
            return None
        current = os.path.join(directory, os.path.basename(current))
        if not os.path.islink(current):
            break
        current = os.path.join(directory, os.readlink(current))
    else:
        return None  # a loop of links: opening it says so
    try:
        mode = os.stat(current).st_mode
    except FileNotFoundError:
        return current
    except OSError:
        return None
    return current if stat.S_ISREG(mode) else None


def _write_file(path: str, pieces: Iterator[str]) -> None:
    """Write the CSV to path: a regular file (or a new one) beside it first, then renamed over
    it, never half-written; a FIFO, a device or a /dev/fd/N is written to, never replaced.
    """
    target = _replaceable(path)
    if target is None:
        _write_in_place(path, pieces)
        return
    try:
        handle = tempfile.NamedTemporaryFile(  # noqa: SIM115 - renamed or removed below
            "w",
            encoding="utf-8",
            newline="",
            dir=os.path.dirname(target),
            suffix=".partial",
            delete=False,
        )
    except OSError as error:
        raise click.ClickException(f"cannot write {path}: {error.strerror}") from None
    try:
        with handle:
            for piece in pieces:
                handle.write(piece)
        os.replace(handle.name, target)
    except OSError as error:
        os.unlink(handle.name)
        raise click.ClickException(f"cannot write {path}: {error.strerror}") from None
    except BaseException:
        os.unlink(handle.name)
        raise


def _write_in_place(path: str, pieces: Iterator[str]) -> None:
    """Write to what path names as it is: no file is created, and a file reached through
    /dev/fd/N is appended to (the shell opened it, truncating or not: ``>`` or ``>>``).
    """
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND)
        with open(fd, "w", encoding="utf-8", newline="") as handle:
            for piece in pieces:
                handle.write(piece)
    except OSError as error:
        raise click.ClickException(f"cannot write {path}: {error.strerror}") from None


@click.command("export-csv")
@click.argument("slug")
@click.option(
    "--output", "-o", help="Write to this file instead of standard output (- is standard output)."
)
@click.option(
    "--status",
    type=click.Choice(["counted", "all"]),
    default="all",
    show_default=True,
    help="counted: only the signatures the public numbers count.",
)
@click.option("--bom", is_flag=True, help="Start with a UTF-8 byte order mark (for Excel).")
@with_appcontext
def export_csv(slug: str, output: str | None, status: str, bom: bool) -> None:
    """Write a campaign's signatures as CSV (the dashboard export's columns)."""
    db = new_session(current_app)
    try:
        campaign = _campaign(db, slug)
        signature_filter = export.SignatureFilter(status="counted" if status == "counted" else "")
        pieces = export.csv_lines(db, campaign, signature_filter, bom=bom)
        left: errors.OutputError | None = None
        if output is None or output == "-":
            try:
                for piece in pieces:
                    # Bytes: UTF-8 whatever the terminal's locale says.
                    click.echo(piece.encode("utf-8"), nl=False)
            except errors.OutputError as error:
                if error.errno != errno.EPIPE:
                    raise
                # The reader stopped early (`| head`): what it read is a copy all the same.
                left = error
        else:
            _write_file(output, pieces)
            click.echo(f"exported the signatures of {slug} to {output}", err=True)
        # Who took a copy of the signers' personal data (here: whoever runs the server).
        audit.record(
            db,
            None,
            "signatures.export",
            campaign=campaign,
            after={"filter": export.describe(signature_filter), "bom": bom, "via": "cli"},
        )
        db.commit()
    finally:
        db.close()
    if left is not None:
        raise left  # a quiet end (cli.errors.one_line)


STDIN_NAME = "(standard input)"
_COPY_BYTES = 1 << 20


@contextmanager
def _readable_file(file: str, max_bytes: int) -> Iterator[str]:
    """A path the import can read twice (checked whole, then imported): the file itself,
    or, for standard input (-) or a pipe (/dev/stdin), a copy of what it gives.

    The copy stops once the stream has given more than max_bytes: too large to import.
    """
    if file != "-":
        try:
            regular = stat.S_ISREG(os.stat(file).st_mode)
        except OSError:
            regular = True  # let the import say why it cannot be read
        if regular:
            yield file
            return
    with tempfile.TemporaryDirectory(prefix="campaign-import-") as directory:
        copy = os.path.join(directory, "input.csv")
        try:
            source: AbstractContextManager[BinaryIO] = (
                nullcontext(sys.stdin.buffer) if file == "-" else open(file, "rb")  # noqa: SIM115
            )
            with source as stream, open(copy, "wb") as out:
                size = 0
                while chunk := stream.read(_COPY_BYTES):
                    size += len(chunk)
                    if size > max_bytes:
                        raise click.ClickException(
                            f"{file}: files up to {imports.megabytes(max_bytes)} MB can be "
                            "imported; this one is larger."
                        )
                    out.write(chunk)
        except OSError as error:
            raise click.ClickException(
                f"{file}: The file cannot be read: {error.strerror}."
            ) from None
        yield copy


def _counts(report: imports.ImportReport) -> None:
    """The rows that were not imported as they are, then the counts, one per line."""
    for row in report.rows:
        if row.outcome == imports.INVALID:
            reasons = "; ".join(f"{column}: {message}" for column, message in row.errors.items())
            click.echo(f"line {row.line}: invalid: {reasons}")
        elif row.outcome == imports.DUPLICATE or row.held:
            click.echo(f"line {row.line}: {row.outcome}: {row.reason % row.values}")
    if report.total > len(report.rows):
        click.echo(f"(details for the first {len(report.rows)} of {report.total} rows)")
    click.echo(f"imported: {report.imported}")
    click.echo(f"duplicate: {report.duplicate}")
    click.echo(f"invalid: {report.invalid}")
    click.echo(f"held: {report.held}")


@click.command("import-csv")
@click.argument("slug")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--dry-run", is_flag=True, help="Show what the import would do; store nothing.")
@click.option("--count-now", is_flag=True, help="Count the new signatures at once (the default).")
@click.option(
    "--send-confirmation",
    is_flag=True,
    help="Mail each signer a confirmation link instead (not with --count-now).",
)
@with_appcontext
def import_csv(
    slug: str, file: str, dry_run: bool, count_now: bool, send_confirmation: bool
) -> None:
    """Import signatures from a CSV file with the export's columns (FILE - is standard input)."""
    if count_now and send_confirmation:
        raise errors.BadValue("give --count-now or --send-confirmation, not both")
    count_now = not send_confirmation
    app = current_app
    db = new_session(app)
    try:
        campaign = _campaign(db, slug)
        mails = not count_now and not dry_run and tally.hold_rule(db, campaign)
        base_url = app.config.get("BASE_URL")
        if mails and not base_url:
            raise click.ClickException(
                "set CAMPAIGN_BASE_URL to send confirmation mail from the command line "
                "(the links in the mail need the site's address)"
            )
        max_bytes = int(app.config["IMPORT_MAX_BYTES"])
        try:
            with _readable_file(file, max_bytes) as path:
                layout = imports.check_file(path, max_bytes=max_bytes)
                if dry_run:
                    report = imports.preview(
                        db, campaign, path, layout, count_now=count_now, parallel=True
                    )
                else:
                    # Outside a request, the links in the mail start at BASE_URL.
                    report = imports.apply(
                        db,
                        campaign,
                        path,
                        layout,
                        organizer=None,
                        count_now=count_now,
                        on_created=mail.queue_confirmations if mails else None,
                        source_name=STDIN_NAME if file == "-" else os.path.basename(file),
                        parallel=True,
                    )
                    db.commit()
        except imports.ImportRefused as error:
            raise click.ClickException(f"{file}: {error}") from None
    finally:
        db.rollback()
        db.close()
    _counts(report)
    if dry_run:
        click.echo("dry run: nothing was stored")
    elif mails:
        click.echo(f"confirmation mail queued for {report.imported} signers")


commands: list[click.Command] = [export_csv, import_csv]
