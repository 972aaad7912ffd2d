"""dpa_ros.export: every export is read back with a real parser and compared with ground truth.

The scenes come from export_scenes.py: a camera 1.5 m above a floor, pitched down 20°, three
objects resting on the floor at known world poses. The export's world frame convention is the
ground-truth world, so exported coordinates must equal the ground-truth ones.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import trimesh
from export_scenes import (
    CAMERA_HEIGHT,
    gt_objects,
    gt_T_world_camera,
    make_scene,
    run_sdf_check,
    sdformat_pkg,
    similarity,
)
from lxml import etree
from pxr import Sdf, Usd, UsdGeom, UsdPhysics, UsdValidation
from scipy.spatial.transform import Rotation

from dpa_ros.core.scene import SceneFormatError, SceneObject, read_scene, write_scene
from dpa_ros.export import ExportError, ExportOptions, export_scene, world_frame

DENSITY = 500.0
GT = {i: (label, mesh, T_wo, s) for i, label, mesh, T_wo, s in gt_objects()}


def placed(obj_id: int) -> np.ndarray:
    """Ground-truth world vertices of an object."""
    _, mesh, T_wo, _ = GT[obj_id]
    return mesh.vertices @ T_wo[:3, :3].T + T_wo[:3, 3]


def angle_to_z_deg(normal: np.ndarray) -> float:
    n = normal / np.linalg.norm(normal)
    return float(np.degrees(np.arccos(np.clip(abs(n[2]), -1, 1))))


def plane_normal(points: np.ndarray) -> np.ndarray:
    """Least-squares plane normal (SVD) of (N, 3) points."""
    return np.linalg.svd(points - points.mean(axis=0))[2][-1]


def open_stage(path: Path) -> Usd.Stage:
    """Usd.Stage.Open, reloading the layer in case an earlier stage in this process still holds it."""
    layer = Sdf.Layer.FindOrOpen(str(path))
    layer.Reload()
    return Usd.Stage.Open(layer)


def hidden_files(root: Path) -> list[Path]:
    return [p for p in root.rglob(".*")]


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A pitched-camera scene written with write_scene and exported in every format (usdc too)."""
    out = tmp_path_factory.mktemp("scene")
    write_scene(make_scene(), out)
    written = export_scene(out, options=ExportOptions(usdc=True, density_kg_m3=DENSITY))
    return out, written


# ---------------------------------------------------------------- world frame


def test_world_frame_from_pitched_floor_is_ground_truth():
    world = world_frame(make_scene(), ExportOptions())
    assert world.source == "floor"
    assert world.camera_height_m == pytest.approx(CAMERA_HEIGHT)
    np.testing.assert_allclose(world.T_world_camera, gt_T_world_camera(), atol=1e-9)


def test_world_frame_without_floor_from_options():
    scene = make_scene(with_floor=False)
    gt = gt_T_world_camera()
    pitch = world_frame(scene, ExportOptions(camera_pitch_deg=20.0, camera_height_m=CAMERA_HEIGHT))
    assert pitch.source == "pitch_roll"
    np.testing.assert_allclose(pitch.T_world_camera, gt, atol=1e-9)

    level = world_frame(scene, ExportOptions())  # no floor, no height: origin at the camera, level
    np.testing.assert_allclose(level.T_world_camera[:3, 3], 0.0)
    np.testing.assert_allclose(level.T_world_camera[:3, :3] @ [0, -1, 0], [0, 0, 1], atol=1e-12)

    rolled = world_frame(scene, ExportOptions(world_source="pitch_roll", camera_roll_deg=10.0))
    right_in_world = rolled.T_world_camera[:3, :3] @ [1.0, 0.0, 0.0]
    assert right_in_world[2] == pytest.approx(-np.sin(np.radians(10.0)))  # right side down

    scene.background.gravity = gt[:3, :3].T @ np.array([0.0, 0.0, -1.0])
    grav = world_frame(scene, ExportOptions(camera_height_m=CAMERA_HEIGHT))
    assert grav.source == "gravity"
    np.testing.assert_allclose(grav.T_world_camera, gt, atol=1e-9)

    T = similarity(Rotation.from_euler("xyz", [0.3, -0.2, 1.0]).as_matrix(), [1.0, 2.0, 3.0], 1.0)
    given = world_frame(scene, ExportOptions(world_source="matrix", T_world_camera=T))
    np.testing.assert_allclose(given.T_world_camera, T)


