"""The API dialects: thin blueprints over the file service, each in its vendor's shape."""
from flask import Flask


def register_api(app: Flask) -> None:
    from app.api import candid_attachments, candid_images, claros, links, openapi, tscharts, vsee
    from app.extensions import csrf

    for module in (vsee, links, openapi, claros, tscharts, candid_images, candid_attachments):
        app.register_blueprint(module.bp)
        csrf.exempt(module.bp)  # token-authenticated, never the session cookie
        module.register_errors(app)
