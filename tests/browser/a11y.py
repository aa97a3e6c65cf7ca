"""Accessibility as a test: axe-core (vendored, tests/browser/vendor/) run in a page Playwright
has open, in both colour schemes and at desktop and phone sizes, failing on any violation of
impact serious or critical.

axe is evaluated through the DevTools protocol (page.evaluate), which the pages' strict CSP
does not govern, so the pages keep their real policy while they are checked.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

AXE = Path(__file__).resolve().parent / "vendor" / "axe-core" / "axe.min.js"
AXE_SHA256 = "29348999450cdf2849a8e70b7912fc2da85a849da39c0d0d5394f51d4a9ed95c"  # axe-core 4.14.1
FAILING = ("serious", "critical")
PHONE = {"width": 390, "height": 844}

_source: str | None = None


def _axe() -> str:
    global _source
    if _source is None:
        data = AXE.read_bytes()
        assert hashlib.sha256(data).hexdigest() == AXE_SHA256, f"{AXE} is not the vendored axe-core 4.14.1"
        _source = data.decode()
    return _source


def violations(page) -> list[str]:
    """The serious and critical violations axe finds in the page as it is now, one line each."""
    if not page.evaluate("typeof window.axe === 'object'"):
        page.evaluate(_axe())
    found = page.evaluate(
        """async (failing) => {
            const result = await axe.run(document, {resultTypes: ['violations']});
            return result.violations.filter(v => failing.includes(v.impact)).map(v =>
                `${v.impact} ${v.id}: ${v.help} — ` +
                v.nodes.slice(0, 4).map(n => n.target.join(' ') + (n.any[0] ? ' (' + n.any[0].message + ')' : '')).join('; '));
        }""",
        list(FAILING),
    )
    return list(found)


def check(page, state: str, shoot=None) -> None:
    """Fail on the page state's serious or critical violations, in the light and the dark
    theme, at its own size and on a phone; `shoot(suffix)`, when given, saves a screenshot of
    each of the four."""
    found: list[str] = []
    size = page.viewport_size
    sizes = [("", size)] + ([("-phone", PHONE)] if size and size["width"] > PHONE["width"] else [])
    try:
        for scheme in ("light", "dark"):
            # Reduced motion: no colour transition is half-way when axe reads the colours.
            page.emulate_media(color_scheme=scheme, reduced_motion="reduce")
            for label, viewport in sizes:
                if viewport != page.viewport_size:
                    page.set_viewport_size(viewport)
                suffix = ("-dark" if scheme == "dark" else "") + label
                if shoot is not None and suffix:
                    shoot(suffix)
                found += [f"{state}{suffix}: {v}" for v in violations(page)]
            if page.viewport_size != size:
                page.set_viewport_size(size)
    finally:
        page.emulate_media(color_scheme="light", reduced_motion="no-preference")
        if size and page.viewport_size != size:
            page.set_viewport_size(size)
    assert not found, "accessibility violations:\n" + "\n".join(found)
