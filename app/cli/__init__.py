"""Admin CLI: one AppGroup per noun, available as `flask --app wsgi …` and `chartbox …`."""
from flask import Flask


def register_cli(app: Flask) -> None:
    from app.cli import accounts, demo, files, sessions, tokens, users, visits

    for module in (accounts, users, sessions, tokens, visits, files):
        app.cli.add_command(module.group)
    app.cli.add_command(__import__("app.cli.backup", fromlist=["group"]).group)
    app.cli.add_command(__import__("app.cli.audit", fromlist=["group"]).group)
    app.cli.add_command(demo.demo)
