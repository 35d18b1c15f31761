"""Layer boundaries, read from the implementation's imports (an import contract, not a convention).

Every module under a layer folder is read, at any depth. Each import is resolved to a module name:
absolute, relative, and dynamic (`importlib.import_module`, `__import__`) with a constant name; a
dynamic import whose name is computed cannot be checked, so inside a layer it is a violation. The
stage's own package is named `producer.…` whatever folder holds it (`stage1_mvp.producer.…` and a
learner's `workspace_pkg.producer.…` are the same module). Services and repositories are checked
transitively through the stage's and common/'s modules: importing a module that imports Flask
imports Flask.
"""
from __future__ import annotations

import ast
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest

import common

LAYERS = {
    "handlers": ("auth.py", "tasks.py", "health.py"),
    "services": ("auth.py", "tasks.py", "task_cache.py", "idempotency.py"),
    "repositories": ("db.py", "users.py", "tasks.py", "cache.py", "local_cache.py", "invalidation.py", "broker.py",
                     "idempotency.py"),
}
# What renders errors as HTTP responses: it needs Flask's request, so only the router and handlers may use it.
RENDERING = ("common.problems",)
WEB = ("flask", "werkzeug", *RENDERING)
# layer -> (module prefixes its own code must never import, prefixes nothing it imports may import)
FORBIDDEN = {
    "handlers": (("producer.repositories", "sqlalchemy"), ()),
    "services": (("producer.handlers", "producer.router"), WEB),
    "repositories": (("producer.handlers", "producer.router", "producer.services"), WEB),
}
COMMON = Path(common.__file__).parent


@dataclass(frozen=True)
class Import:
    module: str  # resolved, e.g. "producer.repositories"; "" when it cannot be known
    line: int
    source: str  # the code as written, for the message
    names: tuple[str, ...] = ()  # `from module import names`: submodules or attributes

    @property
    def candidates(self) -> list[str]:
        """Every module this import may load: the module, and each name that may be a submodule."""
        return [self.module, *(f"{self.module}.{name}" for name in self.names)]


