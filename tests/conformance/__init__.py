"""Conformance tests: the vendors' own client libraries, unchanged, against a live Chartbox.

This file makes the folder a package, so its conftest is imported as `conformance.conftest`
rather than as a second top-level `conftest` that would shadow tests/conftest.py (which other
test modules import by that name).
"""
