"""The language switcher every page's footer posts to."""
from __future__ import annotations

from flask import Blueprint, current_app
from flask_babel import gettext
from flask_login import current_user

from app.errors import BadRequest
from app.i18n import COOKIE, COOKIE_MAX_AGE, supported
from app.services import accounts
from app.web.forms import LanguageForm
from app.web.navigation import back

bp = Blueprint("language", __name__)


@bp.post("/language")
def choose():
    """Save the chosen language (to the signed-in user, and in a cookie for when they are
    signed out) and go back to the page it was chosen on."""
    form = LanguageForm()
    locale = supported(form.locale.data)
    if locale is None or locale != form.locale.data:
        raise BadRequest(gettext("Choose one of the languages offered."))
    if current_user.is_authenticated:
        accounts.set_locale(current_user, locale)
    resp = back(form.next.data)
    resp.set_cookie(COOKIE, locale, max_age=COOKIE_MAX_AGE, httponly=True, samesite="Lax",
                    secure=bool(current_app.config["SESSION_COOKIE_SECURE"]))
    return resp
