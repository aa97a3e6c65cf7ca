"""The app starts, migrations match the models, and the demo seeds a working clinic."""
from sqlalchemy import select

from app.extensions import db
from app.models import StoredFile


def test_demo_seeds_once(runner):
    result = runner.invoke(args=["demo"])
    assert result.exit_code == 0, result.output
    assert "API token for dr.rivera" in result.output
    assert len(db.session.scalars(select(StoredFile)).all()) == 6
    again = runner.invoke(args=["demo"])
    assert again.exit_code == 1 and "already holds data" in again.output
    assert runner.invoke(args=["demo", "--if-empty"]).exit_code == 0
