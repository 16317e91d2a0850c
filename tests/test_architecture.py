"""The shape of the house, read from the source with ``ast``: rooms depend one way
(web → indexer → search), modules import no cycle and no other module's private names,
our own code is imported at the top of a module, and a command that serves nothing
loads no web framework. Modules are split by concept, not by length, so no size is
checked here. The tests are kept by room too."""
from __future__ import annotations

import ast
import inspect
import json
import os
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from web.cli import COMMANDS, cli, docstring

ROOT = Path(__file__).resolve().parent.parent
ROOMS = ("search", "indexer", "web")  # each may import only those before it
# tests/<room>/; cli: the command line, beside web/cli; e2e: the real script, a browser
TEST_ROOMS = ("search", "indexer", "web", "cli", "e2e")
WEB_FRAMEWORK = ("flask", "werkzeug", "waitress", "pydantic", "spectree")


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


def lazy_commands() -> dict[str, str]:
    """``web.cli.COMMANDS`` read from the source: command name → module it is imported from
    when it runs (click's lazy group), an edge the import statements do not show."""
    tree = ast.parse(MODULES["web.cli"].read_text())
    value = next(node.value for node in tree.body if isinstance(node, ast.Assign)
                 and [getattr(t, "id", None) for t in node.targets] == ["COMMANDS"])
    return {name: "web.cli." + where.partition(":")[0]
            for name, where in ast.literal_eval(value).items()}


GRAPH = {m: imported(m, p) for m, p in MODULES.items()}
GRAPH["web.cli"] += [(module, None) for module in sorted(set(lazy_commands().values()))]


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


def test_tests_are_kept_by_room():
    tests = ROOT / "tests"
    assert sorted(p.name for p in tests.glob("test_*.py")) == ["test_architecture.py"]
    assert {p.parent.name for p in tests.glob("*/test_*.py")} == set(TEST_ROOMS)
    for room in TEST_ROOMS:  # a package each, so test modules may share a base name
        assert (tests / room / "__init__.py").is_file(), room


def test_the_lower_rooms_tests_use_no_front_end():
    """A test of ``search`` or ``indexer`` (and what every room's tests share) sets up its data
    through those rooms, never through the command line or the app: a change to a front end
    must not break the tests of the rooms below it."""
    shared = [p for p in (ROOT / "tests").glob("*.py") if p.name != "test_architecture.py"]
    lower = [*shared, *(ROOT / "tests" / "search").glob("*.py"),
             *(ROOT / "tests" / "indexer").glob("*.py")]
    found = []
    for path in lower:
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else []
            found += [f"{path.relative_to(ROOT)}:{node.lineno}" for n in names
                      if n.split(".")[0] == "web"]
    assert found == []


def test_every_command_names_a_command_of_its_module():
    for name, module in lazy_commands().items():
        defined = {node.name for node in ast.parse(MODULES[module].read_text()).body
                   if isinstance(node, ast.FunctionDef)}
        function = ast.literal_eval(next(
            node.value for node in ast.parse(MODULES["web.cli"].read_text()).body
            if isinstance(node, ast.Assign)
            and [getattr(t, "id", None) for t in node.targets] == ["COMMANDS"]))[name]
        assert function.partition(":")[2] in defined, name


def loaded_by(commands: list[list[str]]) -> list[list[str]]:
    """The heavy modules one process holds after loading each batch of commands in turn."""
    heavy = (*WEB_FRAMEWORK, "torch", "torchvision", "matplotlib")
    code = ("import json, sys; from web.cli import cli; out = []\n"
            f"for batch in {commands!r}:\n"
            "    [cli.get_command(None, name) for name in batch]\n"
            f"    out.append(sorted(m for m in {heavy!r} if m in sys.modules))\n"
            "print(json.dumps(out))")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                          text=True, check=True)
    return json.loads(done.stdout)


def test_a_command_loads_only_what_it_uses():
    """The catalog's commands need neither torch nor a web framework; no command but ``serve``
    needs a web framework; and torchvision and matplotlib (~2 s a start) are loaded by the
    functions that train or draw, never by loading a command."""
    catalog = ["stats", "remove", "exclusions"]
    served = ["serve"]
    model = sorted(set(lazy_commands()) - set(catalog) - set(served))
    after_catalog, after_model, after_serve = loaded_by([catalog, model, served])
    assert after_catalog == []
    assert after_model == ["torch"]
    assert set(after_serve) == {"flask", "werkzeug", "waitress", "pydantic", "torch"}


HEAVY = (*WEB_FRAMEWORK, "torch", "torchvision", "faiss", "alembic", "umap", "numba")


def imported_by(args: list[str], cwd: Path) -> tuple[set[str], subprocess.CompletedProcess]:
    """The modules ``python -X importtime -m web.cli ARGS`` loads, and how it ended."""
    done = subprocess.run([sys.executable, "-X", "importtime", "-m", "web.cli", *args],
                          cwd=cwd, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    return {line.rpartition("|")[2].strip() for line in done.stderr.splitlines()
            if line.startswith("import time:")}, done


def test_lookalike_stats_and_help_start_without_the_heavy_libraries(tmp_path, indexed):
    """The acceptance check itself (#25, #28): ``python -X importtime`` on a real
    ``lookalike stats`` (no data dir yet, and one with a catalog, a model and an index)
    and ``lookalike --help``: no torch, torchvision, FAISS, Flask, Alembic or UMAP."""
    imported, done = imported_by(["--data-dir", str(tmp_path / "no-data-yet"), "stats"], tmp_path)
    assert "nothing indexed" in done.stderr  # it ran the command, not only the imports
    assert "search.library" in imported
    assert {m.split(".")[0] for m in imported} & set(HEAVY) == set()

    imported, done = imported_by(["--data-dir", str(indexed), "stats"], tmp_path)
    assert done.returncode == 0 and "index_vectors" in done.stdout, done.stderr
    assert {m.split(".")[0] for m in imported} & set(HEAVY) == set()

    imported, done = imported_by(["--help"], tmp_path)
    assert done.returncode == 0 and "Index (or re-index" in done.stdout
    assert {m.split(".")[0] for m in imported} & set(HEAVY) == set()


def test_the_command_list_says_what_each_command_says_of_itself():
    """``--help`` reads each command's docstring as text (web.cli.docstring), not by importing
    its module: the summary must be the one the command itself gives."""
    for name in COMMANDS:
        command = cli.get_command(None, name)
        assert docstring(name) == inspect.cleandoc(command.help), name
    listed = CliRunner().invoke(cli, ["--help"]).output
    for name in COMMANDS:
        assert cli.get_command(None, name).get_short_help_str(40)[:20] in listed, name
