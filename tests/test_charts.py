"""The SVG pictures: valid XML, the right countries in the right shades, hostile text escaped."""

from __future__ import annotations

import datetime as dt
import io
import json
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from campaign import charts, geo
from campaign.tally import ContinentTally, CountryTally, Tally

SVG = "{http://www.w3.org/2000/svg}"
HOSTILE = 'Free "them" <script>alert(1)</script> & \u202eRTL\u200f \x00\x1b'
DATA_FILE = Path(charts.__file__).parent / "data" / "world-110m.json"


def make_tally(counts: dict[str, int]) -> Tally:
    """A Tally as campaign.tally.tally() builds it, from {country: signatures}."""
    by_country = sorted(
        (CountryTally(c, geo.country_name(c), geo.continent_of(c), n) for c, n in counts.items()),
        key=lambda c: (-c.signatures, c.name),
    )
    continents: dict[str, list[int]] = {}
    for country in by_country:
        entry = continents.setdefault(country.continent, [0, 0])
        entry[0] += country.signatures
        entry[1] += 1
    by_continent = sorted(
        (ContinentTally(k, geo.continent_name(k), v[0], v[1]) for k, v in continents.items()),
        key=lambda c: -c.signatures,
    )
    return Tally(
        signatures=sum(counts.values()),
        countries=len(counts),
        continents=len(continents),
        by_continent=by_continent,
        by_country=by_country,
        updated_at=dt.datetime(2026, 11, 28, tzinfo=dt.UTC),
    )


SAMPLE = make_tally({"KH": 40, "FR": 12, "DE": 9, "US": 7, "AU": 5, "BR": 3, "ZA": 1, "SG": 4})


def parse(svg: str) -> ET.Element:
    root = ET.fromstring(svg)  # noqa: S314 - our own output, which this test checks
    assert root.tag == f"{SVG}svg"
    return root


def shapes_by_country(root: ET.Element) -> dict[str, ET.Element]:
    return {el.attrib["data-country"]: el for el in root.iter() if "data-country" in el.attrib}


def test_map_data_file_is_small_and_keys_countries_by_alpha_2() -> None:
    data = json.loads(DATA_FILE.read_text())
    assert DATA_FILE.stat().st_size < 150_000
    assert set(data["countries"]) <= set(geo.CONTINENT_OF)
    assert {"FR", "KH", "US", "BR", "AU", "ZA", "IN", "CN", "RU", "CY", "SO"} <= set(
        data["countries"]
    )
    assert all(path.startswith("M") and path.endswith("z") for path in data["countries"].values())


def test_every_inhabited_country_can_be_drawn_as_a_shape_or_a_dot() -> None:
    data = json.loads(DATA_FILE.read_text())
    drawable = set(data["countries"]) | set(data["dots"])
    # Antarctica is left off the map; the US Minor Outlying Islands are scattered specks.
    assert set(geo.CONTINENT_OF) - drawable == {"AQ", "UM"}


def test_world_map_is_an_accessible_svg_image_naming_the_totals() -> None:
    root = parse(charts.world_map_svg(SAMPLE, title="Signatures by country"))
    assert root.attrib["role"] == "img"
    labelled = root.attrib["aria-labelledby"].split()
    ids = {el.attrib.get("id"): el for el in root.iter()}
    assert [ids[i].tag for i in labelled] == [f"{SVG}title", f"{SVG}desc"]
    assert ids[labelled[0]].text == "Signatures by country"
    desc = ids[labelled[1]].text or ""
    assert "81 signatures from 8 countries on 6 continents" in desc
    assert "Cambodia 40" in desc


def test_each_counted_country_has_a_shape_with_a_tooltip() -> None:
    shapes = shapes_by_country(parse(charts.world_map_svg(SAMPLE, title="Map")))
    for country in SAMPLE.by_country:
        title = shapes[country.code].find(f"{SVG}title")
        assert title is not None
        assert title.text == f"{country.name}: {country.signatures} signatures".replace(
            "1 signatures", "1 signature"
        )
    assert shapes["IT"].attrib["fill"] == charts.NO_SIGNATURES
    assert shapes["IT"].find(f"{SVG}title").text == "Italy: no signatures"  # type: ignore[union-attr]


