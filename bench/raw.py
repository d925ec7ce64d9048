"""Baselines for items 4 and 5: the same rows moved with no application code at all.

``python -m bench.raw export URL SLUG OUT``: SELECT every column of the campaign's
signatures with sqlite3 and write them with csv.writer; prints the row count.
``python -m bench.raw import URL CSV``: read the CSV with csv.reader and executemany
the rows into one table of text columns, one transaction; prints the row count.
"""

from __future__ import annotations

import csv
import sqlite3
import sys


def _connect(url: str) -> sqlite3.Connection:
    conn = sqlite3.connect(url.removeprefix("sqlite:///"))
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    return conn


def export(url: str, slug: str, out: str) -> int:
    """Write every signature of the campaign as CSV; the number of rows."""
    conn = _connect(url)
    cursor = conn.execute(
        "SELECT s.* FROM signature s JOIN campaign c ON c.id = s.campaign_id"
        " WHERE c.slug = ? ORDER BY s.id",
        (slug,),
    )
    rows = 0
    with open(out, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow([d[0] for d in cursor.description])
        while batch := cursor.fetchmany(1000):
            writer.writerows(batch)
            rows += len(batch)
    conn.close()
    return rows


def import_(url: str, path: str) -> int:
    """Insert every row of the CSV into a table of text columns; the number of rows."""
    conn = _connect(url)
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle)
        header = next(reader)
        columns = ", ".join(f'"{name}" TEXT' for name in header)
        conn.execute(f"CREATE TABLE IF NOT EXISTS raw_import ({columns})")
        marks = ", ".join("?" for _ in header)
        rows = 0
        with conn:
            while True:
                batch = [row for _, row in zip(range(1000), reader, strict=False)]
                if not batch:
                    break
                conn.executemany(f"INSERT INTO raw_import VALUES ({marks})", batch)  # noqa: S608
                rows += len(batch)
    conn.close()
    return rows


def main() -> None:
    """Command line: export or import, printing the row count."""
    command, *args = sys.argv[1:]
    count = export(*args) if command == "export" else import_(*args)
    print(count)


if __name__ == "__main__":
    main()
