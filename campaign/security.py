"""Response headers, proxies and rate-limit policy (issue 4 grows this module)."""

from __future__ import annotations

from flask import Flask, Response


def init_app(app: Flask) -> None:
    """Add the security headers to every response."""

    @app.after_request
    def headers(response: Response) -> Response:
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "strict-origin-when-cross-origin")
        return response
