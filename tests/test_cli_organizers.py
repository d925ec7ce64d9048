"""`campaign create-organizer` and `campaign set-password`."""

from __future__ import annotations

import pytest
from admin_helpers import PASSWORD, AuthActions, make_organizer, store
from flask.testing import FlaskClient, FlaskCliRunner
from sqlalchemy import select
from sqlalchemy.orm import Session

from campaign import auth
from campaign.cli import organizers
from campaign.models import AuditEntry, Organizer

__all__ = ["store"]


def _organizers(store: Session) -> list[Organizer]:
    store.expire_all()
    return list(store.scalars(select(Organizer)))


def test_create_organizer_reads_the_password_from_stdin(
    runner: FlaskCliRunner, store: Session
) -> None:
    result = runner.invoke(
        args=["create-organizer", "Ann@Example.org", "--name", "Ann"],
        input="a long enough password\nignored second line\n",
    )
    assert result.exit_code == 0, result.output
    assert result.output == "organizer ann@example.org created\n"
    [organizer] = _organizers(store)
    assert (organizer.email, organizer.name, organizer.is_admin) == (
        "ann@example.org",
        "Ann",
        False,
    )
    assert auth.verify_password(organizer.password_hash, "a long enough password")
    entry = store.scalar(select(AuditEntry))
    assert entry is not None
    assert entry.action == "organizer.create"
    assert entry.organizer_id is None


def test_admin_flag(runner: FlaskCliRunner, store: Session) -> None:
    result = runner.invoke(args=["create-organizer", "root@example.org", "--admin"], input="x" * 12)
    assert result.exit_code == 0, result.output
    assert "(admin)" in result.output
    assert _organizers(store)[0].is_admin


