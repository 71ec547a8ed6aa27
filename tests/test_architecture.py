"""The package's layout rules, read from the source (no imports): layers point one way, no
import cycles (function-level imports counted), no function-level imports of the kit's own
modules, every subpackage says what it holds, no module over 400 lines."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "dihkit"
MAX_LINES = 400

# Lower layers first. A module may import its own package and any lower layer; two packages
# on one layer do not import each other.
LAYERS: list[tuple[str, ...]] = [
    ("dihkit", "dihkit.errors"),
    ("dihkit.files", "dihkit.resources", "dihkit.checks"),
    ("dihkit.models",),
    ("dihkit.nn", "dihkit.losses"),
    ("dihkit.data",),
    ("dihkit.training",),
    ("dihkit.methods",),
    ("dihkit.teachers",),
    ("dihkit.runs",),
    ("dihkit.studies",),
    ("dihkit.viz", "dihkit.bench"),
    ("dihkit.reproduce", "dihkit.book"),
    ("dihkit.cli",),
    ("dihkit.lab", "dihkit.__main__"),
]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def group(module: str) -> str:
    """The layer entry a module belongs to (its subpackage, or itself at the top)."""
    parts = module.split(".")
    return ".".join(parts[:2]) if len(parts) > 1 else module


def layer(module: str) -> int:
    for number, members in enumerate(LAYERS):
        if group(module) in members:
            return number
    raise AssertionError(f"{module} is in no layer of tests/test_architecture.py")


def _imported(node: ast.Import | ast.ImportFrom, module: str, is_package: bool) -> list[str]:
    """The kit's modules an import statement loads (``from pkg import mod`` counts ``mod``)."""
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    else:
        base = node.module or ""
        if node.level:
            package = module.split(".") if is_package else module.split(".")[:-1]
            package = package[: len(package) - node.level + 1]
            base = ".".join(package + ([node.module] if node.module else []))
        names = [base] + [f"{base}.{alias.name}" for alias in node.names]
    found = []
    for name in names:
        while name and name not in MODULES:
            name = name.rpartition(".")[0]
        if name and name != module:
            found.append(name)
    return found


def imports(module: str) -> tuple[set[str], set[str]]:
    """(module-level, function-level) imports of the kit's modules by ``module``."""
    path = MODULES[module]
    tree = ast.parse(path.read_text())
    top: set[str] = set()
    nested: set[str] = set()
    is_package = path.name == "__init__.py"
    for node in ast.walk(tree):
        if isinstance(node, ast.Import | ast.ImportFrom):
            target = top if node in tree.body else nested
            target.update(_imported(node, module, is_package))
    nested -= top
    return top, nested


GRAPH = {m: imports(m) for m in MODULES}


def test_every_module_is_in_a_layer():
    for module in MODULES:
        layer(module)


def test_imports_point_down_the_layers():
    wrong = []
    for module, (top, nested) in GRAPH.items():
        for target in top | nested:
            if group(target) == group(module) or target == "dihkit":
                continue
            if layer(target) >= layer(module):
                wrong.append(f"{module} -> {target}")
    assert not wrong, "imports that point up or sideways:\n" + "\n".join(sorted(wrong))


def test_no_function_level_imports_of_the_kit():
    lazy = [f"{m} -> {t}" for m, (_, nested) in GRAPH.items() for t in sorted(nested)]
    assert not lazy, "function-level imports of dihkit modules:\n" + "\n".join(sorted(lazy))


def test_no_import_cycles():
    edges = {m: top | nested for m, (top, nested) in GRAPH.items()}
    # a package's __init__ importing its own modules is not a cycle through them
    state: dict[str, int] = {}
    cycles: list[list[str]] = []

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(edges[node]):
            if nxt.startswith(node + "."):
                continue
            if state.get(nxt) == 1:
                cycles.append(stack[stack.index(nxt) :] + [nxt])
            elif nxt not in state:
                visit(nxt, stack)
        stack.pop()
        state[node] = 2

    for module in sorted(edges):
        if module not in state:
            visit(module, [])
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)


@pytest.mark.parametrize("module", sorted(m for m, p in MODULES.items() if p.name == "__init__.py"))
def test_every_package_says_what_it_holds(module):
    doc = ast.get_docstring(ast.parse(MODULES[module].read_text()))
    assert doc and len(doc) > 40, f"{module} needs a docstring saying what lives there"


def test_every_folder_of_modules_is_a_regular_package():
    folders = {p.parent for p in PACKAGE.rglob("*.py")}
    missing = sorted(
        str(f.relative_to(PACKAGE.parent)) for f in folders if not (f / "__init__.py").is_file()
    )
    assert not missing, f"folders without __init__.py (implicit namespace packages): {missing}"


def test_no_module_over_400_lines():
    long = {m: n for m, p in MODULES.items() if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert not long, f"modules over {MAX_LINES} lines: {long}"


def test_at_most_a_handful_of_modules_outside_subpackages():
    flat = sorted(m for m, p in MODULES.items() if m.count(".") == 1 and p.name != "__init__.py")
    assert flat == [
        "dihkit.__main__",
        "dihkit.checks",
        "dihkit.errors",
        "dihkit.files",
        "dihkit.lab",
        "dihkit.resources",
    ]


def test_notebooks_import_only_the_facade():
    """Notebooks import the kit through ``dihkit.lab`` only, and every name they import is there."""
    import json
    import re

    lab = ast.parse(MODULES["dihkit.lab"].read_text())
    exported = {
        ast.literal_eval(element)
        for node in lab.body
        if isinstance(node, ast.Assign) and node.targets[0].id == "__all__"
        for element in node.value.elts
    }
    wrong, missing = [], []
    for path in sorted((PACKAGE.parent / "notebooks").glob("*.ipynb")):
        cells = json.loads(path.read_text())["cells"]
        source = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")
        for line in re.findall(r"^\s*(?:from|import) dihkit\S*.*$", source, re.M):
            if not line.strip().startswith("from dihkit.lab import"):
                wrong.append(f"{path.name}: {line.strip()}")
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.ImportFrom) and node.module == "dihkit.lab":
                missing += [f"{path.name}: {a.name}" for a in node.names if a.name not in exported]
    assert not wrong, "notebook imports bypassing dihkit.lab:\n" + "\n".join(wrong)
    assert not missing, "names the notebooks import that dihkit.lab lacks:\n" + "\n".join(missing)
