"""FHIR R4 routes (`/fhir/R4`): Patient, DocumentReference and Binary over the file service.

`Authorization: Bearer <token>`; `/metadata` is public. Answers are `application/fhir+json`
(also for `Accept: application/json` and `_format=json`); any other format asked for is a 406.
Errors are OperationOutcome resources (resources.operation_outcome).
"""
from __future__ import annotations

import io
import json
from typing import IO
from urllib.parse import urlencode

from flask import Blueprint, Response, current_app, g, request
from werkzeug.datastructures import MultiDict

from app.api import params
from app.api.fhir import capability, incoming, search
from app.api.fhir.resources import (
    FHIR_JSON,
    PREFIX,
    base_url,
    binary_resource,
    document_reference,
    operation_outcome,
    patient_resource,
    searchset,
)
from app.api.links import can_offload, send_download
from app.errors import BadRequest, ChartboxError, NotAcceptable, NotFound, UnsupportedMediaType
from app.models import Category, StoredFile, TargetType
from app.services import directory, document_search, files, viewing
from app.services.validation import TYPES

bp = Blueprint("fhir", __name__, url_prefix=PREFIX)
JSON_TYPES = (FHIR_JSON, "application/json", "application/json+fhir")
JSON_FORMATS = ("json", *JSON_TYPES)
#: Parameters each search understands (others are ignored, as FHIR says), kept in its links.
PATIENT_PARAMS = ("name", "birthdate", "identifier")
DOCUMENT_PARAMS = ("patient", "subject", "category", "type", "date", "status", "_sort")
PUBLISHED = "2026-12-02"


def render_error(err: ChartboxError) -> Response:
    resp = fhir(operation_outcome(err), err.status)
    if err.status == 401:
        resp.headers["WWW-Authenticate"] = 'Bearer realm="chartbox"'
    return resp


def fhir(body: dict | None, status: int = 200, **headers: str) -> Response:
    data = b"" if body is None else json.dumps(body, ensure_ascii=False).encode("utf-8")
    resp = current_app.response_class(data, status=status, content_type=f"{FHIR_JSON}; charset=utf-8")
    resp.headers.update(headers)
    return resp


def _accepted() -> list[str]:
    """The media types the Accept header names with a quality above 0, without parameters."""
    return [value.split(";", 1)[0].strip().lower() for value, quality in request.accept_mimetypes if quality > 0]


def wants_json(media_type: str | None = None) -> bool:
    """Whether to answer FHIR JSON (else the raw `media_type`, for a Binary). Raises 406 when
    neither is acceptable (FHIR http.html: an unsupported format is 406 Not Acceptable)."""
    fmt = (request.args.get("_format") or "").strip().lower()
    if fmt:
        if fmt in JSON_FORMATS:
            return True
        if media_type and fmt == media_type:
            return False
        raise NotAcceptable(f"_format={fmt} is not supported; this server speaks application/fhir+json.")
    accepted = _accepted()
    if any(t in JSON_TYPES for t in accepted):
        return True
    if not accepted or "*/*" in accepted:
        return media_type is None
    if media_type and (media_type in accepted or f"{media_type.split('/')[0]}/*" in accepted):
        return False
    raise NotAcceptable("This server answers application/fhir+json" + (f" or {media_type}" if media_type else "")
                        + "; send one of them in Accept.")


@bp.before_request
def negotiate() -> None:
    if request.endpoint != "fhir.read_binary":  # a Binary may also be answered in its own type
        wants_json()


