"""The demo clinic that `make run` seeds into an empty database."""
from __future__ import annotations

import io
import secrets
from dataclasses import dataclass, field
from datetime import date

from PIL import Image, ImageDraw, ImageFont
from sqlalchemy import func, select

from app.errors import Conflict
from app.extensions import db
from app.models import Account, Category, Role
from app.services import accounts, files
from app.services.audit import Origin


@dataclass
class DemoSeed:
    account_code: str
    logins: list[tuple[str, str, str]] = field(default_factory=list)  # role, username, password
    token: str = ""
    token_user: str = ""
    visit_id: str = ""
    patient_ids: dict[str, int] = field(default_factory=dict)


def is_empty() -> bool:
    return not db.session.scalar(select(func.count()).select_from(Account))


def seed_demo() -> DemoSeed:
    """Create the demo clinic, its people, a visit and sample files. Raises Conflict if not empty."""
    if not is_empty():
        raise Conflict("The database already holds data; the demo only seeds an empty one.")
    account = accounts.create_account("demo", "Demo Family Clinic")
    seed = DemoSeed(account_code=account.code)
    # Two patients share a name, as in any real clinic: the patient list tells them apart by
    # date of birth and chart number.
    people = [
        (Role.PROVIDER, "dr.rivera", "Dr. Ana Rivera", "ana.rivera@example.org", None, None),
        (Role.PATIENT, "alice", "Alice Moreno", "alice@example.org", date(1984, 3, 2), "10234"),
        (Role.PATIENT, "bob", "Bob Okafor", "bob@example.org", date(1976, 11, 8), "10235"),
        (Role.PATIENT, "alice.m", "Alice Moreno", "alice.m@example.org", date(1991, 7, 19), "10236"),
    ]
    users = {}
    for role, username, name, email, born, chart in people:
        password = secrets.token_urlsafe(9)
        users[username] = accounts.create_user(account, role, username, name, email, password,
                                               birth_date=born, chart_number=chart)
        seed.logins.append((role.value, username, password))
    seed.patient_ids = {u: users[u].id for u in ("alice", "bob", "alice.m")}
    provider, alice, bob = users["dr.rivera"], users["alice"], users["bob"]
    visit = accounts.create_visit(alice, external_id="demo-visit-1", reason="Annual check-up", provider=provider)
    seed.visit_id = visit.public_id
    origin = Origin.cli()
    files.upload(alice, origin, io.BytesIO(_pdf(["Insurance summary", "Plan: Demo Health Gold"])),
                 "insurance-summary.pdf")
    files.upload(alice, origin, io.BytesIO(_image("JPEG", "Insurance card (front)", (856, 540))),
                 "insurance-card-front.jpg")
    files.upload(provider, origin, io.BytesIO(_pdf(["Lab results", "All values within range.", "Page two"])),
                 "lab-results.pdf", Category.USER_DOCUMENT, files.Target.chart(alice))
    files.upload(provider, origin, io.BytesIO(b"date,systolic,diastolic\n2026-11-01,118,76\n2026-11-15,121,79\n"),
                 "blood-pressure.csv", Category.USER_DOCUMENT, files.Target.chart(alice))
    files.upload(alice, origin, io.BytesIO(_image("PNG", "Rash photo", (800, 600))),
                 "rash-photo.png", Category.INTAKE_ATTACHMENT, files.Target.chart(alice, visit))
    files.upload(bob, origin, io.BytesIO(_pdf(["Referral letter"])), "referral.pdf")
    _, seed.token = accounts.create_token(provider, "demo")
    seed.token_user = provider.username
    return seed


def _font(size: int):
    try:
        return ImageFont.load_default(size)
    except TypeError:  # Pillow without scalable default font
        return ImageFont.load_default()


def _page(lines: list[str], size=(1240, 1754)) -> Image.Image:
    page = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(page)
    draw.text((100, 120), "Demo Family Clinic", fill="#0f4c5c", font=_font(56))
    for i, line in enumerate(lines):
        draw.text((100, 260 + i * 70), line, fill="black", font=_font(40))
    return page


def _pdf(pages: list[str]) -> bytes:
    """A real PDF with one page per line of text (Pillow writes it)."""
    images = [_page([text]) for text in pages]
    out = io.BytesIO()
    images[0].save(out, "PDF", save_all=True, append_images=images[1:], resolution=150)
    return out.getvalue()


def _image(fmt: str, caption: str, size: tuple[int, int]) -> bytes:
    im = Image.new("RGB", size, "#dbe9ee")
    draw = ImageDraw.Draw(im)
    draw.rounded_rectangle((20, 20, size[0] - 20, size[1] - 20), radius=24, outline="#0f4c5c", width=6)
    draw.text((60, 60), caption, fill="#0f4c5c", font=_font(44))
    out = io.BytesIO()
    im.save(out, fmt, quality=85) if fmt == "JPEG" else im.save(out, fmt)
    return out.getvalue()
