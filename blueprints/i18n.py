"""Language and time zone: the user's setting, else the browser's preference."""

from __future__ import annotations

from datetime import datetime

from flask import current_app, has_request_context, request
from flask_babel import format_datetime, get_locale
from flask_login import current_user


def select_locale() -> str:
    """The signed-in user's language, else the best match of the browser's
    Accept-Language (``zh-CN``, ``zh-TW`` and ``zh`` all pick the ``zh`` catalog)."""
    languages = current_app.config["LANGUAGES"]
    if not has_request_context():  # CLI commands and background work
        return current_app.config["BABEL_DEFAULT_LOCALE"]
    language = getattr(current_user, "language", None) if current_user else None
    if language in languages:
        return language
    return request.accept_languages.best_match(languages) or current_app.config[
        "BABEL_DEFAULT_LOCALE"
    ]


def select_timezone() -> str:
    return current_app.config["OFFICE_TIMEZONE"]


def local_datetime(value: datetime | None, format: str = "short") -> str:
    """A stored UTC datetime shown in the office time zone and the user's language."""
    if value is None:
        return ""
    return format_datetime(value, format)


def init_app(app) -> None:
    app.add_template_filter(local_datetime, "local_datetime")

    @app.context_processor
    def language_context():
        locale = get_locale()
        return {"html_lang": "zh-CN" if locale and locale.language == "zh" else "en"}