def test_world_frame_errors():
    with pytest.raises(ExportError, match="no floor"):
        world_frame(make_scene(with_floor=False), ExportOptions(world_source="floor"))
    with pytest.raises(ExportError, match="rigid"):
        world_frame(make_scene(), ExportOptions(world_source="matrix", T_world_camera=np.diag([2.0, 1, 1, 1])))
    with pytest.raises(ExportError, match="needs T_world_camera"):
        ExportOptions(world_source="matrix")
    scene = make_scene()
    floor = scene.background.planes[0]
    floor.normal, floor.offset = -floor.normal, -floor.offset  # same plane, normal facing away
    np.testing.assert_allclose(world_frame(scene, ExportOptions()).T_world_camera, gt_T_world_camera(), atol=1e-9)
    floor.offset = 0.0
    with pytest.raises(ExportError, match="passes through the camera"):
        world_frame(scene, ExportOptions())
    with pytest.raises(ExportError, match="collision"):
        ExportOptions(collision="boxes")


# ---------------------------------------------------------------- GLB / OBJ / PLY


def test_glb_nodes_poses_colours_and_floor(exported):
    out, written = exported
    assert written["glb"] == [out / "scene.glb"]
    glb = trimesh.load(out / "scene.glb")
    assert isinstance(glb, trimesh.Scene)
    assert glb.metadata["dpa_ros_world_frame"]["up_axis"] == "Z"  # the world frame the file describes
    assert glb.metadata["dpa_ros_world_frame"]["gltf_up_axis"] == "+Y"
    assert set(glb.graph.nodes_geometry) == {"dpa_object_1", "dpa_object_2", "dpa_object_5", "floor_0"}
    gltf_from_world = np.array([[1.0, 0, 0], [0, 0, 1.0], [0, -1.0, 0]])  # (x, y, z) -> (x, z, -y)
    for obj_id, (label, mesh, _, _) in GT.items():
        name = f"dpa_object_{obj_id}"
        T_node, geom_name = glb.graph[name]
        geom = glb.geometry[geom_name]
        assert len(geom.vertices) == len(mesh.vertices)
        assert geom.metadata["label"] == label
        gltf_verts = geom.vertices @ T_node[:3, :3].T + T_node[:3, 3]
        np.testing.assert_allclose(gltf_verts, placed(obj_id) @ gltf_from_world.T, atol=1e-5)
        np.testing.assert_array_equal(geom.visual.vertex_colors, mesh.visual.vertex_colors)
    T_floor, floor_geom = glb.graph["floor_0"]
    floor = glb.geometry[floor_geom].copy()
    floor.apply_transform(T_floor)
    # glTF 2.0: +Y is up, so the floor's normal is +Y and the floor lies at y = 0
    np.testing.assert_allclose(floor.face_normals[0], [0.0, 1.0, 0.0], atol=0.02)
    np.testing.assert_allclose(floor.vertices[:, 1], 0.0, atol=1e-6)
    assert all(floor.vertices[:, 1].max() < glb.geometry[glb.graph[f"dpa_object_{i}"][1]].copy().apply_transform(
        glb.graph[f"dpa_object_{i}"][0]).vertices[:, 1].max() for i in GT)  # every object stands above it
    # the patch covers the floor cloud (x 1..5, y -2..2) plus the margin
    assert floor.bounds[0][0] < 1.0 and floor.bounds[1][0] > 5.0


def test_obj_world_meshes_with_mtl_and_vertex_colours(exported):
    out, written = exported
    assert sorted(p.name for p in written["obj"]) == sorted(
        f"dpa_object_{i}.{ext}" for i in GT for ext in ("obj", "mtl"))
    for obj_id, (_, mesh, _, _) in GT.items():
        path = out / "obj_world" / f"dpa_object_{obj_id}.obj"
        loaded = trimesh.load(path, process=False, skip_materials=True)
        assert len(loaded.vertices) == len(mesh.vertices)
        np.testing.assert_allclose(loaded.vertices, placed(obj_id), atol=1e-5)
        np.testing.assert_allclose(loaded.bounds, trimesh.Trimesh(placed(obj_id), mesh.faces).bounds, atol=1e-5)
        np.testing.assert_array_equal(loaded.visual.vertex_colors, mesh.visual.vertex_colors)
        with_mtl = trimesh.load(path, process=False)
        kd = np.asarray(with_mtl.visual.material.diffuse)[:3]
        np.testing.assert_allclose(kd, mesh.visual.vertex_colors[0, :3], atol=1)
        assert "z up" in path.read_text().splitlines()[0]


