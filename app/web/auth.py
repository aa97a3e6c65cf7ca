"""Sign in and sign out (flask-login sessions, throttled per username and address)."""
from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_user, logout_user

from app.errors import TooManyRequests
from app.services import accounts
from app.web.forms import LoginForm
from app.web.navigation import home_url, safe_next

bp = Blueprint("auth", __name__)

# One message for every failure, so the page never says whether a username exists.
BAD_CREDENTIALS = "That username and password do not match. Check them and try again."


@bp.route("/login", methods=["GET", "POST"])
def login():
    """The sign-in form; on success go to a safe `next` or the user's home page."""
    form = LoginForm()
    if request.method == "GET":
        form.next.data = safe_next(request.args.get("next")) or ""
        if current_user.is_authenticated:
            return redirect(safe_next(form.next.data) or home_url())
    status, error = 200, None
    if form.validate_on_submit():
        try:
            user = accounts.sign_in(form.username.data.strip(), form.password.data, request.remote_addr)
        except TooManyRequests as exc:
            status, error = 429, exc.message
        else:
            if user is None:
                status, error = 401, BAD_CREDENTIALS
            else:
                login_user(user)
                return redirect(safe_next(form.next.data) or home_url(), code=303)
    elif request.method == "POST":
        status = 400
    form.password.data = ""
    return render_template("login.html", form=form, error=error), status


@bp.post("/logout")
def logout():
    """Sign out (a POST with the CSRF token, so another site cannot sign you out)."""
    if current_user.is_authenticated:
        logout_user()
        flash("You are signed out.", "success")
    return redirect(url_for("auth.login"), code=303)
