"""`campaign serve`'s access log keeps no mailed secret (confirm, withdraw, stop, reset links)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from types import SimpleNamespace

import pytest
from gunicorn.config import Config

from campaign import server

TOKEN = "eyJzIjo0Mn0.Z2x2Zg.secret-part_x"


def _log_line(tmp_path: Path, method: str, path: str, query: str = "", referer: str = "-") -> str:
    """One access-log line as `campaign serve` writes it for a request."""
    cfg = Config()
    for key, value in server.options(host="127.0.0.1", port=1, workers=1, threads=1).items():
        cfg.set(key, value)
    log_file = tmp_path / "access.log"
    cfg.set("accesslog", str(log_file))
    logger = cfg.logger_class(cfg)
    raw_uri = path + (f"?{query}" if query else "")
    environ = {
        "REQUEST_METHOD": method,
        "RAW_URI": raw_uri,
        "PATH_INFO": path,
        "QUERY_STRING": query,
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "HTTP_REFERER": referer,
        "HTTP_USER_AGENT": "test",
    }
    resp = SimpleNamespace(status="303 SEE OTHER", sent=0, headers=[])
    req = SimpleNamespace(headers=[("REFERER", referer)])
    logger.access(resp, req, environ, dt.timedelta(milliseconds=3))
    for handler in list(logger.access_log.handlers):
        handler.close()
        logger.access_log.removeHandler(handler)
    return log_file.read_text()


@pytest.mark.parametrize(
    "path",
    [
        f"/c/demo/confirm/{TOKEN}",
        f"/c/demo/withdraw/{TOKEN}",
        f"/c/demo/updates/stop/{TOKEN}",
        f"/admin/password-reset/{TOKEN}",
    ],
)
def test_mailed_secrets_stay_out_of_the_access_log(tmp_path: Path, path: str) -> None:
    referer = f"https://letters.example{path}"
    line = _log_line(tmp_path, "POST", path, referer=referer)
    assert TOKEN not in line
    # The path stays readable: which page, with the secret replaced.
    assert f'"POST {path.rsplit("/", 1)[0]}/[token] HTTP/1.1" 303' in line
    assert f'"https://letters.example{path.rsplit("/", 1)[0]}/[token]"' in line


def test_other_requests_are_logged_whole(tmp_path: Path) -> None:
    line = _log_line(
        tmp_path, "GET", "/c/demo/tally", query="lang=fr", referer="https://x.example/"
    )
    assert '"GET /c/demo/tally?lang=fr HTTP/1.1" 303' in line
    assert '"https://x.example/"' in line


def test_the_served_app_uses_the_redacting_logger() -> None:
    options = server.options(host="127.0.0.1", port=1, workers=2, threads=4)
    assert options["logger_class"] is server.AccessLogger
    assert options["accesslog"] == "-"
