"""Every module the platform imports at run time comes from a distribution pyproject.toml declares (pinned), not one
a declared dependency happens to pull in: a dependency that drops it would break `make run` and the image. Which
distribution provides a module is asked of the installed packages (importlib.metadata)."""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
RUNTIME = ("alarm_backends", "config", "patches", "settings.py", "manage.py")
OWN = {"alarm_backends", "config", "patches", "settings", "manage", "__future__"}


def normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()  # PEP 503


def imported_modules() -> dict[str, str]:
    """Top-level names of the absolute imports in the runtime code, each with a file importing it."""
    files = [p for root in RUNTIME for p in ([REPO / root] if root.endswith(".py") else (REPO / root).rglob("*.py"))]
    found: dict[str, str] = {}
    for path in files:
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules = [node.module]
            else:
                continue
            for module in modules:
                found.setdefault(module.split(".")[0], str(path.relative_to(REPO)))
    return {name: path for name, path in found.items() if name not in sys.stdlib_module_names and name not in OWN}


def declared() -> dict[str, str]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    # "kombu[redis]==5.7.0" -> {"kombu": "kombu[redis]==5.7.0"}
    return {normalized(re.split(r"[\[=<>;! ]", r, maxsplit=1)[0]): r for r in project["dependencies"]}


def test_every_module_imported_at_run_time_is_declared_and_pinned() -> None:
    providers = importlib.metadata.packages_distributions()
    pins = declared()
    missing = {}
    for module, path in imported_modules().items():
        dists = {normalized(d) for d in providers.get(module, [])}
        assert dists, f"{module} (imported by {path}) is not installed"
        if not dists & set(pins):
            missing[module] = (sorted(dists), path)
    assert missing == {}
    assert all("==" in requirement for requirement in pins.values())


def test_it_sees_what_the_runtime_imports() -> None:
    # The scan itself: it finds the direct imports named in the runtime code (here two that come with other
    # dependencies), so an empty result above is not a scan that read nothing.
    modules = imported_modules()
    assert modules["requests"] == "alarm_backends/core/consul_client.py"
    assert modules["click"] == "alarm_backends/management/celery_cli.py"
    assert {"celery", "kombu", "redis", "django", "supervisor", "consul", "redbeat"} <= set(modules)
