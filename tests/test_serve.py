"""`campaign serve`: gunicorn as this project runs it."""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path
from typing import Any

import pytest
from serve_helpers import CAMPAIGN, Server, get, running, serve_env

from campaign.server import cannot_listen, options


def test_two_servers_of_one_user_leave_each_other_and_the_home_folder_alone(
    app_factory: Any, tmp_path: Path
) -> None:
    app = app_factory()
    home = tmp_path / "home"
    home.mkdir()
    env = serve_env(
        app.config["DATABASE_URL"],
        tmp_path / "served",
        without=["XDG_RUNTIME_DIR"],
        HOME=str(home),
        CAMPAIGN_SECRET_KEY="serve-test-secret",
        CAMPAIGN_MAIL_SENDER="false",
    )
    servers = [
        Server(env=env, log_path=tmp_path / f"server{n}.log", workers=1, threads=2)
        for n in range(2)
    ]
    with running(*servers):
        servers[0].stop()
        assert get(f"http://127.0.0.1:{servers[1].port}/healthz")[0] == 200
    # No control socket in the user's home, for one server to take from another.
    assert list(home.iterdir()) == []


def test_a_port_in_use_ends_serve_in_one_line_at_once(app_factory: Any, tmp_path: Path) -> None:
    """Not gunicorn's five tries a second apart, two log lines each (gunicorn never starts)."""
    app = app_factory()
    env = serve_env(app.config["DATABASE_URL"], tmp_path / "served")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            [CAMPAIGN, "serve", "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        f"Error: cannot listen on 127.0.0.1:{port}: address already in use"
    ]


@pytest.mark.parametrize(
    ("host", "bind"),
    [
        ("127.0.0.1", "127.0.0.1:8000"),
        ("letters.example.org", "letters.example.org:8000"),
        ("::1", "[::1]:8000"),
        ("[::1]", "[::1]:8000"),
        ("::", "[::]:8000"),
    ],
)
def test_serve_binds_ipv6_addresses_in_brackets(host: str, bind: str) -> None:
    assert options(host=host, port=8000, workers=2, threads=4)["bind"] == bind


def test_an_ipv6_address_is_checked_with_or_without_brackets() -> None:
    if not socket.has_ipv6:
        pytest.skip("this machine has no IPv6")
    with socket.socket(socket.AF_INET6) as taken:
        taken.bind(("::1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        for host in ("::1", "[::1]"):
            taken_message = f"cannot listen on {host}:{port}: address already in use"
            assert cannot_listen(host, port) == taken_message
    assert cannot_listen("[::1]", port) is None
