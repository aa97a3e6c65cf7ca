"""The `chartbox` console script: the flask CLI bound to this app."""
from flask.cli import FlaskGroup

from app import create_app

main = FlaskGroup(create_app=lambda: create_app(), help="Chartbox administration.")
