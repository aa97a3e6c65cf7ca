"""Accessibility as a test: axe-core (vendored, tests/browser/vendor/) run in a page Playwright
has open, failing on any violation of impact serious or critical.

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


def check(page, state: str) -> None:
    """Fail on the page state's serious or critical violations, at its own size and on a phone."""
    found = [f"{state}: {v}" for v in violations(page)]
    size = page.viewport_size
    if size and size["width"] > PHONE["width"]:
        page.set_viewport_size(PHONE)
        try:
            found += [f"{state} (phone): {v}" for v in violations(page)]
        finally:
            page.set_viewport_size(size)
    assert not found, "accessibility violations:\n" + "\n".join(found)
