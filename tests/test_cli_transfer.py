"""`campaign export-csv` and `campaign import-csv`: output, counts, and one line on bad input."""

from __future__ import annotations

import json
import os
import stat
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from data_helpers import counted_by_country, make_campaign, sign
from flask import Flask
from flask.testing import FlaskCliRunner
from sqlalchemy import func, select

from campaign import mail
from campaign.cli import transfer
from campaign.db import new_session
from campaign.models import AuditEntry, OutboxMessage, Signature

HEADER = (
    "id,signed_at,confirmed_at,status,counted,verified,name,title,parliament,party,"
    "country_code,country,continent_code,continent,email,public,comment,source\r\n"
)
PAPER = (
    "name,title,parliament,party,country_code,email,public\r\n"
    "Anna Müller,MP,Bundestag,Greens,DE,anna@example.org,yes\r\n"
    "Bob Smith,Senator,Senate,,US,bob@example.org,no\r\n"
    "Bad Row,MP,Somewhere,,ZZ,anna@example,no\r\n"
    "Anna Again,MP,Bundestag,,DE,ANNA+x@example.org,\r\n"
    "Ingrid Existing,MP,Storting,,NO,ingrid.other@example.org,yes\r\n"
)


@pytest.fixture
def letter(app: Flask) -> Flask:
    """A letter with one counted and one pending signer."""
    db = new_session(app)
    campaign = make_campaign(db)
    sign(db, campaign, "Ingrid Existing", "ingrid@example.org", country="NO", comment="=2+2")
    sign(db, campaign, "Pat Pending", "pat@example.org", confirmed=False)
    db.close()
    return app


def _signatures(app: Flask) -> int:
    db = new_session(app)
    try:
        return int(db.scalar(select(func.count()).select_from(Signature)) or 0)
    finally:
        db.close()


def test_export_csv_writes_the_dashboards_csv_to_stdout(
    letter: Flask, runner: FlaskCliRunner
) -> None:
    result = runner.invoke(args=["export-csv", "release"])
    counted = runner.invoke(args=["export-csv", "release", "--status", "counted"])

    assert result.exit_code == 0, result.output
    text = result.stdout_bytes.decode("utf-8")
    assert text.startswith(HEADER)
    assert text.count("\r\n") == 3
    assert ",Ingrid Existing,MP,National Assembly,Greens,NO,Norway,EU,Europe," in text
    assert ",'=2+2,form\r\n" in text
    assert "Pat Pending" in text
    assert counted.exit_code == 0
    assert "Pat Pending" not in counted.stdout
    db = new_session(letter)
    entries = db.scalars(select(AuditEntry.after).where(AuditEntry.action == "signatures.export"))
    assert [json.loads(after) for after in entries] == [
        {"bom": False, "filter": {}, "via": "cli"},
        {"bom": False, "filter": {"status": "counted"}, "via": "cli"},
    ]
    db.close()
    assert counted.stdout_bytes.count(b"\r\n") == 2


def test_export_csv_to_a_file(letter: Flask, runner: FlaskCliRunner, tmp_path: Path) -> None:
    target = tmp_path / "out.csv"
    result = runner.invoke(args=["export-csv", "release", "--output", str(target), "--bom"])

    assert result.exit_code == 0, result.output
    assert target.read_bytes().startswith(b"\xef\xbb\xbf" + HEADER.encode())
    assert f"exported the signatures of release to {target}" in result.stderr
    assert result.stdout == ""
    assert not list(tmp_path.glob("*.partial"))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["export-csv", "nope"], "Error: no campaign with the slug 'nope'"),
        (
            ["export-csv", "release", "--output", "/nonexistent/dir/x.csv"],
            "Error: cannot write /nonexistent/dir/x.csv: No such file or directory",
        ),
        (["export-csv", "release", "--status", "pending"], "Invalid value for '--status'"),
    ],
)
def test_export_csv_errors_are_one_line(
    letter: Flask, runner: FlaskCliRunner, args: list[str], message: str
) -> None:
    result = runner.invoke(args=args)
    assert result.exit_code != 0
    assert message in result.output
    assert "Traceback" not in result.output