def test_small_countries_with_signers_appear_as_dots() -> None:
    shapes = shapes_by_country(parse(charts.world_map_svg(SAMPLE, title="Map")))
    assert shapes["SG"].tag == f"{SVG}circle"
    assert "MT" not in shapes  # no signers from Malta: no dot


def test_more_signatures_never_get_a_lighter_shade() -> None:
    shapes = shapes_by_country(parse(charts.world_map_svg(SAMPLE, title="Map")))
    order = [charts.SHADES.index(shapes[c.code].attrib["fill"]) for c in SAMPLE.by_country]
    assert order == sorted(order, reverse=True)
    assert order[0] == len(charts.SHADES) - 1  # the largest count gets the darkest shade
    assert order[-1] == 0


def test_legend_lists_no_signatures_and_five_steps_in_words() -> None:
    root = parse(charts.world_map_svg(SAMPLE, title="Map"))
    legend = next(el for el in root.iter(f"{SVG}g") if el.attrib.get("class") == "legend")
    texts = ["".join(t.itertext()) for t in legend.iter(f"{SVG}text")]
    steps = ["1\u20133", "4\u20135", "6\u201310", "11\u201320", "21\u201340"]
    assert texts == ["Signatures per country", "None", *steps]
    swatches = [r.attrib["fill"] for r in legend.iter(f"{SVG}rect")]
    assert swatches == [charts.NO_SIGNATURES, *charts.SHADES]


@pytest.mark.parametrize(
    ("maximum", "expected"),
    [
        (0, [(1, 1), (2, 2), (3, 3), (4, 4), (5, 5)]),
        (3, [(1, 1), (2, 2), (3, 3), (4, 4), (5, 5)]),
        (6, [(1, 2), (3, 3), (4, 4), (5, 5), (6, 6)]),
        (1000, [(1, 4), (5, 16), (17, 64), (65, 252), (253, 1000)]),
    ],
)
def test_steps_cover_one_to_the_largest_count_without_gaps(maximum: int, expected) -> None:
    ranges = charts.steps(maximum)
    assert ranges == expected
    assert all(ranges[i][1] + 1 == ranges[i + 1][0] for i in range(4))


def test_empty_tally_gives_a_grey_map() -> None:
    empty = make_tally({})
    root = parse(charts.world_map_svg(empty, title="Map"))
    fills = {el.attrib["fill"] for el in shapes_by_country(root).values()}
    assert fills == {charts.NO_SIGNATURES}
    assert root.find(f"{SVG}desc").text == "No signatures yet."  # type: ignore[union-attr]


def test_hostile_title_is_escaped_everywhere() -> None:
    pictures = [
        str(charts.world_map_svg(SAMPLE, title=HOSTILE, desc=HOSTILE)),
        str(charts.continent_bars_svg(SAMPLE, title=HOSTILE)),
        charts.badge_svg(3, HOSTILE, message=HOSTILE),
        charts.share_image_svg(HOSTILE, SAMPLE),
    ]
    for svg in pictures:
        root = parse(svg)  # control characters dropped: still well-formed XML
        assert "<script" not in svg
        assert root.find(f".//{SVG}script") is None
        assert "&lt;script&gt;" in svg
        texts = " ".join("".join(el.itertext()) for el in root.iter(f"{SVG}title"))
        assert 'Free "them" <script>alert(1)' in texts  # what a reader sees: the text itself
        assert "\u202eRTL\u200f" in svg  # bidi marks are kept, they are text


def test_ids_are_prefixed_so_two_charts_can_share_a_page() -> None:
    one = parse(charts.world_map_svg(SAMPLE, title="A", id_prefix="one"))
    assert one.attrib["aria-labelledby"] == "one-title one-desc"
    assert one.attrib["id"] == "one"


