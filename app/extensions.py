"""Unbound extension objects; bound to the app in create_app() (breaks import cycles)."""
from typing import TYPE_CHECKING, cast

from flask import current_app
from flask_babel import Babel
from flask_limiter import Limiter
from flask_login import LoginManager
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from flask_wtf import CSRFProtect
from sqlalchemy import MetaData
from sqlalchemy.orm import DeclarativeBase
from werkzeug.local import LocalProxy

# Stable constraint names so Alembic migrations work the same on SQLite and PostgreSQL.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    """SQLAlchemy 2 typed declarative base of every model."""

    metadata = MetaData(naming_convention=NAMING)


db = SQLAlchemy(model_class=Base)
migrate = Migrate()
login_manager = LoginManager()
csrf = CSRFProtect()
babel = Babel()
#: The current app's Flask-Limiter. Flask-Limiter keeps its settings and storage on the Limiter
#: itself, and tests and the CLI build several apps in one process, so app/ratelimits.py builds
#: one per app (every limit is declared there, none by decorators).
LIMITER_KEY = "chartbox_limiter"
limiter = cast(Limiter, LocalProxy(lambda: current_app.extensions[LIMITER_KEY]))

# Models subclass `Model`: Flask-SQLAlchemy's db.Model at run time, the typed base for mypy.
if TYPE_CHECKING:
    Model = Base
else:
    Model = db.Model