def _paper(tmp_path: Path, text: str = PAPER) -> str:
    path = tmp_path / "paper.csv"
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_import_csv_prints_the_counts_and_imports(
    letter: Flask, runner: FlaskCliRunner, tmp_path: Path
) -> None:
    result = runner.invoke(args=["import-csv", "release", _paper(tmp_path)])

    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        "line 4: invalid: country_code: Not the code of a country signers sign from: use a "
        "country's two-letter ISO code (FR, KH, ID...).; email: This is not a valid email "
        "address.",
        "line 5: duplicate: The same address is on line 2.",
        "line 6: imported: Held for review: same name and country as an earlier signer.",
        "imported: 3",
        "duplicate: 1",
        "invalid: 1",
        "held: 1",
    ]
    assert _signatures(letter) == 5
    assert counted_by_country(letter, "release") == {"NO": 1, "DE": 1, "US": 1}
    db = new_session(letter)
    entry = db.scalars(select(AuditEntry)).one()
    db.close()
    assert entry.action == "signatures.import"
    assert entry.organizer_id is None


def test_import_csv_dry_run_stores_nothing(
    letter: Flask, runner: FlaskCliRunner, tmp_path: Path
) -> None:
    result = runner.invoke(args=["import-csv", "release", _paper(tmp_path), "--dry-run"])

    assert result.exit_code == 0, result.output
    assert "imported: 3" in result.stdout
    assert result.stdout.endswith("dry run: nothing was stored\n")
    assert _signatures(letter) == 2
    assert counted_by_country(letter, "release") == {"NO": 1}


def test_import_csv_can_send_confirmation_mail(
    letter: Flask, runner: FlaskCliRunner, tmp_path: Path
) -> None:
    result = runner.invoke(args=["import-csv", "release", _paper(tmp_path), "--send-confirmation"])

    assert result.exit_code == 0, result.output
    assert "confirmation mail queued for 3 signers" in result.stdout
    db = new_session(letter)
    mails = db.scalars(select(OutboxMessage)).all()
    with letter.app_context():
        texts = [mail.compose(db, m).text for m in mails]
    db.close()
    assert sorted(m.to_addr for m in mails) == [
        "anna@example.org",
        "bob@example.org",
        "ingrid.other@example.org",
    ]
    assert all(m.link_base == "http://campaign.test" for m in mails)
    assert all("http://campaign.test/c/release/confirm/" in text for text in texts)
    assert counted_by_country(letter, "release") == {"NO": 1}


@pytest.mark.parametrize("mode", ["--count-now", "--send-confirmation"])
def test_import_csv_into_a_letter_without_confirmation_mails_no_receipt(
    app: Flask, runner: FlaskCliRunner, tmp_path: Path, mode: str
) -> None:
    # Paper signatures were collected by the organizers, not typed in by the signers: the
    # receipt is for a form signature only, and an import mails no one.
    db = new_session(app)
    make_campaign(db, require_confirmation=False)
    db.close()
    result = runner.invoke(args=["import-csv", "release", _paper(tmp_path), mode])

    assert result.exit_code == 0, result.output
    assert "imported: 3" in result.stdout
    assert "mail queued" not in result.stdout
    assert counted_by_country(app, "release") == {"DE": 1, "US": 1, "NO": 1}
    db = new_session(app)
    assert db.scalars(select(OutboxMessage)).all() == []
    db.close()


def test_import_csv_refuses_both_count_now_and_send_confirmation(
    letter: Flask, runner: FlaskCliRunner, tmp_path: Path
) -> None:
    for flags in (["--count-now", "--send-confirmation"], ["--send-confirmation", "--count-now"]):
        result = runner.invoke(args=["import-csv", "release", _paper(tmp_path), *flags])
        assert result.exit_code == 2
        assert result.output == "Error: give --count-now or --send-confirmation, not both\n"
    assert _signatures(letter) == 2


