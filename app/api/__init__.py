"""The API doors: one declared dialect per vendor (app/api/<vendor>/), the signed view links
and the OpenAPI document, all thin blueprints over the file service."""
from flask import Flask


def register_api(app: Flask) -> None:
    from app.api import candid, claros, fhir, links, openapi, tscharts, vsee
    from app.api.dialect import install_prologue, register_dialect
    from app.api.routing import register_converters

    register_converters(app)
    for dialect in (*vsee.DIALECTS, links.DIALECT, *claros.DIALECTS, *tscharts.DIALECTS, *candid.DIALECTS,
                    *fhir.DIALECTS):
        register_dialect(app, dialect)
    app.register_blueprint(openapi.bp)
    install_prologue(app)
