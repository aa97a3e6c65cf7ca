"""HL7 FHIR R4: Patient, DocumentReference and Binary (`/fhir/R4`), a standard's door rather
than one vendor's, declared like every other dialect."""
from app.api.dialect import Dialect, authorization
from app.api.fhir import routes
from app.api.fhir.resources import PREFIX
from app.models import Channel

DIALECT = Dialect(
    name="FHIR R4", channel=Channel.FHIR, blueprints=(routes.bp,), prefixes=(PREFIX,),
    render_error=routes.render_error, credential=authorization("Bearer"),
    public=frozenset({"fhir.metadata"}),
    body_limit="JSON_UPLOAD_MAX_BYTES",  # base64 inflates a file by 4/3
)
DIALECTS = (DIALECT,)
