"""Large files against what a user would otherwise run: nginx for downloads, bare Flask for uploads.

Run: `.venv/bin/python bench/large_files.py [--seconds S] [--rounds N] [--quick]` (also in
`make bench`). Needs Debian's wrk (/usr/bin/wrk) and nginx (/usr/sbin/nginx). Prints a
Markdown table; every figure is a ratio to a reference measured in the same run, the two
alternating, medians taken.

(a) Download of a 22 MB PDF (29 noisy A4 scans at 150 dpi, a real PDF that passes upload
    validation) through its signed view link, `wrk --latency` with 4 connections, against
    nginx (sendfile) serving the same bytes from disk: requests/s, target >= 0.95. Also, for
    information, bare Flask `send_file` (bench/bare_app.py) against the same nginx. With the
    DOWNLOADS="x-accel" setting (when app/config.py has it), Chartbox behind nginx handing the
    body to nginx against nginx alone: target >= 0.98.
(b) Upload of the same PDF through the VSee API (POST /api_v3/files, provider token), median
    seconds, against bare Flask's /upload that only saves it: target <= 1.25x.
(c) Memory: the growth of the worker's RSS (VmHWM reset before each request, so the peak is
    exact) during a 25 MB upload and a 25 MB download of a PDF, and a 25 MB photo upload, one
    gunicorn worker so it is the one; target <= 30 MiB. Each request runs once before it is
    measured (first-use allocations); the bare app's growth for the same requests is the
    reference column.

Rate limits stay on (database:// store), with the per-address read limit raised to 1,000,000
a minute so wrk's thousands of link downloads a minute are not refused.
"""
from __future__ import annotations

import argparse
import math
import struct
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from builders import noisy_photo, scanned_pdf  # noqa: E402
from http_common import (  # noqa: E402
    MIB,
    BareApp,
    LiveApp,
    Nginx,
    Table,
    alternate,
    fetch,
    link_path,
    machine,
    median,
    multipart,
    request,
    reset_peak,
    rss,
    upload,
    wrk,
)

SETTINGS = {"RATELIMIT_ADDRESS_READ": "1000000 per minute"}
#: Chartbox behind nginx, handing large files to it (app/services/delivery.py)
OFFLOAD = {"DOWNLOADS": "x-accel", "TRUSTED_PROXIES": 1}
PAGE_SIDE = 1240  # an A4 page scanned at 150 dpi: 1240 x 1653 px
UPLOAD_LIMIT = 25 * MIB


def build_pdf(target: int) -> bytes:
    """A PDF of noisy scanned pages, within 3 % of `target` bytes (and never past the upload limit)."""
    trial = scanned_pdf(4, PAGE_SIDE)
    pages = max(1, round(target / (len(trial) / 4)))
    for _ in range(4):
        data = scanned_pdf(pages, PAGE_SIDE)
        if abs(len(data) - target) <= 0.03 * target and len(data) <= UPLOAD_LIMIT:
            return data
        pages = max(1, round(pages * target / len(data)))
    if len(data) > UPLOAD_LIMIT:
        raise RuntimeError(f"could not build a PDF of about {target} bytes under the upload limit")
    return data


def phone_photo(width: int, height: int) -> bytes:
    """builders.noisy_photo with the EXIF block a phone writes after JFIF (orientation, GPS), so
    the upload's scrub has something to drop and writes a cleaned copy."""
    from PIL import Image

    exif = Image.Exif()
    exif[0x0112], exif[0x8825] = 6, {1: "N", 2: (52.0, 31.0, 12.5), 3: "E", 4: (13.0, 24.0, 36.0)}
    payload = exif.tobytes()
    photo = noisy_photo(width, height)
    after_jfif = 4 + struct.unpack(">H", photo[4:6])[0]
    return photo[:after_jfif] + b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload + photo[after_jfif:]


def mb(n: float) -> str:
    return f"{n / 1e6:.1f} MB"


# -- (a) downloads ---------------------------------------------------------------------------------

