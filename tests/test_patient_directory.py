"""The patient directory (`/patients`, directory.find_patients): names in any order, partial
words, date of birth, chart number; namesakes told apart; chart numbers unique per clinic; the
CLI's new fields; migration 0013 on data. Runs on SQLite and on PostgreSQL."""
from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from test_migrations import current_revisions, empty_app, run_db_command, schema_diffs, script_heads  # noqa: F401

from app.errors import BadRequest, Conflict, Forbidden
from app.extensions import db
from app.models import Role, User
from app.models.base import utcnow
from app.services import accounts, directory

PASSWORD = "correct horse battery"


@pytest.fixture
def people(clinic, make_account):
    other = make_account("clinic-b", "Clinic B")

    def patient(account, username, name, born=None, chart=None):
        return accounts.create_user(account, Role.PATIENT, username, name, f"{username}@example.org",
                                    birth_date=born, chart_number=chart)  # no password: hashing is slow

    return {
        "provider": accounts.create_user(clinic, Role.PROVIDER, "dr.rivera", "Dr. Ana Rivera", None, PASSWORD),
        "alice": patient(clinic, "alice", "Alice Moreno", date(1984, 3, 2), "10234"),
        "alice2": patient(clinic, "amoreno", "Alice Moreno", date(1991, 7, 19), "10236"),
        "alison": patient(clinic, "alison", "Alison Morgan", date(1984, 3, 20), "AB-77"),
        "bob": patient(clinic, "bob", "Bob Okafor", date(1976, 11, 8), "10235"),
        "nodata": patient(clinic, "nodata", "Nadia Quinn"),
        # Another clinic: the same name, the same date of birth, the same chart number.
        "elsewhere": patient(other, "alice.b", "Alice Moreno", date(1984, 3, 2), "10234"),
        "outsider": accounts.create_user(other, Role.PROVIDER, "dr.b", "Dr. B"),
    }


def found(people, search: str, actor: str = "provider") -> list[str]:
    """Usernames found by `search`, in the directory's order."""
    return [u.username for u in directory.find_patients(people[actor], search, per_page=100).items]


@pytest.mark.parametrize("search", ["Moreno Alice", "alice moreno", "MORENO, alice", "  moreno   alice  "])
def test_names_in_any_order(people, search):
    assert found(people, search) == ["alice", "amoreno"]  # by name, then id: namesakes in creation order


@pytest.mark.parametrize("search,expected", [
    ("mor ali", ["alice", "amoreno", "alison"]),   # every word a part of the name
    ("ali mor", ["alice", "amoreno", "alison"]),
    ("morg", ["alison"]),
    ("ali oka", []),                               # each word matches someone, but not the same one
    ("oren", ["alice", "amoreno"]),                # inside a word, not only its start
    ("Okafor", ["bob"]),
    ("bob@example", ["bob"]),                      # email
    ("amoreno", ["amoreno"]),                      # username
    ("quinn nadia", ["nodata"]),                   # no date of birth or chart number: still found by name
])
def test_partial_words(people, search, expected):
    assert found(people, search) == expected


@pytest.mark.parametrize("search,expected", [
    ("1984-03-02", ["alice"]),
    ("03/02/1984", ["alice"]),                     # US month/day/year
    ("3/2/1984", ["alice"]),
    ("1984-3-20", ["alison"]),
    ("03/20/1984", ["alison"]),
    ("alice 1991-07-19", ["amoreno"]),             # a namesake told apart by the date
    ("1991-07-19 moreno", ["amoreno"]),
    ("1984-03-02 bob", []),
    ("20/03/1984", []),                            # day/month is not a date here: text, found nowhere
    ("02/30/1984", []),                            # no such day: text, found nowhere, no error
    ("1984", []),                                  # a year alone is text: no name, email or chart holds it
])
def test_date_of_birth(people, search, expected):
    assert found(people, search) == expected


@pytest.mark.parametrize("search,expected", [
    ("10234", ["alice"]),
    ("10236 alice", ["amoreno"]),
    ("1023", ["alice", "amoreno", "bob"]),         # part of a chart number
    ("ab-77", ["alison"]),                         # ignoring case
    ("10234 bob", []),
])
def test_chart_number(people, search, expected):
    assert found(people, search) == expected


@pytest.mark.parametrize("search", ["Moreno Alice", "1984-03-02", "03/02/1984", "10234", "alice.b", "b@example"])
def test_other_clinics_patients_are_never_found(people, search):
    assert "alice.b" not in found(people, search)
    assert found(people, search, actor="outsider") == ["alice.b"]  # their own clinic finds them


@pytest.mark.parametrize("search", ["%", "_", "ali%", "a_ice", "\\", "%moreno"])
def test_like_wildcards_are_plain_characters(people, search):
    assert found(people, search) == []


