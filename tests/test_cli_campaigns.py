"""`campaign create-campaign`, `campaign demo` and `campaign recount`."""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskCliRunner
from sqlalchemy import func, select, update

from campaign import auth, geo, signing, tally
from campaign.campaigns import get_by_slug
from campaign.db import session_scope
from campaign.models import Campaign, CampaignOrganizer, Organizer, Signature, TallyCount


@pytest.fixture
def letter(tmp_path: Path) -> Path:
    """A Markdown letter file."""
    path = tmp_path / "letter.md"
    path.write_text("# Dear Minister\n\nRelease them — now.\n", encoding="utf-8")
    return path


def campaign_count(app: Flask) -> int:
    """How many campaigns are stored."""
    with session_scope(app) as db:
        return int(db.scalar(select(func.count()).select_from(Campaign)) or 0)


def one_line_error(output: str) -> str:
    """The single line of a failed command's output."""
    lines = output.strip().splitlines()
    assert len(lines) == 1, output
    return lines[0]


# --------------------------------------------------------------------------- create-campaign


def test_create_campaign_makes_a_draft(app: Flask, runner: FlaskCliRunner, letter: Path) -> None:
    result = runner.invoke(
        args=["create-campaign", "free-them", "--title", "Free them", "--letter", str(letter)]
    )
    assert result.exit_code == 0, result.output
    assert result.output == "campaign free-them created (draft): http://campaign.test/c/free-them\n"
    with session_scope(app) as db:
        found = get_by_slug(db, "free-them")
        assert found is not None
        assert (found.title, found.state, found.require_confirmation, found.recipient) == (
            "Free them",
            "draft",
            True,
            "",
        )
        assert found.letter == "# Dear Minister\n\nRelease them — now.\n"


def test_create_campaign_with_every_option(
    app: Flask, runner: FlaskCliRunner, letter: Path
) -> None:
    with session_scope(app) as db:
        auth.create_organizer(db, "Org@Example.org", "a long enough password")
    result = runner.invoke(
        args=[
            "create-campaign",
            "free-them",
            "--title",
            "Free them",
            "--letter",
            str(letter),
            "--recipient",
            "The Minister",
            "--open",
            "--no-confirmation",
            "--organizer",
            "org@example.org",
        ]
    )
    assert result.exit_code == 0, result.output
    assert "(open)" in result.output
    with session_scope(app) as db:
        found = get_by_slug(db, "free-them")
        assert found is not None
        assert (found.state, found.require_confirmation, found.recipient) == (
            "open",
            False,
            "The Minister",
        )
        organizer = db.scalars(select(Organizer)).one()
        assert db.get(CampaignOrganizer, (found.id, organizer.id)) is not None


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["Bad_Slug", "--title", "T"], "invalid slug 'Bad_Slug'"),
        (["x", "--title", "T"], "invalid slug 'x'"),
        (["ok-slug", "--title", "   "], "a campaign needs a title"),
        (["ok-slug", "--title", "T" * 201], "the title is longer than 200 characters"),
        (
            ["ok-slug", "--title", "T", "--organizer", "nobody@example.org"],
            "no organizer with the address nobody@example.org",
        ),
    ],
)
def test_create_campaign_refuses_bad_arguments(
    app: Flask, runner: FlaskCliRunner, letter: Path, args: list[str], message: str
) -> None:
    result = runner.invoke(args=["create-campaign", *args, "--letter", str(letter)])
    assert result.exit_code == 1
    assert message in one_line_error(result.output)
    assert campaign_count(app) == 0


def test_create_campaign_refuses_a_taken_slug(
    app: Flask, runner: FlaskCliRunner, letter: Path
) -> None:
    args = ["create-campaign", "taken", "--title", "T", "--letter", str(letter)]
    assert runner.invoke(args=args).exit_code == 0
    result = runner.invoke(args=args)
    assert result.exit_code == 1
    assert one_line_error(result.output) == "Error: the slug 'taken' is taken"
    assert campaign_count(app) == 1


def test_create_campaign_refuses_letter_files_it_cannot_use(
    app: Flask, runner: FlaskCliRunner, tmp_path: Path
) -> None:
    latin1 = tmp_path / "latin1.md"
    latin1.write_bytes("Chère Ministre".encode("latin-1"))
    cases = {
        str(tmp_path / "missing.md"): "does not exist",
        str(tmp_path): "is a directory",
        str(latin1): "is not UTF-8 text (bad byte at offset 2)",
    }
    for path, message in cases.items():
        result = runner.invoke(args=["create-campaign", "c1", "--title", "T", "--letter", path])
        assert result.exit_code == 1
        assert message in one_line_error(result.output)
    assert campaign_count(app) == 0


