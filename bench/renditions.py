"""Rendition costs: a flood of distinct `size=` and `preview=` requests timed against ordinary
cached renditions measured in the same run.

`run(report)` calls `report(label, samples)` (seconds) once per row, for run.py's table; each
flood row's label carries its median as a multiple of its reference, the CPU it cost (worker
and rendering children together) and what it left in the rendition cache, so the figures
compare like with like on any machine. Alone: `.venv/bin/python bench/renditions.py`.

Before renditions were bounded, each distinct size near 4000x4000 of a 16 MP photo was a new
render from the original, stored for ever: about 1.8 s of CPU and 10 MB of disk each (55 such
sizes: ~100 s and 550 MiB). Now every one of them is the one stored 2048 px rendition.
"""
from __future__ import annotations

import random
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from builders import noisy_photo, scanned_pdf  # noqa: E402
from common import bench_app, local_path, print_header, print_row  # noqa: E402

#: report(label, samples in seconds)
Report = Callable[[str, list[float]], None]
FLOOD = 55  # distinct sizes per flood


def _cpu() -> float:
    """CPU seconds of this process and its reaped children (the rendering children)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _stored(root: Path) -> tuple[int, int]:
    """(files, bytes) in the rendition cache."""
    found = [p.stat().st_size for p in (root / "renditions").rglob("*.png")] if (root / "renditions").exists() else []
    return len(found), sum(found)


def run(report: Report) -> None:
    """Build a fresh app in a temp folder and report every row (see the module docstring)."""
    bench = bench_app(tempfile.mkdtemp(prefix="chartbox-bench-renditions-"), RATELIMIT_ENABLED=False)
    root = bench.storage_root
    client = bench.app.test_client()

    def upload(data: bytes, name: str) -> str:
        resp = bench.upload(client, data, name)
        assert resp.status_code == 200, resp.get_json()
        return local_path(resp.get_json()["data"]["fullpath"])

    def get(path: str, expect: int = 200) -> float:
        start = time.perf_counter()
        resp = client.get(path)
        resp.get_data()
        resp.close()
        assert resp.status_code == expect, (path, resp.status_code)
        return time.perf_counter() - start

    def flood(label: str, paths: list[str], reference: list[float], expect: int = 200) -> None:
        files_before, bytes_before = _stored(root)
        cpu = _cpu()
        samples = [get(path, expect) for path in paths]
        cpu = _cpu() - cpu
        files, size = _stored(root)
        ratio = statistics.median(samples) / statistics.median(reference)
        report(f"{label} (x{ratio:.1f} the reference; {cpu:.1f} s CPU in all; "
               f"+{files - files_before} stored, +{(size - bytes_before) / 2**20:.1f} MiB)", samples)

    rng = random.Random(1)
    photo = upload(noisy_photo(4600, 3450), "photo.jpg")
    first = [get(photo + "&size=2048x2048")]
    report("first 2048 rendition of a 16 MP photo (render in a child + store)", first)
    thumbs = [get(photo + "&size=128x128") for _ in range(20)][1:]  # the first one is made
    report("reference: the cached 128x128 thumbnail of the photo", thumbs)
    near = sorted({(rng.randint(3800, 4096), rng.randint(3800, 4096)) for _ in range(FLOOD * 2)})[:FLOOD]
    flood(f"{FLOOD} distinct sizes near 4000x4000 of the photo", [f"{photo}&size={w}x{h}" for w, h in near], thumbs)
    odd = sorted({(rng.randint(3800, 4096), rng.randint(200, 400)) for _ in range(FLOOD * 2)})[:FLOOD]
    flood(f"{FLOOD} odd boxes (4000 x 200-400) of the photo, each a downscale of a stored one",
          [f"{photo}&size={w}x{h}" for w, h in odd], thumbs)

    pdf = upload(scanned_pdf(60), "scans.pdf")
    get(pdf + "&size=128x128&preview=1")
    pages = [get(pdf + "&size=128x128&preview=1") for _ in range(20)]
    report("reference: the cached 128x128 first-page thumbnail of a 60-page scanned PDF", pages)
    flood("pages 1-50 of the PDF at 4096x4096, first time (a render per page)",
          [f"{pdf}&size=4096x4096&preview={n}" for n in range(1, 51)], pages)
    flood("pages 1-50 again at 4000x4000 (stored)", [f"{pdf}&size=4000x4000&preview={n}" for n in range(1, 51)], pages)
    flood("pages 51-60 (past PREVIEW_MAX_PAGES: refused)", [f"{pdf}&size=4096x4096&preview={n}" for n in range(51, 61)],
          pages, expect=400)


def main() -> None:
    print_header()
    run(print_row)


if __name__ == "__main__":
    main()
