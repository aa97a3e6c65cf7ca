"""Sign in and sign out (server-side sessions, throttled per username and address), and the
page where people see their signed-in sessions and sign the others out."""
from __future__ import annotations

import re

from flask import Blueprint, flash, g, redirect, render_template, request, session, url_for
from flask_babel import gettext, ngettext
from flask_login import current_user, login_required, login_user, logout_user

from app.errors import TooManyRequests
from app.i18n import N_
from app.services import accounts, sessions
from app.web.forms import ConfirmForm, LoginForm
from app.web.navigation import home_url, safe_next

bp = Blueprint("auth", __name__)

# One message for every failure, so the page never says whether a username exists.
BAD_CREDENTIALS = N_("That username and password do not match. Check them and try again.")
#: Where the cookie (Flask's signed session) keeps the session's secret — its only credential.
SESSION_KEY = "sid"
#: Shown at the sign-in page when a session was refused (signed out elsewhere, idle, too old).
SESSION_ENDED = N_("Your session has ended. Please sign in again.")
#: What flask-login keeps in the cookie besides; never trusted without the record.
LOGIN_KEYS = ("_user_id", "_fresh", "_id", "_remember", "_remember_seconds")


@bp.route("/login", methods=["GET", "POST"])
def login():
    """The sign-in form; on success go to a safe `next` or the user's home page."""
    form = LoginForm()
    if request.method == "GET":
        form.next.data = safe_next(request.args.get("next")) or ""
        if current_user.is_authenticated:
            return redirect(safe_next(form.next.data) or home_url())
    status, error, headers = 200, None, {}
    if form.validate_on_submit():
        try:
            opened = accounts.open_session(form.username.data.strip(), form.password.data, g.origin,
                                           replacing=session.get(SESSION_KEY))
        except TooManyRequests as exc:
            status, error, headers = 429, exc.message, {"Retry-After": str(exc.retry_after)}
        else:
            if opened is None:
                status, error = 401, gettext(BAD_CREDENTIALS)
            else:
                user, secret = opened
                # A fresh cookie: nothing from before sign-in (a planted session, its CSRF
                # token) carries over into the signed-in one.
                session.clear()
                g.pop("csrf_token", None)
                session[SESSION_KEY] = secret
                login_user(user)
                return redirect(safe_next(form.next.data) or home_url(), code=303)
    elif request.method == "POST":
        status = 400
    form.password.data = ""
    return render_template("login.html", form=form, error=error), status, headers


@bp.post("/logout")
def logout():
    """Sign out for good (a POST with the CSRF token, so another site cannot sign you out)."""
    signed_in = current_user.is_authenticated
    sessions.end(session.get(SESSION_KEY))
    session.clear()
    logout_user()
    if signed_in:
        flash(gettext("You are signed out."), "success")
    return redirect(url_for("auth.login"), code=303)


@bp.get("/account/sessions")
@login_required
def sessions_page():
    """The signed-in user's open sessions (this one marked), with ways to sign the others out."""
    own = sessions.own_sessions(current_user, session.get(SESSION_KEY))
    return render_template("sessions.html", rows=own.rows, current_id=own.current_id,
                           form=ConfirmForm(formdata=None), device_name=device_name)


@bp.post("/account/sessions/<int:session_id>/end")
@login_required
def end_session(session_id: int):
    """Sign out one other session of the signed-in user."""
    sessions.sign_out_other(current_user, session.get(SESSION_KEY), session_id)
    flash(gettext("That session is signed out."), "success")
    return redirect(url_for("auth.sessions_page"), code=303)


@bp.post("/account/sessions/others/end")
@login_required
def end_other_sessions():
    """Sign out every other session of the signed-in user."""
    count = sessions.sign_out_other(current_user, session.get(SESSION_KEY))
    flash(ngettext("Signed out %(num)d other session.", "Signed out %(num)d other sessions.", count) if count
          else gettext("There were no other sessions to sign out."), "success")
    return redirect(url_for("auth.sessions_page"), code=303)


_BROWSERS = (("Edg/", "Edge"), ("OPR/", "Opera"), ("Firefox/", "Firefox"), ("Chrome/", "Chrome"),
             ("Chromium/", "Chromium"), ("Safari/", "Safari"))
_SYSTEMS = (("iPhone", "iPhone"), ("iPad", "iPad"), ("Android", "Android"), ("Windows", "Windows"),
            ("Mac OS X", "macOS"), ("CrOS", "ChromeOS"), ("Linux", "Linux"))


def device_name(user_agent: str | None) -> str:
    """'Firefox on Windows' from a user agent, as far as it tells; never the raw string's noise."""
    agent = user_agent or ""
    browser = next((name for marker, name in _BROWSERS if marker in agent), None)
    system = next((name for marker, name in _SYSTEMS if marker in agent), None)
    if browser and system:
        return gettext("%(browser)s on %(system)s", browser=browser, system=system)
    if browser or system:
        return browser or system or ""
    word = re.match(r"[A-Za-z][A-Za-z0-9._-]{0,40}", agent)
    return word[0] if word else gettext("Unknown device")
