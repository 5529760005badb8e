"""Dependencies point inward, and only export/ touches torch or transformers."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
HEAVY = {"torch", "transformers", "optimum"}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("package", ["routing", "models", "service", "bench"])
def test_no_torch_outside_export(package: str) -> None:
    offenders = {str(p.relative_to(ROOT)): _imports(p) & HEAVY for p in (ROOT / package).rglob("*.py")}
    assert not {k: v for k, v in offenders.items() if v}


@pytest.mark.parametrize("package", ["routing", "models"])
def test_inner_layers_never_import_service(package: str) -> None:
    offenders = [str(p.relative_to(ROOT)) for p in (ROOT / package).rglob("*.py") if "service" in _imports(p)]
    assert not offenders


def test_routing_does_no_model_work() -> None:
    offenders = [
        str(p.relative_to(ROOT))
        for p in (ROOT / "routing").rglob("*.py")
        if _imports(p) & {"models", "onnxruntime", "tokenizers", "export"}
    ]
    assert not offenders