def test_continent_bars_write_names_and_numbers_and_scale_bars() -> None:
    root = parse(charts.continent_bars_svg(SAMPLE, title="By continent"))
    assert root.attrib["role"] == "img"
    rows = [el for el in root.iter(f"{SVG}g") if "data-continent" in el.attrib]
    assert [r.attrib["data-continent"] for r in rows] == ["AS", "EU", "NA", "OC", "SA", "AF"]
    asia = "".join(rows[0].find(f"{SVG}text").itertext())  # type: ignore[union-attr]
    assert asia == "Asia 44 signatures, 2 countries"
    africa = "".join(rows[-1].find(f"{SVG}text").itertext())  # type: ignore[union-attr]
    assert africa == "Africa 1 signature, 1 country"
    widths = [float(r.find(f"{SVG}rect").attrib["width"]) for r in rows]  # type: ignore[union-attr]
    assert widths == sorted(widths, reverse=True)
    assert widths[1] / widths[0] == pytest.approx(21 / 44, rel=0.01)


def test_continent_bars_of_an_empty_tally_say_so() -> None:
    root = parse(charts.continent_bars_svg(make_tally({}), title="By continent"))
    assert "No signatures yet" in "".join(root.itertext())


def test_translated_words_are_used() -> None:
    french = charts.ChartText(
        signatures=lambda n: f"{n} signature" + ("s" if n > 1 else ""),
        countries=lambda n: f"{n} pays",
        continent_name=lambda code: {"AS": "Asie"}.get(code, code),
        country_name=lambda code: geo.country_name(code, "fr"),
    )
    bars = "".join(parse(charts.continent_bars_svg(SAMPLE, title="t", text=french)).itertext())
    assert "Asie 44 signatures, 2 pays" in bars
    shapes = shapes_by_country(parse(charts.world_map_svg(SAMPLE, title="t", text=french)))
    assert shapes["DE"].find(f"{SVG}title").text == "Allemagne: 9 signatures"  # type: ignore[union-attr]


def test_badge_states_the_count() -> None:
    svg = charts.badge_svg(1234, "Release Kem Sokha")
    root = parse(svg)
    texts = ["".join(t.itertext()) for t in root.iter(f"{SVG}text")]
    assert texts == ["Release Kem Sokha", "1,234 signatures"]
    assert root.attrib["aria-label"] == "Release Kem Sokha: 1,234 signatures"
    assert int(root.attrib["width"]) > 150
    assert "".join(parse(charts.badge_svg(1, "x")).itertext()).endswith("1 signature")


def test_badge_shortens_a_long_label() -> None:
    root = parse(charts.badge_svg(5, "A" * 150))
    label = "".join(next(root.iter(f"{SVG}text")).itertext())
    assert len(label) == 40
    assert label.endswith("\u2026")


def test_share_image_states_title_and_count() -> None:
    root = parse(charts.share_image_svg("Release Kem Sokha", SAMPLE))
    assert (root.attrib["width"], root.attrib["height"]) == ("1200", "630")
    words = " ".join("".join(t.itertext()) for t in root.iter(f"{SVG}text"))
    assert "Release Kem Sokha" in words
    assert "81" in words
    assert "signatures from 8 countries on 6 continents" in words


def test_path_rings_are_read_with_relative_and_absolute_moves() -> None:
    rings = charts.polygons("M10 20l5 0 0 5-5 0zM100 100L110 100 110 110z")
    assert rings == [
        [(10, 20), (15, 20), (15, 25), (10, 25)],
        [(100, 100), (110, 100), (110, 110)],
    ]
    assert charts.polygons("M1.5.5l.5-.5.5.5z") == [[(1.5, 0.5), (2.0, 0.0), (2.5, 0.5)]]


def test_every_country_shape_parses_into_rings_inside_the_map() -> None:
    data = charts.world_data()
    for code, d in data["countries"].items():
        rings = charts.polygons(d)
        assert rings, code
        for ring in rings:
            xs, ys = [x for x, _ in ring], [y for _, y in ring]
            assert min(xs) >= -1 and max(xs) <= data["width"] + 1, code
            assert min(ys) >= -1 and max(ys) <= data["height"] + 1, code


def png_image(data: bytes) -> Any:
    from PIL import Image

    return Image.open(io.BytesIO(data))


