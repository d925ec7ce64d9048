"""`campaign serve`: gunicorn as this project runs it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from serve_helpers import Server, get, running, serve_env


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
