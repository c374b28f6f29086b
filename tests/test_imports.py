"""The package's imports point one way: no module imports, at its top or inside a function, a
module that imports it back, directly or through others."""
import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "fmnist_ldm"


def imports_of(path: Path) -> set[str]:
    """The fmnist_ldm modules a file imports anywhere in it (relative or absolute imports)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level == 1 and node.module:
                found.add(node.module.split(".")[0])
            elif node.level == 1:
                found.update(a.name for a in node.names)
            elif (node.module or "").startswith("fmnist_ldm."):
                found.add(node.module.split(".")[1])
    return found - {path.stem}


def graph() -> dict[str, set[str]]:
    modules = {p.stem for p in PACKAGE.glob("*.py")}
    return {p.stem: imports_of(p) & modules for p in PACKAGE.glob("*.py")}


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


def test_the_layers():
    """The sampling code sits below the Pipeline; the library never imports the CLI or notebooks."""
    g = graph()
    assert "pipeline" not in g["sampling"] | g["distill"] | g["diffusion"]
    for module, deps in g.items():
        if module not in ("cli", "__main__"):
            assert "cli" not in deps, module
