"""Every `campaign` command ends with one line and a non-zero exit when the database cannot
be used (not upgraded, unreachable, refusing a value), and `db upgrade` says where it is."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from alembic.script import ScriptDirectory
from flask import Flask
from sqlalchemy import create_engine, text
from sqlalchemy.exc import DataError, OperationalError

from campaign import db as dbmod
from campaign.cli import errors

ROOT = Path(__file__).resolve().parent.parent
# The revision the code needs: the newest of campaign/migrations.
HEAD = ScriptDirectory.from_config(dbmod.alembic_config("sqlite://")).get_current_head()
PASSWORD = "a long enough password\n"

# Each command that reads or writes the database, with what it needs on stdin.
COMMANDS: list[tuple[list[str], str]] = [
    (["anonymize", "--closed-before", "2030-01-01"], ""),
    (["send-digest"], ""),
    (["create-organizer", "org1@example.org"], PASSWORD),
    (["set-password", "org1@example.org"], PASSWORD),
    (["recount"], ""),
    (["demo"], ""),
    (["export-csv", "kem"], ""),
]


@pytest.fixture
def letter(tmp_path: Path) -> Path:
    path = tmp_path / "letter.md"
    path.write_text("Dear Minister,\n", encoding="utf-8")
    return path


def one_line_error(output: str) -> str:
    lines = output.strip().splitlines()
    assert len(lines) == 1, output
    assert "Traceback" not in output
    return lines[0]


def _run(app: Flask, args: list[str], stdin: str = "") -> Any:
    return app.test_cli_runner().invoke(args=args, input=stdin)


@pytest.mark.parametrize(("args", "stdin"), COMMANDS, ids=lambda v: str(v)[:30])
def test_a_database_not_upgraded_is_one_line_saying_what_to_do(
    app_factory: Any, tmp_path: Path, args: list[str], stdin: str
) -> None:
    app = app_factory(DATABASE_URL=f"sqlite:///{tmp_path}/empty.sqlite3")
    result = _run(app, args, stdin)
    assert result.exit_code == 1
    assert one_line_error(result.output) == (
        f"Error: the database is not ready (empty, the code needs {HEAD}); "
        "run `campaign db upgrade` first"
    )


def test_a_database_behind_the_code_names_its_revision(app_factory: Any, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/old.sqlite3"
    dbmod.upgrade(url, "0003")
    app = app_factory(DATABASE_URL=url)
    result = _run(app, ["create-organizer", "org1@example.org"], PASSWORD)
    assert result.exit_code == 1
    assert f"(at revision 0003, the code needs {HEAD}); run `campaign db upgrade` first" in (
        one_line_error(result.output)
    )


UNREACHABLE = "postgresql+psycopg://campaign:s3cret-pw@127.0.0.1:5499/letters"


@pytest.mark.parametrize(("args", "stdin"), COMMANDS, ids=lambda v: str(v)[:30])
def test_an_unreachable_server_is_one_line_naming_it_without_the_password(
    app_factory: Any, args: list[str], stdin: str
) -> None:
    app = app_factory(DATABASE_URL=UNREACHABLE)
    result = _run(app, args, stdin)
    assert result.exit_code == 1
    line = one_line_error(result.output)
    assert line.startswith("Error: cannot connect to the database at 127.0.0.1:5499/letters (")
    assert "s3cret" not in result.output


def test_create_campaign_against_an_unreachable_server(app_factory: Any, letter: Path) -> None:
    app = app_factory(DATABASE_URL=UNREACHABLE)
    result = _run(app, ["create-campaign", "xy", "--title", "X", "--letter", str(letter)])
    assert result.exit_code == 1
    assert "cannot connect to the database at 127.0.0.1:5499" in one_line_error(result.output)


def test_db_upgrade_against_an_unreachable_server(app_factory: Any) -> None:
    app = app_factory(DATABASE_URL=UNREACHABLE)
    result = _run(app, ["db", "upgrade"])
    assert result.exit_code == 1
    assert "cannot connect to the database at 127.0.0.1:5499" in one_line_error(result.output)
    assert "s3cret" not in result.output


def test_a_value_the_database_refuses_is_called_bad_input() -> None:
    refused = DataError(
        "INSERT INTO campaign ...", {}, ValueError("PostgreSQL text fields cannot contain NUL")
    )
    line = errors.describe(refused, UNREACHABLE)
    assert line == (
        "the database refused a value as invalid (PostgreSQL text fields cannot contain NUL):"
        " check the input"
    )
    assert "db upgrade" not in line


def test_an_unknown_error_on_a_ready_database_is_not_blamed_on_the_schema(app: Flask) -> None:
    failed = OperationalError("SELECT 1", {}, Exception("disk I/O error\nmore detail"))
    line = errors.describe(failed, dbmod.database_url(app))
    assert line == "database error (Exception): disk I/O error"


def test_where_names_host_port_and_database_never_the_password() -> None:
    assert errors.where(UNREACHABLE) == "127.0.0.1:5499/letters"
    assert errors.where("postgresql+psycopg://u:pw@db.internal/x") == "db.internal:5432/x"
    assert errors.where("sqlite:////var/lib/campaign.sqlite3") == "/var/lib/campaign.sqlite3"


# --------------------------------------------------------------------------- db upgrade


def test_db_upgrade_prints_the_revision_reached(app_factory: Any, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/steps.sqlite3"
    app = app_factory(DATABASE_URL=url)
    first = _run(app, ["db", "upgrade", "--revision", "0003"])
    assert first.exit_code == 0, first.output
    assert first.output == f"database is at revision 0003: {url}\n"
    rest = _run(app, ["db", "upgrade"])
    assert rest.output == f"database is at revision {HEAD}: {url}\n"


def test_db_upgrade_refuses_to_go_back(app: Flask) -> None:
    result = _run(app, ["db", "upgrade", "--revision", "0003"])
    assert result.exit_code == 1
    assert one_line_error(result.output) == (
        f"Error: the database is at revision {HEAD}, newer than 0003: `db upgrade` does not "
        "downgrade (restore a backup taken before instead)"
    )
    assert _run(app, ["db", "upgrade"]).output.startswith(f"database is at revision {HEAD}: ")


@pytest.mark.parametrize("revision", ["9999", "", "@", " ", "base"])
def test_db_upgrade_refuses_an_unknown_revision(app: Flask, revision: str) -> None:
    result = _run(app, ["db", "upgrade", "--revision", revision])
    assert result.exit_code == 1
    assert one_line_error(result.output).startswith(
        f"Error: no revision {revision!r}: use head or one of 0001, 0002,"
    )


# --------------------------------------------------------------------------- real stdin


def test_a_password_piped_in_that_is_not_utf8_is_one_line(tmp_path: Path) -> None:
    """Under a C locale Python keeps the bytes that are not UTF-8 (as surrogates)."""
    url = f"sqlite:///{tmp_path}/real.sqlite3"
    dbmod.upgrade(url)
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "LC_ALL": "C",
        "CAMPAIGN_DATABASE_URL": url,
        "CAMPAIGN_INSTANCE_PATH": str(tmp_path / "instance"),
    }
    command = [sys.executable, "-c", "from campaign.cli import main; main()"]

    def campaign(*args: str, stdin: bytes) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(
            [*command, *args], input=stdin, env=env, capture_output=True, timeout=120, check=False
        )

    made = campaign("create-organizer", "org1@example.org", stdin=PASSWORD.encode())
    assert made.returncode == 0, made.stderr
    for args in (["set-password", "org1@example.org"], ["create-organizer", "o2@example.org"]):
        result = campaign(*args, stdin=b"\xff\xfe bad password here\n")
        assert result.returncode == 1
        assert result.stderr == b"Error: the password is not UTF-8 text\n"


# --------------------------------------------------------------------------- standard output

CAMPAIGN = str(Path(sys.executable).with_name("campaign"))
# Commands that write standard output, each run on a database with the demo letter.
WRITERS = [["export-csv", "demo"], ["recount"], ["db", "upgrade"], ["demo"], ["--help"]]


@pytest.fixture(scope="module")
def demo_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The environment of `campaign` commands on a database holding the demo letter."""
    home = tmp_path_factory.mktemp("stdout")
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAMPAIGN_")}
    env.update(
        PYTHONPATH=str(ROOT),
        CAMPAIGN_DATABASE_URL=f"sqlite:///{home}/demo.sqlite3",
        CAMPAIGN_INSTANCE_PATH=str(home / "instance"),
    )
    for args in (["db", "upgrade"], ["demo"]):
        subprocess.run([CAMPAIGN, *args], env=env, capture_output=True, timeout=120, check=True)
    return env


