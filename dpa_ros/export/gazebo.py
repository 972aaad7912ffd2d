"""Gazebo (gz sim) export: an SDFormat 1.9 world with one model folder per object.

Layout (inside ``<scene_dir>/gazebo/``)::

    scene.sdf                      world "dpa_scene": gravity, sun, ground_plane, one <include> per object
    dpa_object_<id>/model.config       <sdf version="1.9">model.sdf</sdf>
    dpa_object_<id>/model.sdf          model "dpa_object_<id>" / link "link": inertial, visual, collision(s)
    dpa_object_<id>/meshes/visual.obj  (+ visual.mtl) the object mesh in the link frame, vertex colours
    dpa_object_<id>/meshes/collision[_k].obj   one file per convex part (:mod:`dpa_ros.export.collision`)
    support_<k>/model.sdf          static model of support plane k: a convex slab (world coordinates)
    support_<k>/meshes/slab.obj

Frames: world = :mod:`dpa_ros.export.frames` (z up, metres). Each ``<include>``'s ``<pose>`` is the
object's rigid pose in the world (x y z roll pitch yaw, radians, fixed-axis XYZ); meshes are in the
link frame (object axes, scale baked in), so no ``<scale>`` is needed. Inertia is about the centre
of mass (``<inertial><pose>``), from the collision parts' volume and ``ExportOptions.density_kg_m3``
(the same numbers the USD and MJCF exports carry).

Include URIs are ``model://dpa_object_<id>``: libsdformat strips the scheme and looks for the folder
relative to the working directory and the world file, so ``cd gazebo && gz sim scene.sdf`` works
as is (elsewhere, add the folder to ``GZ_SIM_RESOURCE_PATH``). Mesh URIs are relative to model.sdf,
which gz sim resolves against the model file's directory. The world has no ``<plugin>``: gz sim
then loads its default systems (physics, user commands, scene broadcaster).
"""
from __future__ import annotations

import json
from pathlib import Path
from xml.sax.saxutils import escape

import numpy as np

from dpa_ros.core.fileio import atomic_write_text
from dpa_ros.export.collision import CollisionShape, SupportSlab
from dpa_ros.export.frames import WorldFrame
from dpa_ros.export.meshes import ExportObject, frame_header, write_mesh_file, write_obj
from dpa_ros.export.options import ExportOptions
from dpa_ros.geometry.transforms import rotation_to_rpy

SDF_VERSION = "1.9"
WORLD_FILE = "scene.sdf"
GRAVITY_M_S2 = 9.80665


def _fmt(values) -> str:
    return " ".join(f"{float(v) + 0.0:.9g}" for v in np.ravel(values))  # + 0.0 drops "-0"


def _pose(R: np.ndarray, t: np.ndarray) -> str:
    """SDF pose text: x y z roll pitch yaw (fixed-axis XYZ, radians)."""
    return _fmt(np.concatenate([t, rotation_to_rpy(R)]))


def _comment(text: str) -> str:
    return "<!-- " + text.replace("--", "- -") + " -->"


def _material(rgba: np.ndarray) -> str:
    c = _fmt(np.asarray(rgba[:3], float) / 255.0) + " 1"
    return f"<material><ambient>{c}</ambient><diffuse>{c}</diffuse><specular>0.1 0.1 0.1 1</specular></material>"


def _model_sdf(obj: ExportObject, options: ExportOptions, shape: CollisionShape) -> str:
    mp, n_collisions = shape.mass, len(shape.parts)
    inertia = mp.inertia
    static = "true" if not options.dynamic else "false"
    source = f"{n_collisions} convex collision part(s) ({shape.method})"
    collisions = "\n".join(
        f"""      <collision name="collision_{k}">
        <geometry><mesh><uri>meshes/{'collision' if n_collisions == 1 else f'collision_{k}'}.obj</uri></mesh></geometry>
      </collision>""" for k in range(n_collisions))
    return f"""<?xml version="1.0"?>
<sdf version="{SDF_VERSION}">
  {_comment(f"dpa_ros object {obj.id} label={obj.label} score={obj.score:.4f}; link frame = object axes, "
            f"scale {obj.scale:.6g} baked into the meshes, metres")}
  <model name="{obj.name}">
    <static>{static}</static>
    <link name="link">
      <inertial>
        {_comment(f"volume {mp.volume:.6g} m^3 from the {source}, density {options.density_kg_m3:g} kg/m^3")}
        <pose>{_fmt(mp.center)} 0 0 0</pose>
        <mass>{mp.mass:.9g}</mass>
        <inertia>
          <ixx>{inertia[0, 0]:.9g}</ixx><ixy>{inertia[0, 1] + 0.0:.9g}</ixy><ixz>{inertia[0, 2] + 0.0:.9g}</ixz>
          <iyy>{inertia[1, 1]:.9g}</iyy><iyz>{inertia[1, 2] + 0.0:.9g}</iyz><izz>{inertia[2, 2]:.9g}</izz>
        </inertia>
      </inertial>
      <visual name="visual">
        <geometry><mesh><uri>meshes/visual.obj</uri></mesh></geometry>
        {_material(obj.mean_rgba)}
      </visual>
{collisions}
    </link>
  </model>
</sdf>
"""


def _model_config_text(name: str, description: str) -> str:
    return f"""<?xml version="1.0"?>
<model>
  <name>{name}</name>
  <version>1.0</version>
  <sdf version="{SDF_VERSION}">model.sdf</sdf>
  <author><name>dpa_ros</name><email>dpa_ros@example.com</email></author>
  <description>{description}</description>
</model>
"""