def test_world_cloud_ply_has_horizontal_floor_and_colours(exported):
    out, written = exported
    assert written["ply"] == [out / "scene_cloud_world.ply"]
    cloud = trimesh.load(out / "scene_cloud_world.ply")
    assert len(cloud.vertices) == 400
    np.testing.assert_allclose(cloud.vertices[:, 2], 0.0, atol=1e-5)
    assert angle_to_z_deg(plane_normal(np.asarray(cloud.vertices))) < 1.0
    np.testing.assert_array_equal(np.asarray(cloud.colors)[:, :3], np.tile([90, 80, 70], (400, 1)))
    assert b"comment dpa_ros world_frame" in (out / "scene_cloud_world.ply").read_bytes()[:2000]


def test_scene_json_files_keep_their_meaning(exported):
    out, _ = exported
    again = read_scene(out)
    original = make_scene()
    for a, b in zip(again.objects, original.objects):
        np.testing.assert_allclose(a.mesh.vertices, b.mesh.vertices, atol=1e-6)  # object frame
        np.testing.assert_allclose(a.T_camera_object, b.T_camera_object)
    np.testing.assert_allclose(again.cloud_points, original.cloud_points, atol=1e-6)  # optical frame


# ---------------------------------------------------------------- Gazebo


def _floats(el) -> np.ndarray:
    return np.array([float(v) for v in el.text.split()])


# The subset of the SDFormat 1.9 specification (sdformat.org, sdf/1.9/*.sdf) that the exporter
# uses: allowed children of each element and the children that are required.
SDF_CHILDREN = {
    "sdf": ({"world", "model"}, set()),
    "world": ({"gravity", "scene", "light", "model", "include", "physics", "plugin"}, set()),
    "include": ({"uri", "name", "pose", "static", "placement_frame", "plugin"}, {"uri"}),
    "model": ({"static", "self_collide", "allow_auto_disable", "pose", "link", "joint", "frame", "plugin",
               "include", "model", "enable_wind"}, set()),
    "link": ({"inertial", "visual", "collision", "pose", "gravity", "kinematic", "self_collide", "sensor"}, set()),
    "inertial": ({"mass", "pose", "inertia"}, set()),
    "inertia": ({"ixx", "ixy", "ixz", "iyy", "iyz", "izz"}, {"ixx", "ixy", "ixz", "iyy", "iyz", "izz"}),
    "visual": ({"geometry", "material", "pose", "cast_shadows", "transparency"}, {"geometry"}),
    "collision": ({"geometry", "pose", "surface", "laser_retro", "max_contacts"}, {"geometry"}),
    "mesh": ({"uri", "scale", "submesh"}, {"uri"}),
    "plane": ({"normal", "size"}, {"normal", "size"}),
    "light": ({"cast_shadows", "pose", "diffuse", "specular", "direction", "attenuation", "intensity"}, set()),
    "scene": ({"ambient", "background", "shadows", "grid", "sky", "fog"}, set()),
    "material": ({"ambient", "diffuse", "specular", "emissive", "script", "pbr"}, set()),
}
SDF_NAMED = {"world", "model", "link", "visual", "collision", "light"}


