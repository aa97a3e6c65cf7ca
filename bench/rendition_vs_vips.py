"""The first 320x240 rendition of a 12 MP photo: Chartbox's rendering code against libvips.

Run: `.venv/bin/python bench/rendition_vs_vips.py [--rounds N] [--quick]` (also in `make bench`).
Needs pyvips (`pip install -e '.[bench]'`) and Debian's libvips42 (`apt-get install libvips42`).
Prints a Markdown table.

The input is one 12-megapixel noisy JPEG (4000x3000, tests/builders.py's noisy_photo, about
7 MB), held in memory as the app holds a rendition's source. Chartbox renders it as a
`size=320x240` request does when nothing is stored yet: renditions.snap picks the stored side
(320), then images.render_isolated runs images.image_png in a forked, lower-priority child with
the default RENDER_TIMEOUT and PDF_PARSE_MEMORY budget, and returns the PNG (not stored here).
The reference is what a user would otherwise run: pyvips
`Image.thumbnail_buffer(jpeg, 320, height=240).write_to_buffer(".png")` (libvips shrinks on
load, as Pillow's draft mode does). The two alternate, medians taken; target <= 1.2x.

For information: image_png in this process (no child: the cost of the isolation), and the
live link: a real gunicorn (tests/live.py), each round a fresh upload of the photo and the
first `size=320x240` request of its signed link (read and hash the source, render in a child,
store the PNG, send it).
"""
from __future__ import annotations

import argparse
import io
import resource
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

try:
    import pyvips
except (ImportError, OSError) as exc:  # not installed, or libvips42 missing
    pyvips = None
    MISSING = f"{type(exc).__name__}: {exc}"
from builders import noisy_photo  # noqa: E402
from http_common import LiveApp, Table, link_path, machine, median, upload  # noqa: E402
from PIL import Image  # noqa: E402

from app.config import Defaults  # noqa: E402
from app.services import images, renditions  # noqa: E402

BOX = (320, 240)
NATURAL = (4000, 3000)


def chartbox(data: bytes) -> bytes:
    """As renditions._answer makes a stored side from the original (without storing it)."""
    side = renditions.snap(BOX, tuple(sorted(Defaults.RENDITION_SIZES)), NATURAL)
    return images.render_isolated(images.image_png, data, side, what="rendition of this image",
                                  timeout=Defaults.RENDER_TIMEOUT, memory=Defaults.PDF_PARSE_MEMORY)


def in_process(data: bytes) -> bytes:
    side = renditions.snap(BOX, tuple(sorted(Defaults.RENDITION_SIZES)), NATURAL)
    return images.image_png(data, side)


def vips(data: bytes) -> bytes:
    return pyvips.Image.thumbnail_buffer(data, BOX[0], height=BOX[1]).write_to_buffer(".png")


def cpu() -> float:
    """CPU seconds of this process (all threads) and its reaped children."""
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def timed(fn: Callable[[bytes], bytes], data: bytes) -> tuple[float, float, bytes]:
    """(wall seconds, CPU seconds, the PNG)."""
    started, used = time.perf_counter(), cpu()
    png = fn(data)
    return time.perf_counter() - started, cpu() - used, png


def check(png: bytes) -> None:
    with Image.open(io.BytesIO(png), formats=["PNG"]) as im:
        assert im.size == BOX, im.size


def live_first_renditions(data: bytes, rounds: int) -> list[float]:
    """Seconds of the first size=320x240 request of a fresh upload's link, `rounds` times."""
    out = []
    with tempfile.TemporaryDirectory(prefix="chartbox-bench-vips-") as tmp, LiveApp(Path(tmp)) as live:
        for n in range(rounds + 1):
            link = link_path(upload(live, data, f"photo-{n}.jpg")["fullpath"]) + "&size=320x240"
            started = time.perf_counter()
            status, headers, body = live.request("GET", link, timeout=60)
            elapsed = time.perf_counter() - started
            assert status == 200 and headers["content-type"] == "image/png", (status, body[:200])
            check(body)
            if n:  # the first warms the worker (imports, first fork)
                out.append(elapsed)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=21, help="alternating renders per side")
    parser.add_argument("--live-rounds", type=int, default=7, help="fresh uploads rendered through the live link")
    parser.add_argument("--quick", action="store_true", help="a run of under a minute")
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.live_rounds = 7, 3
    if pyvips is None:
        print(f"bench/rendition_vs_vips.py skipped: pyvips cannot be used ({MISSING}); "
              "install it with `.venv/bin/pip install -e '.[bench]'` and Debian's libvips42.")
        return
    data = noisy_photo(*NATURAL)
    runs: dict[str, list[tuple[float, float]]] = {"vips": [], "chartbox": [], "in process": []}
    fns = {"vips": vips, "chartbox": chartbox, "in process": in_process}
    for fn in fns.values():  # warm: pyvips' and Pillow's first calls load plugins
        check(fn(data))
    for _ in range(args.rounds):
        for name, fn in fns.items():
            wall, used, png = timed(fn, data)
            check(png)
            runs[name].append((wall, used))
    live = live_first_renditions(data, args.live_rounds)

    wall = {name: median([w for w, _ in rs]) for name, rs in runs.items()}
    used = {name: median([c for _, c in rs]) for name, rs in runs.items()}

    def shown(name: str) -> str:
        return f"{wall[name] * 1000:.0f} ms (CPU {used[name] * 1000:.0f} ms)"

    table = Table()
    ratio = wall["chartbox"] / wall["vips"]
    table.row(f"first 320x240 rendition of a {len(data) / 1e6:.1f} MB 12 MP JPEG, median of {args.rounds} "
              "alternating (Chartbox: image_png in an isolated child, as a size= request)",
              f"pyvips thumbnail_buffer {shown('vips')}", shown("chartbox"), ratio, "≤ 1.2", ratio <= 1.2)
    table.row("— for information: image_png in this process (no child)", f"pyvips {shown('vips')}",
              shown("in process"), wall["in process"] / wall["vips"], "—", None)
    table.row(f"— for information: the live link, first `size=320x240` request of a fresh upload "
              f"(median of {len(live)}; source read + sha256 checked, rendered, stored, sent)",
              f"pyvips {shown('vips')}", f"{median(live) * 1000:.0f} ms", median(live) / wall["vips"], "—", None)
    print(machine() + f"; pyvips {pyvips.__version__}, libvips {pyvips.version(0)}.{pyvips.version(1)}\n")
    table.print()


if __name__ == "__main__":
    main()
