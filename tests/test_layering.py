"""The house keeps its shape (design.md): doors -> hall -> rooms, and a core that names no vendor.

Read from the source with `ast`, so a forbidden import fails here before it ever runs:
- doors (pages, CLI, API routes and shapes) import no database session, storage or parser;
- services (the core's and each dialect's own) import no door and build no URL;
- nothing outside app/api/ (and migrations/) names a vendor.
"""
from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

APP = Path(__file__).resolve().parents[1] / "app"
VENDORS = re.compile(r"candid|tscharts|claros|vsee", re.IGNORECASE)
PARSERS = ("PIL", "pillow_heif", "pypdf", "pypdfium2", "zipfile")


def modules() -> list[Path]:
    return sorted(APP.rglob("*.py"))


def kind(path: Path) -> str:
    """door, service, model or other (wiring: factory, config, errors, storage, extensions)."""
    rel = path.relative_to(APP)
    parts = rel.parts
    if parts[0] in ("web", "cli"):
        return "door"
    if parts[0] == "services":
        return "service"
    if parts[0] == "models":
        return "model"
    if parts[0] == "api":
        if path.name == "models.py":
            return "model"
        if path.name.endswith("service.py"):
            return "service"
        return "door"
    return "other"


def imports(path: Path) -> list[tuple[str, str | None]]:
    """(module, name) for every import; name is None for `import module`."""
    found: list[tuple[str, str | None]] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(alias.name, None) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            found += [(node.module, alias.name) for alias in node.names]
    return found


def calls(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Call):
            func = node.func
            names.add(func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", ""))
    return names


def is_door_module(module: str) -> bool:
    if module.startswith(("app.web", "app.cli")):
        return True
    if module in ("app.api.dialect", "app.api.links", "app.api.openapi", "app.urls"):
        return True
    parts = module.split(".")
    return (len(parts) >= 4 and parts[:2] == ["app", "api"]
            and parts[3] != "models" and not parts[3].endswith("service"))


DOORS = [p for p in modules() if kind(p) == "door"]
SERVICES = [p for p in modules() if kind(p) == "service"]


def test_the_tree_has_both_sides():
    assert len(DOORS) > 15 and len(SERVICES) > 12  # the classification itself still works


@pytest.mark.parametrize("path", DOORS, ids=lambda p: str(p.relative_to(APP)))
def test_doors_touch_no_session_storage_or_parser(path):
    bad = []
    for module, name in imports(path):
        if module == "app.extensions" and name == "db":
            bad.append("db (the session is the services')")
        if module.startswith("app.storage") and name not in ("StorageError", "BlobMissing"):
            bad.append(f"{module}.{name} (storage is behind the services)")
        if module.split(".")[0] in PARSERS:
            bad.append(f"{module} (parsers run in validation)")
        if module.startswith("sqlalchemy") and not module.startswith("sqlalchemy.exc"):
            bad.append(f"{module} (queries are the services')")
    assert bad == []


@pytest.mark.parametrize("path", SERVICES, ids=lambda p: str(p.relative_to(APP)))
def test_services_import_no_door_and_build_no_url(path):
    bad = [f"{module}.{name}" for module, name in imports(path) if is_door_module(module)]
    bad += [f"flask.{name}" for module, name in imports(path) if module == "flask" and name in ("request", "url_for", "g")]
    bad += ["url_for()"] if "url_for" in calls(path) else []
    assert bad == []


@pytest.mark.parametrize("path", [p for p in modules() if p.relative_to(APP).parts[0] != "api"],
                         ids=lambda p: str(p.relative_to(APP)))
def test_the_core_names_no_vendor(path):
    hits = [f"{n}: {line.strip()}" for n, line in enumerate(path.read_text().splitlines(), 1)
            if VENDORS.search(line)]
    assert hits == []


def test_templates_and_static_name_no_vendor():
    root = APP.parent
    third_party = root / "static" / "vendor"  # others' code, unchanged (Swagger UI happens to say "candid")
    hits = [str(p.relative_to(root)) for folder in ("templates", "static") for p in (root / folder).rglob("*")
            if p.is_file() and third_party not in p.parents and VENDORS.search(p.read_text(errors="ignore"))]
    assert hits == []


def test_every_vendor_package_is_declared_as_a_dialect():
    """app/api/<vendor>/ exports DIALECTS, and register_api registers every one of them."""
    packages = sorted(p.name for p in (APP / "api").iterdir() if (p / "__init__.py").exists())
    assert packages == ["candid", "claros", "fhir", "tscharts", "vsee"]
    register = (APP / "api" / "__init__.py").read_text()
    for name in packages:
        assert f"*{name}.DIALECTS" in register
