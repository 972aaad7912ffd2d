"""USD export for Isaac Sim (``scene.usda``, optionally ``scene.usdc``), written with usd-core.

Stage layout (z up, ``metersPerUnit = 1``, ``kilogramsPerUnit = 1``, default prim ``/World``)::

    /World                               Xform
    /World/PhysicsScene                  UsdPhysics.Scene, gravity (0, 0, -1) × 9.80665 m/s²
    /World/Objects/dpa_object_<id>           Xform: xformOp:translate, xformOp:orient, xformOp:scale
                                         (world pose of the object; scale = its fitted scale);
                                         RigidBodyAPI + MassAPI (physics:mass = density × the
                                         parts' volume, centre of mass; PhysX derives the inertia
                                         from the parts) when ExportOptions.rigid_body, kinematic
                                         when static
    /World/Objects/dpa_object_<id>/mesh      Mesh in the object frame (unscaled), primvars:displayColor
                                         (per vertex); visual only
    /World/Objects/dpa_object_<id>/collision/part_<k>
                                         the convex collision parts of :mod:`dpa_ros.export.collision`
                                         (object frame, unscaled), purpose guide (not rendered),
                                         CollisionAPI + MeshCollisionAPI (approximation convexHull):
                                         Isaac collides with exactly the parts Gazebo and MuJoCo get
    /World/Supports/support_<k>          static convex slab of support plane k (world coordinates),
                                         CollisionAPI + MeshCollisionAPI (convexHull)
    /World/Background/<label>_<i>        Mesh, world coordinates, invisible, CollisionAPI
                                         (approximation none: static triangle mesh); floor, walls

Object prims carry customData ``dpa_ros:id``, ``dpa_ros:label``, ``dpa_ros:score``; the root layer's
customLayerData ``dpa_ros_world_frame`` holds :meth:`WorldFrame.metadata`.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import trimesh
from pxr import Gf, Usd, UsdGeom, UsdPhysics, Vt

from dpa_ros.core.fileio import atomic_write
from dpa_ros.export.collision import CollisionShape, SupportSlab
from dpa_ros.export.frames import WorldFrame
from dpa_ros.export.meshes import ExportObject
from dpa_ros.export.options import ExportOptions
from dpa_ros.geometry.transforms import rotation_to_quaternion

GRAVITY_M_S2 = 9.80665


def _jsonable_to_vt(value):
    """customLayerData values: dicts stay dicts, lists of numbers become float arrays, None → ""."""
    if isinstance(value, dict):
        return {k: _jsonable_to_vt(v) for k, v in value.items()}
    if value is None:
        return ""
    if isinstance(value, list):
        return Vt.DoubleArray([float(x) for x in np.ravel(value)])
    return value


def _define_mesh(stage: Usd.Stage, path: str, vertices: np.ndarray, faces: np.ndarray,
                 colors: np.ndarray | None) -> UsdGeom.Mesh:
    mesh = UsdGeom.Mesh.Define(stage, path)
    mesh.CreatePointsAttr(Vt.Vec3fArray.FromNumpy(np.asarray(vertices, np.float32)))
    mesh.CreateFaceVertexCountsAttr(Vt.IntArray.FromNumpy(np.full(len(faces), 3, np.int32)))
    mesh.CreateFaceVertexIndicesAttr(Vt.IntArray.FromNumpy(np.asarray(faces, np.int32).ravel()))
    mesh.CreateExtentAttr([Gf.Vec3f(*map(float, vertices.min(axis=0))), Gf.Vec3f(*map(float, vertices.max(axis=0)))])
    mesh.CreateSubdivisionSchemeAttr(UsdGeom.Tokens.none)
    mesh.CreateOrientationAttr(UsdGeom.Tokens.rightHanded)
    if colors is not None:
        primvar = mesh.CreateDisplayColorPrimvar(UsdGeom.Tokens.vertex)
        primvar.Set(Vt.Vec3fArray.FromNumpy(np.asarray(colors[:, :3], np.float32) / 255.0))
    return mesh


def _add_convex_collider(stage: Usd.Stage, path: str, mesh: trimesh.Trimesh, purpose: str) -> UsdGeom.Mesh:
    prim = _define_mesh(stage, path, mesh.vertices, mesh.faces, None)
    prim.CreatePurposeAttr(purpose)
    UsdPhysics.CollisionAPI.Apply(prim.GetPrim())
    UsdPhysics.MeshCollisionAPI.Apply(prim.GetPrim()).CreateApproximationAttr(UsdPhysics.Tokens.convexHull)
    return prim


def _add_object(stage: Usd.Stage, obj: ExportObject, shape: CollisionShape, options: ExportOptions) -> None:
    xform = UsdGeom.Xform.Define(stage, f"/World/Objects/{obj.name}")
    x, y, z, w = rotation_to_quaternion(obj.R_world_object)
    xform.AddTranslateOp(UsdGeom.XformOp.PrecisionDouble).Set(Gf.Vec3d(*map(float, obj.t_world_object)))
    xform.AddOrientOp(UsdGeom.XformOp.PrecisionDouble).Set(Gf.Quatd(float(w), float(x), float(y), float(z)))
    xform.AddScaleOp(UsdGeom.XformOp.PrecisionDouble).Set(Gf.Vec3d(obj.scale, obj.scale, obj.scale))
    prim = xform.GetPrim()
    prim.SetCustomDataByKey("dpa_ros:id", obj.id)
    prim.SetCustomDataByKey("dpa_ros:label", obj.label)
    prim.SetCustomDataByKey("dpa_ros:score", obj.score)

    _define_mesh(stage, f"/World/Objects/{obj.name}/mesh", obj.mesh.vertices, obj.mesh.faces, obj.colors)
    UsdGeom.Scope.Define(stage, f"/World/Objects/{obj.name}/collision")
    for k, part in enumerate(shape.parts):  # link frame / scale = the prim's unscaled local frame
        unscaled = trimesh.Trimesh(part.vertices / obj.scale, part.faces, process=False)
        _add_convex_collider(stage, f"/World/Objects/{obj.name}/collision/part_{k}", unscaled, UsdGeom.Tokens.guide)
    prim.SetCustomDataByKey("dpa_ros:collision", shape.method)
    if options.rigid_body:
        body = UsdPhysics.RigidBodyAPI.Apply(prim)
        body.CreateKinematicEnabledAttr(bool(options.static))
        mp = shape.mass
        mass = UsdPhysics.MassAPI.Apply(prim)
        mass.CreateMassAttr(float(mp.mass))
        # centre of mass in the prim's local (unscaled object) frame
        mass.CreateCenterOfMassAttr(Gf.Vec3f(*map(float, mp.center / obj.scale)))


def build_stage(objects: list[ExportObject], shapes: dict[str, CollisionShape], slabs: list[SupportSlab],
                patches: list[tuple[str, str, trimesh.Trimesh]], world: WorldFrame,
                options: ExportOptions) -> Usd.Stage:
    """An in-memory stage holding the scene; ``shapes`` by object name from
    :func:`collision.collision_shapes`, ``slabs`` from :func:`collision.support_slabs`, ``patches``
    from :func:`meshes.plane_patches`."""
    stage = Usd.Stage.CreateInMemory()
    UsdGeom.SetStageUpAxis(stage, UsdGeom.Tokens.z)
    UsdGeom.SetStageMetersPerUnit(stage, 1.0)
    UsdPhysics.SetStageKilogramsPerUnit(stage, 1.0)
    root = UsdGeom.Xform.Define(stage, "/World")
    stage.SetDefaultPrim(root.GetPrim())
    stage.GetRootLayer().customLayerData = {"dpa_ros_world_frame": _jsonable_to_vt(world.metadata())}
    physics = UsdPhysics.Scene.Define(stage, "/World/PhysicsScene")
    physics.CreateGravityDirectionAttr(Gf.Vec3f(0.0, 0.0, -1.0))
    physics.CreateGravityMagnitudeAttr(GRAVITY_M_S2)
    UsdGeom.Scope.Define(stage, "/World/Objects")
    for obj in objects:
        _add_object(stage, obj, shapes[obj.name], options)
    UsdGeom.Scope.Define(stage, "/World/Supports")
    for slab in slabs:
        prim = _add_convex_collider(stage, f"/World/Supports/{slab.name}", slab.mesh, UsdGeom.Tokens.default_)
        prim.GetPrim().SetCustomDataByKey("dpa_ros:label", "support")
    UsdGeom.Scope.Define(stage, "/World/Background")
    for name, label, patch in patches:
        mesh = _define_mesh(stage, f"/World/Background/{name}", patch.vertices, patch.faces, None)
        mesh.MakeInvisible()
        mesh.GetPrim().SetCustomDataByKey("dpa_ros:label", label)
        UsdPhysics.CollisionAPI.Apply(mesh.GetPrim())
        UsdPhysics.MeshCollisionAPI.Apply(mesh.GetPrim()).CreateApproximationAttr(UsdPhysics.Tokens.none)
    return stage


def write_usd(path: Path, stage: Usd.Stage) -> Path:
    """Export ``stage`` to ``path`` atomically; the suffix (.usda / .usdc) picks the format."""
    def export(tmp: Path) -> None:  # the temporary file keeps the suffix, so the format follows it
        if not stage.GetRootLayer().Export(str(tmp)):
            raise OSError(f"USD could not write {path}")

    return atomic_write(path, export)
