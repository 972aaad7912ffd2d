"""The MJCF export and the collision geometry the simulator exports share, read back with real
parsers (lxml, MuJoCo, usd-core, trimesh): one body with a free joint per object, static floor
and support slabs, the same convex parts and masses in SDF, USD and MJCF."""
from __future__ import annotations

import numpy as np
import pytest
import trimesh
from export_scenes import gt_T_world_camera, make_scene, run_sdf_check, sdformat_pkg, similarity
from lxml import etree
from pxr import Sdf, Usd, UsdGeom, UsdPhysics

from dpa_ros.core.scene import Plane, SceneObject, write_scene
from dpa_ros.export import FORMATS, ExportOptions, export_scene, world_frame
from dpa_ros.export.collision import SLAB_THICKNESS_M, collision_shape
from dpa_ros.export.meshes import prepare_objects

mujoco = pytest.importorskip("mujoco", reason="the MJCF tests load the model in MuJoCo (PyPI mujoco)")

DENSITY = 600.0
TABLE_TOP_Z = 0.72
SUPPORT_Z = 0.45
SUPPORT_XY = ((2.0, 1.2), (2.6, 1.2), (2.6, 1.8), (2.0, 1.8))  # a shelf board, world x/y, metres


def table_mesh() -> trimesh.Trimesh:
    """A 0.8 × 0.6 m table, 0.72 m high, bottom at z = 0 (object frame = world axes)."""
    def box(extents, centre):
        return trimesh.creation.box(extents=extents, transform=trimesh.transformations.translation_matrix(centre))
    parts = [box([0.8, 0.6, 0.04], [0, 0, TABLE_TOP_Z - 0.02])]
    parts += [box([0.05, 0.05, 0.68], [x, y, 0.34]) for x in (-0.35, 0.35) for y in (-0.25, 0.25)]
    return trimesh.util.concatenate(parts)


def scene_with_table_and_support():
    """export_scenes' three convex objects, a table (id 7) and a support plane with a polygon."""
    scene = make_scene(with_cloud=False)
    T_wc = gt_T_world_camera()
    T_cw = np.linalg.inv(T_wc)
    scene.objects.append(SceneObject(id=7, label="table", score=0.9, mesh=table_mesh(),
                                     T_camera_object=T_cw @ similarity(np.eye(3), [3.2, 1.5, 0.0], 1.0)))
    up_c = T_wc[:3, :3].T @ np.array([0.0, 0.0, 1.0])
    corners_w = np.array([[x, y, SUPPORT_Z] for x, y in SUPPORT_XY])
    polygon = corners_w @ T_cw[:3, :3].T + T_cw[:3, 3]
    scene.background.planes.append(Plane(label="support", normal=up_c, offset=float(T_wc[2, 3] - SUPPORT_Z),
                                         inlier_count=300, polygon=polygon))
    return scene


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    out = tmp_path_factory.mktemp("mjcf_scene")
    scene = scene_with_table_and_support()
    write_scene(scene, out)
    written = export_scene(out, ["glb", "gazebo", "usd", "mjcf"], ExportOptions(density_kg_m3=DENSITY))
    return out, scene, written


def test_mjcf_is_a_default_format():
    assert "mjcf" in FORMATS


def test_auto_collision_decomposes_the_table_and_keeps_convex_objects_whole():
    scene = scene_with_table_and_support()
    options = ExportOptions(density_kg_m3=DENSITY)
    objects = {o.id: o for o in prepare_objects(scene, world_frame(scene, options), options)}
    table = collision_shape(objects[7], options)
    assert table.method == "vhacd" and len(table.parts) > 1
    assert all(p.is_convex for p in table.parts)
    # the parts follow the table, not its hull (which fills the space under the top)
    assert table.mass.volume < 0.5 * objects[7].mesh_link().convex_hull.volume
    assert table.mass.mass == pytest.approx(DENSITY * sum(p.volume for p in table.parts), rel=1e-9)
    repeat = collision_shape(objects[7], options)  # deterministic: the same parts every time
    assert all(np.array_equal(a.vertices, b.vertices) for a, b in zip(repeat.parts, table.parts, strict=True))
    for obj_id in (1, 2, 5):  # box, sphere, cylinder
        shape = collision_shape(objects[obj_id], options)
        assert shape.method == "convex_hull" and len(shape.parts) == 1
    coacd = collision_shape(objects[7], ExportOptions(decomposer="coacd"))
    assert coacd.method == "coacd" and len(coacd.parts) > 1
    again = collision_shape(objects[7], ExportOptions(decomposer="coacd"))
    assert all(np.array_equal(a.vertices, b.vertices) for a, b in zip(again.parts, coacd.parts, strict=True))


