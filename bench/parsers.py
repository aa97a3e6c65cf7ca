"""Parser costs: hostile uploads (image bombs, many-page PDFs) timed against ordinary small ones.

`rows(upload)` returns (label, samples) rows for run.py's table, each hostile one labelled
with its median as a multiple of the reference small upload measured in the same run, so
the ratios compare like with like on any machine. Alone: `.venv/bin/python bench/parsers.py`.

The hostile files are tests/builders.py's (as tests/test_decoder_limits.py uses them), small on
disk: a single-colour 7700x7700 PNG is 170 KB but 178 MB decoded; 100,000 blank pages are 8 MB.
"""
from __future__ import annotations

import statistics
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from builders import blank_pages_pdf, flat_png  # noqa: E402
from common import DATA, bench_app, print_header, print_row, timed  # noqa: E402

#: upload(data, name) -> HTTP status
Upload = Callable[[bytes, str], int]


def _timed(upload: Upload, data: bytes, name: str, expect: int, repeat: int) -> list[float]:
    def once() -> None:
        status = upload(data, name)
        assert status == expect, f"{name}: HTTP {status}, expected {expect}"

    return timed(once, repeat)


def rows(upload: Upload, repeat: int = 5) -> list[tuple[str, list[float]]]:
    """Time each hostile upload and its reference; labels carry the ratio of the medians."""
    small_pdf, small_png = (DATA / "letter.pdf").read_bytes(), (DATA / "scan.png").read_bytes()
    cases = [
        # (label, bytes, name, expected status, reference)
        ("PDF of 100,000 pages, refused by PDF_MAX_PAGES", blank_pages_pdf(100_000), "pages.pdf", 400, "pdf"),
        ("PDF of 50,000 pages whose /Count says 1, refused", blank_pages_pdf(50_000, count=1), "liar.pdf", 400, "pdf"),
        ("PDF of 2,000 pages (at the cap), accepted", blank_pages_pdf(2_000), "cap.pdf", 200, "pdf"),
        ("PNG of 20,000x20,000 px, refused from its header", flat_png(20_000, 20_000, "L"), "bomb.png", 400, "png"),
        ("PNG of 7700x7700 px (59 MP), decoded in a child, accepted", flat_png(7_700, 7_700), "big.png", 200, "png"),
    ]
    reference = {
        "pdf": ("upload small PDF (reference, 2 pages)", _timed(upload, small_pdf, "letter.pdf", 200, repeat * 2)),
        "png": ("upload small PNG (reference, 800x1000)", _timed(upload, small_png, "scan.png", 200, repeat * 2)),
    }
    out = [reference["pdf"], reference["png"]]
    for label, data, name, expect, ref in cases:
        samples = _timed(upload, data, name, expect, repeat)
        ratio = statistics.median(samples) / statistics.median(reference[ref][1])
        out.append((f"{label} ({len(data) / 1e6:.2f} MB; x{ratio:.1f} the small {ref.upper()})", samples))
    return out


def main() -> None:
    bench = bench_app(tempfile.mkdtemp(prefix="chartbox-bench-parsers-"), RATELIMIT_ENABLED=False)
    client = bench.app.test_client()

    def upload(data: bytes, name: str) -> int:
        return bench.upload(client, data, name).status_code

    print_header()
    for label, samples in rows(upload):
        print_row(label, samples)


if __name__ == "__main__":
    main()