def matches(module: str, prefixes: tuple[str, ...]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


def canonical(module: str) -> str:
    """`<any package>.producer.x` is the stage's own `producer.x`, whichever folder the stage lives in."""
    parts = module.split(".")
    return ".".join(parts[1:]) if len(parts) > 1 and parts[1] == "producer" else module


def package_of(path: Path, root: Path, top: str) -> list[str]:
    """The package a module file belongs to, as name parts (`producer/services/x.py` -> producer.services)."""
    return [top, *path.parent.relative_to(root).parts]


STAGE_ROOT = "<stage package>"  # the folder that holds producer/: its __init__ says which stage it is


def resolve_relative(name: str, level: int, package: list[str]) -> str:
    if level and level > len(package):  # `from ... import NUMBER` in producer/handlers/: the stage package
        return ".".join([STAGE_ROOT, *([name] if name else [])])
    base = package[: len(package) - level + 1] if level else []
    return ".".join([*base, *([name] if name else [])])


def dynamic_target(call: ast.Call, package: list[str]) -> str | None:
    """The module a dynamic import names, "" if computed, None if the call is not an import."""
    func = call.func
    name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
    if name not in ("import_module", "__import__"):
        return None
    arg = call.args[0] if call.args else next((k.value for k in call.keywords if k.arg == "name"), None)
    if not (isinstance(arg, ast.Constant) and isinstance(arg.value, str)):
        return ""
    text = arg.value
    level = len(text) - len(text.lstrip("."))  # import_module(".x", package=__package__)
    return resolve_relative(text[level:], level, package) if level else text


def imports_of(path: Path, package: list[str]) -> list[Import]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [Import(canonical(alias.name), node.lineno, ast.unparse(node)) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            module = canonical(resolve_relative(node.module or "", node.level, package) if node.level
                               else node.module or "")
            found.append(Import(module, node.lineno, ast.unparse(node), tuple(a.name for a in node.names)))
        elif isinstance(node, ast.Call) and (target := dynamic_target(node, package)) is not None:
            found.append(Import(canonical(target), node.lineno, ast.unparse(node)))
    return found


def module_file(module: str, producer: Path) -> Path | None:
    """The source file of a stage or common/ module; None for third-party (and unknown) modules.

    A stage-level module beside producer/ (`<stage package>.x`) is read from the stage's folder.
    """
    parts = module.split(".")
    roots = {"producer": producer, "common": COMMON, STAGE_ROOT: producer.parent}
    if parts[0] not in roots:
        return None
    base = roots[parts[0]].joinpath(*parts[1:])
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


@cache
def _imports_of_file(path: Path, producer: Path) -> tuple[Import, ...]:
    root, top = ((producer, "producer") if path.is_relative_to(producer)
                 else (producer.parent, STAGE_ROOT) if path.is_relative_to(producer.parent) else (COMMON, "common"))
    return tuple(imports_of(path, package_of(path, root, top)))


def first_match(imp: Import, prefixes: tuple[str, ...]) -> str | None:
    """The first module this import may load that is one of `prefixes` (or inside one)."""
    return next((module for module in imp.candidates if matches(module, prefixes)), None)


def followed(imp: Import, producer: Path) -> list[tuple[str, Path]]:
    """The stage and common/ modules an import runs: `from pkg import sub` runs sub, not pkg's other code.

    Parent packages are not followed: Python runs producer/__init__.py for any `producer.x`
    import, and the app factory lives there on purpose; what counts is the modules named.
    """
    submodules = [(m, f) for m in imp.candidates[1:] if (f := module_file(m, producer))]
    if submodules and len(submodules) == len(imp.names):
        return submodules
    own = module_file(imp.module, producer) if imp.module else None
    return [*submodules, *([(imp.module, own)] if own else [])]


def import_chain(start: Path, producer: Path, forbidden: tuple[str, ...]) -> list[str] | None:
    """A chain of imports from `start` to a forbidden module, following stage and common/ modules."""
    seen, queue = {start}, [(start, [])]
    while queue:
        path, chain = queue.pop(0)
        for imp in _imports_of_file(path, producer):
            if bad := first_match(imp, forbidden):
                return [*chain, bad]
            for module, target in followed(imp, producer):
                if target not in seen:
                    seen.add(target)
                    queue.append((target, [*chain, module]))
    return None


def folder_violations(folder: Path, producer: Path, direct: tuple[str, ...], transitive: tuple[str, ...]) -> list[str]:
    """What the modules under `folder` import against the rules: `direct` in their own code, `transitive` anywhere."""
    violations = []
    for path in sorted(folder.rglob("*.py")):
        name = path.relative_to(producer.parent).as_posix()
        for imp in _imports_of_file(path, producer):
            if not imp.module:
                violations.append(f"{name}:{imp.line} imports a computed name: {imp.source}")
            elif bad := first_match(imp, direct + transitive):
                violations.append(f"{name}:{imp.line} imports {bad}: {imp.source}")
        chain = import_chain(path, producer, transitive) if transitive else None
        if chain and len(chain) > 1:
            violations.append(f"{name} imports {chain[-1]} through {' -> '.join(chain[:-1])}")
    return violations


def layer_violations(producer: Path) -> list[str]:
    return [violation for layer, (direct, transitive) in FORBIDDEN.items()
            for violation in folder_violations(producer / layer, producer, direct, transitive)]


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
        imported = imports_of(path, package_of(path, producer, "producer"))
        assert any(first_match(i, ("producer.services",)) for i in imported), \
            f"handlers/{module} does not call a service"


@pytest.mark.check("S1-AC16")
def test_handlers_never_reach_repositories_and_lower_layers_never_import_flask(implementation):
    violations = layer_violations(implementation / "producer")
    assert not violations, "\n".join(violations)


# The consumer is a process of its own: what it shares with the producer lives in stage-level modules.
CONSUMER_FORBIDDEN = ("producer", "flask", "werkzeug", "gunicorn")


@pytest.mark.check("S4-AC12")
def test_the_consumer_never_imports_the_producer_flask_or_gunicorn(implementation):
    consumer = implementation / "consumer"
    assert consumer.is_dir(), "missing consumer/"
    violations = folder_violations(consumer, implementation / "producer", CONSUMER_FORBIDDEN, CONSUMER_FORBIDDEN)
    assert not violations, "\n".join(violations)
