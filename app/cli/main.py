"""The `chartbox` console script: the flask CLI bound to this app."""
from importlib.metadata import PackageNotFoundError, version

import click
from flask.cli import FlaskGroup

from app import create_app


def chartbox_version() -> str:
    try:
        return version("chartbox")
    except PackageNotFoundError:  # run from a checkout that was never installed
        return "unknown"


main = FlaskGroup(create_app=lambda: create_app(), help="Chartbox administration.", add_version_option=False)
main = click.version_option(chartbox_version(), "--version", "-V", prog_name="chartbox",
                            message="%(prog)s %(version)s")(main)
