"""Sphinx configuration of the API reference (``make docs``: warnings are errors).

The reference is built from the docstrings, importing the real modules (run it under
``. ./activate.sh`` so that rclpy and the built messages are importable for dpa_ros.ros).
"""
import importlib
import inspect
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

project = "dpa_ros"
author = "dpa_ros contributors"
release = "0.1.0"

extensions = ["sphinx.ext.autodoc", "sphinx.ext.autosummary", "sphinx.ext.napoleon", "sphinx.ext.viewcode"]
autosummary_generate = True
autosummary_imported_members = False
# a module documents what it defines (its __all__ may re-export what another module documents)
autodoc_default_options = {"members": True, "undoc-members": True, "show-inheritance": True,
                           "ignore-module-all": True}
autodoc_member_order = "bysource"
# Signatures show the parameter names; the docstrings give types, units and frames.
autodoc_typehints = "none"
napoleon_google_docstring = True
napoleon_numpy_docstring = False
# "Attributes:" sections as field lists: autodoc documents the dataclass fields themselves
napoleon_use_ivar = True

# Every cross-reference in a docstring must resolve (a broken :func:`...` fails the build) ...
nitpicky = True
# ... except those into other projects (no inventory of theirs is fetched: the build is offline).
nitpick_ignore_regex = [(r"py:.*", r"(np|numpy|torch|trimesh|PIL|scipy|yaml|rclpy|builtin_interfaces|std_msgs"
                                   r"|sensor_msgs|geometry_msgs|shape_msgs|visualization_msgs|tf2_msgs|vision_msgs"
                                   r"|moveit_msgs|diffusers|transformers|open_clip|mujoco|pxr|lxml|argparse"
                                   r"|pathlib|typing|collections|dataclasses|threading|concurrent|logging)(\..*)?"),
                        # napoleon reads "Returns: the scene: ..." as a type named "the scene"
                        (r"py:class", r".*\s.*"),
                        # private helpers are not in the reference; a docstring may still name them
                        (r"py:.*", r"(.*\.)?_[A-Za-z]\w*")]

templates_path = []
exclude_patterns = ["_build"]
html_theme = "alabaster"
html_static_path = []


# A docstring's reference is resolved as Python resolves the name where the docstring is written:
# ``:class:`LayoutConfig``` in a module that imports LayoutConfig, ``collision.support_slabs`` in a
# module of dpa_ros.export, ``dpa_ros.geometry.layout.LayoutConfig`` (a re-export) all point at the
# object's documented home. A name that resolves to nothing stays a warning, hence an error.
def _import_attr(dotted: str):
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        try:
            for attr in parts[cut:]:
                obj = getattr(obj, attr)
        except AttributeError:
            return None, None
        return obj, ".".join(parts[:cut])
    return None, None


def _documented_name(target: str, module: str | None, cls: str | None) -> str | None:
    scopes = []
    if module:
        if cls:
            scopes.append(f"{module}.{cls}")
        parts = module.split(".")
        scopes += [".".join(parts[:i]) for i in range(len(parts), 0, -1)]
    for scope in [*scopes, ""]:
        dotted = f"{scope}.{target}" if scope else target
        obj, found_in = _import_attr(dotted)
        if obj is None:
            continue
        home = getattr(obj, "__module__", None)
        qualname = getattr(obj, "__qualname__", None)
        if inspect.ismodule(obj):
            return obj.__name__
        if home and qualname and (inspect.isclass(obj) or inspect.isroutine(obj)):
            return f"{home}.{qualname}"
        return dotted  # data: documented where it is defined (a module attribute)
    return None


def _in_subtree(env, target: str, module: str | None) -> str | None:
    """The one documented object named ``target`` under ``module`` (a package's summary table shows
    its submodules' first lines in the package's context)."""
    if not module:
        return None
    found = [name for name in env.get_domain("py").objects
             if name.startswith(module + ".") and name.endswith("." + target)]
    return found[0] if len(found) == 1 else None


def _resolve(app, env, node, contnode):
    if node.get("refdomain") != "py":
        return None
    target = node["reftarget"].lstrip(".~")
    name = _documented_name(target, node.get("py:module"), node.get("py:class"))
    if name is None or name == node["reftarget"]:
        name = _in_subtree(env, target, node.get("py:module"))
    if name is None:
        return None
    return env.get_domain("py").resolve_xref(env, node["refdoc"], app.builder, "obj", name, node, contnode)


def _escape_bars(app, what, name, obj, options, lines):
    """``|n| = 1`` in a docstring is an absolute value, not an rst substitution (none is defined)."""
    def escape(line: str) -> str:  # outside ``inline literals`` only (the even parts between ``)
        parts = line.split("``")
        return "``".join(part.replace("|", "\\|") if i % 2 == 0 else part for i, part in enumerate(parts))
    lines[:] = [escape(line) for line in lines]


def setup(app):
    app.connect("missing-reference", _resolve)
    app.connect("autodoc-process-docstring", _escape_bars)
