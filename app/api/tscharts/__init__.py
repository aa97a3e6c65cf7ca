"""tscharts: sign-in and chart images."""
from app.api.dialect import Dialect
from app.api.tscharts import routes

DIALECT = Dialect(
    name="tscharts", channel="tscharts", blueprints=(routes.bp,), prefixes=("/tscharts",),
    render_error=routes.render_error, credential=routes.TOKEN,
    public=frozenset({"tscharts.login", "tscharts.logout"}),
    body_limit="JSON_UPLOAD_MAX_BYTES",  # base64 inflates an image by 4/3
)
DIALECTS = (DIALECT,)