def test_search_is_staff_only_and_pages_keep_the_order(people):
    with pytest.raises(Forbidden):
        directory.find_patients(people["alice"], "moreno")
    first = directory.find_patients(people["provider"], "mor", page=1, per_page=2)
    second = directory.find_patients(people["provider"], "mor", page=2, per_page=2)
    assert first.total == second.total == 3
    assert [u.username for u in first.items + second.items] == ["alice", "amoreno", "alison"]
    assert accounts.find_patients is directory.find_patients  # the old name still answers


def test_namesakes_told_apart_on_the_page(people, make_page_client):
    client = make_page_client(people["provider"])
    page = client.get("/patients?q=Moreno+Alice").get_data(as_text=True)
    assert "2 matches for “Moreno Alice”" in page and page.count('patient-name">Alice Moreno<') == 2
    assert 'Born <time datetime="1984-03-02">2 Mar 1984</time> · Chart 10234' in page
    assert 'Born <time datetime="1991-07-19">19 Jul 1991</time> · Chart 10236' in page
    assert page.index("Chart 10234") < page.index("Chart 10236")
    assert "names in any order" in page and "dates of birth" in page and "chart numbers" in page
    one = client.get("/patients?q=03/02/1984").get_data(as_text=True)
    assert "1 match for “03/02/1984”" in one and "Chart 10234" in one and "Chart 10236" not in one
    assert f'href="/patients/{people["alice"].id}"' in one
    listing = client.get("/patients").get_data(as_text=True)
    assert "6 patients" not in listing and "5 patients" in listing  # not the other clinic's namesake
    nadia = listing[listing.index("Nadia Quinn"):]
    assert "Born" not in nadia[:nadia.index("</li>")]  # nothing on file: no empty label either


# -- chart numbers and dates of birth as created ----------------------------------------------------

def _patient(account, username, **kwargs) -> User:
    return accounts.create_user(account, Role.PATIENT, username, username.title(), **kwargs)


def test_chart_number_is_unique_per_clinic(clinic, make_account):
    other = make_account("clinic-b")
    _patient(clinic, "p1", chart_number="C-1")
    with pytest.raises(Conflict, match="chart number “C-1” is already used by another patient of this clinic"):
        _patient(clinic, "p2", chart_number="C-1")
    assert db.session.scalar(select(User).where(User.username == "p2")) is None
    assert _patient(other, "p3", chart_number="C-1").chart_number == "C-1"  # another clinic may reuse it
    for n in range(3):  # no chart number (NULL, or blank) any number of times
        assert _patient(clinic, f"none{n}", chart_number=" " if n else None).chart_number is None


def test_the_database_itself_refuses_a_second_chart_number(clinic):
    """The unique index, not only the service's check: a row written past the service."""
    first = _patient(clinic, "p1", chart_number="C-1")
    with pytest.raises(IntegrityError):
        db.session.execute(sa.insert(User).values(account_id=clinic.id, role="patient", username="raw",
                                                  full_name="Raw", active=True, created_at=utcnow(),
                                                  chart_number="C-1"))
    db.session.rollback()
    assert db.session.scalars(select(User.username).where(User.chart_number == "C-1")).all() == [first.username]


@pytest.mark.parametrize("chart_number", ["10 234", "-12", "12/3", "x" * 33, "№1", "١٢٣", "a\tb", "a_b"])
def test_malformed_chart_numbers(clinic, chart_number):
    with pytest.raises(BadRequest, match="Chart numbers use letters, digits and -"):
        _patient(clinic, "p1", chart_number=chart_number)
    assert db.session.scalar(select(User)) is None


def test_chart_numbers_are_for_patients(clinic):
    with pytest.raises(BadRequest, match="Only patients have a chart number"):
        accounts.create_user(clinic, Role.PROVIDER, "dr", "Dr", chart_number="1")


def test_birth_date_not_in_the_future(clinic):
    today = utcnow().date()
    assert _patient(clinic, "newborn", birth_date=today).birth_date == today
    with pytest.raises(BadRequest, match="date of birth cannot be in the future"):
        _patient(clinic, "later", birth_date=today + timedelta(days=2))
    assert db.session.scalar(select(User).where(User.username == "later")) is None
    db.session.expire_all()
    assert db.session.scalar(select(User.birth_date).where(User.username == "newborn")) == today  # a date, read back


# -- the CLI ---------------------------------------------------------------------------------------

def ok(result) -> str:
    assert result.exit_code == 0, result.output
    return result.output


def create(runner, username: str, *extra: str):
    return runner.invoke(args=["users", "create", "--account", "clinic-a", "--role", "patient",
                               "--username", username, "--full-name", "Alice Moreno", *extra])


