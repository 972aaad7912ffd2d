"""Evaluate launch/reconstruct.launch.py without `launch` / `launch_ros` (not installable in the pip
environment): the few classes it imports, standing in with launch's documented semantics for what
the file uses (DeclareLaunchArgument defaults, LaunchConfiguration.perform, OpaqueFunction called
with the context, PathJoinSubstitution, FindPackageShare), and a translation of each declared Node
into the command line `ros2 launch` would run (``--ros-args --params-file ... -p ... -r ...``).
"""
from __future__ import annotations

import importlib.util
import sys
import types
from pathlib import Path


class LaunchContext:
    def __init__(self, share_dirs: dict[str, Path]) -> None:
        self.launch_configurations: dict[str, str] = {}
        self.share_dirs = share_dirs


def _perform(value, context: LaunchContext) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, (list, tuple)):
        return "".join(_perform(v, context) for v in value)
    return value.perform(context)


class LaunchConfiguration:
    def __init__(self, name: str) -> None:
        self.name = name

    def perform(self, context: LaunchContext) -> str:
        if self.name not in context.launch_configurations:  # launch raises SubstitutionFailure too
            raise KeyError(f"launch configuration '{self.name}' does not exist")
        return context.launch_configurations[self.name]


class PathJoinSubstitution:
    def __init__(self, parts) -> None:
        self.parts = parts

    def perform(self, context: LaunchContext) -> str:
        return str(Path(*[_perform(p, context) for p in self.parts]))


class FindPackageShare:
    def __init__(self, package: str) -> None:
        self.package = package

    def perform(self, context: LaunchContext) -> str:
        return str(context.share_dirs[self.package])


class DeclareLaunchArgument:
    def __init__(self, name: str, default_value=None, description: str = "") -> None:
        self.name, self.default_value, self.description = name, default_value, description


class OpaqueFunction:
    def __init__(self, function) -> None:
        self.function = function


class LaunchDescription:
    def __init__(self, entities) -> None:
        self.entities = list(entities)


class Node:
    def __init__(self, **kwargs) -> None:
        self.kwargs = kwargs


def _modules() -> dict[str, types.ModuleType]:
    mods = {}
    for name, members in {"launch": [LaunchDescription], "launch.actions": [DeclareLaunchArgument, OpaqueFunction],
                          "launch.substitutions": [LaunchConfiguration, PathJoinSubstitution],
                          "launch_ros": [], "launch_ros.actions": [Node],
                          "launch_ros.substitutions": [FindPackageShare]}.items():
        mod = types.ModuleType(name)
        for member in members:
            setattr(mod, member.__name__, member)
        mods[name] = mod
    return mods


def load_launch_file(path: Path) -> types.ModuleType:
    """Import the launch file against the stand-ins (sys.modules restored afterwards)."""
    saved = {name: sys.modules.get(name) for name in _modules()}
    sys.modules.update(_modules())
    try:
        spec = importlib.util.spec_from_file_location("reconstruct_launch", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    finally:
        for name, mod in saved.items():
            if mod is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = mod


def evaluate(module: types.ModuleType, arguments: dict[str, str], share_dirs: dict[str, Path]):
    """(declared arguments, [Node kwargs]) of ``generate_launch_description()`` with ``name:=value`` arguments."""
    description = module.generate_launch_description()
    context = LaunchContext(share_dirs)
    declared, nodes = {}, []
    for entity in description.entities:
        if isinstance(entity, DeclareLaunchArgument):
            declared[entity.name] = entity
            context.launch_configurations[entity.name] = (
                arguments[entity.name] if entity.name in arguments else _perform(entity.default_value, context))
        elif isinstance(entity, OpaqueFunction):
            nodes += [n.kwargs for n in entity.function(context)]
        elif isinstance(entity, Node):
            nodes.append(entity.kwargs)
    unknown = set(arguments) - set(declared)
    if unknown:
        raise ValueError(f"arguments not declared by the launch file: {sorted(unknown)}")
    return declared, nodes


def ros_args(node: dict) -> list[str]:
    """The ``--ros-args`` part of the command line launch_ros builds for a Node's kwargs."""
    out = ["--ros-args", "-r", f"__node:={node['name']}"]
    if node.get("namespace"):
        out += ["-r", f"__ns:={node['namespace']}"]
    for p in node.get("parameters", []):
        if isinstance(p, dict):
            for key, value in p.items():
                out += ["-p", f"{key}:={str(value).lower() if isinstance(value, bool) else value}"]
        else:
            out += ["--params-file", str(p)]
    for src, dst in node.get("remappings", []):
        out += ["-r", f"{src}:={dst}"]
    return out
