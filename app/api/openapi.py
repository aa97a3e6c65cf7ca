"""Serves app/api/openapi.yaml as JSON at /api/openapi.json, and for people at /api/docs."""
from __future__ import annotations

import functools
import os

import yaml
from flask import Blueprint, render_template

bp = Blueprint("openapi", __name__)
SPEC_PATH = os.path.join(os.path.dirname(__file__), "openapi.yaml")


@functools.cache
def load_spec() -> dict:
    with open(SPEC_PATH, encoding="utf-8") as fh:
        return yaml.safe_load(fh)


@bp.get("/api/openapi.json")
def spec():
    """The OpenAPI 3.1 document describing every dialect."""
    return load_spec()


@bp.get("/api/docs")
def docs():
    """The same document for people: Swagger UI (vendored under static/), one group per dialect."""
    return render_template("api_docs.html")
