"""Layer boundaries, read from the implementation's imports (an import contract, not a convention)."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

LAYERS = {
    "handlers": ("auth.py", "tasks.py", "health.py"),
    "services": ("auth.py", "tasks.py"),
    "repositories": ("db.py", "users.py", "tasks.py"),
}
# layer -> module prefixes it must never import (relative imports are resolved inside producer/)
FORBIDDEN = {
    "handlers": ("producer.repositories", "sqlalchemy"),
    "services": ("producer.handlers", "flask", "werkzeug"),
    "repositories": ("producer.handlers", "producer.services", "flask", "werkzeug"),
}


def imported_modules(path: Path, producer: Path) -> set[str]:
    package = ["producer", *path.parent.relative_to(producer).parts]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            module = ".".join([*base, *(node.module.split(".") if node.module else [])])
            found.add(module)
            found.update(f"{module}.{alias.name}" for alias in node.names)
    return found


@pytest.mark.check("S1-AC16")
def test_each_layer_has_its_modules(implementation):
    producer = implementation / "producer"
    for layer, modules in LAYERS.items():
        for module in modules:
            assert (producer / layer / module).is_file(), f"missing {layer}/{module}"


@pytest.mark.check("S1-AC16")
def test_every_handler_goes_through_a_service(implementation):
    producer = implementation / "producer"
    for module in LAYERS["handlers"]:
        path = producer / "handlers" / module
        assert path.is_file(), f"missing handlers/{module}"
        assert any(m.startswith("producer.services") for m in imported_modules(path, producer)), \
            f"handlers/{module} does not call a service"


@pytest.mark.check("S1-AC16")
def test_handlers_never_reach_repositories_and_lower_layers_never_import_flask(implementation):
    producer = implementation / "producer"
    violations = []
    for layer, forbidden in FORBIDDEN.items():
        for path in sorted((producer / layer).glob("*.py")):
            for module in imported_modules(path, producer):
                if module.startswith(forbidden):
                    violations.append(f"{layer}/{path.name} imports {module}")
    assert not violations, violations