def test_the_password_is_prompted_twice_on_a_terminal(
    runner: FlaskCliRunner, store: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(organizers, "_stdin_is_terminal", lambda: True)
    result = runner.invoke(
        args=["create-organizer", "ann@example.org"],
        input="a long enough password\na long enough password\n",
    )
    assert result.exit_code == 0, result.output
    assert "Password:" in result.output
    assert "Repeat for confirmation:" in result.output
    assert "a long enough password" not in result.output  # hidden input is not echoed
    assert len(_organizers(store)) == 1


def test_prompted_passwords_that_differ_are_asked_again(
    runner: FlaskCliRunner, store: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(organizers, "_stdin_is_terminal", lambda: True)
    result = runner.invoke(
        args=["create-organizer", "ann@example.org"],
        input="a long enough password\nsomething else entirely\n",
    )
    assert result.exit_code != 0
    assert "do not match" in result.output
    assert _organizers(store) == []


@pytest.mark.parametrize(
    ("args", "stdin", "message"),
    [
        (["ann@example.org"], "short\n", "Error: password must be at least 12 characters\n"),
        (["ann@example.org"], "", "Error: no password on standard input\n"),
        (["not-an-address"], "a long enough password\n", "Error: invalid email address"),
        ([], "", "Missing argument 'EMAIL'"),
    ],
)
def test_bad_input_is_one_line_and_a_non_zero_exit(
    runner: FlaskCliRunner, store: Session, args: list[str], stdin: str, message: str
) -> None:
    result = runner.invoke(args=["create-organizer", *args], input=stdin)
    assert result.exit_code != 0
    assert message in result.output
    assert "Traceback" not in result.output
    assert _organizers(store) == []


def test_a_taken_address_is_refused(runner: FlaskCliRunner, store: Session) -> None:
    first = runner.invoke(args=["create-organizer", "ann@example.org"], input="x" * 12)
    assert first.exit_code == 0
    again = runner.invoke(args=["create-organizer", "ANN@example.org"], input="y" * 12)
    assert again.exit_code == 1
    assert again.output == "Error: an organizer with the address ann@example.org already exists\n"
    assert len(_organizers(store)) == 1


# --- set-password ------------------------------------------------------------


def _ann(store: Session) -> Organizer:
    store.expire_all()
    organizer = store.scalar(select(Organizer).where(Organizer.email == "ann@example.org"))
    assert organizer is not None
    return organizer


def test_set_password_reads_stdin_and_ends_the_organizers_sessions(
    runner: FlaskCliRunner, client: FlaskClient, store: Session
) -> None:
    make_organizer(store, "ann@example.org")
    helper = AuthActions(client)
    assert helper.login("ann@example.org").status_code == 303
    result = runner.invoke(
        args=["set-password", "ANN@example.org"], input="a brand new passphrase\nignored\n"
    )
    assert result.exit_code == 0, result.output
    assert result.stdout == "password of ann@example.org set; every session of theirs is ended\n"
    assert result.stderr == ""
    ann = _ann(store)
    assert auth.verify_password(ann.password_hash, "a brand new passphrase")
    assert ann.session_epoch == 1
    assert client.get("/admin/").status_code == 302
    entry = store.scalar(select(AuditEntry).where(AuditEntry.action == "organizer.password"))
    assert entry is not None
    assert entry.organizer_id is None
    assert '"via": "cli"' in entry.after
    assert "a brand new passphrase" not in entry.after
    assert helper.login("ann@example.org", "a brand new passphrase").status_code == 303


def test_set_password_unlocks_an_account_locked_by_failed_logins(
    runner: FlaskCliRunner, client: FlaskClient, store: Session
) -> None:
    # Locked out after too many wrong guesses, the organizer asks for a new password: it
    # must let them in at once, not after the lockout runs out.
    make_organizer(store, "ann@example.org")
    helper = AuthActions(client)
    for _ in range(5):
        assert helper.login("ann@example.org", "not the password").status_code == 200
    assert _ann(store).locked_until is not None
    assert helper.login("ann@example.org").status_code == 200  # locked: even the right one fails
    result = runner.invoke(args=["set-password", "ann@example.org"], input="a brand new passphrase")
    assert result.exit_code == 0, result.output
    ann = _ann(store)
    assert (ann.locked_until, ann.failed_logins) == (None, 0)
    assert helper.login("ann@example.org", "a brand new passphrase").status_code == 303


def test_set_password_prompts_twice_on_a_terminal(
    runner: FlaskCliRunner, store: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_organizer(store, "ann@example.org")
    monkeypatch.setattr(organizers, "_stdin_is_terminal", lambda: True)
    result = runner.invoke(
        args=["set-password", "ann@example.org"],
        input="a brand new passphrase\na brand new passphrase\n",
    )
    assert result.exit_code == 0, result.output
    assert "Password:" in result.output
    assert "Repeat for confirmation:" in result.output
    assert "a brand new passphrase" not in result.output
    assert auth.verify_password(_ann(store).password_hash, "a brand new passphrase")


def test_set_password_for_an_unknown_address_is_one_line_on_stderr(
    runner: FlaskCliRunner, store: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_organizer(store, "ann@example.org")
    monkeypatch.setattr(organizers, "_stdin_is_terminal", lambda: True)
    result = runner.invoke(args=["set-password", "Nobody@example.org"], input="x" * 20 + "\n")
    assert result.exit_code == 1
    assert result.stderr == "Error: no organizer has the address nobody@example.org\n"
    assert result.stdout == ""  # not even asked for a password
    assert _ann(store).session_epoch == 0


@pytest.mark.parametrize(
    ("stdin", "message"),
    [
        ("short\n", "Error: password must be at least 12 characters\n"),
        ("", "Error: no password on standard input\n"),
    ],
)
def test_set_password_refuses_a_bad_password_and_changes_nothing(
    runner: FlaskCliRunner, store: Session, stdin: str, message: str
) -> None:
    make_organizer(store, "ann@example.org")
    result = runner.invoke(args=["set-password", "ann@example.org"], input=stdin)
    assert result.exit_code == 1
    assert result.stderr == message
    ann = _ann(store)
    assert auth.verify_password(ann.password_hash, PASSWORD)
    assert ann.session_epoch == 0
    assert store.scalar(select(AuditEntry)) is None


@pytest.mark.parametrize("password", [" " * 12, "\t" * 6 + " " * 10, "\u3000" * 12])
def test_a_password_of_only_spaces_is_refused(
    runner: FlaskCliRunner, store: Session, password: str
) -> None:
    made = runner.invoke(args=["create-organizer", "ann@example.org"], input=password + "\n")
    assert made.exit_code == 1
    assert made.output == "Error: password must not be only spaces\n"
    assert _organizers(store) == []
    assert (
        runner.invoke(args=["create-organizer", "ann@example.org"], input="x" * 12).exit_code == 0
    )
    changed = runner.invoke(args=["set-password", "ann@example.org"], input=password + "\n")
    assert changed.exit_code == 1
    assert changed.output == "Error: password must not be only spaces\n"
    assert auth.verify_password(_ann(store).password_hash, "x" * 12)


def test_a_password_that_is_not_utf8_is_one_line(runner: FlaskCliRunner, store: Session) -> None:
    for args in (["create-organizer", "ann@example.org"], ["set-password", "ann@example.org"]):
        result = runner.invoke(args=args, input=b"\xff\xfe not utf-8 at all\n")
        assert result.exit_code == 1
        assert "Error: " in result.output and "Traceback" not in result.output
        assert result.output.strip().splitlines()[-1] in (
            "Error: the password is not UTF-8 text",
            "Error: no organizer has the address ann@example.org",
        )
    assert _organizers(store) == []


def test_an_organizer_name_on_two_lines_is_refused(runner: FlaskCliRunner, store: Session) -> None:
    result = runner.invoke(
        args=["create-organizer", "ann@example.org", "--name", "Ann\nAdmin: yes"], input="x" * 12
    )
    assert result.exit_code == 2
    assert result.output == (
        "Error: --name holds a control character (U+000A): give it on one line, as plain text\n"
    )
    assert _organizers(store) == []
