"""The signer's way through the public pages in Chromium: on a phone, by keyboard alone,
through an error, from the mail's link to the confirmed count, and in another language."""

from __future__ import annotations

import email
import email.policy
import itertools
import re
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update

from campaign import campaigns, mail, signing
from campaign import db as dbmod
from campaign.models import Signature, TallyCount

LiveServer = Any  # conftest.LiveServer: the app on a free port (tests/ is not a package)

PHONE = {"width": 360, "height": 740}
_numbers = itertools.count(1)


@pytest.fixture
def letter(live_server: LiveServer) -> str:
    """A fresh open letter (requiring confirmation) with two counted signers; its slug."""
    slug = f"flow-{next(_numbers)}"
    with dbmod.session_scope(live_server.app) as session:
        found = campaigns.create_campaign(
            session,
            slug=slug,
            title="Free the journalists",
            letter="Dear Prime Minister,\n\nWe ask you to free them.",
            recipient="The Prime Minister",
            state="open",
        )
        for index, country in enumerate(("FR", "KE")):
            entry = signing.SignatureEntry(
                name=f"Early Signer {index}",
                title="MP",
                parliament="Parliament",
                party="",
                country_code=country,
                email=f"early{index}-{slug}@example.org",
                public=True,
            )
            signing.sign(session, found, entry, confirmed=True)
    return slug


def count_sentence(page: Any) -> str:
    return str(page.locator("p.count").inner_text()).strip()


def test_sign_on_a_360px_phone(page: Any, live_server: LiveServer, letter: str, screenshot) -> None:
    page.set_viewport_size(PHONE)
    page.goto(live_server(f"/c/{letter}"))
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]  # no sideways
    screenshot(page, "letter-top", full_page=False)
    page.get_by_role("link", name="Sign the letter").click()
    page.get_by_label("Full name").fill("Ana Lima")
    page.get_by_label("Title", exact=True).fill("Deputy")
    page.get_by_label("Parliament").fill("Chamber of Deputies")
    page.get_by_label("Country").select_option("BR")
    assert page.locator("#country-continent").inner_text() == "Continent: South America"
    page.get_by_label("Email address").fill(f"ana-{letter}@example.org")
    page.get_by_label("List my name publicly").check()
    screenshot(page, "form-filled")
    button = page.get_by_role("button", name="Sign the letter")
    box = button.bounding_box()
    assert box is not None and box["width"] >= 300  # a full-width button on a phone
    button.click()
    # The form's #error-summary (for a refused form) stays behind: the thanks page's own
    # fragment names its heading.
    page.wait_for_url(re.compile(rf"/c/{letter}/thanks#thank-you$"))
    assert page.get_by_role("heading", level=1).get_attribute("id") == "thank-you"
    assert page.get_by_role("heading", level=1).inner_text() == "Thank you"
    assert "Please check your email" in page.content()
    screenshot(page, "thanks")


def tab_until(page: Any, test: str, limit: int = 40) -> None:
    """Press Tab until the script test (about document.activeElement) holds."""
    for _ in range(limit):
        page.keyboard.press("Tab")
        if page.evaluate(f"(() => {{ const el = document.activeElement; return {test}; }})()"):
            return
    raise AssertionError(f"Tab never reached: {test}")


