"""The shape of the house, read from the source with ``ast``: rooms depend one way
(web → indexer → search), modules import no cycle and no other module's private names,
and no file or function grows past what a newcomer can read at once; the tests are
kept by room too, in files of readable size."""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
ROOMS = ("search", "indexer", "web")  # each may import only those before it
MAX_FILE_LINES = 400
MAX_FUNCTION_LINES = 60
TEST_ROOMS = ("search", "indexer", "web", "e2e")  # tests/<room>/; e2e: the real script, a browser
MAX_TEST_FILE_LINES = 500


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for room in ROOMS for p in sorted((ROOT / room).rglob("*.py"))}


def imported(module: str, path: Path) -> list[tuple[str, str | None]]:
    """(module imported, name taken from it or None) for every import in *path*."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: list[tuple[str, str | None]] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(alias.name, None) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")[:len(package.split(".")) - node.level + 1]
            target = ".".join(base + [node.module] if node.module else base) if node.level \
                else node.module or ""
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                found.append((sub, None) if sub in MODULES else (target, alias.name))
    return [(m, n) for m, n in found if m.split(".")[0] in ROOMS]


GRAPH = {m: imported(m, p) for m, p in MODULES.items()}


def test_the_source_is_found():
    assert {"search.store", "indexer.job", "web.api", "web.cli"} <= set(MODULES)


def test_rooms_depend_one_way():
    upward = [(m, t) for m, edges in GRAPH.items() for t, _ in edges
              if ROOMS.index(t.split(".")[0]) > ROOMS.index(m.split(".")[0])]
    assert upward == []


def test_no_private_names_across_modules():
    private = [(m, t, n) for m, edges in GRAPH.items() for t, n in edges
               if n and n.startswith("_") and t != m]
    assert private == []


def test_no_private_attributes_of_other_modules():
    """``module._name`` reaches into another module as surely as importing ``_name``."""
    reached = []
    for module, path in MODULES.items():
        tree = ast.parse(path.read_text())
        aliases = {a.asname or a.name.split(".")[0] for node in ast.walk(tree)
                   if isinstance(node, (ast.Import, ast.ImportFrom)) for a in node.names}
        reached += [f"{module}:{node.lineno} {ast.unparse(node)}" for node in ast.walk(tree)
                    if isinstance(node, ast.Attribute) and node.attr.startswith("_")
                    and not node.attr.startswith("__") and isinstance(node.value, ast.Name)
                    and node.value.id in aliases]
    assert reached == []


SKIPPED = ("#", "import ", "from ", '"""')  # what a repeated block is not made of


def code_lines(path: Path) -> list[tuple[int, str]]:
    """(line number, text without indentation) of the lines that carry code."""
    lines = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        text = " ".join(line.split())
        if len(text) > 3 and not text.startswith(SKIPPED):
            lines.append((number, text))
    return lines


def repeated_blocks(files: dict[str, Path], size: int = 6) -> list[str]:
    """Runs of *size* code lines that stand, the same, in two modules."""
    seen: dict[tuple[str, ...], str] = {}
    found = []
    for module, path in files.items():
        lines = code_lines(path)
        for i in range(len(lines) - size + 1):
            block = tuple(text for _, text in lines[i:i + size])
            where = f"{module}:{lines[i][0]}"
            first = seen.setdefault(block, where)
            if first.partition(":")[0] != module:
                found.append(f"{where} repeats {first}")
    return found


def test_no_block_of_six_lines_is_repeated_between_modules():
    assert repeated_blocks(MODULES) == []


def test_repeated_block_finder_finds_one(tmp_path):
    body = "\n".join(f"    total = total + {i} * weight" for i in range(6))
    for name in ("a", "b"):
        (tmp_path / f"{name}.py").write_text(f"def {name}(total, weight):\n{body}\n")
    found = repeated_blocks({"a": tmp_path / "a.py", "b": tmp_path / "b.py"})
    assert found == ["b:2 repeats a:2"]


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    return found


def test_no_import_cycles():
    graph = {m: {t for t, _ in edges if t in MODULES and t != m} for m, edges in GRAPH.items()}
    # A package's __init__ that re-exports nothing but imports its children is still a cycle
    # when a child imports the package back; no exception is made for it.
    assert cycles(graph) == []


def test_cycle_finder_finds_one():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_rooms_are_imported_at_the_top():
    """An import of our own code inside a function hides the dependency graph from its
    reader (and from the checks above); a third-party one needs a comment saying why."""
    hidden = []
    for module, path in MODULES.items():
        lines = path.read_text().splitlines()
        for func in ast.walk(ast.parse("\n".join(lines))):
            if not isinstance(func, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for node in ast.walk(func):
                if not isinstance(node, (ast.Import, ast.ImportFrom)):
                    continue
                ours = isinstance(node, ast.ImportFrom) and node.level > 0 or any(
                    (getattr(node, "module", None) or a.name).split(".")[0] in ROOMS
                    for a in node.names)
                said = "#" in lines[node.lineno - 1] or "#" in lines[node.lineno - 2]
                if ours or not said:
                    hidden.append(f"{module}:{node.lineno}")
    assert hidden == []


@pytest.mark.parametrize("module", sorted(MODULES))
def test_files_and_functions_stay_short(module):
    source = MODULES[module].read_text()
    assert len(source.splitlines()) <= MAX_FILE_LINES
    long = [(node.name, node.end_lineno - node.lineno + 1)
            for node in ast.walk(ast.parse(source))
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
            and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES]
    assert long == []


def test_tests_are_kept_by_room():
    tests = ROOT / "tests"
    assert sorted(p.name for p in tests.glob("test_*.py")) == ["test_architecture.py"]
    assert {p.parent.name for p in tests.glob("*/test_*.py")} == set(TEST_ROOMS)
    for room in TEST_ROOMS:  # a package each, so test modules may share a base name
        assert (tests / room / "__init__.py").is_file(), room


def test_test_files_stay_short():
    sizes = {str(p.relative_to(ROOT)): len(p.read_text().splitlines())
             for p in sorted((ROOT / "tests").rglob("*.py"))}
    assert {path: n for path, n in sizes.items() if n > MAX_TEST_FILE_LINES} == {}


def test_commands_start_without_the_slow_imports():
    """torchvision and matplotlib add ~2 s to every start; only training and pictures need them."""
    code = ("import sys, web.cli, web; web.create_app; "
            "print(sorted(m for m in ('torchvision', 'matplotlib') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         check=True)
    assert out.stdout.split() == ["[]"]