@pytest.mark.parametrize("text", ["", " \n\n"])
def test_create_campaign_refuses_an_open_letter_without_text(
    app: Flask, runner: FlaskCliRunner, tmp_path: Path, text: str
) -> None:
    empty = tmp_path / "empty.md"
    empty.write_text(text, encoding="utf-8")
    args = ["create-campaign", "c1", "--title", "T", "--letter", str(empty)]
    result = runner.invoke(args=[*args, "--open"])
    assert result.exit_code == 1
    assert one_line_error(result.output) == (
        f"Error: letter file {empty} has no text: an open letter needs it "
        "(without --open the campaign is a draft)"
    )
    assert campaign_count(app) == 0
    # A draft may wait for its text.
    result = runner.invoke(args=args)
    assert result.exit_code == 0, result.output
    assert "created (draft)" in result.output


def test_create_campaign_needs_title_and_letter(runner: FlaskCliRunner, letter: Path) -> None:
    for args in (["c1", "--letter", str(letter)], ["c1", "--title", "T"], []):
        result = runner.invoke(args=["create-campaign", *args])
        assert result.exit_code == 2
        assert "Missing" in result.output


# --------------------------------------------------------------------------- demo


def test_demo_loads_a_campaign_and_an_organizer_once(app: Flask, runner: FlaskCliRunner) -> None:
    first = runner.invoke(args=["demo"])
    assert first.exit_code == 0, first.output
    password = re.search(r"password: (\S+)", first.output)
    assert password is not None
    login_file = Path(app.instance_path) / "demo-login.txt"
    assert stat.S_IMODE(os.stat(login_file).st_mode) == 0o600
    assert f"password: {password.group(1)}" in login_file.read_text()
    with session_scope(app) as db:
        demo = get_by_slug(db, "demo")
        assert demo is not None and demo.state == "open"
        rows = list(db.scalars(select(Signature).where(Signature.campaign_id == demo.id)))
        assert len(rows) >= 15
        assert all(row.counted and row.source == "import" for row in rows)
        result = tally.tally(db, demo)
        assert result.signatures == len(rows)
        assert result.countries >= 10 and result.continents >= 5
        organizer = db.scalars(select(Organizer)).one()
        assert organizer.email == "demo@example.org" and organizer.is_admin
        assert auth.verify_password(organizer.password_hash, password.group(1))
        assert db.get(CampaignOrganizer, (demo.id, organizer.id)) is not None
    again = runner.invoke(args=["demo"])
    assert again.exit_code == 0
    assert password.group(1) not in again.output
    assert "http://campaign.test/c/demo" in again.output
    assert str(login_file) in again.output
    assert campaign_count(app) == 1
    with session_scope(app) as db:
        assert db.scalar(select(func.count()).select_from(Signature)) == len(rows)


def test_demo_signers_are_valid_entries() -> None:
    from campaign.cli.campaigns import DEMO_SIGNERS

    assert all(geo.is_country(country) for *_rest, country, _public in DEMO_SIGNERS)


def test_demo_takes_no_arguments(runner: FlaskCliRunner) -> None:
    assert runner.invoke(args=["demo", "extra"]).exit_code == 2


def test_demo_on_an_unmigrated_database_says_what_to_do(app_factory: Any, tmp_path: Path) -> None:
    app = app_factory(DATABASE_URL=f"sqlite:///{tmp_path}/empty.sqlite3")
    result = app.test_cli_runner().invoke(args=["demo"])
    assert result.exit_code == 1
    assert "run `campaign db upgrade` first" in one_line_error(result.output)


# --------------------------------------------------------------------------- recount


def test_recount_reports_matching_counters(runner: FlaskCliRunner) -> None:
    runner.invoke(args=["demo"])
    result = runner.invoke(args=["recount"])
    assert result.exit_code == 0
    assert result.output == "demo: counters match (15)\n"


def test_recount_repairs_and_reports_drift(app: Flask, runner: FlaskCliRunner) -> None:
    runner.invoke(args=["demo"])
    with session_scope(app) as db:
        db.execute(update(TallyCount).where(TallyCount.country_code == "GB").values(signatures=9))
    result = runner.invoke(args=["recount", "demo"])
    assert result.exit_code == 0
    assert result.output == "demo: GB was 9, now 2 (repaired)\n"
    assert runner.invoke(args=["recount", "demo"]).output == "demo: counters match (15)\n"


