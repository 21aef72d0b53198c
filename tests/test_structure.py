"""The shape of the code: curation is the base app, and no two project modules import each other.

Read with `ast`, so imports inside functions count as much as those at the top of a module.
"""
import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("sceneimg_site", "curation", "crawl", "vlm", "team")


def module_name(path):
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def project_modules():
    return {module_name(p): p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")
            if "migrations" not in p.parts}


def imports_of(path, modules):
    """The project modules `path` imports: `from a import b` counts as a.b when a.b is a module, else a."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [f"{node.module}.{alias.name}" if f"{node.module}.{alias.name}" in modules else node.module
                     for alias in node.names]
        else:
            continue
        found.update(name for name in names if name in modules)
    return found


def import_graph():
    modules = project_modules()
    return {name: imports_of(path, modules) - {name} for name, path in modules.items()}


def cycles(graph):
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on_stack, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.add(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_curation_imports_neither_crawl_nor_vlm():
    offenders = {name: sorted(d for d in deps if d.split(".")[0] in ("crawl", "vlm", "team"))
                 for name, deps in import_graph().items() if name.split(".")[0] == "curation"}
    assert {k: v for k, v in offenders.items() if v} == {}


def test_no_import_cycles_between_project_modules():
    assert cycles(import_graph()) == []


def test_the_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def registers(path):
    """Whether a module calls registry.register_*()."""
    return any(isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
               and node.func.attr.startswith("register_")
               and isinstance(node.func.value, ast.Name) and node.func.value.id == "registry"
               for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))))


@pytest.mark.parametrize("app", ["curation", "crawl", "vlm", "team"])
def test_each_app_registers_from_its_stages_module_only(app):
    modules = project_modules()
    assert sorted(name for name, path in modules.items() if name.split(".")[0] == app and registers(path)) == [
        f"{app}.stages"]


def test_every_registered_stage_has_a_form_with_params_and_a_launch_function():
    from curation import registry

    stages = {stage.key: stage for stage in registry.stages()}
    assert set(stages) >= {"crawl", "similar", "import_folder", "import_urls", "clip", "dedup", "vlm", "export"}
    for stage in stages.values():
        assert callable(getattr(stage.form, "params", None)), stage.key
        assert stage.launch.__name__ == f"launch_{stage.key}", stage.key