def _mj_body_geoms(model, body: int) -> list[int]:
    return [g for g in range(model.ngeom) if model.geom_bodyid[g] == body]


def test_mjcf_model_loads_with_free_bodies_static_floor_and_slab(exported):
    out, scene, written = exported
    xml_path = out / "mujoco" / "scene.xml"
    assert xml_path in written["mjcf"]
    root = etree.parse(str(xml_path)).getroot()
    assert root.tag == "mujoco"
    np.testing.assert_allclose([float(v) for v in root.find("option").get("gravity").split()], [0, 0, -9.80665])
    assert float(root.find("option").get("timestep")) == 0.002
    worldbody = root.find("worldbody")
    floor = worldbody.find("geom[@name='floor']")
    assert floor.get("type") == "plane" and float(floor.get("pos").split()[2]) == 0.0
    assert worldbody.find("geom[@name='support_1']") is not None
    bodies = worldbody.findall("body")
    assert sorted(b.get("name") for b in bodies) == sorted(f"dpa_object_{o.id}" for o in scene.objects)
    for body in bodies:
        assert body.find("freejoint") is not None and body.find("body") is None

    model = mujoco.MjModel.from_xml_path(str(xml_path))
    assert model.nbody == 1 + len(scene.objects)
    assert model.opt.gravity[2] == pytest.approx(-9.80665)
    for name in ("floor", "support_1"):
        assert model.geom_bodyid[model.geom(name).id] == 0  # the world body: static
    slab = model.geom("support_1")
    assert slab.type[0] == mujoco.mjtGeom.mjGEOM_MESH
    for obj in scene.objects:
        b = model.body(f"dpa_object_{obj.id}").id
        joints = [j for j in range(model.njnt) if model.jnt_bodyid[j] == b]
        assert len(joints) == 1 and model.jnt_type[joints[0]] == mujoco.mjtJoint.mjJNT_FREE
        colliding = [g for g in _mj_body_geoms(model, b) if model.geom_contype[g]]
        assert len(colliding) > 1 if obj.id == 7 else len(colliding) == 1
    data = mujoco.MjData(model)
    mujoco.mj_forward(model, data)
    T_wc = gt_T_world_camera()
    for obj in scene.objects:
        T_wo = T_wc @ obj.T_camera_object
        np.testing.assert_allclose(data.xpos[model.body(f"dpa_object_{obj.id}").id], T_wo[:3, 3], atol=1e-6)
    # the slab's top is the support plane, its bottom SLAB_THICKNESS_M lower
    slab_mesh = trimesh.load(out / "mujoco" / "meshes" / "support_1.obj", process=False)
    np.testing.assert_allclose(slab_mesh.bounds[:, 2], [SUPPORT_Z - SLAB_THICKNESS_M, SUPPORT_Z], atol=1e-6)
    np.testing.assert_allclose(slab_mesh.bounds[:, :2], [[2.0, 1.2], [2.6, 1.8]], atol=1e-6)


def _sdf_link(out, name):
    return etree.parse(str(out / "gazebo" / name / "model.sdf")).getroot().find("model/link")


def _open_stage(path) -> Usd.Stage:
    layer = Sdf.Layer.FindOrOpen(str(path))
    layer.Reload()
    return Usd.Stage.Open(layer)


