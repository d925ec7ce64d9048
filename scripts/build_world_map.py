"""Build campaign/data/world-110m.json: one SVG path per country, keyed by ISO alpha-2.

Run from the repository root after `npm ci` (see scripts/README.md):

    .venv/bin/python scripts/build_world_map.py

Node (scripts/project_world.mjs) projects the Natural Earth shapes from the npm package
world-atlas once; this script names them with pycountry and writes compact paths
(relative commands, coordinates rounded to a tenth of a map unit).
"""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pycountry

ROOT = Path(__file__).resolve().parent.parent
OUTPUT = ROOT / "campaign" / "data" / "world-110m.json"

# Features Natural Earth draws without an ISO 3166-1 number. ISO 3166-1 counts Northern
# Cyprus and Somaliland within Cyprus and Somalia, so their signatures shade them too;
# Kosovo has the user-assigned code XK, which campaign.geo knows.
UNNUMBERED = {"N. Cyprus": "CY", "Somaliland": "SO", "Kosovo": "XK"}


def alpha_2(feature: dict[str, Any]) -> str | None:
    """The ISO alpha-2 code of a world-atlas feature, or None for land without one."""
    if feature["id"] is None:
        return UNNUMBERED.get(feature["name"])
    country = pycountry.countries.get(numeric=feature["id"])
    return None if country is None else str(country.alpha_2)


def number(value: float) -> str:
    """A coordinate with one decimal at most and no leading zero ("-.3", "12", "4.5")."""
    text = f"{value:.1f}".rstrip("0").rstrip(".")
    if text in ("-0", ""):
        return "0"
    return text.replace("0.", ".", 1) if text.startswith(("0.", "-0.")) else text


def join(numbers: list[str]) -> str:
    """Numbers joined as SVG path data: a minus sign or a leading dot after a decimal separates."""
    out = ""
    for item in numbers:
        if out and not item.startswith("-") and not (item.startswith(".") and "." in _last(out)):
            out += " "
        out += item
    return out


def _last(text: str) -> str:
    """The last number written so far."""
    for i in range(len(text) - 1, -1, -1):
        if text[i] in " -lMz":
            return text[i:]
    return text


def ring_path(ring: list[list[float]]) -> str:
    """One closed ring as "M x y l dx dy ... z" in tenths, dropping repeated points."""
    points = [(round(x * 10), round(y * 10)) for x, y in ring]
    kept = [points[0]]
    for point in points[1:]:
        if point != kept[-1]:
            kept.append(point)
    if len(kept) > 1 and kept[-1] == kept[0]:
        kept.pop()
    if len(kept) < 3:
        return ""
    start = "M" + join([number(kept[0][0] / 10), number(kept[0][1] / 10)])
    deltas: list[str] = []
    for (x0, y0), (x1, y1) in itertools.pairwise(kept):
        deltas += [number((x1 - x0) / 10), number((y1 - y0) / 10)]
    return f"{start}l{join(deltas)}z"


def feature_path(rings: list[list[list[float]]]) -> str:
    """Every ring of a feature; a country too small for any ring keeps its largest one whole."""
    path = "".join(ring_path(ring) for ring in rings)
    if not path and rings:
        largest = max(rings, key=len)
        path = "M" + "L".join(f"{number(x)} {number(y)}" for x, y in largest) + "z"
    return path


def build(projected: dict[str, Any]) -> dict[str, Any]:
    """The data file's content from the projected features."""
    countries: dict[str, str] = {}
    other: list[str] = []
    for feature in projected["features"]:
        code = alpha_2(feature)
        path = feature_path(feature["rings"])
        if code is None:
            other.append(path)
        else:
            countries[code] = countries.get(code, "") + path
    dots: dict[str, list[float]] = {}
    for feature in projected["centroids"]:
        code = alpha_2(feature)
        if code and code not in countries and feature["point"]:
            dots[code] = [round(v, 1) for v in feature["point"]]
    for code, point in projected["points"].items():
        dots.setdefault(code, [round(v, 1) for v in point])
    return {
        "source": "Natural Earth 1:110m countries (public domain), via npm world-atlas 2.0.2; "
        "dots: centroids of 1:50m countries too small for 1:110m",
        "projection": "Equal Earth, fitted to the width, Antarctica omitted",
        "width": projected["width"],
        "height": projected["height"],
        "countries": dict(sorted(countries.items())),
        "other": other,
        "dots": dict(sorted(dots.items())),
    }


def main() -> int:
    """Project with Node, then name and compact with Python; write the data file."""
    result = subprocess.run(  # noqa: S603 - a fixed command, no outside input
        ["node", str(ROOT / "scripts" / "project_world.mjs")],  # noqa: S607 - node from PATH
        check=True,
        capture_output=True,
        cwd=ROOT,
    )
    data = build(json.loads(result.stdout))
    OUTPUT.parent.mkdir(parents=True, exist_ok=True)
    OUTPUT.write_text(json.dumps(data, separators=(",", ":"), ensure_ascii=False) + "\n")
    print(
        f"{OUTPUT.relative_to(ROOT)}: {len(data['countries'])} countries, "
        f"{len(data['dots'])} dots, {OUTPUT.stat().st_size} bytes"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
