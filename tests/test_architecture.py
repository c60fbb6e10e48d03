"""The shape of apclip_core: no import cycle, the library never imports the paper's app, and the
presets state only what differs from what they inherit."""
from __future__ import annotations

import ast
from pathlib import Path

import yaml

PACKAGE = Path(__file__).resolve().parent.parent / "apclip_core"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """module -> apclip_core modules it imports (at the top or inside functions)."""
    modules = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        deps = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("apclip_core"):
                for alias in node.names:  # `from apclip_core.data import annotations` names a module
                    sub = f"{node.module}.{alias.name}"
                    deps.add(sub if sub in modules else node.module)
            elif isinstance(node, ast.Import):
                deps |= {a.name for a in node.names if a.name.startswith("apclip_core")}
        graph[name] = {d for d in deps if d in modules and d != name}
    return graph


def test_no_import_cycle_between_modules():
    graph = import_graph()
    # package __init__ files re-export their modules: an edge into a package means its modules
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for dep in sorted(graph[node]):
            if dep.startswith(node + "."):  # a package importing its own modules
                continue
            if state.get(dep) == 1:
                cycle = stack[stack.index(dep):] + [dep]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if dep not in state:
                visit(dep)
        stack.pop()
        state[node] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module)


def test_nothing_outside_paper_imports_paper():
    offenders = {m: sorted(d for d in deps if d.startswith("apclip_core.paper"))
                 for m, deps in import_graph().items() if not m.startswith("apclip_core.paper")}
    assert not {m: d for m, d in offenders.items() if d}, offenders


def test_the_graph_sees_real_edges():
    """Guard the guard: the graph must hold edges we know exist, or the tests above prove nothing."""
    graph = import_graph()
    assert "apclip_core.engine.config" in graph["apclip_core.engine.train"]
    assert "apclip_core.data.annotations" in graph["apclip_core.data.protocols"]


def test_presets_state_only_what_differs_from_what_they_inherit():
    from dataclasses import asdict

    from apclip_core.engine.config import CONFIG_DIR, TrainConfig, config_names, load_config, preset_values

    def same(a, b) -> bool:
        if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
            return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
        try:
            return float(a) == float(b)
        except (TypeError, ValueError):
            return a == b

    defaults = asdict(TrainConfig())
    for name in config_names():
        own = yaml.safe_load((CONFIG_DIR / f"{name}.yaml").read_text())
        base = own.pop("base", None)
        inherited = {**defaults, **(preset_values(base) if base else {})}
        stated_again = [k for k, v in own.items() if k != "name" and same(v, inherited[k])]
        assert not stated_again, f"{name}.yaml restates inherited values: {stated_again}"
        load_config(name)  # and it resolves
