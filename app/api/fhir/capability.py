"""What the FHIR door supports, declared once: the CapabilityStatement at /metadata is built
from it, and the tests hold it to the routes the app serves (tests/test_api_fhir.py)."""
from __future__ import annotations

from typing import Any

from app.api.fhir.resources import FHIR_JSON, base_url

#: Per resource type: its interactions and its search parameters (name, FHIR type, what it does).
SUPPORTED: dict[str, dict[str, Any]] = {
    "Patient": {
        "interactions": ("read", "search-type"),
        "search": (("name", "string", "Every word is part of the patient's name"),
                   ("birthdate", "date", "Date of birth (eq, ge, le, gt, lt)"),
                   ("identifier", "token", "The chart number")),
    },
    "DocumentReference": {
        "interactions": ("read", "vread", "search-type", "create", "delete"),
        "search": (("patient", "reference", "Whose chart"),
                   ("subject", "reference", "Whose chart (Patient/<id>)"),
                   ("category", "token", "Chartbox's category or US Core's clinical-note"),
                   ("type", "token", "LOINC document type, where known"),
                   ("date", "date", "When the file was added (eq, ge, le, gt, lt)"),
                   ("status", "token", "current, or entered-in-error (deleted; staff only)")),
    },
    "Binary": {"interactions": ("read", "vread", "create"), "search": ()},
}
#: The route each interaction is served at (method, path below the FHIR base).
INTERACTION_ROUTES = {
    "read": ("GET", "/{type}/{id}"), "vread": ("GET", "/{type}/{id}/_history/{vid}"),
    "search-type": ("GET", "/{type}"), "create": ("POST", "/{type}"), "delete": ("DELETE", "/{type}/{id}"),
}


def declared_routes() -> set[tuple[str, str]]:
    """(method, path template) of every interaction declared, plus /metadata itself."""
    routes = {("GET", "/metadata")}
    for kind, spec in SUPPORTED.items():
        for interaction in spec["interactions"]:
            method, path = INTERACTION_ROUTES[interaction]
            routes.add((method, path.replace("{type}", kind)))
    return routes


def capability_statement(software_version: str, published: str) -> dict[str, Any]:
    """The server's CapabilityStatement: exactly the interactions and parameters above."""
    return {
        "resourceType": "CapabilityStatement", "status": "active", "date": published, "kind": "instance",
        "software": {"name": "Chartbox", "version": software_version},
        "implementation": {"description": "Chartbox patient documents", "url": base_url()},
        "fhirVersion": "4.0.1", "format": [FHIR_JSON, "json"],
        "rest": [{
            "mode": "server",
            "documentation": "Authorization: Bearer <a Chartbox API token>. Searches page with _count and "
                             "Bundle.link; DocumentReference also sorts by _sort=date or -date.",
            "security": {"cors": False, "description": "Bearer tokens from `chartbox tokens create`."},
            "resource": [{
                "type": kind,
                "interaction": [{"code": code} for code in spec["interactions"]],
                "versioning": "versioned" if "vread" in spec["interactions"] else "no-version",
                "readHistory": False, "updateCreate": False,
                **({"searchParam": [{"name": name, "type": kind_, "documentation": doc}
                                    for name, kind_, doc in spec["search"]]} if spec["search"] else {}),
            } for kind, spec in SUPPORTED.items()],
        }],
    }
