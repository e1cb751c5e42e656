"""The throw-away app the benchmarks run against, and its fresh schema."""

from __future__ import annotations

import os

from flask import Flask
from flask_migrate import upgrade

from app import create_app
from extensions import db


def database_url(instance: str) -> str:
    """DATABASE_URL from the environment, or a SQLite file in ``instance``."""
    return os.environ.get("DATABASE_URL") or f"sqlite:///{instance}/bench.db"


def bench_app(instance: str, url: str) -> Flask:
    """An app on ``url`` with its instance folder in ``instance``, CSRF off, and a
    ``/__baseline`` route that does nothing (the baseline the timings compare with)."""
    app = create_app({"TESTING": True, "SECRET_KEY": "bench", "DATABASE_URL": url,
                      "INSTANCE_PATH": instance, "WTF_CSRF_ENABLED": False})

    @app.get("/__baseline")
    def baseline():
        return "ok"

    return app


def fresh_schema(url: str) -> None:
    """Inside an app context: the schema made by the migrations. A PostgreSQL
    database's tables are dropped first (point the benchmarks at a scratch database)."""
    if url.startswith("postgresql"):
        db.drop_all()
        db.session.execute(db.text("DROP TABLE IF EXISTS alembic_version"))
        db.session.commit()
    upgrade()
