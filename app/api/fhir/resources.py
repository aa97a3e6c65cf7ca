"""Chartbox's rows in FHIR R4's shapes: Patient, DocumentReference, Binary, Bundle and
OperationOutcome, plus the code systems this door names.

One StoredFile is both a DocumentReference (its metadata) and a Binary (its bytes), under the
same id. Every shape here is checked against FHIR's own models in the tests (fhir.resources).
"""
from __future__ import annotations

import base64
from datetime import UTC, datetime
from typing import Any

from app.errors import ChartboxError
from app.models import Category, StoredFile, TargetType, User
from app.services.access import is_clinical
from app.urls import public_base

PREFIX = "/fhir/R4"
#: Chartbox's own code system for its file categories, and its identifier system for chart numbers.
CATEGORY_SYSTEM = "https://chartbox.dev/fhir/CodeSystem/document-category"
CHART_NUMBER_SYSTEM = "https://chartbox.dev/fhir/sid/chart-number"
US_CORE_CATEGORY = "http://hl7.org/fhir/us/core/CodeSystem/us-core-documentreference-category"
CLINICAL_NOTE = "clinical-note"
LOINC = "http://loinc.org"
V2_0203 = "http://terminology.hl7.org/CodeSystem/v2-0203"
CATEGORY_DISPLAY = {
    Category.USER_DOCUMENT: "Document", Category.INTAKE_ATTACHMENT: "Visit attachment",
    Category.USER_CONSENT: "Consent", Category.USER_AVATAR: "Profile picture",
}
#: DocumentReference.type where a category says what the document is (LOINC).
TYPE_OF = {Category.USER_CONSENT: ("59284-0", "Consent Document")}
FHIR_JSON = "application/fhir+json"
#: FHIR's issue type per HTTP status (http.html, OperationOutcome's IssueType).
ISSUE_CODES = {
    400: "invalid", 401: "security", 403: "forbidden", 404: "not-found", 405: "not-supported",
    406: "not-supported", 408: "timeout", 409: "conflict", 412: "conflict", 413: "too-costly",
    415: "not-supported", 422: "processable", 429: "throttled", 503: "transient",
}


def base_url() -> str:
    """The FHIR base every absolute reference and link starts with."""
    return public_base() + PREFIX


def instant(moment: datetime) -> str:
    """A FHIR instant: UTC, to the millisecond, with its zone."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _meta(version: int, modified: datetime) -> dict[str, str]:
    return {"versionId": str(version), "lastUpdated": instant(modified)}


def patient_resource(user: User) -> dict[str, Any]:
    """A patient as a FHIR Patient: id, name, birth date and chart number (an MR identifier)."""
    given, _, family = user.full_name.strip().rpartition(" ")
    name: dict[str, Any] = {"text": user.full_name}
    if family:
        name["family"] = family
    if given:
        name["given"] = given.split()
    body: dict[str, Any] = {
        "resourceType": "Patient", "id": str(user.id), "active": bool(user.active), "name": [name],
        "managingOrganization": {"display": user.account.name},
    }
    if user.chart_number:
        body["identifier"] = [{
            "use": "usual", "system": CHART_NUMBER_SYSTEM, "value": user.chart_number,
            "type": {"coding": [{"system": V2_0203, "code": "MR", "display": "Medical record number"}]},
        }]
    if user.birth_date:
        body["birthDate"] = user.birth_date.isoformat()
    return body


def patient_reference(user_id: int | None, display: str | None = None) -> dict[str, str]:
    ref = {"reference": f"Patient/{user_id}"}
    if display:
        ref["display"] = display
    return ref


def document_reference(row: StoredFile) -> dict[str, Any]:
    """A file as a DocumentReference; a deleted one (shown to staff only) is entered-in-error."""
    category = row.category_enum
    categories = [{"coding": [{"system": CATEGORY_SYSTEM, "code": category.value,
                               "display": CATEGORY_DISPLAY[category]}]}]
    if is_clinical(row) and category in (Category.USER_DOCUMENT, Category.INTAKE_ATTACHMENT):
        categories.append({"coding": [{"system": US_CORE_CATEGORY, "code": CLINICAL_NOTE,
                                       "display": "Clinical Note"}]})
    creator = row.creator
    author = patient_reference(creator.id, creator.full_name) if creator.id == row.patient_id \
        else {"display": creator.full_name}
    body: dict[str, Any] = {
        "resourceType": "DocumentReference", "id": row.public_id, "meta": _meta(row.version, row.modified_at),
        "status": "entered-in-error" if row.is_deleted else "current",
        "category": categories,
        "subject": patient_reference(row.patient_id, row.patient.full_name if row.patient else None),
        "date": instant(row.created_at), "author": [author],
        "content": [{"attachment": attachment(row)}],
    }
    if category in TYPE_OF:
        code, display = TYPE_OF[category]
        body["type"] = {"coding": [{"system": LOINC, "code": code, "display": display}]}
    if row.target_type == TargetType.VISIT and row.visit is not None:
        body["context"] = {"encounter": [{"reference": f"Encounter/{row.visit.public_id}"}]}
    return body


def attachment(row: StoredFile) -> dict[str, Any]:
    """content[0].attachment: where the bytes are (Binary/<id>) and what they are."""
    found: dict[str, Any] = {
        "contentType": row.media_type, "url": f"{base_url()}/Binary/{row.public_id}", "size": row.size,
        "title": row.name, "creation": instant(row.created_at),
    }
    if row.sha1:
        found["hash"] = base64.b64encode(bytes.fromhex(row.sha1)).decode("ascii")
    return found


def binary_resource(row: StoredFile, data: bytes) -> dict[str, Any]:
    """The file's bytes as a Binary resource (base64 `data`), its chart as the security context."""
    return {
        "resourceType": "Binary", "id": row.public_id, "meta": _meta(row.version, row.modified_at),
        "contentType": row.media_type, "securityContext": patient_reference(row.patient_id),
        "data": base64.b64encode(data).decode("ascii"),
    }


def searchset(resource_type: str, resources: list[dict[str, Any]], total: int,
              links: dict[str, str]) -> dict[str, Any]:
    """A searchset Bundle: `total`, `link` (self, next, previous) and the matches."""
    return {
        "resourceType": "Bundle", "type": "searchset", "total": total,
        "link": [{"relation": relation, "url": url} for relation, url in links.items()],
        "entry": [{"fullUrl": f"{base_url()}/{resource_type}/{r['id']}", "resource": r,
                   "search": {"mode": "match"}} for r in resources],
    }


def operation_outcome(err: ChartboxError) -> dict[str, Any]:
    """An error as an OperationOutcome with FHIR's issue type for its status."""
    code = err.extra.get("issue_code") or ISSUE_CODES.get(err.status, "exception")
    return {"resourceType": "OperationOutcome",
            "issue": [{"severity": "error", "code": code, "diagnostics": err.message}]}
