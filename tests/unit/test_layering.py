"""The import rules of provider/, read from the source with ``ast`` (nothing is imported).

- The provider (provider/raydog) and the sandbox (provider/raydog_sandbox) are independent:
  neither imports the other.
- In the provider, only the YellowDog client layer (provider/raydog/yellowdog/) imports the
  SDK, ``yellowdog_client``.
- No import cycles among the modules of provider/.

Every import statement counts: at module level, inside functions and under
``if TYPE_CHECKING:`` alike (a function-level import hides a cycle from Python at import
time, not from a reader). Relative imports are resolved. ``from package import name`` is an
import of the submodule ``package.name`` when there is one, else of the package. Imports made
by name at run time (``importlib.import_module("...")``) are not seen.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PROVIDER = REPO / "provider"
PROVIDER_PACKAGE = "raydog"
SANDBOX_PACKAGE = "raydog_sandbox"
CLIENT_LAYER = "raydog.yellowdog"
SDK = "yellowdog_client"


@dataclass(frozen=True)
class Import:
    """One module named by one import statement."""

    path: Path  # the importing file
    line: int
    importer: str  # dotted name of the importing module
    target: str  # dotted name of the imported module, absolute
    scope: str  # "module level", "in function f", "under TYPE_CHECKING"

    @property
    def top(self) -> str:
        return self.target.split(".")[0]

    def __str__(self) -> str:
        return f"{relative(self.path)}:{self.line} imports {self.target} ({self.scope})"


def relative(path: Path) -> str:
    try:
        return path.relative_to(REPO).as_posix()
    except ValueError:
        return path.as_posix()


def module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules_under(root: Path, packages: Iterable[str]) -> dict[str, Path]:
    """Dotted module name -> file, for every .py file of the given top-level packages."""
    found = {}
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            found[module_name(root, path)] = path
    return found


class _ImportCollector(ast.NodeVisitor):
    """Every import statement of one module, with its line and the scope it sits in."""

    def __init__(self, path: Path, module: str, known: dict[str, Path]) -> None:
        self.path, self.module, self.known = path, module, known
        self.is_package = path.name == "__init__.py"
        self.scopes: list[str] = []
        self.found: list[Import] = []

    def scope(self) -> str:
        return self.scopes[-1] if self.scopes else "module level"

    def _in(self, label: str, node: ast.AST) -> None:
        self.scopes.append(label)
        self.generic_visit(node)
        self.scopes.pop()

    def visit_FunctionDef(self, node: ast.FunctionDef) -> None:
        self._in(f"in function {node.name}", node)

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_If(self, node: ast.If) -> None:
        test = ast.unparse(node.test)
        if test in ("TYPE_CHECKING", "typing.TYPE_CHECKING"):
            self.scopes.append("under TYPE_CHECKING")
            for child in node.body:
                self.visit(child)
            self.scopes.pop()
            for child in node.orelse:
                self.visit(child)
        else:
            self.generic_visit(node)

    def add(self, node: ast.stmt, target: str) -> None:
        self.found.append(Import(self.path, node.lineno, self.module, target, self.scope()))

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self.add(node, alias.name)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        base = self.resolve(node.level, node.module)
        targets = []
        for alias in node.names:
            submodule = f"{base}.{alias.name}" if base else alias.name
            targets.append(submodule if submodule in self.known else base)
        for target in dict.fromkeys(targets):  # one per module, however many names it gives
            self.add(node, target)

    def resolve(self, level: int, module: str | None) -> str:
        """The absolute name of ``from <level dots><module> import ...`` in this module."""
        if level == 0:
            return module or ""
        package = self.module.split(".") if self.is_package else self.module.split(".")[:-1]
        if level > 1:
            package = package[: len(package) - (level - 1)]
        return ".".join([*package, *([module] if module else [])])


def imports_of(path: Path, module: str, known: dict[str, Path]) -> list[Import]:
    collector = _ImportCollector(path, module, known)
    collector.visit(ast.parse(path.read_text(), filename=str(path)))
    return collector.found


def all_imports(modules: dict[str, Path]) -> list[Import]:
    return [found for module, path in modules.items() for found in imports_of(path, module, modules)]


def in_graph(target: str, modules: dict[str, Path]) -> str | None:
    """The module of ``modules`` that ``target`` names (its longest known prefix), if any."""
    parts = target.split(".")
    for end in range(len(parts), 0, -1):
        name = ".".join(parts[:end])
        if name in modules:
            return name
    return None


def import_cycles(modules: dict[str, Path]) -> list[list[Import]]:
    """One shortest cycle per strongly connected group of modules, as the imports that make it."""
    edges: dict[str, dict[str, Import]] = {name: {} for name in modules}
    for found in all_imports(modules):
        target = in_graph(found.target, modules)
        if target is not None and target != found.importer:
            edges[found.importer].setdefault(target, found)
    cycles = []
    for group in strongly_connected(edges):
        if len(group) > 1:
            cycles.append(shortest_cycle(min(group), group, edges))
    return sorted(cycles, key=lambda cycle: [str(i) for i in cycle])


def strongly_connected(edges: dict[str, dict[str, Import]]) -> list[set[str]]:
    """Tarjan's algorithm, iteratively (no recursion limit on long chains)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[set[str]] = []
    counter = 0
    for start in sorted(edges):
        if start in index:
            continue
        work = [(start, iter(sorted(edges[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is None:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    group = set()
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        group.add(member)
                        if member == node:
                            break
                    groups.append(group)
            elif child not in index:
                index[child] = low[child] = counter
                counter += 1
                stack.append(child)
                on_stack.add(child)
                work.append((child, iter(sorted(edges[child]))))
            elif child in on_stack:
                low[node] = min(low[node], index[child])
    return groups


def shortest_cycle(start: str, group: set[str], edges: dict[str, dict[str, Import]]) -> list[Import]:
    """Breadth-first from ``start`` back to itself inside ``group``."""
    previous: dict[str, Import] = {}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for child, found in sorted(edges[node].items()):
                if child not in group or child in previous:
                    continue
                previous[child] = found
                if child == start:
                    path, at = [], start
                    while True:
                        step = previous[at]
                        path.append(step)
                        at = step.importer
                        if at == start:
                            return path[::-1]
                following.append(child)
        frontier = following
    raise AssertionError(f"no cycle through {start}")


def describe(cycle: list[Import]) -> str:
    names = " -> ".join([cycle[0].importer, *(step.target for step in cycle)])
    return names + "".join(f"\n    {step}" for step in cycle)


def report(problems: list, rule: str) -> str:
    return f"{rule}: {len(problems)} found\n  " + "\n  ".join(str(p) for p in problems)


# ---------------------------------------------------------------------------------------
# The rules, on provider/


def provider_modules() -> dict[str, Path]:
    return modules_under(PROVIDER, [PROVIDER_PACKAGE])


def sandbox_modules() -> dict[str, Path]:
    """The sandbox's own package; empty while it still lives inside the provider."""
    return modules_under(PROVIDER, [SANDBOX_PACKAGE] if (PROVIDER / SANDBOX_PACKAGE).is_dir() else [])


def test_the_provider_does_not_import_the_sandbox_package():
    found = [i for i in all_imports(provider_modules()) if i.top == SANDBOX_PACKAGE]
    if found:
        pytest.fail(report(found, f"provider/{PROVIDER_PACKAGE} imports {SANDBOX_PACKAGE}"), pytrace=False)


def test_the_sandbox_package_does_not_import_the_provider():
    found = [i for i in all_imports(sandbox_modules()) if i.top == PROVIDER_PACKAGE]
    if found:
        pytest.fail(report(found, f"provider/{SANDBOX_PACKAGE} imports {PROVIDER_PACKAGE}"), pytrace=False)


def test_only_the_yellowdog_client_layer_imports_the_sdk():
    found = [
        i for i in all_imports(provider_modules())
        if i.top == SDK and not (i.importer == CLIENT_LAYER or i.importer.startswith(CLIENT_LAYER + "."))
    ]
    if found:
        pytest.fail(report(found, f"{SDK} imported outside provider/raydog/yellowdog/"), pytrace=False)


def test_no_import_cycles_in_provider():
    modules = {**provider_modules(), **sandbox_modules()}
    assert len(modules) > 10, f"no modules found under {PROVIDER}"
    cycles = import_cycles(modules)
    if cycles:
        listed = "\n  ".join(describe(cycle) for cycle in cycles)
        pytest.fail(f"{len(cycles)} import cycle(s):\n  {listed}", pytrace=False)


# ---------------------------------------------------------------------------------------
# The checker itself, on a package made for it


def write(root: Path, files: dict[str, str]) -> dict[str, Path]:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return modules_under(root, ["pkg"])


def test_checker_resolves_relative_and_function_level_imports(tmp_path):
    modules = write(tmp_path, {
        "pkg/__init__.py": "",
        "pkg/sub/__init__.py": "from . import leaf\n",
        "pkg/sub/leaf.py": "import os\n\ndef later():\n    from ..top import value\n    from .. import top\n",
        "pkg/top.py": "from typing import TYPE_CHECKING\n"
                      "if TYPE_CHECKING:\n    import yellowdog_client.model\n",
    })
    found = {(i.importer, i.target, i.line, i.scope) for i in all_imports(modules)}
    assert found == {
        ("pkg.sub", "pkg.sub.leaf", 1, "module level"),
        ("pkg.sub.leaf", "os", 1, "module level"),
        ("pkg.sub.leaf", "pkg.top", 4, "in function later"),
        ("pkg.sub.leaf", "pkg.top", 5, "in function later"),
        ("pkg.top", "typing", 1, "module level"),
        ("pkg.top", "yellowdog_client.model", 3, "under TYPE_CHECKING"),
    }


def test_checker_reports_a_cycle_hidden_in_a_function_with_file_and_line(tmp_path):
    modules = write(tmp_path, {
        "pkg/__init__.py": "",
        "pkg/a.py": "from pkg.b import thing\n",
        "pkg/b.py": "import os\n\ndef thing():\n    from . import a\n",
        "pkg/c.py": "from pkg import a, b\n",
    })
    [cycle] = import_cycles(modules)
    assert [(step.importer, step.target) for step in cycle] == [("pkg.a", "pkg.b"), ("pkg.b", "pkg.a")]
    text = describe(cycle)
    assert text.startswith("pkg.a -> pkg.b -> pkg.a")
    assert f"{relative(tmp_path / 'pkg/a.py')}:1 imports pkg.b (module level)" in text
    assert f"{relative(tmp_path / 'pkg/b.py')}:4 imports pkg.a (in function thing)" in text