def test_sign_with_the_keyboard_alone(page: Any, live_server: LiveServer, letter: str) -> None:
    page.set_viewport_size({"width": 1280, "height": 900})
    page.goto(live_server(f"/c/{letter}"))
    tab_until(page, "el.textContent.trim() === 'Sign the letter' && el.tagName === 'A'")
    page.keyboard.press("Enter")  # the "Sign the letter" link leads to the form
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "name"
    focus = page.evaluate(
        "(() => { const s = getComputedStyle(document.activeElement);"
        " return [s.outlineStyle, s.outlineColor]; })()"
    )
    assert focus == ["solid", "rgb(255, 191, 71)"]  # the focus is plainly visible
    page.keyboard.type("Kofi Boateng")
    page.keyboard.press("Tab")
    page.keyboard.type("MP")
    page.keyboard.press("Tab")
    page.keyboard.type("Parliament of Ghana")
    page.keyboard.press("Tab")  # party: optional, left empty
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "country"
    page.keyboard.type("Ghana")  # a select chooses by typing its option's name
    assert page.evaluate("document.activeElement.value") == "GH"
    assert page.locator("#country-continent").inner_text() == "Continent: Africa"
    page.keyboard.press("Tab")
    page.keyboard.type(f"kofi-{letter}@example.org")
    page.keyboard.press("Tab")
    page.keyboard.type("For a free press.")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "public"
    page.keyboard.press("Space")
    assert page.evaluate("document.activeElement.checked") is True
    page.keyboard.press("Tab")  # the honeypot is out of the tab order
    assert page.evaluate("document.activeElement.type") == "submit"
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(rf"/c/{letter}/thanks#thank-you$"))
    with dbmod.session_scope(live_server.app) as session:
        stored = session.scalars(
            select(Signature).where(Signature.email == f"kofi-{letter}@example.org")
        ).one()
        assert (stored.name, stored.country_code, stored.public) == ("Kofi Boateng", "GH", True)
        assert stored.comment == "For a free press."


def test_see_an_error_and_correct_it(
    page: Any, live_server: LiveServer, letter: str, screenshot
) -> None:
    page.set_viewport_size(PHONE)
    page.goto(live_server(f"/c/{letter}#sign"))
    page.get_by_label("Title", exact=True).fill("MP")
    page.get_by_label("Parliament").fill("Bundestag")
    page.get_by_label("Country").select_option("DE")
    page.get_by_label("Email address").fill("not an address")
    with page.expect_navigation():
        page.get_by_role("button", name="Sign the letter").click()
    summary = page.locator("#error-summary")
    assert summary.is_visible()
    assert page.evaluate("document.activeElement.id") == "error-summary"  # read out first
    assert page.title().startswith("Error:")
    links = summary.get_by_role("link").all_inner_texts()
    assert links == [
        "Full name: This field is required.",
        "Email address: Enter a valid email address, like name@example.org.",
    ]
    assert page.get_by_label("Email address").get_attribute("aria-invalid") == "true"
    assert page.get_by_label("Email address").input_value() == "not an address"  # kept
    assert page.get_by_label("Country").input_value() == "DE"
    assert page.locator("#country-continent").inner_text() == "Continent: Europe"
    screenshot(page, "errors", full_page=False)
    summary.get_by_role("link", name=re.compile("^Email address")).click()
    assert page.evaluate("document.activeElement.id") == "email"
    page.get_by_label("Email address").fill(f"hans-{letter}@example.org")
    page.get_by_label("Full name").fill("Hans Weber")
    page.get_by_role("button", name="Sign the letter").click()
    page.wait_for_url(re.compile(rf"/c/{letter}/thanks#thank-you$"))


def outbox_mail(app: Any, address: str) -> email.message.EmailMessage:
    """Deliver what is due to instance/outbox/ and read the .eml sent to address."""
    mail.deliver_due(app)
    for path in sorted(Path(app.instance_path, "outbox").glob("*.eml")):
        message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        if message["To"] == address:
            assert isinstance(message, email.message.EmailMessage)
            return message
    raise AssertionError(f"no mail to {address}")


