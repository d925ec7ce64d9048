"""The benchmark harness measures what it says: a smoke test of its pieces, nothing timed."""

from __future__ import annotations

import asyncio
import os
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from werkzeug.serving import BaseWSGIServer, make_server

from bench import bare_app, data, instructions, items, loadgen, measure, page, sender, servers
from bench.__main__ import QUICK, Line, render
from campaign import geo, signing


@pytest.fixture
def bare(tmp_path: Path) -> Iterator[tuple[BaseWSGIServer, str]]:
    """The bare app on a threaded local server and a fresh SQLite file."""
    url = data.sqlite_url(tmp_path / "bare.sqlite3")
    bare_app.create_schema(url)
    server = make_server("127.0.0.1", 0, bare_app.create_bare_app(url), threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server, url
    server.shutdown()
    thread.join(timeout=10)


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert loadgen.percentile(values, 50) == 50
    assert loadgen.percentile(values, 99) == 99
    assert loadgen.percentile(values, 100) == 100
    assert loadgen.percentile([3.0], 99) == 3.0
    assert loadgen.percentile([], 50) != loadgen.percentile([], 50)  # NaN


def test_signers_are_distinct_people_with_valid_entries() -> None:
    signers = loadgen.Signers("t", data.countries())
    forms = [signers.next() for _ in range(2000)]
    assert len({signing.email_key(f["email"]) for f in forms}) == 2000
    assert len({(signing.name_key(f["name"]), f["country"]) for f in forms}) == 2000
    # Every one passes the sign form's own rules.
    for form in forms[:50]:
        signing.validate_entry(form)


def test_closed_loop_counts_every_request_and_row(bare: tuple[BaseWSGIServer, str]) -> None:
    server, url = bare
    signers = loadgen.Signers("closed", data.countries())
    result = loadgen.closed_loop(
        "127.0.0.1",
        server.server_port,
        "/c/x",
        loadgen.signing_request("/c/x/sign", signers),
        users=4,
        duration=0.5,
        warmup=0.2,
    )
    assert result.accepted > 0
    assert result.error_count == 0
    assert len(result.latencies) == result.accepted == result.statuses["ok"]
    assert bare_app.count_rows(url) == result.accepted + result.warmup_accepted


def test_the_forms_floor_checks_csrf_and_the_address_then_stores(tmp_path: Path) -> None:
    # The floor must really do the form libraries' work, or the ceiling it shows is false.
    url = data.sqlite_url(tmp_path / "floor.sqlite3")
    bare_app.create_schema(url)
    client = bare_app.create_bare_app(url, forms=True).test_client()
    fields = {"name": "Ana Pérez", "email": "ana@example.es", "country": "ES"}
    assert client.post("/c/x/sign", data=fields).status_code == 400  # no token, no session
    token = loadgen.csrf_token(client.get("/c/x").get_data())
    assert token is not None
    forged = client.post("/c/x/sign", data={**fields, "csrf_token": token + "x"})
    assert forged.status_code == 400
    bad = client.post("/c/x/sign", data={**fields, "email": "ana@", "csrf_token": token})
    assert bad.status_code == 400
    assert bare_app.count_rows(url) == 0
    good = client.post("/c/x/sign", data={**fields, "csrf_token": token})
    assert good.status_code == 303
    assert bare_app.count_rows(url) == 1
    # The bare app itself checks nothing.
    assert bare_app.create_bare_app(url).test_client().post("/c/x/sign").status_code == 303


def test_open_loop_sends_at_the_given_rate(bare: tuple[BaseWSGIServer, str]) -> None:
    server, url = bare
    signers = loadgen.Signers("open", data.countries())
    result = loadgen.open_loop(
        "127.0.0.1",
        server.server_port,
        "/c/x",
        loadgen.signing_request("/c/x/sign", signers),
        rate=100,
        duration=0.5,
        users=4,
    )
    assert result.sent == 50
    assert result.accepted == 50
    assert result.error_count == 0
    assert bare_app.count_rows(url) == 50
    assert 0.45 <= result.duration < 2


def test_a_refused_post_is_an_error(bare: tuple[BaseWSGIServer, str]) -> None:
    server, _url = bare
    signers = loadgen.Signers("refused", data.countries())
    # The bare app redirects to /thanks; expecting anything else must count as errors.
    result = loadgen.closed_loop(
        "127.0.0.1",
        server.server_port,
        "/c/x",
        loadgen.signing_request("/c/x/sign", signers, expect_location="/elsewhere"),
        users=2,
        duration=0.3,
        warmup=0,
    )
    assert result.accepted == 0
    assert result.error_count == result.sent > 0
    assert result.errors and result.errors[0].startswith("303")


def test_virtual_user_keeps_csrf_token_and_cookie(bare: tuple[BaseWSGIServer, str]) -> None:
    server, _url = bare
    user = loadgen.VirtualUser("127.0.0.1", server.server_port)

    async def run() -> None:
        await user.load_form("/c/x")
        user.close()

    asyncio.run(run())
    assert len(user.csrf_token) == 32
    assert "session" in user.cookies


def test_connection_reads_chunked_bodies_and_reconnects_after_close() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
        )
        await writer.drain()
        writer.close()  # a server ending a kept-alive connection after one response

    async def run() -> list[bytes]:
        server = await asyncio.start_server(handler, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        conn = loadgen.Connection("127.0.0.1", port)
        bodies = []
        for _ in range(3):
            bodies.append((await conn.request("GET", "/")).body)
            await asyncio.sleep(0.05)  # let the close arrive: the next request must reconnect
        conn.close()
        server.close()
        await server.wait_closed()
        assert conn.opened == 3
        return bodies

    assert asyncio.run(run()) == [b"hello world"] * 3


def test_seed_builds_counted_rows_that_recount_matches(tmp_path: Path) -> None:
    url = data.sqlite_url(tmp_path / "seed.sqlite3")
    data.prepare(url)
    data.create_campaign(url, "seeded")
    codes = data.countries()
    assert len(codes) == len(set(codes)) == 150
    data.seed(url, data.campaign_id(url, "seeded"), 451, codes)
    before = data.check_counts(url, "seeded", tmp_path)
    assert (before.rows, before.counted, before.tally) == (451, 451, 0)
    assert not before.exact  # the seed leaves the counters to a recount
    drift, _how = data.recount(url, "seeded", tmp_path, repair=True)
    assert len([code for code in drift if len(code) == 2]) == 150
    # Every other seeded signer is public: their countries' listed counters were rebuilt too.
    assert {code.removesuffix(" listed") for code in drift if len(code) > 2} == set(codes[1::2])
    after = data.check_counts(url, "seeded", tmp_path)
    assert after.exact and after.tally == 451
    engine = data.engine_for(url)
    with engine.connect() as conn:
        rows = conn.exec_driver_sql(
            "SELECT name, name_key, email, email_key FROM signature ORDER BY id"
        ).all()
    engine.dispose()
    assert len({row.name_key for row in rows}) == 451
    for row in rows[:40]:
        assert signing.name_key(row.name) == row.name_key
        assert signing.email_key(row.email) == row.email_key


def test_run_measured_sees_a_childs_peak_memory() -> None:
    ballast = bytearray(200 * 1024 * 1024)  # a large parent must not inflate the figures
    ballast[::4096] = b"x" * len(ballast[::4096])
    small = measure.run_measured([sys.executable, "-c", "pass"]).check()
    big = measure.run_measured(
        [
            sys.executable,
            "-c",
            "b = bytearray(128 * 1024 * 1024); b[::4096] = b'x' * len(b[::4096])",
        ]
    ).check()
    del ballast
    assert small.maxrss_mib < 40
    assert big.maxrss_mib - small.maxrss_mib >= 120
    assert small.seconds > 0
    failed = measure.run_measured([sys.executable, "-c", "raise SystemExit(3)"])
    assert failed.returncode == 3
    with pytest.raises(RuntimeError):
        failed.check()


def test_page_links_are_found_and_other_hosts_flagged() -> None:
    parser = page._Links()
    parser.feed(
        '<link rel="stylesheet" href="/static/site.css"><script src="/static/sign.js"></script>'
        '<link rel="icon" href="https://cdn.example.net/i.png"><a href="https://x.example">x</a>'
    )
    urls = [url for url, _kind in parser.urls]
    assert urls == ["/static/site.css", "/static/sign.js", "https://cdn.example.net/i.png"]
    assert page._same_origin("http://127.0.0.1:5/static/a.css", "http://127.0.0.1:5/c/x")
    assert not page._same_origin("https://cdn.example.net/i.png", "http://127.0.0.1:5/c/x")


def test_urllib_fallback_weighs_the_page(bare: tuple[BaseWSGIServer, str]) -> None:
    server, _url = bare
    weight = page._urllib(f"http://127.0.0.1:{server.server_port}/c/x")
    assert len(weight.requests) == 1
    assert weight.total > len(bare_app.FORM)
    assert weight.foreign == [] and weight.failed == []


def test_table_has_one_row_per_benchmark_and_both_backends() -> None:
    lines = [
        Line("1", "signing", items.Figure("**0.60** = 6 / 10", True), items.Figure("0.4", False)),
        Line("4", "export", items.Figure("FAILED: boom", False, ["detail"])),
    ]
    meta = {"date": "today", "command": "python -m bench --quick", "nproc": "2"}
    table = render(lines, QUICK, True, meta, 12.0)
    rows = [line for line in table.splitlines() if line.startswith("| ")]
    assert rows[0].startswith("| # | benchmark | SQLite | PostgreSQL")
    assert rows[1].startswith("| 1 & 7 | signing | **0.60** = 6 / 10 | 0.4 |")
    assert rows[1].endswith("| met / **MISSED** |")
    assert rows[2].startswith("| 4 | export | FAILED: boom | - |")
    assert "- nproc: 2" in table
    assert "- 4 (SQLite): detail" in table


def test_server_cpu_is_read_from_proc(tmp_path: Path) -> None:
    # Half a second of CPU time, however long a busy machine takes to give it, then a mark.
    done = tmp_path / "burnt"
    burn = (
        "import pathlib, time\nt = time.process_time()\n"
        "while time.process_time() - t < 0.5: pass\n"
        f"pathlib.Path({str(done)!r}).touch()\ntime.sleep(60)"
    )
    server = servers.start(
        "burner", [sys.executable, "-c", burn], dict(os.environ), tmp_path / "log", 0
    )
    try:
        deadline = time.monotonic() + 60
        while not done.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert done.exists()
        # The burn, plus the interpreter's start and the idle wait: nothing near 2 s.
        assert 0.5 <= server.cpu_seconds() <= 2.0
    finally:
        server.stop()
    assert server.proc.returncode is not None


def test_closed_loop_reports_server_cpu_over_the_window(
    bare: tuple[BaseWSGIServer, str],
) -> None:
    server, _url = bare
    readings = iter([10.0, 12.5])
    result = loadgen.closed_loop(
        "127.0.0.1",
        server.server_port,
        "/c/x",
        loadgen.signing_request("/c/x/sign", loadgen.Signers("cpu", data.countries())),
        users=2,
        duration=0.3,
        warmup=0.1,
        probe=lambda: next(readings),
    )
    assert result.server_cpu_seconds == 2.5


def test_sender_bench_queues_and_delivers_every_mail(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The bench points CAMPAIGN_INSTANCE_PATH at its folder; restored after the test.
    monkeypatch.setenv("CAMPAIGN_INSTANCE_PATH", str(tmp_path / "instance"))
    queue, cpu, wall = sender._round(tmp_path, 5)
    assert queue > 0 and cpu > 0 and wall > 0
    assert len(list((tmp_path / "instance" / "outbox").glob("*.eml"))) == 5


def test_drain_outbox_waits_for_unsent_mail_and_says_what_is_left(tmp_path: Path) -> None:
    url = data.sqlite_url(tmp_path / "drain.sqlite3")
    data.prepare(url)
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO outbox_message (created_at, to_addr, subject, body_text, message_id,"
                " attempts, next_attempt_at, last_error) VALUES"
                " ('2026-01-01', 'a@example.org', 's', 't', '<1@x>', 0, '2026-01-01', '')"
            )
        )
    drain = data.drain_outbox(url, 0.2)
    assert (drain.backlog, drain.left) == (1, 1) and drain.seconds >= 0.2
    with engine.begin() as conn:
        conn.execute(text("UPDATE outbox_message SET sent_at = '2026-01-01'"))
    engine.dispose()
    drained = data.drain_outbox(url, 5)
    assert (drained.backlog, drained.left) == (0, 0) and drained.seconds < 1


@pytest.mark.parametrize("kind", instructions.KINDS)
def test_instruction_children_sign_through_each_app(
    kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # What a child runs under valgrind, without it: every signature is stored.
    monkeypatch.setenv("CAMPAIGN_INSTANCE_PATH", str(tmp_path / "instance"))
    assert instructions.sign_times(kind, 3, tmp_path) == instructions.WARMUP + 3
    if kind == "campaign":
        url = data.sqlite_url(tmp_path / "campaign.sqlite3")
        assert data.count_outbox(url) == instructions.WARMUP + 3
        assert data.check_counts(url, "bench", tmp_path).rows == instructions.WARMUP + 3
    else:
        stored = bare_app.count_rows(data.sqlite_url(tmp_path / "bare.sqlite3"))
        assert stored == instructions.WARMUP + 3


def test_instruction_count_is_read_from_callgrinds_summary() -> None:
    output = (
        "==41== Callgrind, a call-graph generating cache profiler\n==41== Events    : Ir\n"
        "==41== Collected : 7188153508\n==41==\n==41== I   refs:      7,188,153,508\n"
    )
    assert instructions.collected(output) == 7_188_153_508
    with pytest.raises(RuntimeError, match="no instruction count"):
        instructions.collected("==41== error: something else\n")


def test_instruction_table_gives_bare_over_each_app() -> None:
    rows = instructions.table({"campaign": 6_500_000.0, "bare": 1_570_000.0}).splitlines()
    assert rows[2] == "| campaign | 6.50 M | 0.24 |"
    assert rows[3] == "| bare | 1.57 M | 1.00 |"


def test_instruction_bench_refuses_an_unknown_app_in_one_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert instructions.main(["--only", "campaign,nginx"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "nginx" in err


def test_the_benchmarks_signers_come_from_countries_the_form_takes() -> None:
    countries = data.countries()
    assert len(countries) == 150
    assert all(geo.is_country(code) for code in countries)