def test_sdf_usd_and_mjcf_share_parts_masses_and_slab(exported):
    out, scene, _ = exported
    model = mujoco.MjModel.from_xml_path(str(out / "mujoco" / "scene.xml"))
    stage = _open_stage(out / "scene.usda")
    world_sdf = etree.parse(str(out / "gazebo" / "scene.sdf")).getroot().find("world")
    for obj in scene.objects:
        name = f"dpa_object_{obj.id}"
        link = _sdf_link(out, name)
        sdf_parts = [trimesh.load(out / "gazebo" / name / c.find("geometry/mesh/uri").text, process=False)
                     for c in link.findall("collision")]
        usd_parts = [p for p in stage.GetPrimAtPath(f"/World/Objects/{name}/collision").GetChildren()]
        mj_parts = [g for g in _mj_body_geoms(model, model.body(name).id) if model.geom_contype[g]]
        assert len(sdf_parts) == len(usd_parts) == len(mj_parts)
        assert (len(sdf_parts) > 1) == (obj.id == 7)
        for part in usd_parts:
            assert part.HasAPI(UsdPhysics.CollisionAPI)
            assert UsdPhysics.MeshCollisionAPI(part).GetApproximationAttr().Get() == "convexHull"
        assert not stage.GetPrimAtPath(f"/World/Objects/{name}/mesh").HasAPI(UsdPhysics.CollisionAPI)
        # the same part geometry (SDF in the link frame, USD unscaled under the scaled Xform)
        usd_points = np.array(UsdGeom.Mesh(usd_parts[0]).GetPointsAttr().Get()) * obj.scale
        np.testing.assert_allclose(np.sort(usd_points, axis=0), np.sort(sdf_parts[0].vertices, axis=0), atol=1e-5)
        sdf_mass = float(link.find("inertial/mass").text)
        assert sdf_mass == pytest.approx(DENSITY * sum(p.volume for p in sdf_parts), rel=1e-5)
        assert model.body_mass[model.body(name).id] == pytest.approx(sdf_mass, rel=1e-6)
        usd_mass = UsdPhysics.MassAPI(stage.GetPrimAtPath(f"/World/Objects/{name}")).GetMassAttr().Get()
        assert usd_mass == pytest.approx(sdf_mass, rel=1e-6)
        keys = ("ixx", "ixy", "ixz", "iyy", "iyz", "izz")
        inertia = {k: float(link.find(f"inertial/inertia/{k}").text) for k in keys}
        sdf_principal = np.linalg.eigvalsh(np.array([[inertia["ixx"], inertia["ixy"], inertia["ixz"]],
                                                     [inertia["ixy"], inertia["iyy"], inertia["iyz"]],
                                                     [inertia["ixz"], inertia["iyz"], inertia["izz"]]]))
        np.testing.assert_allclose(np.sort(model.body_inertia[model.body(name).id]), sdf_principal, rtol=1e-5)
    # the support slab, static, in all three (and drawn in the GLB)
    include = world_sdf.find("include[name='support_1']")
    assert include is not None
    slab_model = etree.parse(str(out / "gazebo" / "support_1" / "model.sdf")).getroot().find("model")
    assert slab_model.find("static").text == "true"
    slab_sdf = trimesh.load(out / "gazebo" / "support_1" / slab_model.find("link/collision/geometry/mesh/uri").text,
                            process=False)
    assert slab_sdf.is_convex
    np.testing.assert_allclose(slab_sdf.bounds[:, 2], [SUPPORT_Z - SLAB_THICKNESS_M, SUPPORT_Z], atol=1e-6)
    slab_usd = stage.GetPrimAtPath("/World/Supports/support_1")
    assert slab_usd.HasAPI(UsdPhysics.CollisionAPI) and not slab_usd.HasAPI(UsdPhysics.RigidBodyAPI)
    assert not stage.GetPrimAtPath("/World/Background/support_1").IsValid()  # the slab replaces the patch
    glb = trimesh.load(out / "scene.glb")
    assert "support_1" in glb.graph.nodes_geometry


def test_mjcf_static_objects_have_no_free_joint(tmp_path):
    write_scene(make_scene(with_cloud=False), tmp_path)
    export_scene(tmp_path, ["mjcf"], ExportOptions(static=True))
    model = mujoco.MjModel.from_xml_path(str(tmp_path / "mujoco" / "scene.xml"))
    assert model.njnt == 0 and model.nbody == 4


@pytest.mark.skipif(sdformat_pkg() is None, reason="libsdformat development files not installed (libsdformat-dev)")
def test_gazebo_world_with_table_and_slab_loads_in_libsdformat(exported, tmp_path):
    out, scene, _ = exported
    run = run_sdf_check(out / "gazebo", tmp_path)
    assert run.returncode == 0 and "ERROR" not in run.stdout, run.stdout + run.stderr
    models = {ln.split()[1]: ln.split() for ln in run.stdout.splitlines() if ln.startswith("model ")}
    assert set(models) == {"ground_plane", "support_1"} | {f"dpa_object_{o.id}" for o in scene.objects}
    assert models["support_1"][3] == "1"  # static
    model = mujoco.MjModel.from_xml_path(str(out / "mujoco" / "scene.xml"))
    table = model.body("dpa_object_7").id
    n_parts = len([g for g in _mj_body_geoms(model, table) if model.geom_contype[g]])
    assert int(models["dpa_object_7"][13]) == n_parts > 1
    assert float(models["dpa_object_7"][9]) == pytest.approx(model.body_mass[table], rel=1e-5)
