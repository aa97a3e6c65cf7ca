"""The landing page."""
from flask import Blueprint, render_template

bp = Blueprint("home", __name__)


@bp.get("/")
def index():
    """What Chartbox is, and where to go next."""
    return render_template("home.html")