def _check_sdf_structure(root) -> None:
    """What SDFormat 1.9 requires of the elements we emit (no schema file is shipped for it)."""
    assert root.tag == "sdf"
    major, minor = (int(v) for v in root.get("version").split("."))
    assert (major, minor) >= (1, 9)
    for el in root.iter(etree.Element):
        children = [c.tag for c in el.iterchildren(etree.Element)]
        if el.tag in SDF_CHILDREN:
            allowed, required = SDF_CHILDREN[el.tag]
            assert set(children) <= allowed, f"<{el.tag}> may not hold {set(children) - allowed}"
            assert required <= set(children), f"<{el.tag}> misses {required - set(children)}"
        if el.tag in SDF_NAMED:
            assert el.get("name"), f"<{el.tag}> needs a name attribute"
        if el.tag in ("world", "model", "link"):
            names = [(c.tag, c.get("name")) for c in el.iterchildren(etree.Element) if c.get("name")]
            assert len(names) == len(set(names)), f"duplicate names under <{el.tag}>"
        if el.tag == "pose":
            assert len(_floats(el)) == 6
        if el.tag == "geometry":
            assert len(children) == 1 and children[0] in ("mesh", "plane", "box")
        if el.tag == "light":
            assert el.get("type") in ("point", "directional", "spot")


def test_gazebo_world_and_models(exported):
    out, _ = exported
    gz = out / "gazebo"
    world_xml = etree.parse(str(gz / "scene.sdf")).getroot()
    _check_sdf_structure(world_xml)
    world = world_xml.find("world")
    assert world.find("light").get("type") == "directional"
    ground = world.find("model[@name='ground_plane']")
    assert ground.find("static").text == "true"
    np.testing.assert_allclose(_floats(ground.find("link/collision/geometry/plane/normal")), [0, 0, 1])
    np.testing.assert_allclose(_floats(world.find("gravity")), [0, 0, -9.80665])
    includes = world.findall("include")
    assert len(includes) == len(GT)
    for inc in includes:
        name = inc.find("name").text
        obj_id = int(name.rsplit("_", 1)[1])
        label, mesh, T_wo, scale = GT[obj_id]
        pose = _floats(inc.find("pose"))
        np.testing.assert_allclose(pose[:3], T_wo[:3, 3], atol=1e-6)
        np.testing.assert_allclose(Rotation.from_euler("xyz", pose[3:]).as_matrix(), T_wo[:3, :3] / scale, atol=1e-6)
        uri = inc.find("uri").text
        assert uri == f"model://{name}"
        model_dir = gz / uri.removeprefix("model://")
        config = etree.parse(str(model_dir / "model.config")).getroot()
        model_file = model_dir / config.find("sdf").text
        assert config.find("sdf").get("version") == "1.9" and model_file.is_file()
        model_xml = etree.parse(str(model_file)).getroot()
        _check_sdf_structure(model_xml)
        model = model_xml.find("model")
        assert model.get("name") == name and model.find("static").text == "false"
        link = model.find("link")
        mesh_uris = [u.text for u in link.iter("uri")]
        assert len(mesh_uris) == 2
        for u in mesh_uris:
            assert (model_file.parent / u).is_file(), u
        visual = trimesh.load(model_file.parent / link.find("visual/geometry/mesh/uri").text, process=False,
                              skip_materials=True)
        np.testing.assert_allclose(visual.vertices, mesh.vertices * scale, atol=1e-5)  # link frame
        hull = trimesh.load(model_file.parent / link.find("collision/geometry/mesh/uri").text, process=False)
        assert hull.is_convex
        # mass = density × volume, inertia about the centre of mass, positive-definite
        expected = (mesh.copy().apply_scale(scale))
        mass = float(link.find("inertial/mass").text)
        assert mass == pytest.approx(DENSITY * expected.volume, rel=1e-6)
        keys = ("ixx", "ixy", "ixz", "iyy", "iyz", "izz")
        inertia = {k: float(link.find(f"inertial/inertia/{k}").text) for k in keys}
        tensor = np.array([[inertia["ixx"], inertia["ixy"], inertia["ixz"]],
                           [inertia["ixy"], inertia["iyy"], inertia["iyz"]],
                           [inertia["ixz"], inertia["iyz"], inertia["izz"]]])
        eig = np.linalg.eigvalsh(tensor)
        assert eig.min() > 0
        assert eig.max() <= eig.sum() - eig.max() + 1e-9  # triangle inequality of principal moments
        expected.density = DENSITY
        np.testing.assert_allclose(tensor, expected.moment_inertia, rtol=1e-6, atol=1e-9)
        np.testing.assert_allclose(_floats(link.find("inertial/pose"))[:3], expected.center_mass, atol=1e-6)