def _slab_sdf(slab: SupportSlab) -> str:
    return f"""<?xml version="1.0"?>
<sdf version="{SDF_VERSION}">
  {_comment(f"dpa_ros support plane {slab.plane_index}: a static convex slab, world coordinates, metres")}
  <model name="{slab.name}">
    <static>true</static>
    <link name="link">
      <collision name="collision">
        <geometry><mesh><uri>meshes/slab.obj</uri></mesh></geometry>
      </collision>
      <visual name="visual">
        <geometry><mesh><uri>meshes/slab.obj</uri></mesh></geometry>
        <material><ambient>0.5 0.5 0.5 1</ambient><diffuse>0.5 0.5 0.5 1</diffuse></material>
      </visual>
    </link>
  </model>
</sdf>
"""


def _include(name: str, pose: str) -> str:
    return f"""    <include>
      <uri>model://{name}</uri>
      <name>{name}</name>
      <pose>{pose}</pose>
    </include>"""


def _world_sdf(objects: list[ExportObject], slabs: list[SupportSlab], world: WorldFrame, ground_z: float) -> str:
    meta = json.dumps(world.metadata())
    includes = "\n".join([_include(s.name, "0 0 0 0 0 0") for s in slabs]
                         + [_include(o.name, _pose(o.R_world_object, o.t_world_object)) for o in objects])
    return f"""<?xml version="1.0"?>
<sdf version="{SDF_VERSION}">
  {_comment(frame_header(world)[0])}
  {_comment("dpa_ros_world_frame " + meta)}
  {_comment("run: cd into this folder and 'gz sim scene.sdf', or add this folder to GZ_SIM_RESOURCE_PATH")}
  <world name="dpa_scene">
    <gravity>0 0 {-GRAVITY_M_S2}</gravity>
    <scene>
      <ambient>0.6 0.6 0.6 1</ambient>
      <background>0.8 0.85 0.9 1</background>
      <shadows>true</shadows>
    </scene>
    <light type="directional" name="sun">
      <cast_shadows>true</cast_shadows>
      <pose>0 0 10 0 0 0</pose>
      <diffuse>0.8 0.8 0.8 1</diffuse>
      <specular>0.2 0.2 0.2 1</specular>
      <direction>-0.5 0.1 -0.9</direction>
    </light>
    <model name="ground_plane">
      {_comment("the fitted floor when the scene has one (z = 0), else just below the lowest object")}
      <static>true</static>
      <pose>0 0 {ground_z:.9g} 0 0 0</pose>
      <link name="link">
        <collision name="collision">
          <geometry><plane><normal>0 0 1</normal><size>100 100</size></plane></geometry>
        </collision>
        <visual name="visual">
          <geometry><plane><normal>0 0 1</normal><size>100 100</size></plane></geometry>
          <material><ambient>0.7 0.7 0.7 1</ambient><diffuse>0.7 0.7 0.7 1</diffuse></material>
        </visual>
      </link>
    </model>
{includes}
  </world>
</sdf>
"""


def ground_height(objects: list[ExportObject], world: WorldFrame) -> float:
    """World z of the ground plane: 0 when the floor is known, else the lowest object vertex."""
    if world.camera_height_m is not None or not objects:
        return 0.0
    return float(min(o.mesh_world().vertices[:, 2].min() for o in objects))


def write_gazebo(out_dir: Path, objects: list[ExportObject], shapes: dict[str, CollisionShape],
                 slabs: list[SupportSlab], world: WorldFrame, options: ExportOptions) -> list[Path]:
    """Write the world file and the model folders into ``out_dir`` (expected empty); return the files.

    ``shapes``: :func:`dpa_ros.export.collision.collision_shapes` of ``objects``; ``slabs``: the
    support slabs (:func:`dpa_ros.export.collision.support_slabs`).
    """
    written: list[Path] = []
    for slab in slabs:
        written.append(write_mesh_file(out_dir / slab.name / "meshes" / "slab.obj", slab.mesh))
        written.append(atomic_write_text(out_dir / slab.name / "model.sdf", _slab_sdf(slab)))
        written.append(atomic_write_text(out_dir / slab.name / "model.config", _model_config_text(
            slab.name, f"support plane {slab.plane_index} (static slab) reconstructed by dpa_ros")))
    for obj in objects:
        model_dir = out_dir / obj.name
        parts = shapes[obj.name].parts
        written += write_obj(model_dir / "meshes" / "visual.obj", obj.mesh_link(), obj.colors, obj.name,
                             [f"dpa_ros object {obj.id} ({obj.label}), link frame, metres"])
        names = ["collision.obj"] if len(parts) == 1 else [f"collision_{k}.obj" for k in range(len(parts))]
        written += [write_mesh_file(model_dir / "meshes" / n, p) for n, p in zip(names, parts)]
        written.append(atomic_write_text(model_dir / "model.sdf", _model_sdf(obj, options, shapes[obj.name])))
        written.append(atomic_write_text(model_dir / "model.config", _model_config_text(
            obj.name, f"{escape(obj.label)} reconstructed by dpa_ros (object {obj.id}, score {obj.score:.3f})")))
    ground_z = ground_height(objects, world)
    written.append(atomic_write_text(out_dir / WORLD_FILE, _world_sdf(objects, slabs, world, ground_z)))
    return written
