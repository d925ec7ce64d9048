"""Error pages: HTML for people, JSON for API paths; bad input never becomes a 500."""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import (
    Flask,
    Response,
    flash,
    jsonify,
    make_response,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_wtf.csrf import CSRFError
from sqlalchemy.exc import DBAPIError
from werkzeug.exceptions import BadRequest, HTTPException, ServiceUnavailable
from werkzeug.wrappers import Response as BaseResponse

from campaign import campaigns
from campaign.db import first_line, get_session
from campaign.i18n import gettext

# How long a client is asked to wait (Retry-After) when the database does not answer: on the
# 503 of any page, and on /healthz's, which load balancers and monitors read.
DATABASE_RETRY_SECONDS = 5


def wants_json() -> bool:
    """Whether the client asked for JSON: a .json path, or an Accept header preferring it."""
    if request.path.endswith(".json"):
        return True
    accept = request.accept_mimetypes
    return accept["application/json"] > accept["text/html"]


def render_error(error: HTTPException) -> Response:
    """One error as JSON or as a page, with its status and its own headers (a 405's Allow,
    a 503's Retry-After...)."""
    code = error.code or 500
    if wants_json():
        response = jsonify(error=error.name, status=code, message=error.description or "")
        response.status_code = code
    else:
        response = make_response(render_template("errors/error.html", error=error), code)
    for name, value in error.get_headers():
        if name.lower() != "content-type":
            response.headers[name] = value
    return response


def moved_letter() -> BaseResponse | None:
    """A redirect from a letter's public page under a slug it had before to the same page
    under its slug now (links already mailed, shared or embedded); None otherwise.

    Temporary (302, or 307 to keep a POST's method and body): the slug may change again, or
    come back, and a browser would keep a permanent redirect for good.
    """
    slug = (request.view_args or {}).get("slug")
    if not isinstance(slug, str) or request.endpoint is None or not request.path.startswith("/c/"):
        return None
    try:
        now = campaigns.renamed(get_session(), slug)
    except DBAPIError:
        return None
    if now is None:
        return None
    target = url_for(request.endpoint, **{**(request.view_args or {}), "slug": now})
    if request.query_string:
        target += "?" + request.query_string.decode("latin-1")
    return redirect(target, 302 if request.method in ("GET", "HEAD") else 307)


def init_app(app: Flask) -> None:
    """Register the error handlers."""

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException) -> BaseResponse | HTTPException:
        if error.code is None:  # a routing redirect, not an error
            return error
        if error.code == 404:
            moved = moved_letter()
            if moved is not None:
                return moved
        return render_error(error)

    app.register_error_handler(CSRFError, csrf_failed)

    @app.errorhandler(DBAPIError)
    def database_down(error: DBAPIError) -> Response:
        # The database went away (restart, failover): answer 503 so clients retry,
        # and drop the broken session; pool_pre_ping reconnects on the next request.
        # The driver's first line: neither the statement's values nor a row it quotes.
        orig = getattr(error, "orig", None) or error
        app.logger.error("database error (%s): %s", type(orig).__name__, first_line(error))
        try:
            get_session().rollback()
        except DBAPIError:
            app.logger.debug("rollback after a database error failed", exc_info=True)
        response = render_error(
            ServiceUnavailable("The service is briefly unavailable. Please try again in a moment.")
        )
        response.headers["Retry-After"] = str(DATABASE_RETRY_SECONDS)
        return response


# The dashboard's forms for people not logged in: a refusal there is no ended session.
_OPEN_TO_ANYONE = frozenset(
    {None, "admin.login", "admin.logout", "admin.password_reset", "admin.password_reset_link"}
)


def csrf_failed(error: CSRFError) -> BaseResponse:
    """A form's CSRF check failed (its session cookie lost, the page open for long): the 400
    page in plain words, never Flask-WTF's ("The CSRF session token is missing.").

    The signer's forms never get here: their views show the form again (views/public.py).
    On the dashboard, an organizer whose session ended (its lifetime, "Log out everywhere")
    is sent to log in, then back to the page the form was on, told why.
    """
    if request.path.startswith("/admin/") and request.endpoint not in _OPEN_TO_ANYONE:
        from campaign import auth

        if auth.current_organizer() is None:
            flash(
                gettext("Your session had ended, so nothing was saved. Log in, then do it again."),
                "error",
            )
            return redirect(url_for("admin.login", next=_page_of_form()), 303)
    return render_error(
        BadRequest(
            gettext(
                "This page had been open a long time, so nothing was done. "
                "Reload the page, then try again."
            )
        )
    )


def _page_of_form() -> str:
    """The dashboard page a refused form was posted from (its Referer on this site), else the
    dashboard's start."""
    from campaign import auth

    referrer = request.referrer or ""
    parts = urlsplit(referrer)
    if parts.netloc == request.host and parts.path.startswith("/admin/"):
        page = parts.path + (f"?{parts.query}" if parts.query else "")
        if auth.is_safe_next(page):
            return page
    return url_for("admin.index")