def test_import_csv_counts_at_once_by_default(
    letter: Flask, runner: FlaskCliRunner, tmp_path: Path
) -> None:
    result = runner.invoke(args=["import-csv", "release", _paper(tmp_path), "--count-now"])
    assert result.exit_code == 0, result.output
    assert counted_by_country(letter, "release") == {"NO": 1, "DE": 1, "US": 1}


def test_sending_confirmation_from_the_cli_needs_the_sites_address(
    app_factory: Callable[..., Flask], tmp_path: Path
) -> None:
    app = app_factory(BASE_URL=None)
    db = new_session(app)
    make_campaign(db)
    db.close()
    result = app.test_cli_runner().invoke(
        args=["import-csv", "release", _paper(tmp_path), "--send-confirmation"]
    )
    assert result.exit_code == 1
    assert "set CAMPAIGN_BASE_URL to send confirmation mail" in result.output
    assert _signatures(app) == 0


def test_import_csv_skips_blank_lines_before_the_header(
    letter: Flask, runner: FlaskCliRunner, tmp_path: Path
) -> None:
    path = tmp_path / "blank.csv"
    path.write_text("\n\nname,title,parliament,country_code,email\n\nBlank Lines,MP,X,FR,bl@x.fr\n")
    result = runner.invoke(args=["import-csv", "release", str(path)])

    assert result.exit_code == 0, result.output
    assert "imported: 1" in result.stdout
    assert counted_by_country(letter, "release") == {"NO": 1, "FR": 1}


def test_import_csv_says_which_row_leaves_a_quotation_mark_open(
    letter: Flask, runner: FlaskCliRunner, tmp_path: Path
) -> None:
    path = tmp_path / "quote.csv"
    path.write_text(PAPER.replace("Bob Smith", '"Bob Smith'), encoding="utf-8")
    result = runner.invoke(args=["import-csv", "release", str(path)])

    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[0] == (
        "line 3: invalid: row: A quotation mark in this row is not closed, so the rest of "
        "the file was read into it. Close or remove it and import the file again."
    )
    assert "imported: 1" in result.stdout and "invalid: 1" in result.stdout


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "The file cannot be read: No such file or directory."),
        (b"name,title\r\nx,y\r\n", "Missing columns: parliament, country_code, email."),
        (
            "name,title,parliament,country_code,email\r\nZoë,MP,P,FR,z@example.org\r\n".encode(
                "latin-1"
            ),
            "The file is not UTF-8 text (line 2).",
        ),
        (b"\x00\x01\x02binary", "This is not a text file"),
        (b"", "The file is empty."),
    ],
)
def test_import_csv_bad_files_are_one_line(
    letter: Flask, runner: FlaskCliRunner, tmp_path: Path, content: bytes | None, message: str
) -> None:
    path = tmp_path / "bad.csv"
    if content is not None:
        path.write_bytes(content)
    result = runner.invoke(args=["import-csv", "release", str(path)])

    assert result.exit_code == 1
    assert result.output == f"Error: {path}: {message}\n" or (
        result.output.startswith(f"Error: {path}: {message}") and result.output.count("\n") == 1
    )
    assert _signatures(letter) == 2


def test_import_csv_unknown_campaign(letter: Flask, runner: FlaskCliRunner, tmp_path: Path) -> None:
    result = runner.invoke(args=["import-csv", "nope", _paper(tmp_path)])
    assert result.exit_code == 1
    assert result.output == "Error: no campaign with the slug 'nope'\n"


