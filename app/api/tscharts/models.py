"""tscharts' own table: the image type, clinic and station of a file stored as a chart image."""
from __future__ import annotations

from enum import StrEnum

from sqlalchemy import BigInteger, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.extensions import Model
from app.models import StoredFile


class ImageType(StrEnum):
    """tscharts image types (its API spells them exactly so, case-sensitive)."""

    HEADSHOT = "Headshot"
    XRAY = "Xray"
    SURGERY = "Surgery"
    AUDIOGRAM = "Audiogram"


class ChartImage(Model):
    """One chart image: the file's tscharts tags. Clinic and station are the client's own
    integers, kept verbatim (Chartbox has no such objects to point at)."""

    __tablename__ = "tscharts_images"
    __table_args__ = (
        Index("ix_tscharts_images_clinic", "clinic", "station"),
        Index("ix_tscharts_images_station", "station"),
        Index("ix_tscharts_images_type", "image_type"),
    )

    file_id: Mapped[int] = mapped_column(ForeignKey("stored_files.id"), primary_key=True)
    image_type: Mapped[str] = mapped_column(String(16))  # an ImageType
    clinic: Mapped[int | None] = mapped_column(BigInteger)
    station: Mapped[int | None] = mapped_column(BigInteger)

    file: Mapped[StoredFile] = relationship(lazy="joined")
