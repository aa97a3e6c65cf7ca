"""A rendition and preview flood against a live gunicorn (what `make run` serves), while an
ordinary patient keeps signing in and downloading.

8 threads ask, for ~15 s, for distinct sizes near 4000x4000 of a 16-megapixel photo (and odd
boxes like 4000x300 that need a downscale), and for previews of every page of a 60-page PDF at
such sizes (pages past PREVIEW_MAX_PAGES too). Before renditions were bounded each distinct size
was a new render from the original, stored for ever (~1.8 s of CPU and ~10 MB of disk each).

Bounds asserted (loose on purpose: a shared 2-core machine, the attack's own client on it too):
- the patient's probe: no failure, p95 under PROBE_P95 seconds;
- the attack gets 200 or a clear 503 + Retry-After (429 too, should a rate limit answer first),
  and 400 for pages past PREVIEW_MAX_PAGES; never a 500;
- disk: at most len(RENDITION_SIZES) renditions of the photo and of each page;
- memory: no worker's RSS ever above RSS_BOUND (renders happen in children).
"""
from __future__ import annotations

import json
import random
import threading
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from builders import noisy_photo, scanned_pdf
from conftest import multipart
from live import LiveApp, Probe

SECONDS = 15.0
ATTACKERS = 8
PAGES = 60
PREVIEW_MAX_PAGES = 50  # the default
SIZES = 5  # len(RENDITION_SIZES)
PROBE_P95 = 2.0  # seconds
RSS_BOUND = 400 * 1024 * 1024  # bytes, per worker process


def upload(live: LiveApp, data: bytes, name: str) -> tuple[str, str]:
    """(public id, signed view path) of a file the provider uploads to the patient's chart."""
    body, content_type = multipart({"meta.target.type": "user", "meta.target.id": str(live.seed.patient_id)},
                                   name, data)
    status, _, answer = live.request("POST", "/api_v3/files", body,
                                     {"X-ApiToken": live.seed.provider_token, "Content-Type": content_type},
                                     timeout=60)
    assert status == 200, answer[:300]
    made = json.loads(answer)["data"]
    link = urlsplit(made["fullpath"])
    return made["id"], f"{link.path}?{link.query}"


@dataclass
class Flood:
    """What a flood saw: answers by (kind, status), anything unexpected, worker RSS samples."""

    photo_id: str = ""
    pdf_id: str = ""
    results: Counter[tuple[str, int]] = field(default_factory=Counter)
    bad: list[str] = field(default_factory=list)
    rss: list[int] = field(default_factory=list)
    alive: int = 0

    def summary(self) -> str:
        return f"attack answers {dict(self.results)}; max worker RSS {max(self.rss, default=0) >> 20} MiB"


def run_attack(live: LiveApp, seconds: float) -> Flood:
    """Upload the photo and the PDF, then flood their renditions from ATTACKERS threads for
    `seconds` (bench/abuse.py runs this beside a Probe too)."""
    flood = Flood()
    flood.photo_id, photo = upload(live, noisy_photo(4600, 3450), "photo.jpg")
    flood.pdf_id, pdf = upload(live, scanned_pdf(PAGES), "scans.pdf")
    stop = threading.Event()

    def near_4000(rng: random.Random) -> int:
        return rng.randint(3800, 4096)

    def attack(seed: int) -> None:
        rng = random.Random(seed)
        while not stop.is_set():
            roll = rng.random()
            if roll < 0.35:
                kind, path = "photo", f"{photo}&size={near_4000(rng)}x{near_4000(rng)}"
            elif roll < 0.45:  # a box no stored size fits: a downscale every time
                kind, path = "photo", f"{photo}&size={near_4000(rng)}x{rng.randint(200, 400)}"
            elif roll < 0.95:
                page = rng.randint(1, PREVIEW_MAX_PAGES)
                kind, path = "preview", f"{pdf}&size={near_4000(rng)}x{near_4000(rng)}&preview={page}"
            else:
                kind, path = "late page", f"{pdf}&size=4096x4096&preview={rng.randint(PREVIEW_MAX_PAGES + 1, PAGES)}"
            try:
                status, headers, body = live.request("GET", path, timeout=30)
            except OSError as exc:
                flood.bad.append(f"{kind}: {exc!r}")
                continue
            flood.results[(kind, status)] += 1
            expected = {400} if kind == "late page" else {200, 429, 503}
            if status not in expected:
                flood.bad.append(f"{kind}: {status} {body[:200]!r}")
            elif status in (429, 503) and not headers.get("retry-after", "").isdigit():
                flood.bad.append(f"{kind}: {status} without Retry-After")
            elif status == 200 and not body.startswith(b"\x89PNG"):
                flood.bad.append(f"{kind}: 200 but not a PNG")

    def watch_memory() -> None:
        while not stop.is_set():
            flood.rss.extend(live.rss(pid) for pid in live.worker_pids())
            stop.wait(0.25)

    threads = [threading.Thread(target=attack, args=(i,), daemon=True) for i in range(ATTACKERS)]
    threads.append(threading.Thread(target=watch_memory, daemon=True))
    try:
        for thread in threads:
            thread.start()
        stop.wait(seconds)
    finally:
        stop.set()
        for thread in threads:
            thread.join(40)
    flood.alive = sum(t.is_alive() for t in threads)
    return flood


def test_a_rendition_and_preview_flood_costs_bounded_cpu_memory_and_disk(tmp_path):
    with LiveApp(tmp_path) as live:
        with Probe(live) as probe:
            flood = run_attack(live, SECONDS)
        log = live.log()

    summary = f"{probe.summary()}; {flood.summary()}"
    print(summary)
    assert flood.alive == 0, summary
    assert probe.failures == [] and probe.count >= 20, summary
    assert probe.p95() < PROBE_P95, summary
    assert flood.bad == [], (flood.bad[:5], summary)
    assert flood.results[("photo", 200)] >= 5 and flood.results[("preview", 200)] >= 5, summary
    assert flood.results[("late page", 400)] >= 1, summary
    assert "Traceback" not in log, log[-3000:]
    assert 0 < max(flood.rss) < RSS_BOUND, summary

    folder = Path(tmp_path) / "files" / "renditions"
    photo_files = [p.name for p in (folder / flood.photo_id[:2] / flood.photo_id).glob("*.png")]
    assert 1 <= len(photo_files) <= SIZES, photo_files
    per_page = Counter(p.name.split("-", 1)[0] for p in (folder / flood.pdf_id[:2] / flood.pdf_id).glob("*.png"))
    assert per_page and max(per_page.values()) <= SIZES, per_page
    assert all(int(name[1:]) <= PREVIEW_MAX_PAGES for name in per_page), per_page
