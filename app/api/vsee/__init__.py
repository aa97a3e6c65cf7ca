"""VSee Clinic: the `api_v3/files` dialect."""
from app.api.dialect import Dialect, header
from app.api.vsee import routes

DIALECT = Dialect(
    name="VSee files", channel="vsee", blueprints=(routes.bp,), prefixes=("/api_v3",),
    render_error=routes.render_error, credential=header("X-ApiToken"),
    check_actor=routes.check_account_code,
)
DIALECTS = (DIALECT,)
