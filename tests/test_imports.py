"""The package's imports point one way: no module imports, at its top or inside a function, a
module that imports it back, directly or through others; and the library never imports the
course (fmnist_ldm.course), only the command line on top of it does."""
import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "fmnist_ldm"
# The command line on top of the library: it may draw its grids and figures with the course's code.
# fmnist_ldm/record.py is the short command `python -m fmnist_ldm.record` for course.record.
COMMAND_LINE = {"cli", "evaluate", "lab_cli", "__main__", "record"}


def module_name(path: Path, package: Path = PACKAGE) -> str:
    """fmnist_ldm/course/record.py -> "course.record"; a package's __init__.py -> the package's
    name (fmnist_ldm's own: "__init__")."""
    parts = path.relative_to(package).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts) or "__init__"


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py")) if "__pycache__" not in p.parts}


def imports_of(path: Path, package: Path = PACKAGE) -> set[str]:
    """What a file imports from fmnist_ldm anywhere in it, relative or absolute, as dotted names
    below fmnist_ldm: `from ..data import x` in course/figures.py gives "data" and "data.x" (x may
    be a module), `from . import unet` in course/exercises/__init__.py "course.exercises.unet"."""
    parts = path.relative_to(package).with_suffix("").parts
    here = list(parts[:-1])                        # the package the file is in (an __init__: its own)
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(a.name.removeprefix("fmnist_ldm.") for a in node.names if a.name.startswith("fmnist_ldm."))
        elif isinstance(node, ast.ImportFrom):
            module = node.module.split(".") if node.module else []
            if node.level:
                target = here[:len(here) - node.level + 1] + module
            elif module[:1] == ["fmnist_ldm"]:
                target = module[1:]
            else:
                continue
            if target:
                found.add(".".join(target))
            found.update(".".join(target + [a.name]) for a in node.names)
    return found


def graph() -> dict[str, set[str]]:
    """module -> the package's modules it imports. Importing course.record runs course/__init__.py
    first, so the packages above a target count too, except the importer's own (already running)."""
    known = modules()
    edges = {}
    for name, path in known.items():
        own = {".".join(name.split(".")[:i]) for i in range(1, name.count(".") + 2)}
        deps = set()
        for target in imports_of(path):
            parts = target.split(".")
            deps.update(".".join(parts[:i]) for i in range(1, len(parts) + 1))
        edges[name] = (deps & set(known)) - own
    return edges


def is_library(module: str) -> bool:
    """The model code: every module outside course/, except the command line on top."""
    return module.split(".")[0] != "course" and module not in COMMAND_LINE


def course_imports(edges: dict[str, set[str]]) -> dict[str, set[str]]:
    """Library module -> the course modules it imports (empty dict: none does)."""
    found = {m: {d for d in deps if d.split(".")[0] == "course"} for m, deps in edges.items() if is_library(m)}
    return {m: deps for m, deps in found.items() if deps}


def find_cycle(edges: dict[str, set[str]]):
    state, stack = {}, []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == "open":
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        state[node] = "done"
        stack.pop()
        return None

    for node in sorted(edges):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_the_imports_form_no_circle():
    cycle = find_cycle(graph())
    assert cycle is None, "import circle: " + " -> ".join(cycle)


def test_the_cycle_finder_finds_one():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None


def test_the_graph_sees_sub_packages_and_relative_imports():
    g = graph()
    assert {"course.record", "course.exercises", "course.exercises.grading"} <= set(g)
    assert "course.notebook" in g["course.record"] and "config" in g["course.record"]      # . and ..
    assert "course.exercises.unet" in g["course.exercises"]                                  # from . import
    assert "course.exercises.grading" in g["course.exercises.unet"] and "unet" in g["course.exercises.unet"]
    assert "course.figures" in g["cli"] and "course" in g["cli"]


def test_the_layers():
    """The sampling code sits below the Pipeline; the library never imports the CLI or notebooks."""
    g = graph()
    assert "pipeline" not in g["sampling"] | g["distill"] | g["diffusion"]
    # one sampler per file: each sees only the schedule below it and the interface beside it
    sampler_files = [m for m in g if m.startswith("samplers.")]
    assert {"samplers.ddpm", "samplers.ddim", "samplers.dpmpp2m", "samplers.consistency"} <= set(sampler_files)
    for module in sampler_files:
        assert g[module] <= {"diffusion", "checks", "config", "samplers", "samplers.base"}, (module, g[module])
    assert "samplers" not in g["diffusion"]
    for module, deps in g.items():
        if module not in ("cli", "__main__"):
            assert "cli" not in deps, module


def test_the_library_never_imports_the_course():
    """Nothing in the model code depends on the course (notebook helpers, figures, exercises, the
    recorder), at its top or inside a function: the course sits on top of the library."""
    assert course_imports(graph()) == {}


def test_a_library_module_importing_the_course_is_caught(tmp_path):
    """The rule fails on a violation, at a module's top or inside a function, relative or absolute."""
    (tmp_path / "course").mkdir()
    files = {"train": ("train.py", "def f():\n    from .course.figures import tile\n"),
             "weights": ("weights.py", "import fmnist_ldm.course.notebook\n"),
             "course.figures": ("course/figures.py", "from ..data import CLASS_NAMES\n")}
    edges = {}
    for name, (file, source) in files.items():
        (tmp_path / file).write_text(source)
        edges[name] = imports_of(tmp_path / file, package=tmp_path)
    assert set(course_imports(edges)) == {"train", "weights"}