def test_recount_of_an_unknown_campaign_fails(runner: FlaskCliRunner) -> None:
    result = runner.invoke(args=["recount", "nope"])
    assert result.exit_code == 1
    assert one_line_error(result.output) == "Error: no campaign with the slug nope"


def test_recount_without_campaigns(runner: FlaskCliRunner) -> None:
    result = runner.invoke(args=["recount"])
    assert (result.exit_code, result.output) == (0, "no campaigns\n")


def test_recount_finishes_a_change_of_the_confirmation_rule(
    app: Flask, runner: FlaskCliRunner
) -> None:
    # The rule committed but the move of its signatures failed: recount moves them.
    runner.invoke(args=["demo"])
    pending = 2
    with session_scope(app) as db:
        demo = get_by_slug(db, "demo")
        assert demo is not None
        for n in range(pending):
            form = {"name": f"Signer {n}", "title": "MP", "parliament": "Sejm", "country": "PL"}
            entry = signing.validate_entry({**form, "email": f"signer{n}@example.org"})
            assert signing.sign(db, demo, entry).signature.status == "pending"
        db.execute(update(Campaign).values(require_confirmation=False))
    result = runner.invoke(args=["recount", "demo"])
    assert result.exit_code == 0
    assert result.output == (
        f"demo: {pending} unconfirmed signatures moved to the letter's confirmation rule "
        f"(repaired)\ndemo: counters match ({15 + pending})\n"
    )
    assert runner.invoke(args=["recount", "demo"]).output == (
        f"demo: counters match ({15 + pending})\n"
    )


def _tally_json(app: Flask) -> dict[str, Any]:
    response = app.test_client().get("/c/demo/tally.json")
    assert response.status_code == 200
    body = response.get_json()
    assert isinstance(body, dict)
    return body


def _continent_of_germany(app: Flask) -> str:
    body = _tally_json(app)
    [germany] = [c for c in body["by_country"] if c["code"] == "DE"]
    return str(germany["continent"])


def test_recount_repairs_a_counter_on_the_wrong_continent(any_app: Flask) -> None:
    runner = any_app.test_cli_runner()
    assert runner.invoke(args=["demo"]).exit_code == 0
    with session_scope(any_app) as db:
        db.execute(
            update(TallyCount).where(TallyCount.country_code == "DE").values(continent_code="AS")
        )
    assert _continent_of_germany(any_app) == "AS"
    result = runner.invoke(args=["recount", "demo"])
    assert result.exit_code == 0, result.output
    assert result.output == "demo: DE continent was AS, now EU (repaired)\n"
    assert _continent_of_germany(any_app) == "EU"
    assert runner.invoke(args=["recount", "demo"]).output == "demo: counters match (15)\n"


def _status_of(app: Flask, name: str) -> tuple[str, bool]:
    with session_scope(app) as db:
        row = db.execute(
            select(Signature.status, Signature.counted).where(Signature.name == name)
        ).one()
        return str(row.status), bool(row.counted)


def test_recount_does_not_trust_a_status_written_by_hand(any_app: Flask) -> None:
    runner = any_app.test_cli_runner()
    assert runner.invoke(args=["demo"]).exit_code == 0
    with session_scope(any_app) as db:
        db.execute(
            update(Signature).where(Signature.name == "Eleanor Whitfield").values(status="rejected")
        )
    result = runner.invoke(args=["recount", "demo"])
    assert result.exit_code == 0, result.output
    assert result.output == (
        "demo: 1 signature stored as rejected (counted), confirmed by the dates recorded:"
        " now confirmed (counted) (repaired)\n"
    )
    assert _status_of(any_app, "Eleanor Whitfield") == ("confirmed", True)
    assert runner.invoke(args=["recount", "demo"]).output == "demo: counters match (15)\n"


def test_recount_uncounts_a_signature_whose_rejection_date_was_set_by_hand(
    any_app: Flask,
) -> None:
    runner = any_app.test_cli_runner()
    assert runner.invoke(args=["demo"]).exit_code == 0
    with session_scope(any_app) as db:
        db.execute(
            update(Signature)
            .where(Signature.name.in_(["Eleanor Whitfield", "Graham Price"]))
            .values(rejected_at=func.now())
        )
    assert _tally_json(any_app)["signatures"] == 15
    result = runner.invoke(args=["recount", "demo"])
    assert result.exit_code == 0, result.output
    assert result.output == (
        "demo: 2 signatures stored as confirmed (counted), rejected by the dates recorded:"
        " now rejected (not counted) (repaired)\n"
        "demo: GB was 2, now 0 (repaired)\n"
        "demo: GB listed was 2, now 0 (repaired)\n"
    )
    assert _status_of(any_app, "Graham Price") == ("rejected", False)
    assert _tally_json(any_app)["signatures"] == 13
    assert runner.invoke(args=["recount", "demo"]).output == "demo: counters match (13)\n"


