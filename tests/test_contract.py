"""The API contract, tested as an integrator's contract tester would: schemathesis over
/api/openapi.json against a live server (issue 14).

A real gunicorn (tests/live.py) over a fresh database gets the data every operation needs —
a visit with an external id, files, a Candid image, a tscharts image, encounter attachments —
made through the services and the API itself, and their ids go to schemathesis as
operation-level parameters, so no operation is unreachable. Then the CLI runs every phase
(examples, coverage, fuzzing, stateful) with every check, a few examples per operation and a
fixed seed (every check runs: `--checks all` would override the config's per-operation
exclusions), and any finding fails the test. Where a check is off for one operation,
tests/contract/schemathesis.toml says why, next to the exclusion.
"""
from __future__ import annotations

import base64
import json
import subprocess
import sys
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from builders import small_png, tiny_pdf
from live import ROOT, LiveApp

ST = Path(sys.executable).with_name("st")
#: The exclusions (check off for one operation, with the reason); the generated config adds the
#: data and the tokens to it.
EXCLUSIONS = Path(__file__).with_name("contract") / "schemathesis.toml"
MAX_EXAMPLES = 5  # per operation and phase: the whole run stays well under two minutes

#: Made through the services (a visit with an external id, files to delete and restore, a
#: throwaway token for tscharts' logout, which revokes the token it is sent with).
DATA = """\
import io, json, sys
from app import create_app
from app.models import Category, Channel, Role, User
from app.extensions import db
from app.services import accounts, files
from app.services.audit import Origin

app = create_app()
with app.app_context():
    provider = db.session.get(User, int(sys.argv[1]))
    patient = db.session.get(User, int(sys.argv[2]))
    pdf = open(sys.argv[3], "rb").read()
    visit = accounts.create_visit(patient, external_id="contract-visit-1", reason="Contract", provider=provider)
    def upload(name):
        return files.upload(provider, Origin(Channel.CLI), io.BytesIO(pdf), name, Category.USER_DOCUMENT,
                            files.Target.chart(patient)).public_id
    doomed, fhir_doomed, deleted = upload("doomed.pdf"), upload("fhir-doomed.pdf"), upload("deleted.pdf")
    files.delete(provider, Origin(Channel.CLI), deleted)
    print(json.dumps({"visit_id": visit.public_id, "external_id": visit.external_id, "doomed": doomed,
                      "fhir_doomed": fhir_doomed, "deleted": deleted,
                      "logout_token": accounts.create_token(provider, "logout")[1]}))
"""

pytestmark = pytest.mark.skipif(not ST.exists(), reason="schemathesis is not installed (pip install -e '.[test]')")


