"""The imports run one way: edges → services → models (CONTRIBUTING.md, docs/ARCHITECTURE.md).

Every module of the project is parsed with `ast` (nothing is imported, so the
test needs no database) and each of its imports, including those inside
functions, is checked against the layers:

* **project**: `inventory_site` (settings, URLs, WSGI): may import anything;
* **edge**: the API (`api/` except `api/models.py` and `api/services.py`, the
  API clients' model and services), the back office (`backoffice/` except
  `backoffice/models.py`), every management command and every `tasks` module:
  they call services and read models;
* **service**: `*/services*`, `*/selectors`, `inventory/routing.py`,
  `inventory/availability_cache.py`, `purchasing/listeners.py`, and any new
  module of a domain app not listed as a model-layer module below;
* **model**: `*/models.py` and the small modules they and everyone may use
  (`errors`, `clock`, `context`, `actors`, `db_errors`, `locks`).

Rules: the domain apps (`inventory`, `purchasing`, `warehouses`) never import
`api` or `backoffice`; services and models never import an edge or the
project; models never import services; the API's and the back office's edge
modules never import each other's; only `backoffice` (and the project's
URLconf) touches `django.contrib.admin`. Known exceptions are listed in
`EXCEPTIONS` with their reason; a new one needs a reason too.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PROJECT = "inventory_site"
DOMAIN_APPS = ("inventory", "purchasing", "warehouses")
EDGE_APPS = ("api", "backoffice")
PACKAGES = (PROJECT, *DOMAIN_APPS, *EDGE_APPS)

# Domain-app modules that form the model layer (anything else there is a service).
MODEL_LAYER = {"models", "errors", "clock", "context", "actors", "db_errors", "locks"}
# Modules of the edge apps that are not edges: the API clients' model and services
# (which the back office's API-client admin calls), the staff permissions' model.
EDGE_APP_INNER = {"api.models": "model", "api.services": "service", "backoffice.models": "model"}

# (importing module, imported module or prefix) -> why it is allowed.
EXCEPTIONS = {
    ("inventory.availability_cache", "inventory_site.db_router"): (
        "availability reads ask the project's read-replica router (DATABASE_REPLICA_URL) "
        "which database alias to read from; the router is settings wiring, not an edge."
    ),
    ("purchasing.listeners", "purchasing.tasks"): (
        "the after-commit listener's one job is to enqueue the reorder check (a Celery "
        "task); services stay free of tasks and this listener is the only bridge."
    ),
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def project_modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            if "migrations" not in path.parts:
                found[module_name(path)] = path
    return found


def imports_of(source: str, module: str, *, is_package: bool = False) -> set[str]:
    """Every module (or module.attribute) `source` imports, relative imports resolved."""
    package = module if is_package else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                prefix = ".".join(base + ([node.module] if node.module else []))
            else:
                prefix = node.module
            found.add(prefix)
            found.update(f"{prefix}.{alias.name}" for alias in node.names)
    return found


def layer(name: str) -> str | None:
    """The layer of a project module (or of a name inside one); None: not ours."""
    parts = name.split(".")
    top = parts[0]
    if top not in PACKAGES:
        return None
    if top == PROJECT:
        return "project"
    if len(parts) == 1:
        return "package"  # `from inventory import services`: the names are checked
    if "management" in parts or parts[1] == "tasks":
        return "edge"
    if parts[1] == "apps":
        return "wiring"  # AppConfig.ready connects listeners and checks
    if top in EDGE_APPS:
        return EDGE_APP_INNER.get(f"{top}.{parts[1]}", "edge")
    return "model" if parts[1] in MODEL_LAYER else "service"


def excepted(importer: str, imported: str) -> bool:
    return any(
        importer == who and (imported == what or imported.startswith(what + "."))
        for who, what in EXCEPTIONS
    )


def violations(importer: str, imported: str) -> list[str]:
    """The rules `importer` breaks by importing `imported` (empty: allowed)."""
    mine, theirs = layer(importer), layer(imported)
    if theirs is None or theirs == "package" or excepted(importer, imported):
        return []
    top, their_top = importer.split(".")[0], imported.split(".")[0]
    broken = []
    if top in DOMAIN_APPS and their_top in EDGE_APPS:
        broken.append("a domain app imports api/backoffice")
    if mine in ("service", "model") and theirs in ("edge", "project"):
        broken.append(f"a {mine} module imports an edge ({theirs})")
    if mine == "model" and theirs == "service":
        broken.append("a model-layer module imports a service")
    if (
        mine == "edge"
        and theirs == "edge"
        and top in EDGE_APPS
        and their_top in EDGE_APPS
        and top != their_top
        and "management" not in importer.split(".")
    ):
        broken.append("the API and the back office import each other's edge modules")
    return broken


def all_violations() -> list[str]:
    found = []
    for name, path in project_modules().items():
        source = path.read_text()
        for imported in sorted(imports_of(source, name, is_package=path.name == "__init__.py")):
            found += [f"{name} -> {imported}: {rule}" for rule in violations(name, imported)]
    return found


def test_the_imports_run_one_way():
    assert all_violations() == []


def test_only_the_back_office_touches_the_admin():
    """Every ModelAdmin and admin page lives in backoffice/ (the project's URLconf
    only mounts admin.site)."""
    users = []
    for name, path in project_modules().items():
        imported = imports_of(path.read_text(), name, is_package=path.name == "__init__.py")
        uses_admin = any(
            i == "django.contrib.admin" or i.startswith("django.contrib.admin.") for i in imported
        )
        if uses_admin and name.split(".")[0] != "backoffice" and name != "inventory_site.urls":
            users.append(name)
    assert users == []


def test_every_exception_still_exists_and_has_a_reason():
    """A stale exception would hide a future violation of the same pair."""
    modules = project_modules()
    for (importer, imported), reason in EXCEPTIONS.items():
        assert len(reason) > 40, (importer, imported)
        source = modules[importer].read_text()
        assert any(
            i == imported or i.startswith(imported + ".") for i in imports_of(source, importer)
        ), (importer, imported)


# --- the checker itself: it sees real edges and catches made-up breaches ----------


def test_the_checker_sees_the_real_imports():
    modules = project_modules()
    views = imports_of(modules["backoffice.views"].read_text(), "backoffice.views")
    assert {"inventory.services", "backoffice.forms", "backoffice.access"} <= views
    catalogue = imports_of(
        modules["inventory.services.catalogue"].read_text(), "inventory.services.catalogue"
    )
    assert {"inventory.errors", "inventory.models", "inventory.services.stock"} <= catalogue
    assert len(modules) > 80


@pytest.mark.parametrize(
    ("importer", "source", "rule"),
    [
        ("inventory.admin", "from backoffice.listing import X", "domain app imports"),
        ("purchasing.services", "import api.views", "domain app imports"),
        ("inventory.services.stock", "from purchasing import tasks", "imports an edge"),
        ("inventory.models", "from .services import stock", "imports a service"),
        ("warehouses.models", "from inventory.selectors import x", "imports a service"),
        ("inventory.errors", "from inventory_site import settings", "imports an edge"),
        ("api.views", "from backoffice.views import x", "each other's edge"),
        ("backoffice.forms", "from api.serializers import x", "each other's edge"),
    ],
)
def test_the_checker_refuses_a_made_up_breach(importer, source, rule):
    found = [
        problem
        for imported in imports_of(source, importer)
        for problem in violations(importer, imported)
    ]
    assert any(rule in problem for problem in found), found


@pytest.mark.parametrize(
    ("importer", "source"),
    [
        ("api.views", "from inventory import services, selectors"),
        ("backoffice.admin.api", "from api.models import ApiClient"),
        ("backoffice.admin.api", "from api.services import api_client_revoke"),
        ("purchasing.services", "from inventory.services import retry_busy"),
        ("inventory.services.stock", "from ..models import Inventory"),
        ("api.management.commands.demo_next_steps", "from backoffice.management import x"),
        ("inventory_site.urls", "from backoffice.views import bulk_receive_view"),
    ],
)
def test_the_checker_allows_the_downward_imports(importer, source):
    found = [
        problem
        for imported in imports_of(source, importer)
        for problem in violations(importer, imported)
    ]
    assert found == []