def test_confirm_from_the_outbox_and_watch_the_count_change(
    page: Any, browser: Any, live_server: LiveServer, letter: str, screenshot
) -> None:
    address = f"siti-{letter}@example.org"
    watcher = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
    watcher.goto(live_server(f"/c/{letter}/tally"))
    heading = watcher.get_by_role("heading", level=1)
    assert heading.inner_text() == "Signed by 2 MPs from 2 countries on 2 continents"
    assert heading.get_attribute("aria-live") == "polite"
    watcher.evaluate("window.notReloaded = true")

    page.set_viewport_size(PHONE)
    page.goto(live_server(f"/c/{letter}#sign"))
    page.get_by_label("Full name").fill("Siti Aminah")
    page.get_by_label("Title", exact=True).fill("MP")
    page.get_by_label("Parliament").fill("House of Representatives")
    page.get_by_label("Country").select_option("ID")
    page.get_by_label("Email address").fill(address)
    page.get_by_role("button", name="Sign the letter").click()
    page.wait_for_url(re.compile(rf"/c/{letter}/thanks#thank-you$"))

    message = outbox_mail(live_server.app, address)
    assert message["Subject"] == "Please confirm your signature: Free the journalists"
    body = message.get_body(preferencelist=("plain",))
    assert body is not None
    confirm = re.search(rf"{re.escape(live_server.url)}/c/{letter}/confirm/\S+", body.get_content())
    assert confirm is not None
    page.goto(confirm.group(0))
    assert page.get_by_role("heading", level=1).inner_text() == "Confirm your signature"
    assert "Siti Aminah" in page.locator("dl.signer").inner_text()
    screenshot(page, "confirm")
    with page.expect_navigation():
        page.get_by_role("button", name="Confirm my signature").click()
    assert page.get_by_role("heading", level=1).inner_text() == "Thank you: your signature counts"
    screenshot(page, "confirmed")

    # The tally page, open all along, restates the count from tally.json: no reload.
    expected = "Signed by 3 MPs from 3 countries on 3 continents"
    watcher.wait_for_function(
        "text => document.querySelector('h1').innerText.trim() === text", arg=expected
    )
    assert watcher.evaluate("window.notReloaded") is True
    screenshot(watcher, "tally-updated", full_page=False)
    watcher.context.close()


def test_the_letters_count_follows_in_the_readers_language(
    page: Any, live_server: LiveServer, letter: str
) -> None:
    page.goto(live_server(f"/c/{letter}?lang=fr"))
    assert count_sentence(page) == "2 signatures de 2 pays sur 2 continents"
    page.evaluate("window.notReloaded = true")
    with dbmod.session_scope(live_server.app) as session:
        found = campaigns.get_by_slug(session, letter)
        assert found is not None
        entry = signing.SignatureEntry(
            name="Lea Klein",
            title="MP",
            parliament="Bundestag",
            party="",
            country_code="DE",
            email=f"lea-{letter}@example.org",
        )
        signing.sign(session, found, entry, confirmed=True)
    page.wait_for_function(
        "() => document.querySelector('p.count').innerText.trim() === "
        "'3 signatures de 3 pays sur 2 continents'"
    )
    assert page.evaluate("window.notReloaded") is True


@pytest.mark.parametrize(
    ("lang", "french_signers", "before", "after"),
    [
        (
            "fr",
            12344,
            "2 signatures de 2 pays sur 2 continents",
            "12\u202f345 signatures de 2 pays",
        ),
        # The browser's Spanish leaves four digits ungrouped; the server groups them.
        ("es", 1233, "2 firmas de 2 países en 2 continentes", "1.234 firmas de 2 países"),
    ],
)
def test_the_live_count_groups_its_digits_as_the_server_does(
    page: Any, live_server: LiveServer, letter: str, lang: str, french_signers: int, before: str,
    after: str,
) -> None:  # fmt: skip
    page.goto(live_server(f"/c/{letter}?lang={lang}"))
    assert count_sentence(page) == before
    with dbmod.session_scope(live_server.app) as session:
        found = campaigns.get_by_slug(session, letter)
        assert found is not None
        # The French counter as a recount of that many French signers leaves it.
        session.execute(
            update(TallyCount)
            .where(TallyCount.campaign_id == found.id, TallyCount.country_code == "FR")
            .values(signatures=french_signers)
        )
    page.wait_for_function(
        "(after) => document.querySelector('p.count').innerText.trim().startsWith(after)", arg=after
    )
    live = count_sentence(page)
    page.reload()
    assert count_sentence(page) == live