def make_data(live: LiveApp, tmp_path: Path) -> dict:
    """Everything the operations take an id of, made through the services and the API."""
    import requests

    pdf_path = tmp_path / "contract.pdf"
    pdf_path.write_bytes(tiny_pdf())
    made = subprocess.run([sys.executable, "-c", DATA, str(live.seed.provider_id), str(live.seed.patient_id),
                           str(pdf_path)], cwd=ROOT, env=live.app_env, capture_output=True, text=True, timeout=60)
    assert made.returncode == 0, made.stderr[-3000:]
    data = json.loads(made.stdout.strip().splitlines()[-1])
    token = live.seed.provider_token
    bearer = {"Authorization": f"Bearer {token}"}
    http = requests.Session()

    def ok(resp: requests.Response) -> requests.Response:
        assert resp.ok, f"{resp.request.method} {resp.request.url}: {resp.status_code} {resp.text[:500]}"
        return resp

    def candid_image(name: str) -> dict:
        body = {"file_name": name, "display_name": name, "file_type": "image/png", "status": "PENDING",
                "patient": {"id": str(live.seed.patient_id)}}
        return ok(http.post(live.url("/images/v1"), json=body, headers=bearer)).json()

    image, data["doomed_image"] = candid_image("card.png"), candid_image("doomed.png")["id"]
    data["image_id"], data["image_version"] = image["id"], str(image["version"])
    upload = candid_image("upload.png")  # its own: an upload link is bound to the image's version
    data["upload_image"] = upload["id"]
    for key, made_image in (("image_content", image), ("upload_content", upload)):
        signed = {k: v[0] for k, v in parse_qs(urlsplit(made_image["signed_url"]).query).items()}
        data[key] = {f"query.{k}": signed[k] for k in ("by", "v", "auth_code", "time")}

    def tscharts_image() -> int:
        body = {"type": "Headshot", "patient": live.seed.patient_id, "data": base64.b64encode(small_png()).decode()}
        return ok(http.post(live.url("/tscharts/v1/image/"), json=body,
                            headers={"Authorization": f"Token {token}"})).json()["id"]

    data["tscharts_image"], data["doomed_tscharts_image"] = tscharts_image(), tscharts_image()

    def attach(url: str, **fields: str) -> str:
        files = {"attachment_file": ("note.pdf", tiny_pdf(), "application/pdf")}
        return ok(http.request("PUT" if "v2" in url else "POST", live.url(url), files=files,
                               data={"attachment_type": "DOCUMENTATION", **fields}, headers=bearer)).json()

    base = "/api/encounter-attachments/v1"
    data["attachment_id"] = attach(f"{base}/{data['visit_id']}/v2")
    data["charge_attachment_id"] = attach(f"{base}/create-from-charge-capture-external-id",
                                          charge_capture_external_id="contract-pending-1")
    view = urlsplit(live.seed.small_view)
    data["view"] = {k: v[0] for k, v in parse_qs(view.query).items()}
    return data


def toml_value(value: object) -> str:
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{json.dumps(k)} = {toml_value(v)}" for k, v in value.items()) + " }"
    return json.dumps(value)


