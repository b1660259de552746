"""The arrows point one way (orders/payments -> todolists -> eventstore) and nothing uses signals."""

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
APPS = ["eventstore", "todolists", "orders", "payments"]


def test_import_contracts_hold():
    lint_imports = Path(sys.executable).parent / "lint-imports"
    result = subprocess.run(
        [str(lint_imports), "--config", str(ROOT / "pyproject.toml")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_no_app_uses_django_signals():
    offenders = []
    for app in APPS:
        for path in (ROOT / app).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                names = []
                if isinstance(node, ast.ImportFrom) and node.module:
                    names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
                elif isinstance(node, ast.Import):
                    names = [a.name for a in node.names]
                if any(n.startswith(("django.dispatch", "django.db.models.signals")) for n in names):
                    offenders.append(str(path.relative_to(ROOT)))
    assert offenders == []


def _declaration_arguments(tree: ast.AST) -> set[int]:
    """The ids of the string constants that declare an event type: `@event_type("Name")`, or name
    another app's in its reader's declaration: `published("Name")`."""
    return {
        id(node.args[0])
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id in ("event_type", "published")
        and node.args
    }


def test_app_code_names_event_types_by_their_classes():
    """A misspelt type name in a comparison is silently False; a misspelt class does not import.
    Outside the declarations (and migrations), no string constant equals a registered type name."""
    from eventstore.events import registered_types

    names = set(registered_types())
    offenders = []
    for app in [*APPS, "config"]:
        for path in sorted((ROOT / app).rglob("*.py")):
            relative = path.relative_to(ROOT).as_posix()
            if "/migrations/" in relative:
                continue
            tree = ast.parse(path.read_text())
            declared = _declaration_arguments(tree)
            offenders += [
                f"{relative}:{node.lineno}: {node.value!r}"
                for node in ast.walk(tree)
                if isinstance(node, ast.Constant) and node.value in names and id(node) not in declared
            ]
    assert names >= {"OrderPlaced", "PaymentIssued", "TodoItemParked"}  # the scan has names to look for
    assert offenders == [], "refer to the event class (X.event_type, isinstance) instead:\n" + "\n".join(
        offenders
    )


MAX_FUNCTION_LINES = 50


def test_no_app_function_is_longer_than_fifty_lines():
    """Invariants held by long, closure-heavy functions are hard to read and to change safely."""
    offenders = []
    for app in [*APPS, "config"]:
        for path in sorted((ROOT / app).rglob("*.py")):
            relative = path.relative_to(ROOT).as_posix()
            if "/migrations/" in relative:
                continue
            offenders += [
                f"{relative}:{node.lineno} {node.name}: {node.end_lineno - node.lineno + 1} lines"
                for node in ast.walk(ast.parse(path.read_text()))
                if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
                and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES
            ]
    assert offenders == []


def test_every_todolists_engine_module_is_held_by_the_ui_contract():
    """The engine is todolists/*.py, the operator UI todolists/ui/: a new engine module must be
    named in the contract that keeps it from importing the UI."""
    import tomllib

    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    [contract] = [
        c
        for c in config["tool"]["importlinter"]["contracts"]
        if c.get("forbidden_modules") == ["todolists.ui"]
    ]
    engine = {f"todolists.{p.stem}" for p in (ROOT / "todolists").glob("*.py")}
    engine -= {"todolists.__init__", "todolists.admin"}  # admin.py only hands autodiscovery to the UI
    assert set(contract["source_modules"]) == engine
