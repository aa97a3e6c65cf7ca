"""Claros Health: upload a patient's PDF."""
from app.api.claros import routes
from app.api.dialect import Dialect, header

DIALECT = Dialect(
    name="Claros", channel="claros", blueprints=(routes.bp,),
    prefixes=("/patients/*/pdf",),  # /patients/<id> itself is a page
    render_error=routes.render_error, credential=header("X-API-Key"),
)
DIALECTS = (DIALECT,)
