"""The reference a download is measured against: bare Flask `send_file` of one file, nothing else
(no database, no authentication, no audit). Served by the same gunicorn settings as Chartbox:
`BARE_FILE=<path> gunicorn -c gunicorn.conf.py bench.bare_app:app`."""
import os

from flask import Flask, request, send_file

app = Flask(__name__)
_PATH = os.environ.get("BARE_FILE", "")
_MEDIA_TYPE = os.environ.get("BARE_MEDIA_TYPE", "application/octet-stream")


@app.get("/file")
def file():
    return send_file(_PATH, mimetype=_MEDIA_TYPE, conditional=True)


@app.post("/upload")
def upload():
    """Only saves the upload (the reference for an upload's cost)."""
    stored = request.files["file"]
    stored.save(os.path.join(os.environ.get("BARE_UPLOADS", "/tmp"), os.urandom(8).hex()))
    return {"ok": True}
