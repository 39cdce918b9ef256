"""The package's import graph has no cycle, counting imports inside functions too (a cycle
hidden by a function-level import is still a cycle), and ``import spikerl`` stays torch-free."""
import ast
import subprocess
import sys
from pathlib import Path

PKG = Path(__file__).resolve().parents[1] / "spikerl"


def modules() -> dict:
    out = {}
    for p in PKG.rglob("*.py"):
        parts = p.relative_to(PKG.parent).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = p
    return out


def import_graph() -> dict:
    mods = modules()
    graph = {m: set() for m in mods}
    for name, path in mods.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text())):
            targets = []
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[: len(package.split(".")) - node.level + 1]
                    module = ".".join(base + ([node.module] if node.module else []))
                else:
                    module = node.module or ""
                subs = [f"{module}.{a.name}" for a in node.names if f"{module}.{a.name}" in mods]
                # `from . import envs` imports the submodule, not the package's other names
                targets = subs if len(subs) == len(node.names) else [module] + subs
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            graph[name] |= {t for t in targets if t in mods and t != name}
    return graph


def find_cycle(graph: dict):
    state, stack = {}, []

    def visit(v):
        state[v] = 1
        stack.append(v)
        for w in sorted(graph[v]):
            if state.get(w) == 1:
                return stack[stack.index(w):] + [w]
            if w not in state:
                found = visit(w)
                if found:
                    return found
        state[v] = 2
        stack.pop()
        return None

    for v in sorted(graph):
        if v not in state:
            found = visit(v)
            if found:
                return found
    return None


def test_no_import_cycle():
    graph = import_graph()
    assert "spikerl.agent" in graph and "spikerl.hyperparams" in graph["spikerl.config"]
    cycle = find_cycle(graph)
    assert cycle is None, " -> ".join(cycle)


def test_the_cycle_finder_finds_one():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_hyperparams_imports_nothing_of_the_package():
    assert import_graph()["spikerl.hyperparams"] == set()


def test_import_spikerl_is_torch_free():
    code = "import sys, spikerl, spikerl.cli, spikerl.export, spikerl.show; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_numba_cache_is_dropped_when_any_module_of_the_package_changes(tmp_path):
    """numba checks a cached function against its own file only; the package's cache is
    stamped with all its sources, so an edit of one module (say the kernel that another
    module's cached function inlined) drops every cache file, and an unchanged package keeps them."""
    from spikerl._numba import _drop_stale_cache

    pkg = tmp_path / "pkg"
    (pkg / "__pycache__").mkdir(parents=True)
    (pkg / "engine.py").write_text("x = 1\n")
    (pkg / "fastpath.py").write_text("y = 2\n")

    def cached():
        for name in ("fastpath._predict_one-1.py311.nbi", "fastpath._predict_one-1.py311.1.nbc"):
            (pkg / "__pycache__" / name).write_bytes(b"compiled")

    cached()
    assert _drop_stale_cache(pkg) and not list((pkg / "__pycache__").glob("*.nb?"))  # first stamp
    cached()
    assert not _drop_stale_cache(pkg) and len(list((pkg / "__pycache__").glob("*.nb?"))) == 2
    (pkg / "engine.py").write_text("x = 3\n")  # same size, other source
    assert _drop_stale_cache(pkg) and not list((pkg / "__pycache__").glob("*.nb?"))
    cached()
    assert not _drop_stale_cache(pkg) and len(list((pkg / "__pycache__").glob("*.nb?"))) == 2
