"""Candid: two dialects, pre-encounter images and encounter attachments (one channel)."""
from app.api.candid import attachments, images
from app.api.candid.shapes import render_attachment_error, render_image_error
from app.api.dialect import Dialect, authorization

CHANNEL = "candid"

IMAGES = Dialect(
    name="Candid pre-encounter images", channel=CHANNEL, blueprints=(images.bp,),
    prefixes=("/images/v1",), render_error=render_image_error,
    credential=authorization("Bearer"),
    public=frozenset({"candid_images.image_content"}),  # authorised by its signature
)
ATTACHMENTS = Dialect(
    name="Candid encounter attachments", channel=CHANNEL, blueprints=(attachments.bp,),
    prefixes=("/api/encounter-attachments",), render_error=render_attachment_error,
    credential=authorization("Bearer"),
)
DIALECTS = (IMAGES, ATTACHMENTS)
