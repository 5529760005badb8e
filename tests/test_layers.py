"""Dependencies point inward, no module is in an import cycle, and only export/ touches torch."""

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


# --- no import cycles --------------------------------------------------------------------------

CYCLE_CHECKED = ("service", "routing", "export", "models")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imported_modules(name: str, path: Path, modules: set[str]) -> set[str]:
    """The project modules ``name`` imports anywhere: at the top, inside functions and
    methods (lazy imports are still edges), but not under ``if TYPE_CHECKING:``."""
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]

    def resolve(dotted: str) -> str | None:
        # ``import a.b.c`` of a non-module attribute path: the nearest enclosing module.
        while dotted and dotted not in modules:
            dotted = dotted.rpartition(".")[0]
        return dotted or None

    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node):
            for statement in node.orelse:
                visit(statement)
            return
        if isinstance(node, ast.Import):
            found.update(m for alias in node.names if (m := resolve(alias.name)))
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package[: len(package) - node.level + 1]
                base = ".".join([*anchor, *([node.module] if node.module else [])])
            for alias in node.names:
                # ``from pkg import mod`` imports the module pkg.mod; ``from mod import name`` mod.
                target = f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else resolve(base)
                if target:
                    found.add(target)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text(encoding="utf-8"), filename=str(path)))
    found.discard(name)
    return found


def _import_graph() -> dict[str, list[str]]:
    """Module -> the project modules it imports, over every module of CYCLE_CHECKED."""
    paths = {_module_name(p): p for package in CYCLE_CHECKED for p in (ROOT / package).rglob("*.py")}
    modules = set(paths)
    return {name: sorted(_imported_modules(name, path, modules)) for name, path in sorted(paths.items())}


def _cycles(graph: dict[str, list[str]]) -> list[list[str]]:
    """Every strongly connected group of two or more modules of ``graph`` (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for successor in graph.get(node, []):
            if successor not in index:
                connect(successor)
                low[node] = min(low[node], low[successor])
            elif successor in on_stack:
                low[node] = min(low[node], index[successor])
        if low[node] == index[node]:
            group: list[str] = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                cycles.append(sorted(group))

    for node in graph:
        if node not in index:
            connect(node)
    return cycles


def test_the_cycle_finder_sees_lazy_imports_and_skips_type_checking(tmp_path: Path) -> None:
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("def f():\n    from pkg import b\n")
    (package / "b.py").write_text(
        "import pkg\nimport typing\nif typing.TYPE_CHECKING:\n    from pkg.c import X\n"
    )
    (package / "c.py").write_text("from . import a\nimport pkg.a\n")
    modules = {"pkg", "pkg.a", "pkg.b", "pkg.c"}
    assert _imported_modules("pkg.a", package / "a.py", modules) == {"pkg.b"}
    assert _imported_modules("pkg.b", package / "b.py", modules) == {"pkg"}
    assert _imported_modules("pkg.c", package / "c.py", modules) == {"pkg.a"}


def test_the_cycle_finder_finds_every_cycle_and_only_cycles() -> None:
    graph = {"a": ["b"], "b": ["c"], "c": ["a"], "d": ["a", "e"], "e": ["d"], "f": ["a"]}
    assert sorted(_cycles(graph)) == [["a", "b", "c"], ["d", "e"]]
    assert _cycles({"a": ["b"], "b": []}) == []


@pytest.mark.parametrize(
    "package",
    [
        "service",
        "routing",
        "export",
        "models",
    ],
)
def test_no_import_cycles(package: str) -> None:
    """No module of ``package`` is in an import cycle, lazy (function-level) imports included."""
    cycles = _cycles(_import_graph())
    involved = [cycle for cycle in cycles if any(m.split(".")[0] == package for m in cycle)]
    assert not involved, f"import cycles: {involved}"
