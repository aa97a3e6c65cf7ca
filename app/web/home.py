"""The landing page."""
from flask import Blueprint, redirect, render_template
from flask_login import current_user

from app.web.navigation import home_url

bp = Blueprint("home", __name__)


@bp.get("/")
def index():
    """What Chartbox is and a way in; signed-in people go straight to their own page."""
    if current_user.is_authenticated:
        return redirect(home_url())
    return render_template("home.html")