def config(live: LiveApp, data: dict) -> str:
    """schemathesis.toml: every dialect's token, the ids each operation needs, and the exclusions."""
    seed, token = live.seed, live.seed.provider_token
    lines = [f'[auth.openapi.vseeToken]\napi_key = "{token}"', f'[auth.openapi.clarosKey]\napi_key = "{token}"',
             f'[auth.openapi.tschartsToken]\napi_key = "Token {token}"',
             f'[auth.openapi.candidBearer]\nbearer = "{token}"', f'[auth.openapi.fhirBearer]\nbearer = "{token}"']
    file_id, doomed = {"path.file_id": seed.pdf_file_id}, {"path.file_id": data["doomed"]}
    image = {"path.image_id": data["image_id"]}
    encounter = {"path.encounter_id": data["visit_id"]}
    operations: list[tuple[str, dict]] = [
        ("GET /api_v3/files/{file_id}", file_id),
        ("POST /api_v3/files/{file_id}", file_id),
        ("GET /api_v3/files/{file_id}/access", file_id),
        ("DELETE /api_v3/files/{file_id}", doomed),
        ("POST /api_v3/files/{file_id}/restore", {"path.file_id": data["deleted"]}),
        ("GET /api_v3/files/export", {"query.target_id": str(seed.patient_id)}),
        ("GET /files/view/{file_id}", {"path.file_id": seed.small_file_id,
                                       **{f"query.{k}": v for k, v in data["view"].items()}}),
        ("GET /api_v3/files/view/{file_id}", {"path.file_id": seed.small_file_id,
                                              **{f"query.{k}": v for k, v in data["view"].items()}}),
        ("POST /patients/{patient_id}/pdf", {"path.patient_id": seed.patient_id}),
        ("POST /patients/{patient_id}/pdf/", {"path.patient_id": seed.patient_id}),
        ("GET /tscharts/v1/image/{image_id}/", {"path.image_id": data["tscharts_image"]}),
        ("DELETE /tscharts/v1/image/{image_id}/", {"path.image_id": data["doomed_tscharts_image"]}),
        ("GET /images/v1/{image_id}", image),
        ("PUT /images/v1/{image_id}/{version}", {**image, "path.version": data["image_version"]}),
        ("DELETE /images/v1/{image_id}/{version}", {"path.image_id": data["doomed_image"], "path.version": "1"}),
        ("GET /images/v1/{image_id}/content", {**image, **data["image_content"]}),
        ("PUT /images/v1/{image_id}/content", {"path.image_id": data["upload_image"], **data["upload_content"]}),
        ("GET /api/encounter-attachments/v1/{encounter_id}", encounter),
        ("PUT /api/encounter-attachments/v1/{encounter_id}", encounter),
        ("PUT /api/encounter-attachments/v1/{encounter_id}/v2", encounter),
        ("DELETE /api/encounter-attachments/v1/{encounter_id}", {**encounter, "query.attachment_id": data["attachment_id"]}),
        ("GET /api/encounter-attachments/v1/by-charge-capture-external-id/{external_id}",
         {"path.external_id": "contract-pending-1"}),
        ("DELETE /api/encounter-attachments/v1/by-charge-capture-external-id/{external_id}",
         {"path.external_id": "contract-pending-1", "query.attachment_id": data["charge_attachment_id"]}),
        ("GET /fhir/R4/Patient/{patient_id}", {"path.patient_id": str(seed.patient_id)}),
        ("GET /fhir/R4/DocumentReference", {"query.patient": str(seed.patient_id)}),
        ("GET /fhir/R4/DocumentReference/{doc_id}", {"path.doc_id": seed.pdf_file_id}),
        ("DELETE /fhir/R4/DocumentReference/{doc_id}", {"path.doc_id": data["fhir_doomed"]}),
        ("GET /fhir/R4/DocumentReference/{doc_id}/_history/{version}", {"path.doc_id": seed.pdf_file_id, "path.version": "1"}),
        ("POST /fhir/R4/Binary", {"header.X-Security-Context": f"Patient/{seed.patient_id}"}),
        ("GET /fhir/R4/Binary/{binary_id}", {"path.binary_id": seed.pdf_file_id}),
        ("GET /fhir/R4/Binary/{binary_id}/_history/{version}", {"path.binary_id": seed.pdf_file_id, "path.version": "1"}),
    ]
    for name, parameters in operations:
        lines.append(f"[[operations]]\ninclude-name = {json.dumps(name)}\nparameters = {toml_value(parameters)}")
    # tscharts' logout revokes the token it is sent with: it gets a throwaway one, or every
    # operation after it would answer 401 with the shared token.
    lines.append('[[operations]]\ninclude-name = "POST /tscharts/v1/logout/"\n'
                 f'headers = {{ Authorization = "Token {data["logout_token"]}" }}')
    return "\n\n".join(lines) + "\n\n" + EXCLUSIONS.read_text()


def test_schemathesis_finds_nothing(tmp_path):
    with LiveApp(tmp_path, settings={"RATELIMIT_ENABLED": False}) as live:
        data = make_data(live, tmp_path)
        cfg = tmp_path / "schemathesis.toml"
        cfg.write_text(config(live, data))
        run = subprocess.run(
            [str(ST), "--config-file", str(cfg), "run", live.url("/api/openapi.json"),
             "--phases", "examples,coverage,fuzzing,stateful",
             "--max-examples", str(MAX_EXAMPLES), "--seed", "14", "--generation-deterministic",
             # Tokens come from the config, not generated; text with NUL may be refused with 400
             # (PostgreSQL cannot store it: the document's info says so; tests/test_nul_text.py).
             "--generation-with-security-parameters", "false", "--generation-allow-x00", "false",
             "--no-color"],
            cwd=tmp_path, capture_output=True, text=True, timeout=600)
    out = run.stdout + run.stderr
    (tmp_path / "st_out.txt").write_text(out)  # the whole report, beside the test's tmp
    assert run.returncode == 0, out[-20000:]
    # Every token stays valid the whole run (a 403 is a single-use link spent, as documented).
    assert "401 Unauthorized (" not in out, out[-20000:]
