"""Deskbook: the application factory. It only wires things together."""

from __future__ import annotations

import os

from flask import Flask

from config import Config, environment_overrides


def _keep_files_private() -> None:
    """What this process creates from now on (the database and its WAL, the search
    index, instance/ itself) is readable by its owner only: customer data and the
    signing key are nobody else's business on a shared server. Only adds 077 to the
    umask already set, so a stricter one stays."""
    os.umask(os.umask(0o077) | 0o077)


def create_app(test_config: dict | None = None) -> Flask:
    """Build the app. Settings: :class:`config.Config`, then ``instance/config.py``,
    then the environment, then ``test_config``. The instance folder is ``instance/``
    unless ``DESKBOOK_INSTANCE_PATH`` (or ``test_config["INSTANCE_PATH"]``) says otherwise."""
    instance_path = (test_config or {}).get("INSTANCE_PATH") or os.environ.get(
        "DESKBOOK_INSTANCE_PATH"
    )
    app = Flask(__name__, instance_path=instance_path, instance_relative_config=True)
    app.config.from_object(Config)
    if test_config is None or not test_config.get("TESTING"):
        app.config.from_pyfile("config.py", silent=True)
        app.config.update(environment_overrides())
    if test_config:
        app.config.update(test_config)
    _keep_files_private()
    os.makedirs(app.instance_path, mode=0o700, exist_ok=True)
    # An upload up to IMPORT_MAX_BYTES gets through, so a larger one is told so next to its field.
    app.config["MAX_CONTENT_LENGTH"] = max(app.config["MAX_CONTENT_LENGTH"], app.config["IMPORT_MAX_BYTES"] + 2**20)
    app.config["SESSION_COOKIE_SECURE"] = bool(app.config["HTTPS"])
    app.config["PREFERRED_URL_SCHEME"] = "https" if app.config["HTTPS"] else "http"

    from extensions import babel, csrf, htmx, init_database

    init_database(app)
    csrf.init_app(app)
    htmx.init_app(app)

    from blueprints import converters

    converters.init_app(app)  # before the blueprints: their rules use <id:…>
    from blueprints import (admin, auth, customers, data_safety, errors, exports, i18n, imports, main, notes, pool,
                            pool_admin, security, tags, tasks)
    from blueprints import search as search_views

    babel.init_app(app, locale_selector=i18n.select_locale, timezone_selector=i18n.select_timezone)
    i18n.init_app(app)
    security.init_app(app)
    errors.init_app(app)
    app.register_blueprint(auth.bp)
    app.register_blueprint(main.bp)
    app.register_blueprint(admin.bp)
    app.register_blueprint(pool_admin.bp)
    app.register_blueprint(data_safety.bp)
    for module in (customers, imports, notes, pool, tags, tasks, search_views, exports):
        app.register_blueprint(module.bp)

    from services import passwords, scheduler, search

    passwords.init_app(app)
    search.init_app(app, factory=create_app)
    scheduler.init_app(app)

    import cli

    cli.init_app(app)
    return app
