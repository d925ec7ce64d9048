"""`campaign` commands: campaigns (create-campaign, demo, recount)."""

from __future__ import annotations

import os
import secrets
import sys
from dataclasses import replace

import click
from flask import current_app
from flask.cli import with_appcontext
from sqlalchemy import select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from campaign import audit, auth, hosts, signing, tally
from campaign.campaigns import CampaignError, create_campaign, get_by_slug, rederive
from campaign.cli import errors
from campaign.db import new_session
from campaign.models import Campaign, Organizer

DEMO_SLUG = "demo"
DEMO_ORGANIZER = "demo@example.org"
DEMO_LOGIN_FILE = "demo-login.txt"


def _letter_name(path: str) -> str:
    """The letter's source as a message names it."""
    return "the letter on standard input" if path == "-" else f"letter file {path}"


def _read_letter(path: str) -> str:
    """The letter's text (path - is standard input) with its line ends as \n and without a
    byte order mark; one clear line when it is missing, unreadable, not UTF-8 or holds a
    control character (NUL...) other than tab and line ends.
    """
    name = _letter_name(path)
    data: bytes
    try:
        if path == "-":
            data = sys.stdin.buffer.read()
        else:
            with open(path, "rb") as handle:
                data = handle.read()
    except FileNotFoundError:
        raise click.ClickException(f"{name} does not exist") from None
    except IsADirectoryError:
        raise click.ClickException(f"{name} is a directory") from None
    except OSError as error:
        raise click.ClickException(f"cannot read {name}: {error.strerror}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise click.ClickException(
            f"{name} is not UTF-8 text (bad byte at offset {error.start})"
        ) from None
    # A byte order mark some editors write first is no part of the letter; nor are the
    # carriage returns of a file saved on Windows (CRLF) or an old Mac (CR).
    text = text.removeprefix("\ufeff").replace("\r\n", "\n").replace("\r", "\n")
    found = signing.control_character(text, multiline=True)
    if found is not None:
        line = text.count("\n", 0, found) + 1
        raise click.ClickException(
            f"{name} holds a control character ({errors.codepoint(text[found])})"
            f" on line {line}: it is not plain text"
        )
    return text


def _public_url(path: str) -> str:
    """An address people can open: BASE_URL when set, else the `make run` address."""
    base = current_app.config.get("BASE_URL") or hosts.DEVELOPMENT_ROOT
    return str(base).rstrip("/") + path


@click.command("create-campaign")
@with_appcontext
@click.argument("slug")
@click.option(
    "--title", required=True, help="The letter's title.", callback=errors.one_line_value("--title")
)
@click.option(
    "--letter",
    "letter_path",
    required=True,
    metavar="FILE",
    help="A UTF-8 Markdown file (- reads standard input); CRLF line ends become LF.",
)
@click.option(
    "--recipient",
    default="",
    help="Who the letter is addressed to.",
    callback=errors.one_line_value("--recipient"),
)
@click.option("--open", "is_open", is_flag=True, help="Take signatures at once (else a draft).")
@click.option(
    "--no-confirmation", is_flag=True, help="Count signatures without email confirmation."
)
@click.option("--organizer", "organizer_email", help="An organizer who runs this campaign.")
def create_campaign_command(
    slug: str,
    title: str,
    letter_path: str,
    recipient: str,
    is_open: bool,
    no_confirmation: bool,
    organizer_email: str | None,
) -> None:
    """Create a campaign from a Markdown letter."""
    letter = _read_letter(letter_path)
    if is_open and not letter.strip():
        raise click.ClickException(
            f"{_letter_name(letter_path)} has no text: an open letter needs it "
            "(without --open the campaign is a draft)"
        )
    db = new_session(current_app)
    try:
        organizer = None
        if organizer_email is not None:
            organizer = db.scalar(
                select(Organizer).where(Organizer.email == auth.normalize_email(organizer_email))
            )
            if organizer is None:
                raise click.ClickException(f"no organizer with the address {organizer_email}")
        campaign = create_campaign(
            db,
            slug=slug,
            title=title,
            letter=letter,
            recipient=recipient,
            state="open" if is_open else "draft",
            require_confirmation=not no_confirmation,
        )
        if organizer is not None:
            auth.add_to_campaign(db, organizer, campaign)
        audit.record(
            db,
            None,
            "campaign.create",
            campaign=campaign,
            after={"slug": slug, "state": campaign.state, "via": "cli"},
        )
        db.commit()
        state = campaign.state
    except CampaignError as error:
        raise click.ClickException(str(error)) from None
    except DBAPIError as error:
        raise errors.database_error(error) from None
    finally:
        db.close()
    click.echo(f"campaign {slug} created ({state}): {_public_url('/c/' + slug)}")