def test_switch_language(page: Any, live_server: LiveServer, letter: str, screenshot) -> None:
    page.set_viewport_size(PHONE)
    page.goto(live_server(f"/c/{letter}"))
    switcher = page.get_by_role("navigation", name="Language")
    assert switcher.get_by_role("link", name="English").get_attribute("aria-current") == "true"
    with page.expect_navigation():
        switcher.get_by_role("link", name="Français").click()
    assert page.evaluate("document.documentElement.lang") == "fr"
    assert page.get_by_role("heading", name="Signer la lettre").is_visible()
    assert page.get_by_label("Pays").locator("option[value=DE]").inner_text() == "Allemagne"
    page.get_by_label("Pays").select_option("CI")
    assert page.locator("#country-continent").inner_text() == "Continent\u00a0: Afrique"
    assert count_sentence(page) == "2 signatures de 2 pays sur 2 continents"
    screenshot(page, "letter-fr", full_page=False)
    # The choice is remembered: the next page is French without ?lang=.
    page.goto(live_server(f"/c/{letter}/tally"))
    assert page.get_by_role("heading", level=1).inner_text() == (
        "Signée par 2 parlementaires de 2 pays sur 2 continents"
    )
    assert page.get_by_role("cell", name="Afrique").is_visible()
    assert page.get_by_role("rowheader", name="Kenya").is_visible()
    assert (
        page.get_by_role("navigation", name="Langue")
        .get_by_role("link", name="Français")
        .get_attribute("aria-current")
        == "true"
    )
    screenshot(page, "tally-fr")


def test_pages_work_without_javascript(browser: Any, live_server: LiveServer, letter: str) -> None:
    context = browser.new_context(java_script_enabled=False, viewport=PHONE)
    page = context.new_page()
    page.goto(live_server(f"/c/{letter}"))
    page.get_by_label("Full name").fill("Noor Rahman")
    page.get_by_label("Title", exact=True).fill("MP")
    page.get_by_label("Parliament").fill("Jatiya Sangsad")
    page.get_by_label("Country").select_option("BD")
    page.get_by_label("Email address").fill(f"noor-{letter}@example.org")
    page.get_by_role("button", name="Sign the letter").click()
    page.wait_for_url(re.compile(rf"/c/{letter}/thanks#thank-you$"))
    page.goto(live_server(f"/c/{letter}/tally"))
    assert page.locator("svg.chart-map").is_visible()
    copy = page.get_by_role("link", name="Copy link")
    assert copy.get_attribute("href") == live_server(f"/c/{letter}/tally")
    context.close()


def test_copy_link_copies_the_address(browser: Any, live_server: LiveServer, letter: str) -> None:
    context = browser.new_context(permissions=["clipboard-read", "clipboard-write"])
    page = context.new_page()
    page.goto(live_server(f"/c/{letter}/tally"))
    page.get_by_role("link", name="Copy link").click()
    status = page.locator(".share .copy-status")
    status.filter(has_text="Link copied").wait_for()
    assert page.url == live_server(f"/c/{letter}/tally")  # copied, not followed
    assert page.evaluate("navigator.clipboard.readText()") == live_server(f"/c/{letter}/tally")
    context.close()


FOCUS_SHOWN = """(() => {
  const el = document.activeElement;
  const s = getComputedStyle(el);
  const yellow = 'rgb(255, 191, 71)';
  const shown = (s.outlineStyle !== 'none' && s.outlineColor !== 'rgba(0, 0, 0, 0)'
                 && parseFloat(s.outlineWidth) >= 2)
    || s.backgroundColor === yellow || s.boxShadow.includes('255, 191, 71');
  const text = (el.textContent || '').trim().slice(0, 30);
  return [el.tagName + (el.id ? '#' + el.id : '') + ' ' + text, shown];
})()"""


@pytest.mark.parametrize("path", ["", "/tally", "/thanks"])
def test_every_control_shows_where_the_focus_is(
    page: Any, live_server: LiveServer, letter: str, path: str
) -> None:
    page.set_viewport_size({"width": 1280, "height": 900})
    page.goto(live_server(f"/c/{letter}{path}"))
    seen = []
    for _ in range(60):
        page.keyboard.press("Tab")
        name, shown = page.evaluate(FOCUS_SHOWN)
        if name in seen or name.startswith("BODY"):
            break  # round the page once
        seen.append(name)
        assert shown, name
    assert len(seen) > 8