@pytest.fixture
def dev_full() -> Iterator[int]:
    """/dev/full opened for writing (never created: it must be the device), for a child's stdout."""
    if not os.path.exists("/dev/full") or not stat.S_ISCHR(os.stat("/dev/full").st_mode):
        pytest.skip("no /dev/full device here")
    fd = os.open("/dev/full", os.O_WRONLY)
    yield fd
    os.close(fd)


@pytest.mark.parametrize("args", WRITERS, ids=" ".join)
def test_standard_output_on_a_full_device_is_one_line(
    demo_env: dict[str, str], dev_full: int, args: list[str]
) -> None:
    done = subprocess.run(
        [CAMPAIGN, *args], env=demo_env, stdout=dev_full, stderr=subprocess.PIPE, timeout=120
    )
    assert done.returncode == 1
    assert done.stderr == b"Error: cannot write standard output: No space left on device\n"


@pytest.mark.parametrize("args", WRITERS[:4], ids=" ".join)
def test_a_closed_standard_output_is_one_line_not_silence(
    demo_env: dict[str, str], args: list[str]
) -> None:
    # `campaign ... >&-`: Python starts with sys.stdout None, where click.echo writes nothing.
    done = subprocess.run(
        ["sh", "-c", 'exec "$0" "$@" >&-', CAMPAIGN, *args],
        env=demo_env,
        capture_output=True,
        timeout=120,
    )
    assert done.returncode == 1
    assert done.stderr == b"Error: cannot write standard output: it is closed\n"


def _exports(env: dict[str, str]) -> int:
    """How many exports the audit trail records."""
    engine = create_engine(env["CAMPAIGN_DATABASE_URL"])
    with engine.connect() as connection:
        count = connection.execute(
            text("SELECT count(*) FROM audit_entry WHERE action = 'signatures.export'")
        ).scalar_one()
    engine.dispose()
    return int(count)


def test_an_export_whose_reader_left_ends_quietly_and_is_audited(
    demo_env: dict[str, str],
) -> None:
    # `campaign export-csv demo | head -1`, the reader gone before the export writes.
    before = _exports(demo_env)
    child = subprocess.Popen(
        [CAMPAIGN, "export-csv", "demo"],
        env=demo_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert child.stdout is not None and child.stderr is not None
    child.stdout.close()
    stderr = child.stderr.read()
    child.stderr.close()
    assert child.wait(timeout=120) == errors.BROKEN_PIPE_STATUS
    assert stderr == b""
    assert _exports(demo_env) == before + 1