# A fictional letter about a fictional country: real-sounding, harming no one.
DEMO_TITLE = "Release Amara Okonkwo-Reyes, Member of the Veldorian National Assembly"
DEMO_RECIPIENT = "The President of the Republic of Veldoria"
DEMO_LETTER = """\
Dear President,

We, parliamentarians from around the world, write to you about our colleague
**Amara Okonkwo-Reyes**, an elected member of the National Assembly of Veldoria,
who has been held without trial since 14 March.

Ms Okonkwo-Reyes was arrested two days after she asked, on the floor of the
Assembly, how the national water fund had been spent. Her parliamentary
immunity was lifted in a session she was not allowed to attend. Her lawyers
have seen her twice in eight months.

No parliament can do its work when its members can be jailed for their
questions. We therefore ask you to:

1. release Amara Okonkwo-Reyes at once and without conditions;
2. restore her immunity and her seat in the National Assembly;
3. allow independent observers, including members of our parliaments, to visit
   her and to attend any proceedings against her.

We will follow her case closely, and we stand ready to meet your
representatives to discuss it.

Respectfully,

*The undersigned members of parliament*

---

*This is a demonstration letter: Veldoria and everyone named here are fictional.*
"""

# Fifteen fictional signers from eleven countries on six continents.
DEMO_SIGNERS: tuple[tuple[str, str, str, str, str, bool], ...] = (
    ("Eleanor Whitfield", "MP", "House of Commons", "Labour", "GB", True),
    ("Hon. Thomas Okafor", "Senator", "Senate of Nigeria", "", "NG", True),
    ("Camille Rousseau", "Deputy", "Assemblée nationale", "Renaissance", "FR", True),
    ("Jonas Bergmann", "MP", "Bundestag", "Die Grünen", "DE", False),
    ("Wanjiru Kamau", "MP", "National Assembly of Kenya", "ODM", "KE", True),
    ("Sipho Ndlovu", "MP", "National Assembly of South Africa", "ANC", "ZA", True),
    ("Lucía Fernández", "Deputy", "Cámara de Diputados", "", "AR", True),
    ("João Carvalho", "Deputy", "Câmara dos Deputados", "PSB", "BR", True),
    ("Marie Tremblay", "MP", "House of Commons of Canada", "NDP", "CA", True),
    ("Dr. Sarah Nguyen", "Senator", "Australian Senate", "Greens", "AU", True),
    ("Aroha Ngata", "MP", "New Zealand Parliament", "", "NZ", True),
    ("YB Nurul Hidayah", "MP", "Dewan Rakyat", "", "MY", True),
    ("Kenji Watanabe", "Member of Parliament", "House of Representatives", "", "JP", False),
    ("Fiona Gallagher", "Senator", "Seanad Éireann", "", "IE", True),
    ("Graham Price", "MP", "House of Commons", "Liberal Democrats", "GB", True),
)


def _demo_email(name: str) -> str:
    return signing.name_key(name).replace(" ", ".") + "@example.org"


def _load_demo(db: Session) -> Campaign:
    campaign = create_campaign(
        db,
        slug=DEMO_SLUG,
        title=DEMO_TITLE,
        letter=DEMO_LETTER,
        recipient=DEMO_RECIPIENT,
        state="open",
        require_confirmation=True,
        goal=100,
    )
    for name, title, parliament, party, country, public in DEMO_SIGNERS:
        entry = signing.validate_entry(
            {
                "name": name,
                "title": title,
                "parliament": parliament,
                "party": party,
                "country": country,
                "email": _demo_email(name),
                "public": public,
            }
        )
        signing.sign(db, campaign, replace(entry, source="import"), confirmed=True)
    return campaign


