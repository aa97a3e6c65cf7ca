"""Candid's official Python SDK (candidhealth==1.37.0), unchanged, against a live Chartbox.

Both of the SDK's hosts (the main API and the pre-encounter service) point at the live server,
and it authenticates with a fixed bearer token. Every call the SDK offers for pre-encounter
images v1 and encounter attachments v1 is made, and every answer must parse into the SDK's own
models with the expected values; errors must come out as the exceptions the SDK's raw clients
map them to:
  candid/resources/pre_encounter/resources/images/resources/v_1/raw_client.py
  candid/resources/encounter_attachments/resources/v_1/raw_client.py
"""
from __future__ import annotations

import uuid
import warnings
from datetime import datetime

import httpx
import pytest
from conftest import sample

# candidhealth 1.37.0's models keep pydantic-v1-style `class Config` blocks (with the v1-only
# keys smart_union, allow_population_by_field_name and json_encoders), so pydantic 2 warns as
# each model class is defined (on import) and as each response schema is built (on a call).
# The warnings are the SDK's, not Chartbox's; they are ignored by message (and, while tests
# run, by category) only.
_SDK_WARNINGS = [
    (r"Support for class-based `config` is deprecated", "pydantic.warnings.PydanticDeprecatedSince20"),
    (r"`json_encoders` is deprecated", "pydantic.warnings.PydanticDeprecatedSince20"),
    (r"Valid config keys have changed in V2", "UserWarning"),
]
pytestmark = [pytest.mark.filterwarnings(f"ignore:{message}:{category}") for message, category in _SDK_WARNINGS]

with warnings.catch_warnings():  # the import-time ones (pytestmark covers only the tests)
    for _message, _ in _SDK_WARNINGS:
        warnings.filterwarnings("ignore", message=_message)
    pytest.importorskip("candid.client", reason="needs candidhealth==1.37.0 (pip install candidhealth==1.37.0)")
    from candid import CandidApiClient, CandidApiClientEnvironment
    from candid.core.api_error import ApiError
    from candid.resources.encounter_attachments.resources.v_1 import (
        ChargeCaptureAttachment,
        EncounterAttachment,
        EncounterAttachmentType,
    )
    from candid.resources.pre_encounter.resources.common.errors import NotFoundError, VersionConflictError
    from candid.resources.pre_encounter.resources.common.types import (
        ErrorBase4Xx,
        SortDirection,
        VersionConflictErrorBody,
    )
    from candid.resources.pre_encounter.resources.images.resources.v_1 import (
        CoverageAssociation,
        CoverageImageSide,
        Image,
        ImageSortField,
        ImageStatus,
        MutableImage,
        PatientAssociation,
    )
    from candid.resources.users.resources.v_2 import UserMetadata_HumanUserMetadata, UserV2