def test_share_png_is_a_link_preview_with_the_count_and_the_map() -> None:
    image = png_image(charts.share_image_png("Release Kem Sokha", SAMPLE, footer="x.org/c/k"))
    assert (image.format, image.size) == ("PNG", (1200, 630))
    colours = {colour for _n, colour in image.convert("RGB").getcolors(1 << 20) or []}
    rgb = {tuple(int(c[i : i + 2], 16) for i in (1, 3, 5)) for c in charts.SHADES}
    assert rgb <= colours  # the map shows every shade of the sample
    empty = png_image(charts.share_image_png("Release Kem Sokha", make_tally({})))
    empty_colours = {colour for _n, colour in empty.convert("RGB").getcolors(1 << 20) or []}
    darkest = tuple(int(charts.SHADES[-1][i : i + 2], 16) for i in (1, 3, 5))
    assert not (rgb - {darkest}) & empty_colours  # no shaded country (the number's colour aside)


def test_share_png_survives_a_hostile_or_huge_title() -> None:
    for title in (HOSTILE, "W" * 5000, "Free " * 400, ""):
        image = png_image(charts.share_image_png(title, SAMPLE, text=charts.ENGLISH))
        assert image.size == (1200, 630)


def test_long_titles_are_cut_to_three_lines_with_an_ellipsis() -> None:
    from PIL import Image, ImageDraw

    draw = ImageDraw.Draw(Image.new("RGB", (10, 10)))
    font = charts._font(52)
    lines = charts._fit_lines(draw, "Release all the prisoners of conscience " * 10, font, 1072, 3)
    assert len(lines) == 3
    assert lines[-1].endswith("\u2026")
    assert all(draw.textlength(line, font=font) <= 1072 for line in lines)
    assert charts._fit_lines(draw, "Short title", font, 1072, 3) == ["Short title"]


def test_the_legend_can_be_left_to_the_page() -> None:
    bare = parse(charts.world_map_svg(SAMPLE, title="Map", legend=False))
    assert not [el for el in bare.iter(f"{SVG}g") if el.attrib.get("class") == "legend"]
    assert bare.attrib["viewBox"] == "0 0 1000 449"
    items = charts.legend_items(SAMPLE)
    labels = [label for _swatch, label in items]
    assert labels == ["None", "1\u20133", "4\u20135", "6\u201310", "11\u201320", "21\u201340"]
    fills = [parse(str(swatch)).find(f"{SVG}rect").attrib["fill"] for swatch, _ in items]  # type: ignore[union-attr]
    assert fills == [charts.NO_SIGNATURES, *charts.SHADES]
    assert all('aria-hidden="true"' in str(swatch) for swatch, _ in items)
    with pytest.raises(ValueError):
        charts.swatch_svg('red"/><script>')


# --------------------------------------------------------------------------- share.png's fonts

DEJAVU = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"
DEJAVU_BOLD = "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf"
CYRILLIC = "Освободите Кем Соху"  # noqa: RUF001 (Cyrillic letters like Latin ones)
ARABIC = "أطلقوا سراح كيم سوخا"
TITLE_AREA = (0, 40, 1200, 125)  # the first line of the title


@pytest.fixture
def dejavu() -> str:
    """DejaVu Sans, which .ci/run installs (Debian's fonts-dejavu-core)."""
    assert Path(DEJAVU).is_file(), "install fonts-dejavu-core (.ci/run does)"
    return DEJAVU


def title_pixels(title: str, **options: Any) -> bytes:
    """The pixels of a share image's title area."""
    image = png_image(charts.share_image_png(title, SAMPLE, **options))
    assert (image.format, image.size) == ("PNG", (1200, 630))
    return bytes(image.convert("L").crop(TITLE_AREA).tobytes())