@pytest.mark.skipif(sdformat_pkg() is None, reason="libsdformat development files not installed (libsdformat-dev)")
def test_gazebo_world_loads_in_libsdformat(exported, tmp_path):
    """The parser gz sim uses loads the world as `cd gazebo && gz sim scene.sdf` would."""
    out, _ = exported
    run = run_sdf_check(out / "gazebo", tmp_path)
    assert run.returncode == 0 and "ERROR" not in run.stdout, run.stdout + run.stderr
    lines = [line.split() for line in run.stdout.splitlines()]
    assert lines[0][:3] == ["world", "dpa_scene", str(len(GT) + 1)]
    models = {ln[1]: ln for ln in lines if ln[0] == "model"}
    assert set(models) == {"ground_plane"} | {f"dpa_object_{i}" for i in GT}
    for obj_id, (_, mesh, T_wo, scale) in GT.items():
        m = models[f"dpa_object_{obj_id}"]
        np.testing.assert_allclose([float(v) for v in m[5:8]], T_wo[:3, 3], atol=1e-5)
        assert float(m[9]) == pytest.approx(DENSITY * mesh.volume * scale ** 3, rel=1e-4)
        assert m[11] == "1" and m[15] == "0"  # inertia valid (positive-definite, triangle inequality)


def test_gazebo_decomposition_and_static(tmp_path):
    scene = make_scene(with_cloud=False)
    ring = trimesh.creation.annulus(r_min=0.2, r_max=0.4, height=0.2, sections=24)  # not convex
    scene.objects = [SceneObject(id=9, label="ring", score=0.8, mesh=ring,
                                 T_camera_object=np.linalg.inv(gt_T_world_camera())
                                 @ similarity(np.eye(3), [3, 0, 0.1], 1.0))]
    written = export_scene(tmp_path, ["gazebo"], ExportOptions(collision="decomposition", max_convex_hulls=8,
                                                               static=True), scene=scene)
    model_file = tmp_path / "gazebo" / "dpa_object_9" / "model.sdf"
    assert model_file in written["gazebo"]
    link = etree.parse(str(model_file)).getroot().find("model/link")
    assert etree.parse(str(model_file)).getroot().find("model/static").text == "true"
    parts = [trimesh.load(model_file.parent / c.find("geometry/mesh/uri").text) for c in link.findall("collision")]
    assert len(parts) > 1
    assert all(p.is_convex for p in parts)
    # the parts together cover the ring but not its hole (a single hull would fill it)
    union_bounds = np.vstack([p.bounds for p in parts])
    np.testing.assert_allclose([union_bounds[:, 0].min(), union_bounds[:, 0].max()], [-0.4, 0.4], atol=0.03)
    assert sum(p.volume for p in parts) < 0.8 * ring.convex_hull.volume


# ---------------------------------------------------------------- USD


def _world_matrix(prim) -> np.ndarray:
    return np.array(UsdGeom.Xformable(prim).ComputeLocalToWorldTransform(Usd.TimeCode.Default())).T