COVERAGE = uuid.UUID("d5e9c84f-c2b2-4bf4-b4b0-7ffd7a9ffc32")
MISSING = "00000000-0000-4000-8000-000000000000"
MIME = {"letter.pdf": "application/pdf", "xray.png": "image/png", "insurance-front.jpg": "image/jpeg",
        "claims.xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        "notes.txt": "text/plain"}


@pytest.fixture(scope="module")
def http():
    with httpx.Client(timeout=10) as client:
        yield client


@pytest.fixture(scope="module")
def sdk(live, http) -> CandidApiClient:
    environment = CandidApiClientEnvironment(candid_api=live.url, pre_encounter=live.url)
    return CandidApiClient(environment=environment, token=lambda: live.token, httpx_client=http)


@pytest.fixture
def images(sdk):
    return sdk.pre_encounter.images.v_1


@pytest.fixture
def attachments(sdk):
    return sdk.encounter_attachments.v_1


def card(live, *, coverage: uuid.UUID | None = None, side=CoverageImageSide.FRONT, notes: str | None = "new card",
         file_name="card-front.jpg", display_name="Insurance card (front)", file_type="image/jpeg",
         status=ImageStatus.PENDING) -> MutableImage:
    """A MutableImage for the seeded patient; each gets its own coverage unless one is given."""
    return MutableImage(
        file_name=file_name, display_name=display_name, file_type=file_type, status=status,
        coverage=CoverageAssociation(id=coverage or uuid.uuid4(), side=side),
        patient=PatientAssociation(id=str(live.patient_id), notes=notes),
    )


def upload(name: str) -> tuple[str, bytes, str]:
    """A core.File tuple (file name, bytes, content type) of a sample in tests/data/."""
    return name, sample(name), MIME[name]


# === pre-encounter images v1 ==================================================================

def test_create_answers_an_image_the_sdk_parses(live, images):
    image = images.create(request=card(live, coverage=COVERAGE))
    assert isinstance(image, Image)
    assert uuid.UUID(image.id)
    assert (image.version, image.deactivated, image.status) == (1, False, ImageStatus.PENDING)
    assert (image.file_name, image.display_name, image.file_type) == \
        ("card-front.jpg", "Insurance card (front)", "image/jpeg")
    assert image.coverage == CoverageAssociation(id=COVERAGE, side=CoverageImageSide.FRONT)
    assert image.patient == PatientAssociation(id=str(live.patient_id), notes="new card")
    assert image.organization_id == live.clinic_code
    assert image.updating_user_id == str(live.provider_id)
    assert isinstance(image.updated_at, datetime) and image.updated_at.utcoffset() is not None
    assert image.signed_url.startswith(f"{live.url}/images/v1/{image.id}/content?")


def test_get_returns_the_same_image(live, images):
    created = images.create(request=card(live))
    got = images.get(created.id)
    assert isinstance(got, Image)
    assert got.model_dump(exclude={"signed_url"}) == created.model_dump(exclude={"signed_url"})


def test_an_image_without_coverage_or_patient_parses(live, images):
    image = images.create(request=MutableImage(file_name="scan.png", display_name="Scan",
                                               file_type="image/png", status=ImageStatus.FAILED))
    assert (image.coverage, image.patient, image.status) == (None, None, ImageStatus.FAILED)
    assert images.get(image.id).status == ImageStatus.FAILED


def test_bytes_put_to_signed_url_make_the_image_uploaded(live, images, http):
    created = images.create(request=card(live))
    photo = sample("insurance-front.jpg")
    # The SDK has no call for the bytes: a client PUTs them to signed_url itself (no token).
    resp = http.put(created.signed_url, content=photo, headers={"Content-Type": "image/jpeg"})
    assert resp.status_code == 200, resp.text
    image = images.get(created.id)
    assert (image.status, image.version) == (ImageStatus.UPLOADED, 2)
    back = http.get(image.signed_url)
    assert back.status_code == 200 and back.content == photo


def test_update_replaces_the_image_at_the_current_version(live, images):
    created = images.create(request=card(live))
    replacement = card(live, coverage=created.coverage.id, side=CoverageImageSide.BACK, notes=None,
                       display_name="Insurance card (back)", status=ImageStatus.FAILED)
    updated = images.update(created.id, str(created.version), request=replacement)
    assert isinstance(updated, Image)
    assert (updated.id, updated.version) == (created.id, 2)
    assert updated.display_name == "Insurance card (back)" and updated.status == ImageStatus.FAILED
    assert updated.coverage == CoverageAssociation(id=created.coverage.id, side=CoverageImageSide.BACK)
    assert updated.patient == PatientAssociation(id=str(live.patient_id))
    assert images.get(created.id).version == 2


def test_a_stale_version_raises_version_conflict_error_with_latest_version(live, images):
    created = images.create(request=card(live))
    images.update(created.id, "1", request=card(live, coverage=created.coverage.id, notes="v2"))
    with pytest.raises(VersionConflictError) as update_conflict:
        images.update(created.id, "1", request=card(live, coverage=created.coverage.id))
    with pytest.raises(VersionConflictError) as deactivate_conflict:
        images.deactivate(created.id, "1")
    for raised in (update_conflict.value, deactivate_conflict.value):
        assert raised.status_code == 409
        assert isinstance(raised.body, VersionConflictErrorBody)
        assert raised.body.latest_version == 2 and raised.body.message
    assert images.get(created.id).version == 2


def test_a_second_image_for_a_coverage_side_raises_version_conflict_error(live, images):
    coverage = uuid.uuid4()
    images.create(request=card(live, coverage=coverage))
    with pytest.raises(VersionConflictError) as raised:
        images.create(request=card(live, coverage=coverage))
    assert isinstance(raised.value.body, VersionConflictErrorBody) and raised.value.body.message
    images.create(request=card(live, coverage=coverage, side=CoverageImageSide.BACK))  # the other side is free


def test_deactivate_hides_the_image_from_search_but_get_still_returns_it(live, images):
    notes = f"deactivate-{uuid.uuid4()}"
    created = images.create(request=card(live, notes=notes))
    assert [i.id for i in images.get_multi(patient_notes=notes)] == [created.id]
    assert images.deactivate(created.id, "1") is None
    got = images.get(created.id)
    assert (got.deactivated, got.version) == (True, 2)
    assert images.get_multi(patient_notes=notes) == []
    # Chartbox: a PUT on a deactivated image reactivates it (README, "Pre-encounter images").
    again = images.update(created.id, "2", request=card(live, coverage=created.coverage.id, notes=notes))
    assert (again.deactivated, again.version) == (False, 3)
    assert [i.id for i in images.get_multi(patient_notes=notes)] == [created.id]


@pytest.mark.parametrize("call", ["get", "update", "deactivate"])
def test_a_missing_image_raises_not_found_error(live, images, call):
    with pytest.raises(NotFoundError) as raised:
        if call == "get":
            images.get(MISSING)
        elif call == "update":
            images.update(MISSING, "1", request=card(live))
        else:
            images.deactivate(MISSING, "1")
    assert raised.value.status_code == 404
    assert isinstance(raised.value.body, ErrorBase4Xx) and raised.value.body.message


@pytest.fixture(scope="module")
def search_set(live, sdk):
    """Three active images sharing unique patient notes, with distinct sortable fields."""
    notes = f"search-{uuid.uuid4()}"
    coverage = uuid.uuid4()
    specs = [  # file_name, display_name, file_type, status
        ("a-front.jpg", "C front", "image/jpeg", ImageStatus.UPLOADED),
        ("b-back.png", "A back", "image/png", ImageStatus.FAILED),
        ("c-extra.pdf", "B extra", "application/pdf", ImageStatus.PENDING),
    ]
    made = []
    for i, (file_name, display_name, file_type, status) in enumerate(specs):
        made.append(sdk.pre_encounter.images.v_1.create(request=card(
            live, coverage=coverage if i < 2 else uuid.uuid4(),
            side=CoverageImageSide.FRONT if i == 0 else CoverageImageSide.BACK, notes=notes,
            file_name=file_name, display_name=display_name, file_type=file_type, status=status)))
    return notes, coverage, made


@pytest.mark.parametrize("param", ["patient_id", "coverage_id", "file_type", "patient_notes"])
def test_get_multi_filters_by_each_parameter(live, images, search_set, param):
    notes, coverage, made = search_set
    value, expected = {
        "patient_id": (str(live.patient_id), {i.id for i in made}),
        "coverage_id": (str(coverage), {made[0].id, made[1].id}),
        "file_type": ("application/pdf", {made[2].id}),
        "patient_notes": (notes, {i.id for i in made}),
    }[param]
    found = images.get_multi(**{param: value})
    assert isinstance(found, list) and all(isinstance(i, Image) for i in found)
    assert expected <= {i.id for i in found}
    if param == "patient_id":
        assert all(i.patient is not None and i.patient.id == value for i in found)
    elif param == "coverage_id":
        assert {i.id for i in found} == expected
    elif param == "file_type":
        assert all(i.file_type == value for i in found)
    else:
        assert {i.id for i in found} == expected
    assert not any(i.deactivated for i in found)


_KEYS = {
    ImageSortField.FILE_NAME: lambda i: i.file_name,
    ImageSortField.DISPLAY_NAME: lambda i: i.display_name,
    ImageSortField.FILE_TYPE: lambda i: i.file_type,
    ImageSortField.STATUS: lambda i: i.status.value,
    ImageSortField.UPDATED_AT: lambda i: i.updated_at,
}


@pytest.mark.parametrize("direction", [d for d in SortDirection if d is not SortDirection._UNKNOWN])
@pytest.mark.parametrize("field", [f for f in ImageSortField if f is not ImageSortField._UNKNOWN])
def test_get_multi_sorts_by_each_sort_field_and_direction(images, search_set, field, direction):
    notes, _, made = search_set
    found = images.get_multi(patient_notes=notes, sort_field=field, sort_direction=direction)
    assert {i.id for i in found} == {i.id for i in made}
    keys = [_KEYS[field](i) for i in found]
    # updated_at is written to the second, so equal times may come in either order.
    assert keys == sorted(keys, reverse=direction is SortDirection.DESC)
    if field is not ImageSortField.UPDATED_AT:
        assert len(set(keys)) == len(keys)


def test_get_multi_defaults_to_updated_at_descending(images, search_set):
    notes, _, _ = search_set
    found = images.get_multi(patient_notes=notes)
    stamps = [i.updated_at for i in found]
    assert stamps == sorted(stamps, reverse=True)
    explicit = images.get_multi(patient_notes=notes, sort_field=ImageSortField.UPDATED_AT,
                                sort_direction=SortDirection.DESC)
    assert [i.id for i in found] == [i.id for i in explicit]


# === encounter attachments v1 =================================================================

def test_get_of_an_encounter_without_attachments_is_an_empty_list(live, attachments):
    assert attachments.get(uuid.UUID(live.new_visit())) == []


def test_create_answers_the_attachment_id(live, attachments):
    attachment_id = attachments.create(uuid.UUID(live.visit_id), attachment_file=upload("letter.pdf"),
                                       attachment_type=EncounterAttachmentType.DOCUMENTATION)
    assert isinstance(attachment_id, uuid.UUID)


def test_create_with_description_answers_the_attachment_id(live, attachments):
    attachment_id = attachments.create_with_description(
        uuid.UUID(live.visit_id), attachment_file=upload("xray.png"),
        attachment_type=EncounterAttachmentType.OTHER, description="Chest X-ray")
    assert isinstance(attachment_id, uuid.UUID)


def test_get_parses_the_encounters_attachments_into_the_sdks_models(live, attachments, http):
    encounter = uuid.UUID(live.new_visit())
    letter = attachments.create(encounter, attachment_file=upload("letter.pdf"),
                                attachment_type=EncounterAttachmentType.DOCUMENTATION)
    xray = attachments.create_with_description(encounter, attachment_file=upload("xray.png"),
                                               attachment_type=EncounterAttachmentType.EOB,
                                               description="Chest X-ray")
    found = attachments.get(encounter)  # parses List[EncounterAttachment] (with created_by: UserV2)
    assert all(isinstance(a, EncounterAttachment) for a in found)
    by_id = {a.attachment_id: a for a in found}
    assert set(by_id) == {letter, xray}
    expected = {letter: ("letter.pdf", "", "application/pdf", EncounterAttachmentType.DOCUMENTATION),
                xray: ("xray.png", "Chest X-ray", "image/png", EncounterAttachmentType.EOB)}
    for attachment_id, (file_name, description, content_type, attachment_type) in expected.items():
        got = by_id[attachment_id]
        assert (got.file_name, got.description, got.content_type, got.attachment_type) == \
            (file_name, description, content_type, attachment_type)
        assert got.encounter_id == encounter
        assert isinstance(got.created_at, datetime) and got.created_at.utcoffset() is not None
        assert isinstance(got.created_by, UserV2)
        assert got.created_by.user_metadata == UserMetadata_HumanUserMetadata(
            first_name="Ana Maria", last_name="Rivera", email=live.provider_email)
        body = http.get(got.authed_url)
        assert body.status_code == 200 and body.content == sample(file_name)


def test_delete_removes_the_attachment(live, attachments):
    encounter = uuid.UUID(live.spare_visit_id)
    attachment_id = attachments.create_with_description(
        encounter, attachment_file=upload("insurance-front.jpg"),
        attachment_type=EncounterAttachmentType.DOCUMENTATION)
    assert attachments.delete(encounter, attachment_id=attachment_id) is None
    assert attachments.get(encounter) == []
    with pytest.raises(ApiError) as raised:  # a second time: gone
        attachments.delete(encounter, attachment_id=attachment_id)
    assert raised.value.status_code == 404


def test_charge_capture_for_an_existing_encounter(live, attachments, http):
    attachment_id = attachments.create_with_charge_capture_external_id(
        charge_capture_external_id=live.external_id, attachment_file=upload("claims.xlsx"),
        attachment_type=EncounterAttachmentType.EOB, description="Remittance")
    assert isinstance(attachment_id, uuid.UUID)
    found = attachments.get_by_charge_capture_external_id(live.external_id)
    assert all(isinstance(a, ChargeCaptureAttachment) for a in found)
    got = {a.attachment_id: a for a in found}[attachment_id]
    assert (got.file_name, got.description, got.content_type, got.attachment_type) == \
        ("claims.xlsx", "Remittance", MIME["claims.xlsx"], EncounterAttachmentType.EOB)
    body = http.get(got.authed_url)
    assert body.status_code == 200 and body.content == sample("claims.xlsx")
    assert attachments.delete_by_charge_capture_external_id(live.external_id,
                                                            attachment_id=attachment_id) is None
    assert attachment_id not in {a.attachment_id for a in
                                 attachments.get_by_charge_capture_external_id(live.external_id)}


def test_charge_capture_waits_for_its_encounter_then_joins_it(live, attachments):
    external_id = f"claim-{uuid.uuid4().hex[:8]}"
    attachment_id = attachments.create_with_charge_capture_external_id(
        charge_capture_external_id=external_id, attachment_file=upload("letter.pdf"),
        attachment_type=EncounterAttachmentType.DOCUMENTATION)
    waiting = attachments.get_by_charge_capture_external_id(external_id)
    assert [a.attachment_id for a in waiting] == [attachment_id]
    encounter = uuid.UUID(live.new_visit(external_id))
    assert [a.attachment_id for a in attachments.get_by_charge_capture_external_id(external_id)] == \
        [attachment_id]
    joined = attachments.get(encounter)  # parses List[EncounterAttachment]
    assert [(a.attachment_id, a.encounter_id) for a in joined] == [(attachment_id, encounter)]


@pytest.mark.parametrize("call", ["get", "create", "create_with_description", "delete"])
def test_a_missing_encounter_raises_the_error_the_sdk_maps(attachments, call):
    """The attachments raw client maps no error names, so every failure is a plain ApiError."""
    encounter = uuid.UUID(MISSING)
    with pytest.raises(ApiError) as raised:
        if call == "get":
            attachments.get(encounter)
        elif call == "delete":
            attachments.delete(encounter, attachment_id=uuid.uuid4())
        else:
            getattr(attachments, call)(encounter, attachment_file=upload("notes.txt"),
                                       attachment_type=EncounterAttachmentType.OTHER)
    assert type(raised.value) is ApiError
    assert raised.value.status_code == 404
    assert raised.value.body["errorName"] == "EntityNotFoundError"
    assert raised.value.body["content"]["id"] == MISSING


def test_every_attachment_type_the_sdk_offers_is_accepted(live, attachments):
    """EncounterAttachmentType in candid/resources/encounter_attachments/resources/v_1/types/
    encounter_attachment_type.py lists 13 values; the SDK sends any of them."""
    encounter = uuid.UUID(live.spare_visit_id)
    refused = {}
    for attachment_type in EncounterAttachmentType:
        if attachment_type is EncounterAttachmentType._UNKNOWN:
            continue
        try:
            attachment_id = attachments.create_with_description(
                encounter, attachment_file=upload("notes.txt"), attachment_type=attachment_type)
        except ApiError as exc:
            refused[attachment_type.value] = (exc.status_code, exc.body)
        else:
            attachments.delete(encounter, attachment_id=attachment_id)
    assert refused == {}