def _write_login(path: str, email: str, password: str) -> None:
    """Write the demo login to a file only its owner can read (mode 600)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(f"demo organizer login: {_public_url('/admin/login')}\n")
        handle.write(f"email: {email}\npassword: {password}\n")
    os.chmod(path, 0o600)  # an existing file keeps its mode on open(); make sure


@click.command("demo")
@with_appcontext
def demo() -> None:
    """Load a demo campaign and a demo organizer once; later runs say where they are."""
    login_path = os.path.join(current_app.instance_path, DEMO_LOGIN_FILE)
    letter_url = _public_url("/c/" + DEMO_SLUG)
    db = new_session(current_app)
    try:
        if get_by_slug(db, DEMO_SLUG) is not None:
            db.rollback()
            click.echo(f"the demo letter is at {letter_url}")
            click.echo(f"the demo organizer's login is in {login_path}")
            return
        campaign = _load_demo(db)
        password = secrets.token_urlsafe(16)
        try:
            organizer = auth.create_organizer(
                db, DEMO_ORGANIZER, password, name="Demo organizer", is_admin=True
            )
        except auth.AccountError:
            # The demo organizer outlived an earlier demo letter: keep its password.
            organizer = db.scalars(select(Organizer).where(Organizer.email == DEMO_ORGANIZER)).one()
            password = ""
        auth.add_to_campaign(db, organizer, campaign)
        if password:
            _write_login(login_path, DEMO_ORGANIZER, password)
        try:
            db.commit()
        except BaseException:
            if password:
                os.unlink(login_path)
            raise
    except CampaignError:
        # Another `campaign demo` created it a moment ago.
        db.rollback()
        click.echo(f"the demo letter is at {letter_url}")
        return
    except DBAPIError as error:
        raise errors.database_error(error) from None
    except errors.OutputError:
        raise  # standard output's, not the login file's (errors.one_line)
    except OSError as error:
        raise click.ClickException(f"cannot write {login_path}: {error.strerror}") from None
    finally:
        db.close()
    click.echo(f"demo letter: {letter_url} ({len(DEMO_SIGNERS)} sample signatures)")
    if password:
        click.echo(f"demo organizer: {_public_url('/admin/login')}")
        click.echo(f"  email:    {DEMO_ORGANIZER}")
        click.echo(f"  password: {password}")
        click.echo(f"(shown once; also kept in {login_path}, readable only by you)")
    else:
        click.echo(f"demo organizer {DEMO_ORGANIZER} already existed; its password is unchanged")


def _counted(counted: bool) -> str:
    return "counted" if counted else "not counted"


def _describe(repairs: tally.Repairs) -> list[str]:
    """One line per difference `campaign recount` repaired."""
    lines = []
    for drift in repairs.statuses:
        number = "1 signature" if drift.signatures == 1 else f"{drift.signatures} signatures"
        lines.append(
            f"{number} stored as {drift.status} ({_counted(drift.counted)}), "
            f"{drift.derived} by the dates recorded: now {drift.derived} "
            f"({_counted(drift.derived == 'confirmed')})"
        )
    for code, (was, now) in sorted(repairs.counters.items()):
        lines.append(f"{code} was {was}, now {now}")
    for code, (stored, continent) in sorted(repairs.continents.items()):
        lines.append(f"{code} continent was {stored}, now {continent}")
    return lines


@click.command("recount")
@with_appcontext
@click.argument("slug", required=False)
def recount(slug: str | None) -> None:
    """Rebuild the tally counters from the signatures; prints any drift repaired.

    Each signature's status and counted flag are set to what its dates say (a status
    written by hand is not trusted), and the counters, listed ones and continents too.

    First it finishes a change of the confirmation rule whose move of the signatures failed
    (campaigns.rederive: the unconfirmed are pending or counted as the letter's rule says).
    """
    db = new_session(current_app)
    try:
        if slug is not None:
            found = get_by_slug(db, slug)
            if found is None:
                raise click.ClickException(f"no campaign with the slug {slug}")
            targets = [found]
        else:
            targets = list(db.scalars(select(Campaign).order_by(Campaign.slug)))
        lines = []
        for campaign in targets:
            moved = rederive(db, campaign.id)
            if moved:
                lines.append(
                    f"{campaign.slug}: {moved} unconfirmed signatures moved to the letter's "
                    "confirmation rule (repaired)"
                )
            repairs = tally.repair(db, campaign)
            lines += [f"{campaign.slug}: {line} (repaired)" for line in _describe(repairs)]
            if not repairs:
                lines.append(f"{campaign.slug}: counters match ({tally.total(db, campaign)})")
        db.commit()
    except DBAPIError as error:
        raise errors.database_error(error) from None
    finally:
        db.close()
    if not targets:
        click.echo("no campaigns")
    for line in lines:
        click.echo(line)


commands: list[click.Command] = [create_campaign_command, demo, recount]
