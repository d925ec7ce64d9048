"""campaign: open-letter signature campaigns for parliamentarians."""

from __future__ import annotations

import logging
import os
import secrets
import time
from collections.abc import Mapping
from typing import Any

from flask import Flask

from campaign import config as default_config
from campaign import db
from campaign.extensions import babel, csrf, limiter, select_locale


def create_app(test_config: Mapping[str, Any] | None = None) -> Flask:
    """Build the app: config, database, extensions, blueprints, error pages, CLI."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    app = Flask(
        __name__,
        instance_relative_config=True,
        instance_path=os.environ.get("CAMPAIGN_INSTANCE_PATH") or os.path.join(root, "instance"),
        template_folder=os.path.join(root, "templates"),
    )
    app.config.from_object(default_config)
    if test_config is None:
        app.config.from_pyfile("config.py", silent=True)
        default_config.load_environment(app.config, os.environ)
    else:
        app.config.from_mapping(test_config)
    # A bad value stops here, in one line naming it (the CLI prints it: cli.main()).
    default_config.check(app.config, os.environ if test_config is None else {})
    os.makedirs(app.instance_path, exist_ok=True)
    if not app.config.get("SECRET_KEY"):
        app.config["SECRET_KEY"] = _instance_secret(app.instance_path)
    if not app.config.get("RATELIMIT_STORAGE_URI"):
        app.config["RATELIMIT_STORAGE_URI"] = "memory://"
    app.config.setdefault("TESTING", False)
    if not app.logger.handlers or app.debug:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")

    db.init_app(app)
    csrf.init_app(app)
    limiter.init_app(app)
    babel.init_app(app, locale_selector=select_locale)

    from campaign import errors, i18n, mail, markup, security, signing

    i18n.install_template_ngettext(app)
    # Update text (plain, its web addresses made links): in mail and on the public letter.
    app.add_template_filter(markup.linkify, "linkify")
    app.add_template_filter(markup.breakable_address, "breakable_address")
    app.add_template_test(signing.shows_nothing, "invisible")

    from campaign.views import admin, admin_abuse, admin_data, admin_updates, embed, pages, public

    security.init_app(app)
    errors.init_app(app)
    mail.init_app(app)
    # admin_data, admin_abuse and admin_updates add their routes to the admin blueprint.
    assert admin_data.bp is admin.bp and admin_abuse.bp is admin.bp
    assert admin_updates.bp is admin.bp
    # <int:...> takes only numbers a row can have (others: 404); set before the rules are added.
    app.url_map.converters["int"] = security.RowIdConverter
    for blueprint in (public.bp, admin.bp, embed.bp, pages.bp):
        app.register_blueprint(blueprint)

    from campaign import cli

    cli.init_app(app)
    return app


def _instance_secret(instance_path: str) -> str:
    """The key kept in instance/secret_key, made on first use (O_EXCL: one winner per race)."""
    path = os.path.join(instance_path, "secret_key")
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        pass
    else:
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_urlsafe(48))
    for _ in range(50):
        with open(path) as handle:
            key = handle.read().strip()
        if key:
            return key
        time.sleep(0.01)  # another process created the file and is still writing it
    raise RuntimeError(f"{path} is empty")