@pytest.mark.parametrize("name", ["scene.usda", "scene.usdc"])
def test_usd_stage(exported, name):
    out, written = exported
    assert out / name in written["usd"]
    stage = open_stage(out / name)
    assert UsdGeom.GetStageUpAxis(stage) == UsdGeom.Tokens.z
    assert UsdGeom.GetStageMetersPerUnit(stage) == 1.0
    assert stage.GetDefaultPrim().GetPath() == "/World"
    # usd-core's own validators (stage metadata, physics rigid bodies / colliders, composition ...)
    validators = UsdValidation.ValidationRegistry().GetOrLoadAllValidators()
    assert "usdPhysicsValidators:ColliderChecker" in [v.GetMetadata().name for v in validators]
    problems = UsdValidation.ValidationContext(validators).Validate(stage)
    assert [(e.GetName(), e.GetMessage()) for e in problems] == []
    frame = stage.GetRootLayer().customLayerData["dpa_ros_world_frame"]
    assert frame["up_axis"] == "Z" and frame["source"] == "floor"
    scene_prim = stage.GetPrimAtPath("/World/PhysicsScene")
    assert scene_prim.IsA(UsdPhysics.Scene)
    bbox = UsdGeom.BBoxCache(Usd.TimeCode.Default(), [UsdGeom.Tokens.default_])
    for obj_id, (label, mesh, T_wo, scale) in GT.items():
        prim = stage.GetPrimAtPath(f"/World/Objects/dpa_object_{obj_id}")
        assert prim.IsValid() and prim.GetCustomDataByKey("dpa_ros:label") == label
        ops = [op.GetOpName() for op in UsdGeom.Xformable(prim).GetOrderedXformOps()]
        assert ops == ["xformOp:translate", "xformOp:orient", "xformOp:scale"]
        np.testing.assert_allclose(_world_matrix(prim), T_wo, atol=1e-6)
        mesh_prim = stage.GetPrimAtPath(f"/World/Objects/dpa_object_{obj_id}/mesh")
        usd_mesh = UsdGeom.Mesh(mesh_prim)
        assert len(usd_mesh.GetPointsAttr().Get()) == len(mesh.vertices)
        assert len(usd_mesh.GetDisplayColorPrimvar().Get()) == len(mesh.vertices)
        # world bounds: the object-frame box transformed and re-aligned, as BBoxCache computes it
        corners = trimesh.bounds.corners(mesh.bounds) @ T_wo[:3, :3].T + T_wo[:3, 3]
        rng = bbox.ComputeWorldBound(prim).ComputeAlignedRange()
        np.testing.assert_allclose([list(rng.GetMin()), list(rng.GetMax())],
                                   [corners.min(axis=0), corners.max(axis=0)], atol=1e-5)
        assert not mesh_prim.HasAPI(UsdPhysics.CollisionAPI)  # visual; the convex object collides as one part
        (part,) = stage.GetPrimAtPath(f"/World/Objects/dpa_object_{obj_id}/collision").GetChildren()
        assert part.HasAPI(UsdPhysics.CollisionAPI)
        assert UsdPhysics.MeshCollisionAPI(part).GetApproximationAttr().Get() == "convexHull"
        assert UsdGeom.Imageable(part).ComputePurpose() == UsdGeom.Tokens.guide
        assert prim.HasAPI(UsdPhysics.RigidBodyAPI) and prim.HasAPI(UsdPhysics.MassAPI)
        assert UsdPhysics.RigidBodyAPI(prim).GetKinematicEnabledAttr().Get() is False
        volume = mesh.volume * scale ** 3
        assert UsdPhysics.MassAPI(prim).GetMassAttr().Get() == pytest.approx(DENSITY * volume, rel=1e-5)
    floor = stage.GetPrimAtPath("/World/Background/floor_0")
    assert floor.HasAPI(UsdPhysics.CollisionAPI)
    assert UsdGeom.Imageable(floor).ComputeVisibility() == UsdGeom.Tokens.invisible
    pts = np.array(UsdGeom.Mesh(floor).GetPointsAttr().Get())
    pts = pts @ _world_matrix(floor)[:3, :3].T + _world_matrix(floor)[:3, 3]
    assert angle_to_z_deg(plane_normal(pts)) < 1.0
    np.testing.assert_allclose(pts[:, 2], 0.0, atol=1e-6)


def test_usd_physics_options(tmp_path):
    write_scene(make_scene(with_cloud=False), tmp_path)
    export_scene(tmp_path, ["usd"], ExportOptions(rigid_body=False, collision="decomposition"))
    export_scene(tmp_path, ["gazebo"], ExportOptions(rigid_body=False))
    stage = open_stage(tmp_path / "scene.usda")
    prim = stage.GetPrimAtPath("/World/Objects/dpa_object_1")
    assert not prim.HasAPI(UsdPhysics.RigidBodyAPI) and not prim.HasAPI(UsdPhysics.MassAPI)
    parts = stage.GetPrimAtPath("/World/Objects/dpa_object_1/collision").GetChildren()
    assert len(parts) >= 1 and all(UsdPhysics.MeshCollisionAPI(p).GetApproximationAttr().Get() == "convexHull"
                                   for p in parts)
    assert stage.GetPrimAtPath("/World/Objects/dpa_object_1").GetCustomDataByKey("dpa_ros:collision") == "vhacd"
    assert not (tmp_path / "scene.usdc").exists()
    model = etree.parse(str(tmp_path / "gazebo" / "dpa_object_1" / "model.sdf")).getroot()
    assert model.find("model/static").text == "true"  # colliders only → static in Gazebo too

    export_scene(tmp_path, ["usd"], ExportOptions(static=True, overwrite=True))
    stage = open_stage(tmp_path / "scene.usda")
    body = UsdPhysics.RigidBodyAPI(stage.GetPrimAtPath("/World/Objects/dpa_object_1"))
    assert body.GetKinematicEnabledAttr().Get() is True


