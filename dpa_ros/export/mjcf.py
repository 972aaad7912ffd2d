"""MuJoCo export: an MJCF model ``mujoco/scene.xml`` with its meshes in ``mujoco/meshes/``.

Layout (inside ``<scene_dir>/mujoco/``)::

    scene.xml                          model "dpa_scene"
    meshes/dpa_object_<id>_visual.obj      the object mesh in the body frame (object axes, scale baked in)
    meshes/dpa_object_<id>_part_<k>.obj    its convex collision parts (:mod:`dpa_ros.export.collision`)
    meshes/support_<k>.obj             support plane k's static slab, world coordinates

Model: gravity (0, 0, -9.80665) m/s², timestep ``TIMESTEP_S``, elliptic friction cones; every
collision geom has ``condim`` 3, friction ``FRICTION`` and contact margin ``MARGIN_M``. The
worldbody holds the floor (an infinite plane geom ``floor`` at world z = 0, or just below the
lowest object when the floor is unknown, as in the Gazebo export), the support slabs (static mesh
geoms ``support_<k>``), and one body ``dpa_object_<id>`` per object at its world pose
(:mod:`dpa_ros.export.frames`: z up, metres; ``quat`` is w x y z) with a ``<freejoint>``
(none when ``ExportOptions.dynamic`` is false: the body is then welded to the world).

Each object body has one mesh geom per convex part (``dpa_object_<id>_collision_<k>``; MuJoCo
collides with a mesh's convex hull, which is the part itself) and a visual mesh geom
(``dpa_object_<id>_visual``, group 1, no contacts). Its ``<inertial>`` is written explicitly from
the parts (density × volume, centre of mass, full inertia; ``inertiafromgeom="false"``), the same
numbers the Gazebo and USD exports carry.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from dpa_ros.core.fileio import atomic_write_text
from dpa_ros.export.collision import CollisionShape, SupportSlab
from dpa_ros.export.frames import WorldFrame
from dpa_ros.export.gazebo import GRAVITY_M_S2, ground_height
from dpa_ros.export.meshes import ExportObject, frame_header, write_mesh_file
from dpa_ros.export.options import ExportOptions
from dpa_ros.geometry.transforms import rotation_to_quaternion

MODEL_FILE = "scene.xml"
MESH_DIR = "meshes"
TIMESTEP_S = 0.002
FRICTION = (0.8, 0.005, 0.0001)  # sliding, torsional, rolling
MARGIN_M = 0.001


def _fmt(values) -> str:
    return " ".join(f"{float(v) + 0.0:.9g}" for v in np.ravel(values))


def _comment(text: str) -> str:
    return "<!-- " + text.replace("--", "- -") + " -->"


def _rgba(obj: ExportObject) -> str:
    return _fmt(np.asarray(obj.mean_rgba[:3], float) / 255.0) + " 1"


def _body(obj: ExportObject, shape: CollisionShape, options: ExportOptions) -> str:
    x, y, z, w = rotation_to_quaternion(obj.R_world_object)
    mp = shape.mass
    inertia = _fmt([mp.inertia[i, j] for i, j in ((0, 0), (1, 1), (2, 2), (0, 1), (0, 2), (1, 2))])
    about = (f"object {obj.id} label={obj.label} score={obj.score:.4f}; {len(shape.parts)} convex part(s) "
             f"({shape.method}); volume {mp.volume:.6g} m^3, density {options.density_kg_m3:g} kg/m^3")
    joint = f'\n      <freejoint name="{obj.name}"/>' if options.dynamic else ""
    collisions = "\n".join(f'      <geom name="{obj.name}_collision_{k}" class="collision" mesh="{obj.name}_part_{k}" '
                           f'rgba="{_rgba(obj)}"/>' for k in range(len(shape.parts)))
    return f"""    {_comment(about)}
    <body name="{obj.name}" pos="{_fmt(obj.t_world_object)}" quat="{_fmt([w, x, y, z])}">{joint}
      <inertial pos="{_fmt(mp.center)}" mass="{mp.mass:.9g}" fullinertia="{inertia}"/>
      <geom name="{obj.name}_visual" class="visual" mesh="{obj.name}_visual" rgba="{_rgba(obj)}"/>
{collisions}
    </body>"""


def _model_xml(objects: list[ExportObject], shapes: dict[str, CollisionShape], slabs: list[SupportSlab],
               world: WorldFrame, options: ExportOptions, ground_z: float) -> str:
    meshes = []
    for obj in objects:
        meshes.append(f'    <mesh name="{obj.name}_visual" file="{obj.name}_visual.obj"/>')
        meshes += [f'    <mesh name="{obj.name}_part_{k}" file="{obj.name}_part_{k}.obj"/>'
                   for k in range(len(shapes[obj.name].parts))]
    meshes += [f'    <mesh name="{s.name}" file="{s.name}.obj"/>' for s in slabs]
    slab_geoms = "\n".join(f'    <geom name="{s.name}" class="collision" mesh="{s.name}" rgba="0.5 0.5 0.5 1"/>'
                           for s in slabs)
    bodies = "\n".join(_body(o, shapes[o.name], options) for o in objects)
    return f"""<?xml version="1.0"?>
{_comment(frame_header(world)[0])}
{_comment("dpa_ros_world_frame " + json.dumps(world.metadata()))}
{_comment("run: python -m mujoco.viewer --mjcf=scene.xml, or dpa-sim-check on the scene directory")}
<mujoco model="dpa_scene">
  <compiler angle="radian" meshdir="{MESH_DIR}" inertiafromgeom="false" autolimits="true"/>
  <option timestep="{TIMESTEP_S}" gravity="0 0 {-GRAVITY_M_S2}" integrator="implicitfast" cone="elliptic"
          impratio="10"/>
  <visual><headlight ambient="0.4 0.4 0.4" diffuse="0.6 0.6 0.6"/></visual>
  <default>
    <default class="collision">
      <geom type="mesh" condim="3" friction="{_fmt(FRICTION)}" margin="{MARGIN_M}" group="3"/>
    </default>
    <default class="visual">
      <geom type="mesh" contype="0" conaffinity="0" group="1"/>
    </default>
  </default>
  <asset>
{chr(10).join(meshes)}
  </asset>
  <worldbody>
    <light name="sun" directional="true" pos="0 0 10" dir="-0.5 0.1 -0.9"/>
    {_comment("the fitted floor when the scene has one (z = 0), else just below the lowest object")}
    <geom name="floor" type="plane" pos="0 0 {ground_z:.9g}" size="0 0 0.05" condim="3" friction="{_fmt(FRICTION)}"
          margin="{MARGIN_M}" rgba="0.7 0.7 0.7 1"/>
{slab_geoms}
{bodies}
  </worldbody>
</mujoco>
"""


def write_mjcf(out_dir: Path, objects: list[ExportObject], shapes: dict[str, CollisionShape],
               slabs: list[SupportSlab], world: WorldFrame, options: ExportOptions) -> list[Path]:
    """Write ``scene.xml`` and its meshes into ``out_dir`` (expected empty); return the files.

    ``shapes`` by object name from :func:`dpa_ros.export.collision.collision_shapes`, ``slabs``
    from :func:`dpa_ros.export.collision.support_slabs`.
    """
    mesh_dir = out_dir / MESH_DIR
    written: list[Path] = []
    for obj in objects:
        written.append(write_mesh_file(mesh_dir / f"{obj.name}_visual.obj", obj.mesh_link()))
        written += [write_mesh_file(mesh_dir / f"{obj.name}_part_{k}.obj", part)
                    for k, part in enumerate(shapes[obj.name].parts)]
    written += [write_mesh_file(mesh_dir / f"{s.name}.obj", s.mesh) for s in slabs]
    xml = _model_xml(objects, shapes, slabs, world, options, ground_height(objects, world))
    written.append(atomic_write_text(out_dir / MODEL_FILE, xml))
    return written

