"""`campaign serve`: gunicorn as this project runs it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from test_ratelimit import free_port, get, wait_until_up


def test_two_servers_of_one_user_leave_each_other_and_the_home_folder_alone(
    app_factory: Any, tmp_path: Path
) -> None:
    app = app_factory()
    home = tmp_path / "home"
    home.mkdir()
    env = {
        **{k: v for k, v in os.environ.items() if k != "XDG_RUNTIME_DIR"},
        "HOME": str(home),
        "CAMPAIGN_DATABASE_URL": app.config["DATABASE_URL"],
        "CAMPAIGN_INSTANCE_PATH": str(tmp_path / "served"),
        "CAMPAIGN_SECRET_KEY": "serve-test-secret",
        "CAMPAIGN_MAIL_SENDER": "false",
        "CAMPAIGN_BASE_URL": "http://campaign.test",
    }
    command = str(Path(sys.executable).with_name("campaign"))
    ports = [free_port(), free_port()]
    servers = [
        subprocess.Popen(
            [command, "serve", "--port", str(port), "--workers", "1", "--threads", "2"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        for port in ports
    ]
    try:
        for port, server in zip(ports, servers, strict=True):
            wait_until_up(port, server)
        servers[0].terminate()
        servers[0].communicate(timeout=20)
        assert get(f"http://127.0.0.1:{ports[1]}/healthz")[0] == 200
    finally:
        for server in servers:
            if server.poll() is None:
                server.terminate()
                server.communicate(timeout=20)
    # No control socket in the user's home, for one server to take from another.
    assert list(home.iterdir()) == []
