"""Storage backends behind one small interface; the app holds one instance."""
from __future__ import annotations

from flask import Flask, current_app

from app.storage.base import BlobInfo, BlobMissing, Debris, Storage, StorageError, new_key

__all__ = ["BlobInfo", "BlobMissing", "Debris", "Storage", "StorageError", "get_storage", "init_storage",
           "new_key"]


def build_storage(config) -> Storage:
    """The backend named by STORAGE_BACKEND."""
    if config["STORAGE_BACKEND"] == "s3":
        from app.storage.s3 import S3Storage

        return S3Storage(
            bucket=config["S3_BUCKET"],
            prefix=config.get("S3_PREFIX", ""),
            endpoint_url=config.get("S3_ENDPOINT_URL"),
            region=config.get("S3_REGION"),
        )
    from app.storage.filesystem import FilesystemStorage

    return FilesystemStorage(config["STORAGE_ROOT"])


def init_storage(app: Flask) -> None:
    app.extensions["chartbox_storage"] = build_storage(app.config)


def get_storage() -> Storage:
    return current_app.extensions["chartbox_storage"]
