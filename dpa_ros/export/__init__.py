"""Export a reconstructed scene for simulators and tools (GLB, OBJ, PLY, Gazebo SDF, USD, MJCF).

Everything is written in the z-up world frame described in :mod:`dpa_ros.export.frames`
(metres, gravity -z), except ``scene.glb``: glTF 2.0 is +Y up, so its coordinates are that frame
turned (``ExportOptions.glb_z_up`` keeps z up). Every object is named
:func:`dpa_ros.naming.object_name` (``dpa_object_<id>``), as its TF frame is. Outputs, inside the scene directory:

=========== ================================== ======================================================
format      path                               content
=========== ================================== ======================================================
``glb``     ``scene.glb``                      objects + plane patches, one node each; +Y up (glTF)
``obj``     ``obj_world/dpa_object_<id>.obj``  per object, world coordinates, vertex colours, + .mtl
``ply``     ``scene_cloud_world.ply``          the scene cloud in the world frame, RGB
``gazebo``  ``gazebo/``                        ``scene.sdf`` + one model folder per object
``usd``     ``scene.usda`` (+ ``.usdc``)       USD stage for Isaac Sim
``mjcf``    ``mujoco/``                        ``scene.xml`` + ``meshes/`` for MuJoCo
=========== ================================== ======================================================

The simulator exports (gazebo, usd, mjcf) share one collision geometry per object, computed once
(:mod:`dpa_ros.export.collision`: a convex hull for convex objects, a convex decomposition for
concave ones, mass and inertia from those parts), and export support planes (``Plane.label ==
"support"`` with a polygon) as static convex slabs; the floor is the ground plane at world z = 0.

``scene.json``'s own files are left alone: ``objects/<id>.obj`` stay the object-frame meshes it
references, and ``scene_cloud.ply`` stays the optical-frame cloud that :func:`read_scene` loads.

Existing outputs are refused unless ``ExportOptions.overwrite``; every file is written atomically
and directory outputs appear complete or not at all.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Iterable

import numpy as np
import trimesh

from dpa_ros.core.scene import Scene, read_scene
from dpa_ros.export.collision import collision_shapes, support_slabs
from dpa_ros.export.frames import WorldFrame, world_frame
from dpa_ros.export.gazebo import write_gazebo
from dpa_ros.export.meshes import (
    PLANE_RGBA,
    plane_patches,
    prepare_objects,
    write_cloud_ply,
    write_glb,
    write_object_objs,
)
from dpa_ros.export.mjcf import write_mjcf
from dpa_ros.export.options import ExportError, ExportOptions
from dpa_ros.export.targets import check_target, write_directory
from dpa_ros.export.usd import build_stage, write_usd

__all__ = ["FORMATS", "ExportError", "ExportOptions", "WorldFrame", "export_scene", "output_paths", "world_frame"]

#: The export formats, in the order they are written (the table above says what each writes).
FORMATS = ("glb", "obj", "ply", "gazebo", "usd", "mjcf")
GLB_FILE = "scene.glb"
OBJ_DIR = "obj_world"
CLOUD_WORLD_PLY = "scene_cloud_world.ply"
GAZEBO_DIR = "gazebo"
USDA_FILE = "scene.usda"
USDC_FILE = "scene.usdc"
MJCF_DIR = "mujoco"
SIMULATORS = {"gazebo", "usd", "mjcf"}

log = logging.getLogger(__name__)


def output_paths(scene_dir: Path, fmt: str, options: ExportOptions) -> list[Path]:
    """The file or directory paths format ``fmt`` writes (checked against overwrite)."""
    return {
        "glb": [scene_dir / GLB_FILE],
        "obj": [scene_dir / OBJ_DIR],
        "ply": [scene_dir / CLOUD_WORLD_PLY],
        "gazebo": [scene_dir / GAZEBO_DIR],
        "usd": [scene_dir / USDA_FILE] + ([scene_dir / USDC_FILE] if options.usdc else []),
        "mjcf": [scene_dir / MJCF_DIR],
    }[fmt]


def _grey(mesh: trimesh.Trimesh) -> trimesh.Trimesh:
    return trimesh.Trimesh(mesh.vertices, mesh.faces, process=False,
                           vertex_colors=np.tile(PLANE_RGBA, (len(mesh.vertices), 1)))


def _parse_formats(formats: Iterable[str]) -> list[str]:
    wanted = [f.strip().lower() for f in ([formats] if isinstance(formats, str) else formats) if f.strip()]
    unknown = [f for f in wanted if f not in FORMATS]
    if unknown or not wanted:
        raise ExportError(f"unknown export format(s) {unknown or wanted}; choose from {', '.join(FORMATS)}")
    return list(dict.fromkeys(wanted))


def export_scene(scene_dir: str | Path, formats: Iterable[str] = FORMATS, options: ExportOptions | None = None,
                 scene: Scene | None = None) -> dict[str, list[Path]]:
    """Export the scene in ``scene_dir`` to the given formats; return the files written per format.

    Args:
        scene_dir: directory holding ``scene.json`` (read with :func:`read_scene`); outputs go here.
        formats: any of ``glb``, ``obj``, ``ply``, ``gazebo``, ``usd``, ``mjcf`` (a comma-separated
            string works).
        options: world frame, decimation, collision, physics and overwrite settings.
        scene: an in-memory scene to export instead of reading ``scene_dir/scene.json``
            (the directory is then only the output location and is created if needed).

    Returns:
        ``{format: [paths]}``; ``ply`` is an empty list when the scene has no point cloud, ``glb``
        when it has neither objects nor planes.

    Raises:
        ExportError: bad format/option, an unusable object (named), or an existing target without
            ``overwrite`` (checked for every format before anything is written).
        dpa_ros.core.scene.SceneFormatError: ``scene.json`` or a mesh it names cannot be read.
    """
    options = options or ExportOptions()
    wanted = _parse_formats(formats)
    scene_dir = Path(scene_dir)
    if scene is None:
        scene = read_scene(scene_dir)
    scene_dir.mkdir(parents=True, exist_ok=True)
    for fmt in wanted:
        for target in output_paths(scene_dir, fmt, options):
            check_target(target, options.overwrite)

    world = world_frame(scene, options)
    objects = prepare_objects(scene, world, options)
    needs_patches = {"glb", "usd"} & set(wanted)
    patches = plane_patches(scene, world, objects) if needs_patches else []
    slabs = support_slabs(scene, world)
    shapes = collision_shapes(objects, options) if SIMULATORS & set(wanted) else {}
    written: dict[str, list[Path]] = {}
    for fmt in wanted:
        if fmt == "glb":
            visual_slabs = [(s.name, "support", _grey(s.mesh)) for s in slabs]
            if objects or patches or visual_slabs:
                written[fmt] = [write_glb(scene_dir / GLB_FILE, objects, patches + visual_slabs, world,
                                               z_up=options.glb_z_up)]
            else:
                log.warning("scene has no objects and no planes; %s not written (glTF cannot be empty)", GLB_FILE)
                written[fmt] = []
        elif fmt == "obj":
            written[fmt] = write_directory(scene_dir / OBJ_DIR, lambda stage: write_object_objs(stage, objects, world))
        elif fmt == "ply":
            if len(scene.cloud_points):
                written[fmt] = [write_cloud_ply(scene_dir / CLOUD_WORLD_PLY, scene, world)]
            else:
                log.warning("scene has no point cloud; %s not written", CLOUD_WORLD_PLY)
                written[fmt] = []
        elif fmt == "gazebo":
            written[fmt] = write_directory(scene_dir / GAZEBO_DIR,
                                           lambda stage: write_gazebo(stage, objects, shapes, slabs, world, options))
        elif fmt == "mjcf":
            written[fmt] = write_directory(scene_dir / MJCF_DIR,
                                           lambda stage: write_mjcf(stage, objects, shapes, slabs, world, options))
        else:
            usd_stage = build_stage(objects, shapes, slabs, patches, world, options)
            written[fmt] = [write_usd(p, usd_stage) for p in output_paths(scene_dir, "usd", options)]
    return written