def downloads(table: Table, tmp: Path, pdf: bytes, seconds: float, rounds: int) -> None:
    static = tmp / "static"
    static.mkdir()
    (static / "doc.pdf").write_bytes(pdf)
    offload = "DOWNLOADS" in (ROOT / "app" / "config.py").read_text()
    with ExitStack() as stack:
        live = stack.enter_context(LiveApp(tmp / "live", SETTINGS))
        nginx = stack.enter_context(Nginx(tmp / "ngx", static))
        bare = stack.enter_context(BareApp(tmp / "bare", static / "doc.pdf", "application/pdf"))
        link = link_path(upload(live, pdf, "scans.pdf")["fullpath"])
        urls = {"nginx": nginx.url("/doc.pdf"), "chartbox": live.url(link), "bare": bare.url("/file")}
        if offload:
            accel = stack.enter_context(LiveApp(tmp / "live-accel", {**SETTINGS, **OFFLOAD}))
            front = stack.enter_context(Nginx.in_front(tmp / "ngx-front", accel))
            urls["offload"] = front.url(link_path(upload(accel, pdf, "scans.pdf")["fullpath"]))
        for name, url in urls.items():
            status, body = fetch(url)
            assert status == 200 and body == pdf, (name, status, len(body))
        runs: dict[str, list] = {name: [] for name in urls}
        for _ in range(rounds):
            for name, url in urls.items():
                runs[name].append(wrk(url, seconds, connections=4))
    failed = {name: sum(r.errors for r in rs) for name, rs in runs.items()}
    rps = {name: median([r.rps for r in rs]) for name, rs in runs.items()}
    p99 = {name: median([r.latency.get(99, math.nan) for r in rs]) for name, rs in runs.items()}

    def shown(name: str) -> str:
        return f"{rps[name]:.1f} req/s ({rps[name] * len(pdf) / 1e9:.2f} GB/s, p99 {p99[name] * 1000:.0f} ms)"

    how = f"wrk 4 connections, {rounds} x {seconds:g} s alternating"
    ratio = rps["chartbox"] / rps["nginx"]
    table.row(f"download {mb(len(pdf))} PDF via its signed link, req/s ({how}; {failed['chartbox']} errors)",
              f"nginx {shown('nginx')}", shown("chartbox"), ratio, "≥ 0.95", ratio >= 0.95 and not failed["chartbox"])
    if offload:
        ratio = rps["offload"] / rps["nginx"]
        table.row(f"download with offload: Chartbox (DOWNLOADS=\"x-accel\") behind nginx "
                  f"(deploy/nginx-chartbox.conf), req/s ({how}; {failed['offload']} errors)",
                  f"nginx alone {shown('nginx')}", shown("offload"), ratio, "≥ 0.98",
                  ratio >= 0.98 and not failed["offload"])
    else:
        table.row("download with offload (DOWNLOADS=\"x-accel\", Chartbox behind nginx) against nginx alone",
                  "—", "—", None, "≥ 0.98", "TODO: no DOWNLOADS setting yet")
    table.row("— for information: bare Flask send_file (bench/bare_app.py, same gunicorn settings)",
              f"nginx {shown('nginx')}", f"bare Flask {shown('bare')}", rps["bare"] / rps["nginx"], "—", None)


# -- (b) uploads -----------------------------------------------------------------------------------

def timed_post(host: str, port: int, path: str, body: bytes, headers: dict[str, str]) -> float:
    started = time.perf_counter()
    status, answer = request(host, port, "POST", path, body, headers, timeout=120)
    elapsed = time.perf_counter() - started
    if status != 200:
        raise RuntimeError(f"POST {path} answered {status}: {answer[:300]!r}")
    return elapsed


def uploads(table: Table, tmp: Path, pdf: bytes, rounds: int) -> None:
    with LiveApp(tmp / "live-up", SETTINGS) as live, BareApp(tmp / "bare-up") as bare:
        body, ctype = multipart({"meta.target.id": str(live.seed.patient_id)}, "scans.pdf", pdf)
        api = {"X-ApiToken": live.seed.provider_token, "Content-Type": ctype}
        timed_post(live.host, live.port, "/api_v3/files", body, api)  # warm both (imports, first fork)
        timed_post(bare.host, bare.port, "/upload", body, {"Content-Type": ctype})
        ref, sub = alternate(lambda: timed_post(bare.host, bare.port, "/upload", body, {"Content-Type": ctype}),
                             lambda: timed_post(live.host, live.port, "/api_v3/files", body, api), rounds)
    ratio = median(sub) / median(ref)
    table.row(f"upload {mb(len(pdf))} PDF (POST /api_v3/files, provider token), median s of {rounds} alternating",
              f"bare Flask /upload {median(ref):.3f} s", f"{median(sub):.3f} s", ratio, "≤ 1.25", ratio <= 1.25)


# -- (c) memory ------------------------------------------------------------------------------------

