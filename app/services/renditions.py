"""The rendition cache behind `size=` and `preview=`: few sizes, bounded work, a capped store.

- **Few sizes.** Only squares of RENDITION_SIZES (longest side, px) are ever stored, at
  `renditions/<id[:2]>/<id>/<S>x<S>.png` (a PDF page N: `p<N>-<S>x<S>.png`). A box snaps to the
  smallest stored side covering it (for an image of known size: covering the answer, see
  snap), or the largest when the box is bigger (never more than the original either). The
  stored PNG is served as it is when it fits the box; otherwise it is
  downscaled to fit and that answer is not stored. So however many sizes are asked for, a
  file has at most len(RENDITION_SIZES) renditions (per page for PDFs), and every answer still
  fits its box, as the view links promise.
- **Bounded work.** Making a stored rendition from the original runs in an isolated child
  (images.render_isolated: RENDER_TIMEOUT seconds, PDF_PARSE_MEMORY bytes, lower priority).
  It and the downscale share one per-process gate, "render" (RENDER_CONCURRENCY slots; a
  request waits RENDER_WAIT seconds for one, then gets ServerBusy: 503 + Retry-After). The
  downscale runs in the worker (its input is our own PNG of at most the largest stored side,
  so no child is needed) but through the gate all the same: from a noisy 2048 px PNG it costs
  about half a second of CPU, and a flood of odd boxes must not take more than
  RENDER_CONCURRENCY cores of a process.
- **A capped store.** The cache as a whole is kept under RENDITION_CACHE_MAX_BYTES (0: no
  cap), oldest written first (storage keeps no read times — S3 has none — so not LRU; an
  evicted rendition is simply made again on its next use). Each process keeps a running
  estimate: it adds what it writes, and when the estimate passes the cap, or RESCAN_SECONDS
  after its last look, it lists renditions/ once (sizes come with the listing) and removes
  the oldest until the total is under LOW_WATER of the cap. Other processes' writes show at
  the next listing, so the store overshoots by at most what the processes write in between.
"""
from __future__ import annotations

import io
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import BinaryIO

from flask import current_app

from app.services import images
from app.services.isolation import gate
from app.storage import BlobMissing, Storage, StorageError, get_storage

PREFIX = "renditions/"
GATE = "render"
LOW_WATER = 0.9  # a trim goes down to this share of the cap, so the next one is not at once
RESCAN_SECONDS = 60.0  # a writing process lists the cache at least this often


@dataclass
class Rendition:
    """A PNG (or a HEIC's JPEG) ready to send."""

    stream: BinaryIO
    size: int  # bytes


def stored_sides() -> tuple[int, ...]:
    """RENDITION_SIZES, ascending. Raises RuntimeError when the setting cannot work."""
    raw = current_app.config["RENDITION_SIZES"]
    try:
        sides = tuple(sorted({int(side) for side in raw}))
    except (TypeError, ValueError):
        sides = ()
    if not sides or sides[0] < 1 or sides[-1] > images.MAX_SIDE:
        raise RuntimeError(f"RENDITION_SIZES must be a list of sides from 1 to {images.MAX_SIDE}, not {raw!r}.")
    return sides


def snap(box: tuple[int, int], sides: tuple[int, ...], natural: tuple[int, int] | None = None) -> int:
    """The stored side that answers `box`: the smallest covering it, else the largest.

    With the image's `natural` size (width, height as stored, EXIF orientation unknown, so
    both ways round), what must be covered is the answer rather than the box: 4000x300 of a
    4:3 photo is a 400x300 answer, made from the 640 rendition instead of the 2048 one
    (a downscale 40 times cheaper), and never smaller than the answer.
    """
    need = max(box)
    if natural and min(natural) > 0:
        need = max(_longest_fit(natural, box), _longest_fit((natural[1], natural[0]), box))
    return next((side for side in sides if side >= need), sides[-1])


def _longest_fit(size: tuple[int, int], box: tuple[int, int]) -> int:
    """The longest side of `size` fitted inside `box` (never enlarged), rounded up."""
    scale = min(box[0] / size[0], box[1] / size[1], 1.0)
    return math.ceil(max(size) * scale - 1e-9)


def folder(public_id: str) -> str:
    return f"{PREFIX}{public_id[:2]}/{public_id}/"


def of_image(public_id: str, box: tuple[int, int], read_source: Callable[[], bytes],
             natural: tuple[int, int] | None = None) -> Rendition:
    """A PNG of an image fitting inside `box` (see the module docstring).

    Args:
        public_id: the file's public UUID (names its renditions).
        box: (width, height) the answer must fit inside.
        natural: the image's own (width, height), when known (see snap).
        read_source: returns the original's bytes, checked against its hash; called only
            when a stored rendition has to be made.
    Raises:
        ServerBusy: every render slot stayed busy for RENDER_WAIT seconds.
        BadRequest: the rendition cannot be made within the child's budget.
        StorageError, DamagedFile: from the store or the source.
    """
    return _answer(public_id, box, None, read_source, natural)


def of_pdf_page(public_id: str, box: tuple[int, int], page: int, read_source: Callable[[], bytes]) -> Rendition:
    """A PNG of one PDF page (1-based) fitting inside `box`; raises as of_image, and BadRequest
    for a page the PDF does not have."""
    return _answer(public_id, box, page, read_source, None)