# ---------------------------------------------------------------- options, safety, errors


def test_glb_z_up_only_behind_its_flag(tmp_path):
    """ExportOptions(glb_z_up=True) / dpa-export --glb-z-up: the world frame's own coordinates, floor normal +Z."""
    write_scene(make_scene(with_cloud=False), tmp_path)
    export_scene(tmp_path, ["glb"], ExportOptions(glb_z_up=True))
    glb = trimesh.load(tmp_path / "scene.glb")
    assert glb.metadata["dpa_ros_world_frame"]["gltf_up_axis"] == "+Z"
    for obj_id, (_, _, T_wo, _) in GT.items():
        np.testing.assert_allclose(glb.graph[f"dpa_object_{obj_id}"][0], T_wo, atol=1e-5)
    floor = glb.geometry[glb.graph["floor_0"][1]].copy().apply_transform(glb.graph["floor_0"][0])
    assert angle_to_z_deg(floor.face_normals[0]) < 1.0 and floor.face_normals[0][2] > 0


def test_decimation_to_face_budget_keeps_colour_and_shape(tmp_path):
    write_scene(make_scene(with_cloud=False), tmp_path)
    export_scene(tmp_path, ["glb", "obj"], ExportOptions(face_budget=200))
    glb = trimesh.load(tmp_path / "scene.glb")
    _, sphere_geom = glb.graph["dpa_object_2"]
    sphere = glb.geometry[sphere_geom]
    assert 100 <= len(sphere.faces) <= 200 < len(GT[2][1].faces)
    assert (sphere.visual.vertex_colors[:, :3] == [40, 200, 40]).all()
    obj = trimesh.load(tmp_path / "obj_world" / "dpa_object_2.obj", process=False, skip_materials=True)
    assert len(obj.faces) <= 200
    centre = GT[2][2][:3, 3]
    radii = np.linalg.norm(obj.vertices - centre, axis=1)
    np.testing.assert_allclose(radii, 0.3, atol=0.02)  # still a sphere of radius 0.6 × 0.5
    box = glb.geometry[glb.graph["dpa_object_1"][1]]
    assert len(box.faces) == 12  # under budget: untouched


def test_refuses_to_overwrite_then_replaces_with_force(tmp_path):
    write_scene(make_scene(), tmp_path)
    export_scene(tmp_path, ["glb", "gazebo"])
    glb_bytes = (tmp_path / "scene.glb").read_bytes()
    stale = tmp_path / "gazebo" / "dpa_object_77"
    stale.mkdir()
    (stale / "model.sdf").write_text("stale")
    with pytest.raises(ExportError, match="gazebo.*overwrite"):
        export_scene(tmp_path, ["usd", "gazebo"])
    assert not (tmp_path / "scene.usda").exists()  # refused before anything was written
    with pytest.raises(ExportError, match="scene.glb"):
        export_scene(tmp_path, ["glb"])
    assert (tmp_path / "scene.glb").read_bytes() == glb_bytes
    (tmp_path / "obj_world").mkdir()  # an empty directory is not in the way
    export_scene(tmp_path, ["obj"])
    export_scene(tmp_path, ["glb", "gazebo"], ExportOptions(overwrite=True))
    assert not stale.exists()
    assert (tmp_path / "gazebo" / "dpa_object_1" / "model.sdf").is_file()
    assert hidden_files(tmp_path) == []