@pytest.mark.parametrize("title", [CYRILLIC, ARABIC, "Libérez les prisonniers"])
def test_a_title_beyond_pillows_own_font_is_drawn_with_a_font_that_has_its_letters(
    dejavu: str, monkeypatch: pytest.MonkeyPatch, title: str
) -> None:
    face = charts.face_for(title)
    assert face is not None
    assert all(charts._has_glyph(face, ch) for ch in title if not ch.isspace())
    drawn = title_pixels(title)
    monkeypatch.setattr(charts, "SYSTEM_FONTS", ())  # Pillow's own font: missing-glyph boxes
    assert charts.face_for(title) is None
    assert not all(charts._has_glyph(None, ch) for ch in title if not ch.isspace())
    assert title_pixels(title) != drawn


def test_the_missing_glyph_box_is_told_from_a_letter() -> None:
    assert charts._has_glyph(None, "K")
    assert not charts._has_glyph(None, "Ж")  # Pillow's own font has Latin letters only


def test_an_arabic_title_starts_at_the_right(dejavu: str) -> None:
    image = png_image(charts.share_image_png(ARABIC, SAMPLE)).convert("L").crop(TITLE_AREA)
    inked = [
        x
        for x in range(image.width)
        if image.crop((x, 0, x + 1, image.height)).getextrema()[0] < 128
    ]
    assert max(inked) > 1200 - 64 - 10  # ends at the right margin
    assert min(inked) > 300  # a short title: the left is empty


def test_a_latin_title_keeps_pillows_own_font(dejavu: str, monkeypatch: pytest.MonkeyPatch) -> None:
    title = "Release Kem Sokha, now!"
    assert charts.face_for(title) is None
    drawn = charts.share_image_png(title, SAMPLE, footer="x.org/c/k")
    monkeypatch.setattr(charts, "SYSTEM_FONTS", ())
    assert charts.share_image_png(title, SAMPLE, footer="x.org/c/k") == drawn


def test_the_operators_fonts_come_first(dejavu: str) -> None:
    assert Path(DEJAVU_BOLD).is_file()
    assert charts.face_for(CYRILLIC) == DEJAVU
    assert charts.face_for(CYRILLIC, (DEJAVU_BOLD,)) == DEJAVU_BOLD
    assert title_pixels(CYRILLIC, fonts=[DEJAVU_BOLD]) != title_pixels(CYRILLIC)


def test_without_a_font_for_the_title_it_is_still_a_png(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    not_a_font = tmp_path / "broken.ttf"
    not_a_font.write_bytes(b"not a font")
    monkeypatch.setattr(charts, "SYSTEM_FONTS", ())
    for fonts in ((), (str(not_a_font), str(tmp_path / "missing.ttf"))):
        for title in (CYRILLIC, ARABIC, "释放金速卡和柬埔寨所有政治犯", HOSTILE):
            image = png_image(charts.share_image_png(title, SAMPLE, fonts=fonts))
            assert (image.format, image.size) == ("PNG", (1200, 630))


def test_chinese_without_spaces_wraps_onto_three_lines() -> None:
    from PIL import Image, ImageDraw

    draw = ImageDraw.Draw(Image.new("RGB", (10, 10)))
    font = charts._font(52)
    lines = charts._fit_lines(draw, "释放金速卡和柬埔寨所有政治犯" * 20, font, 1072, 3)
    assert len(lines) == 3
    assert lines[-1].endswith("\u2026")
    assert all(draw.textlength(line, font=font) <= 1072 for line in lines)
    # A long Latin word is still cut on its one line.
    assert len(charts._fit_lines(draw, "W" * 500, font, 1072, 3)) == 1


def test_a_title_no_font_here_draws_is_left_out_not_drawn_as_boxes(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Chinese on a machine without a CJK font: a blank title, and the log says what to
    install, rather than a row of missing-glyph boxes on every link preview."""
    monkeypatch.setattr(charts, "SYSTEM_FONTS", ())
    title = "释放金速卡和柬埔寨所有政治犯"
    assert not charts.covers(title)
    blank = title_pixels("")  # the image of a letter without a title
    with caplog.at_level("WARNING"):
        assert title_pixels(title) == blank
    assert "no font here draws every letter" in caplog.text
    assert "fonts-noto-cjk" in caplog.text
    assert charts.covers("Release Kem Sokha")
    assert title_pixels("Release Kem Sokha") != blank