def peak_growth(pid: int, action: Callable[[], object]) -> tuple[int, int]:
    """(the worker's peak RSS growth during `action`, its RSS growth after it), in bytes.

    The peak is VmHWM after resetting it (exact); without the right to reset it, VmRSS sampled
    every 5 ms (may miss a short peak)."""
    before = rss(pid)
    if reset_peak(pid):
        action()
        return rss(pid, "VmHWM") - before, rss(pid) - before
    peak = [before]
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], rss(pid))
            done.wait(0.005)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        action()
    finally:
        done.set()
        sampler.join(5)
    return peak[0] - before, rss(pid) - before


def only_worker(server: LiveApp | BareApp) -> int:
    pids = server.worker_pids()
    assert len(pids) == 1, f"expected one worker, found {pids}"
    return pids[0]


def memory(table: Table, tmp: Path, pdf: bytes, photo: bytes, rounds: int) -> None:
    static = tmp / "static-mem"
    static.mkdir()
    (static / "doc.pdf").write_bytes(pdf)
    with LiveApp(tmp / "live-mem", SETTINGS, workers=1) as live, \
            BareApp(tmp / "bare-mem", static / "doc.pdf", "application/pdf", workers=1) as bare:
        link = link_path(upload(live, pdf, "big.pdf")["fullpath"])  # warms the worker, too
        live.request("GET", link, timeout=60)
        worker, bare_worker = only_worker(live), only_worker(bare)

        def posts(name: str, data: bytes) -> tuple[Callable[[], object], Callable[[], object]]:
            body, ctype = multipart({"meta.target.id": str(live.seed.patient_id)}, name, data)
            api = {"X-ApiToken": live.seed.provider_token, "Content-Type": ctype}
            return (lambda: timed_post(live.host, live.port, "/api_v3/files", body, api),
                    lambda: timed_post(bare.host, bare.port, "/upload", body, {"Content-Type": ctype}))

        def got(status: int, data: bytes) -> None:
            assert status == 200 and len(data) == len(pdf), (status, len(data))

        cases = {
            f"{mb(len(pdf))} PDF upload": posts("big.pdf", pdf),
            f"{mb(len(pdf))} PDF download": (lambda: got(*request(live.host, live.port, "GET", link)),
                                             lambda: got(*request(bare.host, bare.port, "GET", "/file"))),
            f"{mb(len(photo))} JPEG upload (a 42 MP photo with GPS: its metadata is scrubbed in the worker)":
                posts("big.jpg", photo),
        }
        for case in cases.values():  # once each before measuring: first-use allocations
            for action in case:
                action()
        for what, (ours, theirs) in cases.items():
            peaks, kept, ref_peaks = [], [], []
            for _ in range(rounds):
                ref_peaks.append(peak_growth(bare_worker, theirs)[0])
                peak, after = peak_growth(worker, ours)
                peaks.append(peak)
                kept.append(after)
            worst = max(peaks)
            table.row(f"worker RSS growth during a {what} (largest of {rounds}; retained after: "
                      f"{max(kept) / MIB:.1f} MiB; worker RSS {rss(worker) / MIB:.0f} MiB)",
                      f"bare Flask {max(ref_peaks) / MIB:.1f} MiB", f"{worst / MIB:.1f} MiB",
                      worst / max(ref_peaks) if max(ref_peaks) > 0 else None, "≤ 30 MiB", worst <= 30 * MIB)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each wrk run")
    parser.add_argument("--rounds", type=int, default=3, help="alternating wrk rounds per server")
    parser.add_argument("--uploads", type=int, default=10, help="uploads per side")
    parser.add_argument("--quick", action="store_true",
                        help="a run of under a minute (one round of 2 s, 3 uploads, the 22 MB PDF for memory)")
    parser.add_argument("--only", choices=("downloads", "uploads", "memory"), help="run one part only")
    args = parser.parse_args()
    if args.quick:
        args.seconds, args.rounds, args.uploads = 2.0, 1, 3
    table = Table()
    with tempfile.TemporaryDirectory(prefix="chartbox-bench-large-") as name:
        tmp = Path(name)
        started = time.monotonic()
        pdf = build_pdf(22_000_000)
        print(f"built a {len(pdf):,}-byte PDF in {time.monotonic() - started:.1f} s", file=sys.stderr)
        if args.only in (None, "downloads"):
            downloads(table, tmp, pdf, args.seconds, args.rounds)
        if args.only in (None, "uploads"):
            uploads(table, tmp, pdf, args.uploads)
        if args.only in (None, "memory"):
            big = pdf if args.quick else build_pdf(25_000_000)  # quick: the 22 MB one will do
            memory(table, tmp, big, phone_photo(7450, 5590), 1 if args.quick else 3)
    print(machine(args.seconds) + "\n")
    table.print()


if __name__ == "__main__":
    main()
