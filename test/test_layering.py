"""The package's layering, read from the import statements of every module (ast, nothing imported).

Units are the subpackages of dpa_ros (core, geometry, priors, export, ros, cli) and its top-level
modules (pipeline, assemble, memory, memory_background, overlay, naming). Imports inside functions count as much as
those at the top of a module: a lazy import is still a dependency.
"""
from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "dpa_ros"
# Top-level modules of ROS 2 and its message packages; plus dpa_ros's own generated interfaces.
ROS_MODULES = re.compile(r"^(rclpy|rosidl_\w+|tf2_ros|tf2_py|message_filters|cv_bridge|launch|launch_ros|ament_\w+"
                         r"|\w+_msgs|\w+_srvs|\w+_interfaces|dpa_ros\.(msg|srv|action))(\.|$)")


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    """Every module ``path`` imports, absolute (relative imports resolved; ``from a import b`` gives
    both ``a`` and ``a.b``, since b may be a module)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module
            found.add(module)
            found.update(f"{module}.{alias.name}" for alias in node.names)
    return found


MODULES = {module_name(p): imports_of(p) for p in sorted(PACKAGE.rglob("*.py"))}


def unit(module: str) -> str | None:
    """The layer unit of a dpa_ros module (``dpa_ros.geometry`` for ``dpa_ros.geometry.layout.data``)."""
    parts = module.split(".")
    if parts[0] != "dpa_ros" or len(parts) < 2 or parts[1] in ("msg", "srv", "action"):
        return None
    return ".".join(parts[:2])


def ours(imports: set[str]) -> set[str]:
    return {m for m in imports if m.split(".")[0] == "dpa_ros" and unit(m) is not None and m in MODULES}


def test_every_module_was_read():
    assert {"dpa_ros.core.scene", "dpa_ros.core.camera", "dpa_ros.pipeline", "dpa_ros.ros.reconstruct_node",
            "dpa_ros.geometry.layout.data", "dpa_ros.cli.reconstruct"} <= MODULES.keys()
    # the resolver sees relative and absolute imports alike
    assert "dpa_ros.core.camera" in MODULES["dpa_ros.core.scene"]


def test_core_imports_nothing_of_dpa_ros():
    bad = {m: sorted(i for i in ours(imps) if unit(i) != "dpa_ros.core")
           for m, imps in MODULES.items() if unit(m) == "dpa_ros.core"}
    assert not {m: i for m, i in bad.items() if i}


def test_geometry_imports_no_priors_ros_or_export():
    banned = {"dpa_ros.priors", "dpa_ros.ros", "dpa_ros.export", "dpa_ros.cli", "dpa_ros.pipeline"}
    bad = {m: sorted(i for i in ours(imps) if unit(i) in banned)
           for m, imps in MODULES.items() if unit(m) == "dpa_ros.geometry"}
    assert not {m: i for m, i in bad.items() if i}


def test_only_dpa_ros_ros_imports_ros():
    bad = {m: sorted(i for i in imps if ROS_MODULES.match(i))
           for m, imps in MODULES.items() if unit(m) != "dpa_ros.ros"}
    assert not {m: i for m, i in bad.items() if i}
    # the pattern does catch what the node imports
    assert any(ROS_MODULES.match(i) for i in MODULES["dpa_ros.ros.reconstruct_node"] if i.startswith("rclpy"))


def test_the_library_does_not_import_the_test_scenes():
    bad = {m: sorted(i for i in imps if i.split(".")[0] == "dpa_testing") for m, imps in MODULES.items()}
    assert not {m: i for m, i in bad.items() if i}


def unit_graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for m, imps in MODULES.items():
        if unit(m) is None:
            continue
        graph.setdefault(unit(m), set()).update(unit(i) for i in ours(imps) if unit(i) != unit(m))
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` as a path [a, b, ..., a], or None (depth-first search)."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_find_cycle_finds_one():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None


def test_no_import_cycle_between_units():
    graph = unit_graph()
    assert {"dpa_ros.core", "dpa_ros.geometry", "dpa_ros.ros", "dpa_ros.cli"} <= graph.keys()
    assert find_cycle(graph) is None, f"import cycle: {' -> '.join(find_cycle(graph))}"


def console_scripts() -> dict[str, str]:
    setup = ast.parse((ROOT / "setup.py").read_text())
    for node in ast.walk(setup):
        if isinstance(node, ast.keyword) and node.arg == "entry_points":
            entries = ast.literal_eval(node.value)["console_scripts"]
            return dict(tuple(part.strip() for part in e.split("=")) for e in entries)
    raise AssertionError("setup.py has no entry_points")


@pytest.mark.parametrize("command", sorted(console_scripts()))
def test_console_scripts_point_at_a_main_under_cli(command):
    """Every dpa-* command is a module of dpa_ros/cli (the node's is dpa_ros.ros.reconstruct_node) with a main()."""
    module, _, function = console_scripts()[command].partition(":")
    assert module.startswith("dpa_ros.cli.") or module == "dpa_ros.ros.reconstruct_node"
    tree = ast.parse((ROOT / (module.replace(".", "/") + ".py")).read_text())
    assert function in {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}


def test_the_api_reference_lists_every_unit():
    """docs/api/index.rst names each unit (its autosummary then covers every module below it)."""
    index = (ROOT / "docs" / "api" / "index.rst").read_text()
    listed = set(re.findall(r"^   (dpa_ros\.\w+)$", index, flags=re.M))
    assert listed == set(unit_graph())
