"""The pages' language: which locale a request is answered in, and Flask-Babel's wiring.

Order: the signed-in user's saved choice, else the visitor's cookie (set by the switcher),
else the browser's Accept-Language among the supported ones, else English. The API dialects
always answer in English: their messages are part of each vendor's contract.

Services produce their messages with `gettext` where they raise them; outside a request (CLI,
a background job) that is English too.
"""
from __future__ import annotations

import os

from flask import Flask, g, has_request_context, request
from flask_login import current_user

#: (code, the language's name in itself), the switcher's choices; the first is the default.
LANGUAGES: tuple[tuple[str, str], ...] = (("en", "English"), ("es", "Español"))
LOCALES: tuple[str, ...] = tuple(code for code, _ in LANGUAGES)
DEFAULT_LOCALE = LOCALES[0]
#: The signed-out visitor's choice; a year, like any preference.
COOKIE = "chartbox_locale"
COOKIE_MAX_AGE = 365 * 24 * 3600
TRANSLATIONS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "translations")


def N_(message: str) -> str:
    """Mark `message` for the catalogue where it is defined (a table, a class attribute); it is
    translated later, with `gettext(message)`, in the request that shows it."""
    return message


def supported(code: str | None) -> str | None:
    """`code` when it names a supported locale ("es", "ES", "es-MX" -> "es"), else None."""
    if not code:
        return None
    base = code.replace("_", "-").split("-", 1)[0].lower()
    return base if base in LOCALES else None


def select_locale() -> str:
    """This request's locale (Flask-Babel's locale selector)."""
    if not has_request_context() or _is_api():
        return DEFAULT_LOCALE
    if current_user and current_user.is_authenticated:
        saved = supported(getattr(current_user, "locale", None))
        if saved:
            return saved
    return visitor_locale()


def visitor_locale() -> str:
    """The locale without asking who is signed in: the cookie, else Accept-Language, else English."""
    return (supported(request.cookies.get(COOKIE))
            or request.accept_languages.best_match(LOCALES)
            or DEFAULT_LOCALE)


def _is_api() -> bool:
    """An API dialect's request (by blueprint, or by prefix for errors raised before routing)."""
    from app.api.dialect import current_dialect, renderer_for
    from app.errors import render_page_error

    return current_dialect() is not None or renderer_for(request.path) is not render_page_error


def init_i18n(app: Flask) -> None:
    """Flask-Babel with the selector above and the catalogues in translations/."""
    from app.extensions import babel

    app.config.setdefault("BABEL_TRANSLATION_DIRECTORIES", TRANSLATIONS)
    babel.init_app(app, default_locale=DEFAULT_LOCALE, locale_selector=select_locale)

    # Flask-Babel keeps the chosen locale in `g`, which lives as long as the app context: when
    # one outlives a request (tests, the CLI), the next request must choose afresh.
    @app.before_request
    def fresh_locale() -> None:
        g.pop("_flask_babel", None)

    app.jinja_env.globals.update(LANGUAGES=LANGUAGES)