def test_import_csv_names_the_row_and_column_of_an_unknown_status(
    letter: Flask, runner: FlaskCliRunner, tmp_path: Path
) -> None:
    path = tmp_path / "status.csv"
    path.write_text(
        "name,title,parliament,country_code,email,status\r\n"
        "Hal Hacked,MP,P,SE,hal@example.org,hacked\r\n"
        "Cleo Confirmed,MP,P,SE,cleo@example.org,confirmed\r\n",
        encoding="utf-8",
    )
    result = runner.invoke(args=["import-csv", "release", str(path)])

    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[:3] == [
        "line 2: invalid: status: Unknown status: use pending, held or confirmed, "
        "or leave it empty.",
        "imported: 1",
        "duplicate: 0",
    ]
    assert _signatures(letter) == 3


def test_export_csv_to_dash_writes_standard_output(
    letter: Flask, runner: FlaskCliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(args=["export-csv", "release", "-o", "-"])

    assert result.exit_code == 0, result.output
    assert result.stdout_bytes.decode("utf-8").startswith(HEADER)
    assert "Pat Pending" in result.stdout
    assert not (tmp_path / "-").exists()


def test_import_csv_reads_standard_input_as_dash(letter: Flask, runner: FlaskCliRunner) -> None:
    result = runner.invoke(args=["import-csv", "release", "-"], input=PAPER.encode("utf-8"))

    assert result.exit_code == 0, result.output
    assert "imported: 3" in result.output
    assert _signatures(letter) == 5
    db = new_session(letter)
    entries = db.scalars(select(AuditEntry.after).where(AuditEntry.action == "signatures.import"))
    assert [json.loads(after)["file"] for after in entries] == ["(standard input)"]
    db.close()


def test_import_csv_reads_a_pipe(letter: Flask, runner: FlaskCliRunner, tmp_path: Path) -> None:
    # What /dev/stdin is when a file is piped in: a stream that can be read once.
    fifo = tmp_path / "pipe.csv"
    os.mkfifo(fifo)

    def feed() -> None:
        with fifo.open("w", encoding="utf-8") as out:
            out.write(PAPER)

    writer = threading.Thread(target=feed)
    writer.start()
    result = runner.invoke(args=["import-csv", "release", str(fifo)])
    writer.join(timeout=10)

    assert result.exit_code == 0, result.output
    assert "imported: 3" in result.output
    assert _signatures(letter) == 5


def test_import_csv_refuses_a_too_large_stream_in_one_line(
    letter: Flask, runner: FlaskCliRunner
) -> None:
    letter.config["IMPORT_MAX_BYTES"] = 100 * 1024
    result = runner.invoke(args=["import-csv", "release", "-"], input=PAPER.encode() * 500)

    assert result.exit_code == 1
    assert result.output == "Error: -: files up to 0.1 MB can be imported; this one is larger.\n"
    assert _signatures(letter) == 2


# ------------------------------------------------ export-csv --output: what is already there


def _read_fifo(fifo: Path, into: list[bytes]) -> threading.Thread:
    """A thread reading the FIFO to its end into the list, as `gzip < fifo` would."""

    def read() -> None:
        with fifo.open("rb") as stream:
            into.append(stream.read())

    reader = threading.Thread(target=read)
    reader.start()
    return reader


def test_export_csv_writes_into_a_fifo_and_leaves_it_one(
    letter: Flask, runner: FlaskCliRunner, tmp_path: Path
) -> None:
    fifo = tmp_path / "signers.fifo"
    os.mkfifo(fifo)
    got: list[bytes] = []
    reader = _read_fifo(fifo, got)
    result = runner.invoke(args=["export-csv", "release", "--output", str(fifo)])
    if reader.is_alive():  # the export did not open the FIFO: let the reader go
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
    reader.join(timeout=10)

    assert result.exit_code == 0, result.output
    assert got[0].decode("utf-8").startswith(HEADER)
    assert b"Pat Pending" in got[0]
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    assert not list(tmp_path.glob("*.partial"))


def test_export_csv_writes_into_an_open_descriptor(letter: Flask, runner: FlaskCliRunner) -> None:
    # What bash's `--output >(gzip > x.gz)` passes: /dev/fd/N, the write end of a pipe.
    read_end, write_end = os.pipe()
    got: list[bytes] = []

    def read() -> None:
        with os.fdopen(read_end, "rb") as stream:
            got.append(stream.read())

    reader = threading.Thread(target=read)
    reader.start()
    try:
        result = runner.invoke(args=["export-csv", "release", "-o", f"/dev/fd/{write_end}"])
    finally:
        os.close(write_end)
    reader.join(timeout=10)

    assert result.exit_code == 0, result.output
    assert got[0].decode("utf-8").startswith(HEADER)


def test_export_csv_through_a_symlink_writes_its_target_and_keeps_the_link(
    letter: Flask, runner: FlaskCliRunner, tmp_path: Path
) -> None:
    (tmp_path / "exports").mkdir()
    target = tmp_path / "exports" / "latest.csv"
    target.write_text("old\n", encoding="utf-8")
    link = tmp_path / "latest.csv"
    link.symlink_to(Path("exports") / "latest.csv")
    result = runner.invoke(args=["export-csv", "release", "--output", str(link)])

    assert result.exit_code == 0, result.output
    assert link.is_symlink() and os.readlink(link) == os.path.join("exports", "latest.csv")
    assert target.read_bytes().startswith(HEADER.encode())
    assert not list(tmp_path.glob("**/*.partial"))


def test_export_csv_through_a_dangling_symlink_creates_its_target(
    letter: Flask, runner: FlaskCliRunner, tmp_path: Path
) -> None:
    link = tmp_path / "latest.csv"
    link.symlink_to(tmp_path / "new.csv")
    result = runner.invoke(args=["export-csv", "release", "--output", str(link)])

    assert result.exit_code == 0, result.output
    assert link.is_symlink()
    assert (tmp_path / "new.csv").read_bytes().startswith(HEADER.encode())


def test_export_csv_to_a_new_path_is_a_private_file(
    letter: Flask, runner: FlaskCliRunner, tmp_path: Path
) -> None:
    target = tmp_path / "new.csv"
    result = runner.invoke(args=["export-csv", "release", "--output", str(target)])

    assert result.exit_code == 0, result.output
    assert target.read_bytes().startswith(HEADER.encode())
    assert stat.S_IMODE(target.stat().st_mode) == 0o600


def test_export_csv_replaces_an_existing_file_whole(
    letter: Flask, runner: FlaskCliRunner, tmp_path: Path
) -> None:
    target = tmp_path / "out.csv"
    target.write_text("an older export\n", encoding="utf-8")
    target.chmod(0o644)
    before = target.stat().st_ino
    result = runner.invoke(args=["export-csv", "release", "--output", str(target)])

    assert result.exit_code == 0, result.output
    assert target.read_bytes().startswith(HEADER.encode())
    assert "an older export" not in target.read_text(encoding="utf-8")
    # A new file renamed over the old one (a reader never sees half an export), private.
    assert target.stat().st_ino != before
    assert stat.S_IMODE(target.stat().st_mode) == 0o600


@pytest.mark.parametrize("path", ["/dev/full", "/dev/null", "/dev/stdout", "/dev/fd/0"])
def test_devices_and_descriptors_are_written_in_place_never_replaced(path: str) -> None:
    # Only looks at the paths (nothing is written): an export there opens them as they are.
    assert transfer._replaceable(path) is None


def test_a_regular_file_or_a_new_path_is_replaced_by_rename(tmp_path: Path) -> None:
    (tmp_path / "file.csv").write_text("x", encoding="utf-8")
    (tmp_path / "link.csv").symlink_to("file.csv")
    assert transfer._replaceable(str(tmp_path / "file.csv")) == str(tmp_path / "file.csv")
    assert transfer._replaceable(str(tmp_path / "link.csv")) == str(tmp_path / "file.csv")
    assert transfer._replaceable(str(tmp_path / "new.csv")) == str(tmp_path / "new.csv")
