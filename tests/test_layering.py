"""The dependency direction of ARCHITECTURE.md, checked: who may import whom, and the API
process never loading the trainer."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# package -> top-level packages of ours it must never import
FORBIDDEN = {
    "models": {"core", "store", "api", "worker", "descent"},
    "store": {"core", "api", "worker", "descent"},
    "core": {"api", "worker", "descent"},
    "api": {"worker", "descent"},
    "worker": {"api", "descent"},
}
MODELS_THIRD_PARTY = {"numpy", "pydantic"}


def _runtime_nodes(tree: ast.Module) -> list[ast.AST]:
    """Every node except those under `if TYPE_CHECKING:` (annotations only, never run)."""
    typing_only = {
        id(child)
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and ast.unparse(node.test).endswith("TYPE_CHECKING")
        for stmt in node.body
        for child in ast.walk(stmt)
    }
    return [node for node in ast.walk(tree) if id(node) not in typing_only]


def imported_roots(path: Path) -> set[str]:
    roots: set[str] = set()
    for node in _runtime_nodes(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    return roots


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_dependency_direction(package: str) -> None:
    offenders = {
        str(path.relative_to(ROOT)): sorted(imported_roots(path) & FORBIDDEN[package])
        for path in (ROOT / package).rglob("*.py")
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_models_imports_only_numpy_and_pydantic() -> None:
    stdlib = set(sys.stdlib_module_names) | {"__future__"}
    for path in (ROOT / "models").rglob("*.py"):
        foreign = imported_roots(path) - stdlib - MODELS_THIRD_PARTY - {"models"}
        assert not foreign, f"{path.relative_to(ROOT)} imports {sorted(foreign)}"


def test_api_process_never_loads_the_trainer(tmp_path: Path) -> None:
    """A fresh interpreter builds the API app (as `descent api` does) and serves a predict-path
    import: the trainer module is not loaded, and neither is the worker."""
    script = f"""
import sys
from core.config import Settings
from api.app import create_app
create_app(Settings(data_dir={str(tmp_path)!r}))
import models
models.Model, models.load_model, models.resolve_spec
loaded = sorted(m for m in sys.modules if m.startswith(("models.trainer", "worker", "celery")))
print(",".join(loaded))
"""
    out = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == ""
    # The check bites: asking the package for `train` loads the trainer.
    probe = "import sys, models; models.train; print('models.trainer' in sys.modules)"
    loads = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert loads.stdout.strip() == "True"
