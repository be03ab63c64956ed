"""The house rules, checked on the source: no import cycle between top-level folders or between
files (imports inside functions count too), the contracts import no stage, no source file over
300 lines, and the device side of profiling imports no torch at module level."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
PACKAGES = ["cli", "contracts", "export", "lut", "models", "pipeline", "profiler", "reports", "search", "shrink",
            "training"]
MAX_LINES = 300


def _modules() -> dict[str, Path]:
    files = {p.stem if p.parent == ROOT else f"{p.parent.name}.{p.stem}": p
             for p in [*ROOT.glob("*.py"), *(f for pkg in PACKAGES for f in (ROOT / pkg).glob("*.py"))]}
    return {name.removesuffix(".__init__"): path for name, path in files.items()}


def _imports(name: str, path: Path) -> set[str]:
    """The depthshrink modules ``name`` imports, anywhere in the file (relative imports resolved)."""
    package = name.split(".")[:-1] if path.name != "__init__.py" else name.split(".")
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[:len(package) - node.level + 1]
                target = ".".join([*base, *(node.module.split(".") if node.module else [])])
            elif node.module and node.module.startswith("depthshrink."):
                target = node.module.removeprefix("depthshrink.")
            else:
                continue
            found.add(target)
            found.update(f"{target}.{alias.name}" for alias in node.names)  # from .pkg import module
        elif isinstance(node, ast.Import):
            found.update(a.name.removeprefix("depthshrink.") for a in node.names if a.name.startswith("depthshrink."))
    return found


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: {t for t in _imports(name, path) if t in modules and t != name} for name, path in modules.items()}


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_no_import_cycle_between_files():
    assert _cycle(_graph()) is None


def test_no_import_cycle_between_top_level_folders():
    folders: dict[str, set[str]] = {}
    for source, targets in _graph().items():
        top = source.split(".")[0]
        folders.setdefault(top, set()).update(t.split(".")[0] for t in targets if t.split(".")[0] != top)
    folders = {k: v & set(PACKAGES) for k, v in folders.items() if k in PACKAGES}
    assert _cycle(folders) is None


def test_contracts_import_no_stage():
    stages = set(PACKAGES) - {"contracts"}
    for source, targets in _graph().items():
        if source.startswith("contracts."):
            assert not {t.split(".")[0] for t in targets} & stages, source


@pytest.mark.parametrize("name", sorted(_modules()))
def test_no_source_file_over_300_lines(name):
    lines = _modules()[name].read_text().count("\n")
    assert lines <= MAX_LINES, f"{name}: {lines} lines"


def test_the_device_side_imports_no_torch_at_module_level():
    """A GPU box with TensorRT, pycuda, numpy and pandas profiles a bundle without PyTorch."""
    device_side = ["profiler.base", "profiler.bundle", "profiler.timing", "profiler.session", "profiler.onnxruntime",
                   "profiler.tensorrt", "profiler.devices", "profiler.factory", "lut.table", "lut.writer", "contracts.files"]
    modules = _modules()
    for name in device_side:
        tree = ast.parse(modules[name].read_text())
        top = [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]
        names = {a.name for n in top if isinstance(n, ast.Import) for a in n.names}
        names |= {n.module or "" for n in top if isinstance(n, ast.ImportFrom)}
        assert not any(n == "torch" or n.startswith("torch.") for n in names), name


def test_every_module_the_docs_and_scripts_name_exists():
    """A module moved leaves no stale ``depthshrink.x.y`` behind in the README, docs, bench scripts,
    the GPU check or the Makefile (a stale import cost a GPU session's step once)."""
    import importlib
    import re

    files = [ROOT / "README.md", ROOT / "Makefile", *ROOT.glob("docs/**/*.md"), *ROOT.glob("bench/*.py"),
             *ROOT.glob("bench/*.sh")]
    stale = []
    for path in files:
        for name in set(re.findall(r"depthshrink\.((?:[a-z_0-9]+\.)*[a-z_0-9]+)", path.read_text())):
            parts = name.split(".")
            try:  # a module, or a module's attribute
                importlib.import_module(f"depthshrink.{name}")
            except ImportError:
                try:
                    module = importlib.import_module(".".join(["depthshrink", *parts[:-1]]))
                    if not hasattr(module, parts[-1]):
                        stale.append(f"{path.name}: depthshrink.{name}")
                except ImportError:
                    stale.append(f"{path.name}: depthshrink.{name}")
    assert stale == [], "\n".join(sorted(stale))