def as_jpeg(read_source: Callable[[], bytes]) -> Rendition:
    """A HEIC as a JPEG of the whole picture (`format=jpeg`), made from the original in an
    isolated child under the render gate, with a rendition's budget; not stored: a download,
    asked for far less often than a thumbnail. Raises as of_image."""
    config = current_app.config
    with gate(GATE, config["RENDER_CONCURRENCY"], config["RENDER_WAIT"]):
        jpeg = images.render_isolated(images.image_jpeg, read_source(), what="JPEG of this photo",
                                      timeout=config["RENDER_TIMEOUT"], memory=config["PDF_PARSE_MEMORY"])
    return Rendition(io.BytesIO(jpeg), len(jpeg))


def _answer(public_id: str, box: tuple[int, int], page: int | None, read_source: Callable[[], bytes],
            natural: tuple[int, int] | None) -> Rendition:
    config = current_app.config
    sides = stored_sides()
    side = snap(box, sides, natural)
    storage = get_storage()
    key = images.rendition_key(public_id, side, page)
    slots, wait = config["RENDER_CONCURRENCY"], config["RENDER_WAIT"]
    found = _open_stored(storage, key, sides[-1])
    made = 0
    if found is None:
        with gate(GATE, slots, wait):
            found = _open_stored(storage, key, sides[-1])  # another thread may have made it meanwhile
            if found is None:
                png = _render(read_source(), side, page)
                storage.put(key, io.BytesIO(png))
                made = len(png)
                found = io.BytesIO(png), images.png_dimensions(png[:24]) or (side, side), len(png)
    if made:
        _ledger().wrote(storage, made, key)
    stream, dimensions, size = found
    if images.fits(dimensions, box):
        # Held in memory (a rendition is one of a few bounded sizes), so no file stays open on a
        # server that never closes a response whose client went away mid-way.
        with stream:
            return Rendition(io.BytesIO(stream.read()), size)
    try:
        with gate(GATE, slots, wait):
            smaller = images.downscale_png(stream.read(), box, sides[-1])
    finally:
        stream.close()
    return Rendition(io.BytesIO(smaller), len(smaller))


def _render(source: bytes, side: int, page: int | None) -> bytes:
    config = current_app.config
    budget = {"timeout": config["RENDER_TIMEOUT"], "memory": config["PDF_PARSE_MEMORY"]}
    if page is None:
        return images.render_isolated(images.image_png, source, side, what="rendition of this image", **budget)
    return images.render_isolated(images.page_png, source, side, page, what="preview of this PDF page", **budget)


def _open_stored(storage: Storage, key: str, max_side: int) -> tuple[BinaryIO, tuple[int, int], int] | None:
    """The stored rendition under `key` (stream, dimensions, bytes), or None when there is none.

    One that is not a PNG of at most `max_side` a side (damaged, or written by something else)
    is removed and reported as absent, so it is made again rather than served or decoded.
    """
    try:
        stream = storage.open(key)
    except BlobMissing:
        return None
    try:
        dimensions = images.png_dimensions(stream.read(24))
        if dimensions is None or max(dimensions) > max_side:
            current_app.logger.warning("rendition %s is not one of ours; making it again", key)
            stream.close()
            storage.delete(key)
            return None
        size = stream.seek(0, io.SEEK_END)
        stream.seek(0)
    except BaseException:
        stream.close()
        raise
    return stream, dimensions, size


def remove_all(storage: Storage, public_id: str) -> int:
    """Remove every rendition of one file (its purge); returns how many. Raises StorageError."""
    keys = [key for key, _ in storage.entries(folder(public_id))]
    for key in keys:
        storage.delete(key)
    return len(keys)


def trim(storage: Storage, cap: int, keep: frozenset[str] = frozenset()) -> int:
    """Bring the whole cache under `cap` bytes: when over, remove the oldest-written renditions
    (never those in `keep`) until under LOW_WATER of it. Returns the bytes left.
    Raises StorageError."""
    entries = sorted(storage.entries(PREFIX), key=lambda entry: entry[1].modified)
    total = sum(info.size for _, info in entries)
    if total <= cap:
        return total
    goal, before, removed = int(cap * LOW_WATER), total, 0
    for key, info in entries:
        if total <= goal:
            break
        if key in keep:
            continue
        storage.delete(key)
        total -= info.size
        removed += 1
    current_app.logger.info("rendition cache: %d bytes over the %d-byte cap; removed the %d oldest (%d bytes left)",
                            before - cap, cap, removed, total)
    return total


class _Ledger:
    """This process's running estimate of the cache's size (see the module docstring)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._estimate: int | None = None  # unknown until the first listing
        self._listed_at = 0.0
        self._busy = False

    def wrote(self, storage: Storage, size: int, key: str) -> None:
        """Count a rendition just stored under `key`; trim the cache when due. Never raises:
        the answer is made either way, and the next write tries again."""
        cap = int(current_app.config["RENDITION_CACHE_MAX_BYTES"] or 0)
        if cap <= 0:
            return
        with self._lock:
            if self._estimate is not None:
                self._estimate += size
            due = (self._estimate is None or self._estimate > cap
                   or time.monotonic() - self._listed_at >= RESCAN_SECONDS)
            if not due or self._busy:  # one listing at a time per process
                return
            self._busy = True
        total = None
        try:
            total = trim(storage, cap, frozenset({key}))
        except StorageError as exc:
            current_app.logger.error("could not trim the rendition cache: %s", exc)
        finally:
            with self._lock:
                self._busy = False
                self._listed_at = time.monotonic()
                if total is not None:
                    self._estimate = total


def _ledger() -> _Ledger:
    ledger = current_app.extensions.get("chartbox_rendition_ledger")
    if ledger is None:
        ledger = current_app.extensions.setdefault("chartbox_rendition_ledger", _Ledger())
    return ledger
