"""Every noun an administrator manages has create, list and show: aligned tables or --json."""
from __future__ import annotations

import json

from app.models import Role


def ok(result) -> str:
    assert result.exit_code == 0, result.output
    return result.output


def test_accounts_users_visits_tokens_list_and_show(runner, clinic, make_user, make_token, make_visit):
    doc = make_user(Role.PROVIDER, username="dr.nouns", full_name="Dr. Noun")
    pat = make_user(Role.PATIENT, username="pat.nouns", full_name="Pat Noun")
    make_token(doc)
    visit = make_visit(pat, external_id="EXT-1")

    table = ok(runner.invoke(args=["accounts", "list"])).splitlines()
    assert table[0].split() == ["CODE", "NAME", "ID", "CREATED_AT"] and table[1].startswith(clinic.code)
    assert json.loads(ok(runner.invoke(args=["accounts", "show", clinic.code, "--json"])))["patients"] == 1

    users = ok(runner.invoke(args=["users", "list", "--role", "patient"]))
    assert "pat.nouns" in users and "dr.nouns" not in users
    listed = json.loads(ok(runner.invoke(args=["users", "list", "--json"])))
    assert {u["username"] for u in listed} == {"dr.nouns", "pat.nouns"}
    shown = ok(runner.invoke(args=["users", "show", "dr.nouns"]))
    assert "api tokens:" in shown and "role:" in shown and "provider" in shown

    header, *rows = ok(runner.invoke(args=["visits", "list", "--patient", "pat.nouns"])).splitlines()
    assert header.split()[:3] == ["ID", "PATIENT", "EXTERNAL_ID"] and visit.public_id in rows[0]
    assert json.loads(ok(runner.invoke(args=["visits", "show", "EXT-1", "--json"])))["id"] == visit.public_id
    assert runner.invoke(args=["visits", "show", "nope"]).exit_code == 1

    tokens = json.loads(ok(runner.invoke(args=["tokens", "list", "--json"])))
    assert tokens[0]["user"] == "dr.nouns" and "token" not in tokens[0]
    assert "state:" in ok(runner.invoke(args=["tokens", "show", str(tokens[0]["id"])]))


def test_columns_line_up(runner, clinic, make_user):
    make_user(Role.PATIENT, username="a", full_name="A Very Long Name Indeed")
    make_user(Role.PATIENT, username="bbbbbbbbbbbb", full_name="B")
    lines = ok(runner.invoke(args=["users", "list"])).splitlines()
    starts = {line.index(name) for line, name in zip(lines[1:], ["A Very", "B"], strict=True)}
    assert len(starts) == 1  # the name column starts at the same place on every row


def test_version():
    from click.testing import CliRunner

    from app.cli.main import main

    result = CliRunner().invoke(main, ["--version"])
    assert result.exit_code == 0 and result.output.startswith("chartbox ")