# --------------------------------------------------------------------------- bad input


def _letter_file(tmp_path: Path, data: bytes) -> str:
    path = tmp_path / "odd-letter.md"
    path.write_bytes(data)
    return str(path)


def test_a_byte_order_mark_is_not_kept_in_the_letter(app: Flask, tmp_path: Path) -> None:
    path = _letter_file(tmp_path, "\ufeffDear Minister,\n".encode())
    result = app.test_cli_runner().invoke(
        args=["create-campaign", "bom", "--title", "BOM", "--letter", path]
    )
    assert result.exit_code == 0, result.output
    with session_scope(app) as db:
        found = get_by_slug(db, "bom")
        assert found is not None and found.letter == "Dear Minister,\n"


@pytest.mark.parametrize("newline", ["\r\n", "\r"])
def test_a_letter_saved_with_other_line_ends_is_kept_with_newlines(
    app: Flask, tmp_path: Path, newline: str
) -> None:
    text = "# Dear Minister\n\nRelease them \u2014 now.\n".replace("\n", newline)
    path = _letter_file(tmp_path, text.encode())
    result = app.test_cli_runner().invoke(
        args=["create-campaign", "crlf", "--title", "CRLF", "--letter", path]
    )
    assert result.exit_code == 0, result.output
    with session_scope(app) as db:
        found = get_by_slug(db, "crlf")
        assert found is not None and found.letter == "# Dear Minister\n\nRelease them \u2014 now.\n"


def test_the_letter_may_come_from_standard_input(app: Flask) -> None:
    result = app.test_cli_runner().invoke(
        args=["create-campaign", "piped", "--title", "Piped", "--letter", "-", "--open"],
        input="\ufeffDear Minister,\r\n\r\nRelease them.\r\n".encode(),
    )
    assert result.exit_code == 0, result.output
    assert "campaign piped created (open)" in result.output
    with session_scope(app) as db:
        found = get_by_slug(db, "piped")
        assert found is not None and found.letter == "Dear Minister,\n\nRelease them.\n"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "the letter on standard input has no text: an open letter needs it"),
        (b"Ch\xe8re", "the letter on standard input is not UTF-8 text (bad byte at offset 2)"),
        (b"a\x00b", "the letter on standard input holds a control character (U+0000) on line 1"),
    ],
)
def test_a_letter_from_standard_input_it_cannot_use_is_one_line(
    app: Flask, data: bytes, message: str
) -> None:
    result = app.test_cli_runner().invoke(
        args=["create-campaign", "piped", "--title", "P", "--letter", "-", "--open"], input=data
    )
    assert result.exit_code == 1
    assert one_line_error(result.output).startswith(f"Error: {message}")
    assert campaign_count(app) == 0


def test_the_help_says_the_letter_may_come_from_standard_input(runner: FlaskCliRunner) -> None:
    result = runner.invoke(args=["create-campaign", "--help"])
    assert "(- reads standard input)" in " ".join(result.output.split())


def test_a_letter_holding_a_nul_is_bad_input_on_each_database(
    any_app: Flask, tmp_path: Path
) -> None:
    path = _letter_file(tmp_path, b"Dear Minister,\n\nfree\x00them\n")
    result = any_app.test_cli_runner().invoke(
        args=["create-campaign", "nul", "--title", "NUL", "--letter", path]
    )
    assert result.exit_code == 1
    assert one_line_error(result.output) == (
        f"Error: letter file {path} holds a control character (U+0000) on line 3: "
        "it is not plain text"
    )
    assert campaign_count(any_app) == 0


@pytest.mark.parametrize(
    ("option", "value", "code"),
    [("--title", "Free them\nnow", "U+000A"), ("--recipient", "The\x1bMinister", "U+001B")],
)
def test_a_one_line_value_with_a_control_character_is_refused(
    app: Flask, runner: FlaskCliRunner, letter: Path, option: str, value: str, code: str
) -> None:
    args = ["create-campaign", "ctl", "--title", "T", "--letter", str(letter), option, value]
    result = runner.invoke(args=args)
    assert result.exit_code == 2
    assert one_line_error(result.output) == (
        f"Error: {option} holds a control character ({code}): give it on one line, as plain text"
    )
    assert campaign_count(app) == 0