def test_failing_writer_leaves_no_partial_output(tmp_path):
    scene = make_scene()
    flat = trimesh.Trimesh([[0, 0, 0], [1, 0, 0], [0, 1, 0], [1, 1, 0]], [[0, 1, 2], [1, 3, 2]])
    scene.objects.append(SceneObject(id=8, label="poster", score=0.7, mesh=flat,
                                     T_camera_object=scene.objects[0].T_camera_object.copy()))
    with pytest.raises(ExportError, match=r"object 8 \(poster\).*no volume"):
        export_scene(tmp_path, ["gazebo"], scene=scene)  # fails after dpa_object_1.. were staged
    with pytest.raises(ExportError, match=r"object 8 \(poster\)"):
        export_scene(tmp_path, ["usd"], scene=scene)  # rigid bodies need a mass
    assert sorted(os.listdir(tmp_path)) == []
    # a failure of the overwriting export keeps the previous complete output
    good = make_scene()
    export_scene(tmp_path, ["gazebo"], scene=good)
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    with pytest.raises(ExportError):
        export_scene(tmp_path, ["gazebo"], ExportOptions(overwrite=True), scene=scene)
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before


def test_unusable_meshes_name_the_object(tmp_path):
    scene = make_scene()
    scene.objects[1].mesh = trimesh.Trimesh(vertices=np.zeros((3, 3)), faces=np.zeros((0, 3), int))
    with pytest.raises(ExportError, match=r"object 2 \(ball\): mesh has no faces"):
        export_scene(tmp_path, ["glb"], scene=scene)
    scene = make_scene()
    scene.objects[2].mesh.vertices[0] = np.nan
    with pytest.raises(ExportError, match=r"object 5 \(ashcan\): mesh has non-finite"):
        export_scene(tmp_path, ["obj"], scene=scene)
    scene = make_scene()
    scene.objects[0].T_camera_object[:3, :3] *= np.array([1.0, 2.0, 1.0])  # not a similarity
    with pytest.raises(ExportError, match=r"object 1 \(cabinet\): T_camera_object"):
        export_scene(tmp_path, ["usd"], scene=scene)
    write_scene(make_scene(), tmp_path)
    (tmp_path / "objects" / "2.obj").write_text("v 0 0 0\nthis is not an obj\n")
    with pytest.raises(SceneFormatError, match=r"objects/2\.obj"):
        export_scene(tmp_path, ["glb"])
    assert not (tmp_path / "scene.glb").exists()
    with pytest.raises(ExportError, match="unknown export format"):
        export_scene(tmp_path, ["fbx"], scene=make_scene())


def test_colour_sources_and_scene_without_objects(tmp_path):
    from PIL import Image
    from trimesh.visual import TextureVisuals
    from trimesh.visual.material import SimpleMaterial

    scene = make_scene(with_cloud=False)
    textured = trimesh.creation.box()
    image = Image.fromarray(np.full((4, 4, 3), [250, 5, 5], np.uint8))
    textured.visual = TextureVisuals(uv=textured.vertices[:, :2] + 0.5, image=image)
    plain_material = trimesh.creation.box()
    plain_material.visual = TextureVisuals(material=SimpleMaterial(diffuse=[10, 20, 30, 255]))
    bare = trimesh.Trimesh(GT[5][1].vertices, GT[5][1].faces)  # no colour at all
    for obj, mesh in zip(scene.objects, (textured, plain_material, bare)):
        obj.mesh = mesh
    export_scene(tmp_path / "a", ["glb"], scene=scene)
    glb = trimesh.load(tmp_path / "a" / "scene.glb")
    colour = {name: glb.geometry[glb.graph[name][1]].visual.vertex_colors[:, :3] for name in
              ("dpa_object_1", "dpa_object_2", "dpa_object_5")}
    assert (colour["dpa_object_1"] == [250, 5, 5]).all()
    assert (colour["dpa_object_2"] == [10, 20, 30]).all()
    assert (colour["dpa_object_5"] == [180, 180, 180]).all()

    scene.objects = []
    written = export_scene(tmp_path / "b", scene=scene)
    assert written["glb"] == [tmp_path / "b" / "scene.glb"]  # the floor patch alone
    assert written["ply"] == []  # no cloud
    world = etree.parse(str(tmp_path / "b" / "gazebo" / "scene.sdf")).getroot().find("world")
    assert world.findall("include") == [] and world.find("model[@name='ground_plane']") is not None
    stage = open_stage(tmp_path / "b" / "scene.usda")
    assert stage.GetPrimAtPath("/World/Objects").GetChildren() == []
    scene.background.planes = []
    assert export_scene(tmp_path / "c", ["glb"], scene=scene)["glb"] == []  # glTF cannot be empty
