"""The folders are the architecture: who may import whom (README, "Layout").

Every import statement counts, also one inside a function: a lazy import is still a
dependency. The pure cores are checked with everything they import from the project."""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
PACKAGES = ("newsalert", "connectors", "streams", "alerts")
KERNEL = ("newsalert.settings", "newsalert.database", "newsalert.netguard", "newsalert.metrics")
SHARED_RECORDS = ("streams.records", "streams.topics")
QUERY_LANGUAGE = ("streams.classify.query", "streams.classify.keywords")
BROKER_LIBRARIES = ("faust", "mode", "aiokafka", "kafka")
PURE_CORES = (
    "streams.clean.text",
    "streams.classify.classifier",
    "streams.classify.taxonomy",
    "streams.classify.query",
    "streams.stories.dedupe",
    "streams.stories.stage",
    "streams.pipeline",
    "streams.spikes.detector",
    "streams.spikes.backtest",
)


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@cache
def project_modules() -> dict[str, Path]:
    return {
        module_name(path): path
        for package in PACKAGES
        for path in (ROOT / package).rglob("*.py")
        if "__pycache__" not in path.parts
    }


@cache
def imports_of(module: str) -> frozenset[str]:
    """Every module ``module`` imports (absolute names; ``from a import b`` gives a.b too)."""
    path = project_modules()[module]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            submodules = {f"{node.module}.{alias.name}" for alias in node.names}
            if submodules <= project_modules().keys():  # `from package import module`
                found.update(submodules)
            else:
                found.add(node.module)
    return frozenset(found)


def first_party(names: frozenset[str]) -> set[str]:
    modules = project_modules()
    return {name for name in names if name in modules}


def in_package(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def is_under(name: str, allowed: tuple[str, ...]) -> bool:
    return any(in_package(name, a) for a in allowed)


def broken_rules(module: str) -> list[str]:
    top = module.split(".")[0]
    wrong = []
    for name in first_party(imports_of(module)):
        if in_package(name, top) and not module.startswith(KERNEL):
            continue
        if module in KERNEL:
            if not is_under(name, KERNEL):
                wrong.append(f"the kernel module {module} imports {name}")
        elif top in ("connectors", "alerts", "streams") and in_package(name, "newsalert"):
            if not is_under(name, KERNEL):
                wrong.append(f"{module} imports {name}, which is not the kernel")
        elif top == "connectors" and name.startswith(("alerts", "streams")):
            if not is_under(name, SHARED_RECORDS):
                wrong.append(f"{module} imports {name}")
        elif top == "alerts" and name.startswith(("connectors", "streams")):
            if not is_under(name, SHARED_RECORDS + QUERY_LANGUAGE):
                wrong.append(f"{module} imports {name}")
        elif top == "streams" and name.startswith(("connectors", "alerts")):
            wrong.append(f"{module} imports {name}")
    return wrong


def closure(module: str) -> set[str]:
    seen, todo = set(), [module]
    while todo:
        current = todo.pop()
        if current in seen:
            continue
        seen.add(current)
        todo.extend(first_party(imports_of(current)))
    return seen


def test_every_module_keeps_to_the_import_rules():
    wrong = [problem for module in sorted(project_modules()) for problem in broken_rules(module)]
    assert wrong == []


@pytest.mark.parametrize("core", PURE_CORES)
def test_a_pure_core_imports_no_broker_library_even_indirectly(core):
    reached = {
        (module, name)
        for module in closure(core)
        for name in imports_of(module)
        if name.split(".")[0] in BROKER_LIBRARIES
    }
    assert reached == set()


def test_the_rules_catch_a_broken_import(monkeypatch):
    """The checker itself: one forbidden import of each kind is reported."""
    fake = {
        "newsalert.settings": {"streams.classify.query"},
        "alerts.dispatcher": {"connectors.fetcher"},
        "connectors.poller": {"streams.pipeline", "alerts.store"},
        "streams.pipeline": {"alerts.store"},
    }
    real = imports_of.__wrapped__

    def patched(module: str) -> frozenset[str]:
        return frozenset(fake.get(module, set())) | real(module)

    monkeypatch.setattr(f"{__name__}.imports_of", patched)
    found = [problem for module in fake for problem in broken_rules(module)]
    assert len(found) == 5, found
