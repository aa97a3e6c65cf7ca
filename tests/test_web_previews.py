"""PDF page previews behind signed links (`preview=<page>`), stored like image renditions (see
tests/test_renditions.py for the sizes they snap to and PREVIEW_MAX_PAGES)."""
import io
from urllib.parse import urlsplit

from conftest import sample
from PIL import Image

from app.urls import view_url


def _path(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}"


def _get(client, url: str):
    """GET and close (the body is a streamed file that must not be left open)."""
    resp = client.get(url)
    resp.get_data()
    resp.close()
    return resp


def test_pdf_preview_is_a_cached_png_of_the_page(client, make_user, make_file, storage_root):
    alice = make_user()
    row = make_file(alice, "letter.pdf")
    resp = _get(client, _path(view_url(row, size="200x200", preview=1)))
    assert resp.status_code == 200 and resp.mimetype == "image/png"
    with Image.open(io.BytesIO(resp.data)) as im:
        assert max(im.size) == 200 and im.size[0] <= 200
        assert im.convert("L").getextrema()[0] < 100  # the page's text rendered dark ink
    cached = list((storage_root / "renditions").rglob("*.png"))  # the stored size 200x200 snaps to
    assert [p.name for p in cached] == ["p1-320x320.png"]
    again = _get(client, _path(view_url(row, size="200x200", preview=1)))
    assert again.data == resp.data
    page2 = _get(client, _path(view_url(row, size="100x100", preview=2)))
    assert page2.status_code == 200 and page2.mimetype == "image/png"


def test_plain_size_on_a_pdf_still_returns_the_pdf(client, make_user, make_file):
    row = make_file(make_user(), "letter.pdf")
    resp = _get(client, _path(view_url(row, size="200x200")))
    assert resp.status_code == 200 and resp.mimetype == "application/pdf"
    assert resp.data == sample("letter.pdf")


def test_preview_is_ignored_for_images_and_checked_for_pdfs(client, make_user, make_file):
    user = make_user()
    photo = make_file(user, "photo.jpg")
    resp = _get(client, _path(view_url(photo, preview=1)))
    assert resp.mimetype == "image/jpeg" and resp.data == sample("photo.jpg")
    pdf = make_file(user, "letter.pdf")
    for bad in ("0", "x", "-1", "999999"):
        assert _get(client, _path(view_url(pdf)) + f"&preview={bad}").status_code == 400
    assert _get(client, _path(view_url(pdf, preview=3))).status_code == 400  # 2 pages only


def test_preview_does_not_weaken_the_signature(client, make_user, make_file, storage_root):
    row = make_file(make_user(), "letter.pdf")
    url = _path(view_url(row, size="50x50", preview=1))
    tampered = url.replace("auth_code=", "auth_code=0")
    assert _get(client, tampered).status_code == 403
    unsigned = f"/files/view/{row.public_id}?size=50x50&preview=1"
    assert _get(client, unsigned).status_code == 403
    assert not (storage_root / "renditions").exists()