def test_cli_create_list_show(runner, clinic):
    ok(create(runner, "alice", "--birth-date", "1984-03-02", "--chart-number", "10234"))
    ok(create(runner, "plain"))
    user = accounts.get_user("alice")
    assert (user.birth_date, user.chart_number) == (date(1984, 3, 2), "10234")

    header, *rows = ok(runner.invoke(args=["users", "list"])).splitlines()
    assert header.split() == ["ID", "USERNAME", "FULL_NAME", "BIRTH_DATE", "CHART_NUMBER", "ROLE", "ACCOUNT", "ACTIVE"]
    alice, plain = (next(r for r in rows if name in r) for name in ("alice", "plain"))
    assert "1984-03-02" in alice and "10234" in alice
    # Aligned: each column starts at the same place on every row, blanks shown as "-".
    birth, chart = header.index("BIRTH_DATE"), header.index("CHART_NUMBER")
    assert alice.index("1984-03-02") == birth and alice.index("10234") == chart
    assert plain[birth:birth + 2] == plain[chart:chart + 2] == "- "

    listed = {u["username"]: u for u in json.loads(ok(runner.invoke(args=["users", "list", "--json"])))}
    assert (listed["alice"]["birth_date"], listed["alice"]["chart_number"]) == ("1984-03-02", "10234")
    assert (listed["plain"]["birth_date"], listed["plain"]["chart_number"]) == (None, None)

    shown = ok(runner.invoke(args=["users", "show", "alice"]))
    assert any(line.startswith("birth date:") and line.endswith("1984-03-02") for line in shown.splitlines())
    assert any(line.startswith("chart number:") and line.endswith("10234") for line in shown.splitlines())
    as_json = json.loads(ok(runner.invoke(args=["users", "show", "plain", "--json"])))
    assert as_json["birth_date"] is None and as_json["chart_number"] is None


def test_cli_create_refusals(runner, clinic):
    ok(create(runner, "alice", "--chart-number", "10234"))
    taken = create(runner, "alice2", "--chart-number", "10234")
    assert taken.exit_code == 1 and "already used by another patient of this clinic" in taken.output
    future = (utcnow() + timedelta(days=3)).date().isoformat()
    later = create(runner, "later", "--birth-date", future)
    assert later.exit_code == 1 and "cannot be in the future" in later.output
    bad = create(runner, "bad", "--chart-number", "10 234")
    assert bad.exit_code == 1 and "Chart numbers use" in bad.output
    us = create(runner, "us", "--birth-date", "03/02/1984")  # the CLI takes ISO dates only
    assert us.exit_code == 2 and "%Y-%m-%d" in us.output
    assert "Traceback" not in taken.output + later.output + bad.output
    assert db.session.scalars(select(User.username)).all() == ["alice"]


# -- migration 0013 on data --------------------------------------------------------------------------

def test_migration_0013_keeps_users(empty_app):
    """Users written at 0012 get empty dates of birth and chart numbers at 0013, and survive the way
    back down (SQLite rebuilds the table then) and up again."""
    run_db_command(empty_app, "upgrade", "0012")
    accounts_t = sa.table("accounts", sa.column("id"), sa.column("code"), sa.column("name"),
                          sa.column("created_at", sa.DateTime(timezone=True)))
    users_t = sa.table("users", sa.column("id"), sa.column("account_id"), sa.column("role"), sa.column("username"),
                       sa.column("full_name"), sa.column("active", sa.Boolean),
                       sa.column("created_at", sa.DateTime(timezone=True)))
    moment = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
    with db.engine.begin() as conn:
        conn.execute(sa.insert(accounts_t).values(id=1, code="mig", name="Migrated", created_at=moment))
        conn.execute(sa.insert(users_t), [
            {"id": n, "account_id": 1, "role": "patient", "username": f"p{n}", "full_name": "Alice Moreno",
             "active": True, "created_at": moment} for n in (1, 2)])
    run_db_command(empty_app, "upgrade")
    assert current_revisions() == script_heads() and schema_diffs() == []
    db.session.remove()
    rows = db.session.execute(select(User.username, User.birth_date, User.chart_number).order_by(User.id)).all()
    assert [tuple(r) for r in rows] == [("p1", None, None), ("p2", None, None)]
    db.session.get(User, 1).chart_number = "10234"
    db.session.commit()
    db.session.remove()
    run_db_command(empty_app, "downgrade", "0012")
    with db.engine.connect() as conn:
        columns = {c["name"] for c in sa.inspect(conn).get_columns("users")}
        assert "chart_number" not in columns and "birth_date" not in columns
        assert conn.execute(sa.text("SELECT username FROM users ORDER BY id")).scalars().all() == ["p1", "p2"]
    run_db_command(empty_app, "upgrade")
    db.session.remove()
    assert db.session.scalars(select(User.username).order_by(User.id)).all() == ["p1", "p2"]