def _links(endpoint_path: str, args: MultiDict, known: tuple[str, ...], page: search.Paging,
           total: int) -> dict[str, str]:
    kept = [(k, v) for k, v in args.items(multi=True) if k.partition(":")[0] in known]

    def url(number: int) -> str:
        query = [*kept, ("_count", str(page.count)), ("_page", str(number))]
        return f"{base_url()}{endpoint_path}?{urlencode(query)}"

    links = {"self": url(page.page)}
    if page.count and page.page * page.count < total:
        links["next"] = url(page.page + 1)
    if page.page > 1:
        links["previous"] = url(min(page.page - 1, max(1, -(-total // max(1, page.count)))))
    return links


def _paging() -> search.Paging:
    config = current_app.config
    return search.paging(request.args, config["API_PAGE_SIZE_MAX"], config["API_PAGE_SIZE"])


@bp.get("/metadata")
def metadata():
    """The CapabilityStatement: what this server supports (no token needed)."""
    return fhir(capability.capability_statement("1.0", PUBLISHED))


@bp.get("/Patient")
def search_patients():
    """The patients the caller may see matching name, birthdate and identifier (chart number)."""
    args, page = request.args, _paging()
    born_from, born_until = search.birth_dates(args)
    found = directory.search_patients(
        g.actor, name=" ".join(search.values(args, "name", modifiers=("contains",))), born_from=born_from,
        born_until=born_until, chart_number=search.chart_number(args), page=page.page, per_page=page.count,
        origin=g.origin)
    return fhir(searchset("Patient", [patient_resource(u) for u in found.items], found.total,
                          _links("/Patient", args, PATIENT_PARAMS, page, found.total)))


@bp.get("/Patient/<patient_id>")
def read_patient(patient_id: str):
    """One patient the caller may see (a patient token: only themself)."""
    return fhir(patient_resource(directory.open_patient(g.actor, incoming.patient_id(patient_id), g.origin)))


def _document_patient() -> int:
    refs = search.values(request.args, "patient") + search.values(request.args, "subject", modifiers=("Patient",))
    ids = {search.reference_id(ref, "Patient") for ref in refs}
    if any("," in ident for ident in ids):
        raise BadRequest("Search one patient's documents at a time.")
    if not ids:
        if g.actor.is_patient:
            return g.actor.id
        raise BadRequest("Name the patient: DocumentReference?patient=<id>.", issue_code="too-costly")
    return incoming.patient_id(ids.pop()) if len(ids) == 1 else 0  # two patients at once: nobody


@bp.get("/DocumentReference")
def search_documents():
    """A patient's documents, filtered by category, type, date and status, paged and sorted."""
    page = _paging()
    found = document_search.search_documents(
        g.actor, _document_patient(), search.document_query(request.args, g.actor.is_staff), page.page,
        page.count, origin=g.origin)
    return fhir(searchset("DocumentReference", [document_reference(row) for row in found.items], found.total,
                          _links("/DocumentReference", request.args, DOCUMENT_PARAMS, page, found.total)))


def _versioned(row: StoredFile, body: dict, status: int = 200, **headers: str) -> Response:
    resp = fhir(body, status, **headers)
    resp.headers["ETag"] = f'W/"{row.version}"'
    resp.last_modified = row.modified_at
    return resp


@bp.get("/DocumentReference/<doc_id>")
def read_document(doc_id: str):
    """One document; a deleted one is entered-in-error (staff only)."""
    row = document_search.get_document(g.actor, doc_id, g.origin)
    return _versioned(row, document_reference(row))


@bp.get("/DocumentReference/<doc_id>/_history/<version>")
def vread_document(doc_id: str, version: str):
    """A document at a version: only the current one is kept."""
    row = document_search.get_document(g.actor, doc_id, g.origin)
    if version != str(row.version):
        raise NotFound("Only the current version of a document is kept.")
    return _versioned(row, document_reference(row))


def _created(row: StoredFile, kind: str, body: dict) -> Response:
    location = f"{base_url()}/{kind}/{row.public_id}/_history/{row.version}"
    minimal = "return=minimal" in request.headers.get("Prefer", "").replace(" ", "")
    return _versioned(row, body if not minimal else None, 201, Location=location)  # type: ignore[arg-type]


def _json_body(kind: str) -> dict:
    if request.mimetype not in JSON_TYPES:
        raise UnsupportedMediaType(f"Send the {kind} as application/fhir+json.")
    return incoming.resource(params.json_object(), kind)


def _chart(subject: str | None, encounter: str | None) -> files.Target:
    """Where a new document goes: the encounter's visit, else the subject's chart, else (a
    patient) the caller's own. Out of reach answers the one 404 of every door."""
    if encounter is not None:
        visit_id = params.uuid(encounter)
        target = files.resolve_target(g.actor, TargetType.VISIT, visit_id or "0" * 36)
        if subject is not None and str(target.patient_id) != subject:
            raise BadRequest("context.encounter is a visit of another patient than subject.")
        return target
    if subject is None:
        if g.actor.is_patient:
            return files.Target.chart(g.actor)
        raise BadRequest("Name the patient the document is for in subject (Patient/<id>).")
    return files.Target.chart(directory.open_patient(g.actor, incoming.patient_id(subject)))


@bp.post("/DocumentReference")
def create_document():
    """File a document: its bytes in content[0].attachment.data, or a Binary created before."""
    new = incoming.document(_json_body("DocumentReference"))
    if new.binary is not None:
        return _file_binary(new)
    assert new.data is not None
    target = _chart(new.subject, new.encounter)
    category = new.category or (Category.INTAKE_ATTACHMENT if target.visit else Category.USER_DOCUMENT)
    row = files.upload(g.actor, g.origin, io.BytesIO(new.data), incoming.upload_name(new.title, new.content_type),
                       category, target, add_extension=True)
    return _created(row, "DocumentReference", document_reference(row))


def _file_binary(new: incoming.NewDocument) -> Response:
    """A DocumentReference for a Binary posted before: one file, so it names that file (and its
    title renames it); where it is filed and what it is must agree with the Binary."""
    assert new.binary is not None
    row = files.get_file(g.actor, new.binary)
    if new.subject is not None and new.subject != str(row.patient_id):
        raise BadRequest("The Binary belongs to another patient than subject.")
    if new.encounter is not None and (row.visit is None or row.visit.public_id != new.encounter.lower()):
        raise BadRequest("The Binary is not filed in that encounter.")
    if new.category is not None and new.category != row.category_enum:
        raise BadRequest(f"The Binary is filed as {row.category}; send the bytes in attachment.data to file "
                         "them in another category.")
    if new.content_type not in incoming.UNLABELLED and new.content_type != row.media_type:
        raise BadRequest(f"The Binary is {row.media_type}, not {new.content_type}.")
    if new.title and new.title.strip() and new.title.strip() != row.name:
        row = files.rename(g.actor, g.origin, row.public_id, new.title, keep_extension=True)
    return _created(row, "DocumentReference", document_reference(row))


@bp.delete("/DocumentReference/<doc_id>")
def delete_document(doc_id: str):
    """Delete a document (soft: restorable from the trash), under the ownership rules."""
    try:
        files.delete(g.actor, g.origin, doc_id)
    except NotFound:
        if not document_search.get_document(g.actor, doc_id).is_deleted:  # deleted already: done
            raise
    return Response(status=204)


@bp.get("/Binary/<binary_id>")
def read_binary(binary_id: str):
    """The bytes in their own type (Range works), or a Binary resource when FHIR JSON is asked for."""
    row = files.get_file(g.actor, binary_id)
    if wants_json(row.media_type):
        row, data = files.read_content(g.actor, g.origin, row.public_id)
        return _versioned(row, binary_resource(row, data))
    return send_download(viewing.open_file(row, g.origin, viewer=g.actor, offload=can_offload()))


@bp.get("/Binary/<binary_id>/_history/<version>")
def vread_binary(binary_id: str, version: str):
    """A Binary at a version (the current one) as a resource."""
    row, data = files.read_content(g.actor, g.origin, binary_id)
    if version != str(row.version):
        raise NotFound("Only the current version is kept.")
    return _versioned(row, binary_resource(row, data))


@bp.post("/Binary")
def create_binary():
    """Store bytes: raw with their Content-Type (X-Security-Context: Patient/<id>), or a Binary
    resource (securityContext); filed as a document of that patient."""
    if request.mimetype in JSON_TYPES:
        content_type, data, subject = incoming.binary(params.json_object())
        stream: IO[bytes] = io.BytesIO(data)
    else:
        content_type = incoming.media_type(request.mimetype)
        header = request.headers.get("X-Security-Context")
        subject = search.reference_id(header, "Patient") if header else None
        stream = request.stream
    name = incoming.upload_name(None, content_type if content_type in TYPES else "")
    if content_type not in incoming.UNLABELLED and content_type not in TYPES:
        incoming.upload_name(None, content_type)  # raises, naming the accepted types
    row = files.upload(g.actor, g.origin, stream, name, Category.USER_DOCUMENT, _chart(subject, None),
                       add_extension=True)
    body = binary_resource(row, b"")
    del body["data"]  # the client has the bytes; the answer says where they are kept
    return _created(row, "Binary", body)


