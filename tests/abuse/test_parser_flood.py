"""A flood of expensive-to-parse uploads cannot starve anyone (`make run`'s gunicorn, 2 workers).

Eight attacker threads keep uploading, for ATTACK_SECONDS, a PDF of 100,000 blank pages (8 MB;
parsing every page took 9 s before PDF_MAX_PAGES) and single-colour PNGs of 10,000x6,001 pixels
(60 KB on disk, 60 MB decoded). Meanwhile the probe (an ordinary patient, on another address)
keeps opening the sign-in page and downloading a small file, and eight ordinary PDF uploads
arrive. The probe must stay fast and never fail; every attack upload must get a clear 400 (or
503 when the decoder slots are busy), never a 500 or a hang; each ordinary upload must go in
(retrying after a 503's Retry-After, as a real client does); and the workers' memory must stay
bounded. Everything runs on loopback and stops by itself.

The request rate limits are off here (RATELIMIT_ENABLED=False): an attacker with many tokens
and addresses gets past them, so the decoders' own bounds must hold without their help.
"""
from __future__ import annotations

import json
import threading
import time
from collections import Counter

import pytest
from builders import blank_pages_pdf, flat_png
from conftest import multipart, sample
from live import LiveApp, Probe

ATTACKERS = 8
ATTACK_SECONDS = 15.0
PROBE_P95 = 2.0  # seconds: loose, for a shared 2-core CI machine (idle, the probe takes ~20 ms)
RSS_GROWTH = 150 * 1024 * 1024  # bytes a worker may grow by during the attack (one decode is 60 MB)
VALID_UPLOADS = 8


@pytest.fixture(scope="module")
def hostile(tmp_path_factory) -> dict[str, bytes]:
    """Built once and cached for the module: (name -> bytes)."""
    folder = tmp_path_factory.mktemp("parser-flood")
    files = {"pages.pdf": blank_pages_pdf(100_000), "pixels.png": flat_png(10_000, 6_001, "L")}
    for name, data in files.items():
        (folder / name).write_bytes(data)
    return {name: (folder / name).read_bytes() for name in files}


def post_file(live: LiveApp, token: str, patient_id: int, name: str, data: bytes, timeout: float = 30.0):
    body, content_type = multipart({"meta.target.id": str(patient_id)}, name, data)
    return live.request("POST", "/api_v3/files", body, {"X-ApiToken": token, "Content-Type": content_type},
                        timeout=timeout)


class Attacker(threading.Thread):
    def __init__(self, live: LiveApp, files: dict[str, bytes], until: float, n: int):
        super().__init__(daemon=True)
        self.live, self.files, self.until, self.n = live, files, until, n
        self.answers: list[tuple[str, int, str]] = []  # (file, status, message)
        self.errors: list[str] = []

    def run(self) -> None:
        names = sorted(self.files)
        i = self.n
        while time.monotonic() < self.until:
            name = names[i % len(names)]
            i += 1
            try:
                status, _, body = post_file(self.live, self.live.seed.provider_token, self.live.seed.patient_id,
                                            name, self.files[name])
            except OSError as exc:
                self.errors.append(f"{name}: {type(exc).__name__}: {exc}")
                continue
            try:
                message = json.loads(body).get("message", "")
            except ValueError:
                message = body[:200].decode(errors="replace")
            self.answers.append((name, status, message))


class OrdinaryUpload(threading.Thread):
    """A patient's small PDF, retried after each 503 as its Retry-After says."""

    def __init__(self, live: LiveApp, n: int, give_up: float):
        super().__init__(daemon=True)
        self.live, self.n, self.give_up = live, n, give_up
        self.statuses: list[int] = []

    def run(self) -> None:
        seed = self.live.seed
        while time.monotonic() < self.give_up:
            try:
                status, headers, _ = post_file(self.live, seed.patient_token, seed.patient_id,
                                               f"letter-{self.n}.pdf", sample("letter.pdf"))
            except OSError:
                status, headers = -1, {}
            self.statuses.append(status)
            if status not in (429, 503):
                return
            time.sleep(min(float(headers.get("retry-after", "1")), 5.0))


def test_a_parser_flood_leaves_the_patient_unharmed(tmp_path, hostile):
    with LiveApp(tmp_path, {"RATELIMIT_ENABLED": False}, workers=2) as live:
        seed = live.seed
        for _ in range(4):  # warm both workers up before taking the baseline
            assert post_file(live, seed.patient_token, seed.patient_id, "warm.pdf", sample("letter.pdf"))[0] == 200
        workers = live.worker_pids()
        baseline = {pid: live.rss(pid) for pid in workers}
        peak = dict(baseline)
        until = time.monotonic() + ATTACK_SECONDS
        attackers = [Attacker(live, hostile, until, n) for n in range(ATTACKERS)]
        ordinary: list[OrdinaryUpload] = []
        with Probe(live) as probe:
            try:
                for attacker in attackers:
                    attacker.start()
                time.sleep(2.0)  # the flood is on
                ordinary = [OrdinaryUpload(live, n, until + 20) for n in range(VALID_UPLOADS)]
                for upload in ordinary:
                    upload.start()
                while time.monotonic() < until:
                    for pid in workers:
                        peak[pid] = max(peak[pid], live.rss(pid))
                    time.sleep(0.2)
            finally:
                for thread in [*attackers, *ordinary]:
                    thread.join(60)
        assert not any(t.is_alive() for t in [*attackers, *ordinary]), "a request hung"

        answers = [a for attacker in attackers for a in attacker.answers]
        errors = [e for attacker in attackers for e in attacker.errors]
        summary = (f"{len(answers)} attack uploads {Counter((n, s) for n, s, _ in answers)}; "
                   f"{probe.summary()}; ordinary {[u.statuses for u in ordinary]}; "
                   f"RSS MiB {[(baseline[p] >> 20, peak[p] >> 20) for p in workers]}")
        print(summary)
        assert errors == [], summary
        assert {status for _, status, _ in answers} <= {400, 503}, summary
        refused = Counter(name for name, status, _ in answers if status == 400)
        assert refused["pages.pdf"] >= 10 and refused["pixels.png"] >= 10, summary
        for name, status, message in answers:
            if status == 400 and name == "pages.pdf":
                assert message.startswith("The PDF has 100,000 pages; at most 2,000 pages can be uploaded."), message
            elif status == 400:
                assert message.startswith("The image is 10,000x6,001 pixels; the limit is 60,000,000 pixels"), message

        assert probe.failures == [], summary
        assert probe.count >= 20, summary
        assert probe.p95() < PROBE_P95, summary
        assert [u.statuses[-1] if u.statuses else None for u in ordinary] == [200] * VALID_UPLOADS, summary
        assert live.worker_pids() == workers, "a worker was replaced"
        for pid in workers:
            assert peak[pid] - baseline[pid] < RSS_GROWTH, summary
        assert " 500 " not in live.log()
