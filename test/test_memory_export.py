"""A scene memory exported for simulators: the floor and gravity kept in the fixed frame, no ROS.

Three views of dpa_testing.synthetic_views (floor z = 0 and a back wall in a z-up world) are
fitted by the real layout solver (dpa_ros.assemble, given masks and meshes), merged into a
SceneMemory and exported to MJCF, SDF and USD by the project's exporters; the files are read back
with MuJoCo, lxml (and libsdformat when installed) and usd-core, and the MJCF is simulated by
dpa_ros.export.sim_check. The fixed frame is either that world (its origin lies on the floor, the
case a camera-frame floor rule cannot handle) or a frame tilted and lifted off it.
"""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import trimesh
from export_scenes import run_sdf_check, sdformat_pkg
from lxml import etree
from pxr import Sdf, Usd, UsdGeom, UsdPhysics

from dpa_ros.assemble import Instance, assemble_scene
from dpa_ros.core.scene import Background, Plane, Scene, read_scene, write_scene
from dpa_ros.export import ExportError, ExportOptions, export_scene, world_frame
from dpa_ros.export.sim_check import check_scene
from dpa_ros.geometry.layout import LayoutConfig
from dpa_ros.memory import MemoryConfig, SceneMemory
from dpa_ros.memory_background import BackgroundMemory, plane_to_frame
from dpa_testing import synthetic_views as sv

mujoco = pytest.importorskip("mujoco", reason="the sim check simulates in MuJoCo (PyPI mujoco)")

LAYOUT = LayoutConfig(points=300, iterations=80, restarts=4, seed=0)
POSES = [(-0.4, 0.0, -8.0), (0.0, 0.0, 0.0), (0.4, 0.0, 8.0)]


def rot_x(deg: float) -> np.ndarray:
    a = np.radians(deg)
    T = np.eye(4)
    T[1:3, 1:3] = [[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]]
    return T


#: fixed frame → the rendered world: the world itself (odom on the floor), and a frame turned 20°
#: about x, 0.2 m off the floor and 0.3 m to the side.
TILTED = rot_x(20.0)
TILTED[:3, 3] = [0.3, 0.0, 0.2]
FRAMES = {"odom_on_floor": np.eye(4), "tilted": TILTED}


@pytest.fixture(scope="module")
def fits():
    """The default objects, the three views, and each view fitted by the layout solver."""
    objects = sv.default_objects()
    views = [sv.render_view(objects, sv.camera_pose(*p)) for p in POSES]
    out = []
    for view in views:
        instances = [Instance(o.label, 1.0, m, [o.mesh]) for o, m in zip(objects, view.masks)]
        out.append(assemble_scene(view.rgb, view.depth, view.camera, instances, config=LAYOUT))
    return objects, views, out


def memory_scene(fits, T_world_fixed: np.ndarray) -> Scene:
    objects, views, scenes = fits
    memory = SceneMemory(MemoryConfig(forget_after=2))
    T_fixed_world = np.linalg.inv(T_world_fixed)
    for view, scene in zip(views, scenes):
        memory.observe(scene, T_fixed_world @ view.T_world_camera, view.depth, view.masks)
    return memory.to_scene("odom", scenes[-1])


def to_world(T_world_fixed: np.ndarray, points: np.ndarray) -> np.ndarray:
    return points @ T_world_fixed[:3, :3].T + T_world_fixed[:3, 3]


@pytest.mark.parametrize("frame", sorted(FRAMES))
def test_memory_scene_keeps_the_floor_and_gravity_of_the_fixed_frame(fits, frame):
    T_world_fixed = FRAMES[frame]
    scene = memory_scene(fits, T_world_fixed)
    assert scene.frame_id == "odom" and scene.in_fixed_frame
    np.testing.assert_allclose(scene.T_frame_camera, np.linalg.inv(T_world_fixed) @ fits[1][-1].T_world_camera,
                               atol=1e-9)
    floor = scene.background.floor
    up = T_world_fixed[:3, :3].T @ [0.0, 0.0, 1.0]  # the world's up in the fixed frame
    assert np.degrees(np.arccos(floor.normal @ up)) < 1.0
    # the floor's offset: the fixed frame's origin is T_world_fixed[2, 3] above the floor
    assert floor.offset == pytest.approx(T_world_fixed[2, 3], abs=0.01)
    assert scene.background.gravity_source == "floor"
    np.testing.assert_allclose(scene.background.gravity, -floor.normal)
    world = world_frame(scene, ExportOptions())
    assert world.source == "fixed_floor" and world.camera_frame_id == "odom"
    # export world = the rendered world, levelled: up and origin from the floor
    T_w = world.T_world_camera @ np.linalg.inv(T_world_fixed)  # rendered world → export world
    assert np.degrees(np.arccos(np.clip(T_w[2, 2], -1, 1))) < 1.0
    assert abs(T_w[2, 3]) < 0.01
    if frame == "odom_on_floor":
        np.testing.assert_allclose(world.T_world_camera, np.eye(4), atol=0.02)
    assert world.camera_height_m == pytest.approx(fits[1][-1].T_world_camera[2, 3], abs=0.01)
    assert sorted(o.label for o in scene.objects) == sorted(o.label for o in fits[0])
    for obj in scene.objects:
        bottom = to_world(T_world_fixed, obj.mesh_in_camera().vertices)[:, 2].min()
        assert abs(bottom) < 0.01, (obj.label, bottom)       # rests on the floor, neither sunk nor floating
        assert obj.support == "floor" and obj.penetration_after_m < 0.002


@pytest.fixture(scope="module")
def exported(fits, tmp_path_factory):
    """The memory in the on-floor odom frame written as a scene directory and exported by the exporters."""
    out = tmp_path_factory.mktemp("memory_export")
    write_scene(memory_scene(fits, np.eye(4)), out)
    export_scene(out, ["mjcf", "gazebo", "usd"])
    return out


def test_memory_scene_json_round_trips_its_fixed_frame(exported):
    scene = read_scene(exported)
    assert scene.in_fixed_frame and scene.frame_id == "odom" and scene.background.floor is not None
    assert world_frame(scene, ExportOptions()).source == "fixed_floor"


def test_mjcf_has_the_floor_and_the_objects_rest_on_it_in_mujoco(exported, fits):
    model = mujoco.MjModel.from_xml_path(str(exported / "mujoco" / "scene.xml"))
    np.testing.assert_allclose(model.opt.gravity, [0, 0, -9.80665])
    floor = model.geom("floor")
    assert floor.type[0] == mujoco.mjtGeom.mjGEOM_PLANE and floor.pos[2] == pytest.approx(0.0, abs=1e-9)
    report = check_scene(exported, duration_s=2.0)
    assert not report.written_mjcf
    assert sorted(o.label for o in report.objects) == sorted(o.label for o in fits[0])
    for o in report.objects:
        assert o.penetration_t0_m < 0.005, o
        assert o.stable and o.drift_m < 0.01, o
    # after 2 s every object touches the floor geom: it rests on it (nothing floats, nothing fell through)
    data = mujoco.MjData(model)
    mujoco.mj_step(model, data, nstep=int(2.0 / model.opt.timestep))
    touching = set()
    for c in data.contact[:data.ncon]:
        geoms = {int(c.geom1), int(c.geom2)}
        if floor.id in geoms:
            touching |= {int(model.geom_bodyid[g]) for g in geoms - {floor.id}}
    assert touching == {model.body(o.name).id for o in report.objects}


def test_sdf_world_has_gravity_and_a_ground_plane_at_z0(exported, tmp_path):
    world = etree.parse(str(exported / "gazebo" / "scene.sdf")).getroot().find("world")
    assert [float(v) for v in world.find("gravity").text.split()] == [0, 0, -9.80665]
    ground = world.find("model[@name='ground_plane']")
    assert [float(v) for v in ground.find("link/collision/geometry/plane/normal").text.split()] == [0, 0, 1]
    pose = ground.find("pose")
    assert pose is None or abs(float(pose.text.split()[2])) < 1e-9
    lowest = []
    for inc in world.findall("include"):
        name = inc.find("name").text
        model = etree.parse(str(exported / "gazebo" / name / "model.sdf")).getroot().find("model")
        visual = trimesh.load(exported / "gazebo" / name / model.find("link/visual/geometry/mesh/uri").text,
                              process=False, skip_materials=True)
        x, y, z, roll, pitch, yaw = (float(v) for v in inc.find("pose").text.split())
        from scipy.spatial.transform import Rotation
        v = visual.vertices @ Rotation.from_euler("xyz", [roll, pitch, yaw]).as_matrix().T + [x, y, z]
        lowest.append(v[:, 2].min())
    assert len(lowest) == 3 and max(abs(z) for z in lowest) < 0.01
    if sdformat_pkg() is not None:
        run = run_sdf_check(exported / "gazebo", tmp_path)
        assert run.returncode == 0 and "ERROR" not in run.stdout, run.stdout + run.stderr


def test_usd_stage_is_z_up_with_a_floor_collider(exported):
    layer = Sdf.Layer.FindOrOpen(str(exported / "scene.usda"))
    layer.Reload()
    stage = Usd.Stage.Open(layer)
    assert UsdGeom.GetStageUpAxis(stage) == UsdGeom.Tokens.z
    physics = UsdPhysics.Scene(stage.GetPrimAtPath("/World/PhysicsScene"))
    assert list(physics.GetGravityDirectionAttr().Get()) == [0, 0, -1]
    assert stage.GetRootLayer().customLayerData["dpa_ros_world_frame"]["source"] == "fixed_floor"
    floors = [p for p in stage.GetPrimAtPath("/World/Background").GetChildren() if p.GetName().startswith("floor")]
    assert len(floors) == 1 and floors[0].HasAPI(UsdPhysics.CollisionAPI)
    pts = np.array(UsdGeom.Mesh(floors[0]).GetPointsAttr().Get())
    M = np.array(UsdGeom.Xformable(floors[0]).ComputeLocalToWorldTransform(Usd.TimeCode.Default())).T
    np.testing.assert_allclose(pts @ M[:3, :3].T[:, 2] + M[2, 3], 0.0, atol=1e-6)


def test_fixed_frame_world_rules_and_errors():
    camera = fits_camera()
    T = np.eye(4)
    T[:3, 3] = [0.0, 0.0, 1.2]
    floor = Plane("floor", np.array([0.0, 0.0, -1.0]), 0.0)  # through odom's origin, normal given downwards
    scene = Scene(camera=camera, background=Background(planes=[floor]), T_frame_camera=T)
    world = world_frame(scene, ExportOptions())
    np.testing.assert_allclose(world.T_world_camera[:3, 2], [0, 0, 1], atol=1e-12)  # turned to the camera's side
    assert world.camera_height_m == pytest.approx(1.2)
    # a sensor's gravity decides the side when it does not come from the floor
    given = dataclasses.replace(scene, background=Background([floor], np.array([0.0, 0.0, -1.0]), "imu"))
    assert world_frame(given, ExportOptions()).T_world_camera[2, 2] == pytest.approx(1.0)
    # gravity only: minus gravity is up, the origin stays; nothing: the fixed frame as it is
    tilted = dataclasses.replace(scene, background=Background([], np.array([0.0, -1.0, 0.0]), "imu"))
    w = world_frame(tilted, ExportOptions())
    assert w.source == "fixed_gravity" and w.camera_height_m is None
    np.testing.assert_allclose(w.T_world_camera[2, :3], [0, 1, 0], atol=1e-12)
    bare = dataclasses.replace(scene, background=Background())
    assert world_frame(bare, ExportOptions()).source == "fixed_frame"
    np.testing.assert_allclose(world_frame(bare, ExportOptions()).T_world_camera, np.eye(4))
    with pytest.raises(ExportError, match="fixed frame 'odom'"):
        world_frame(scene, ExportOptions(world_source="pitch_roll"))
    with pytest.raises(ExportError, match="no floor plane"):
        world_frame(bare, ExportOptions(world_source="floor"))
    on_floor = dataclasses.replace(scene, T_frame_camera=np.eye(4))
    with pytest.raises(ExportError, match="passes through the latest camera"):
        world_frame(on_floor, ExportOptions())
    # the single-view rule is unchanged: the same plane in a camera frame is still refused
    with pytest.raises(ExportError, match="passes through the camera"):
        world_frame(dataclasses.replace(scene, T_frame_camera=None), ExportOptions())


def fits_camera():
    from dpa_ros.core.camera import CameraModel
    return CameraModel.from_fov(64, 48, 60.0, frame_id="odom")


def test_background_memory_keeps_the_consensus_floor():
    T = np.eye(4)
    T[:3, :3] = rot_x(-90.0)[:3, :3]  # optical z forward = fixed y, optical y down = fixed -z
    T[:3, 3] = [0.0, 0.0, 1.5]
    floor_optical = Plane("floor", np.array([0.0, -1.0, 0.0]), 1.5, inlier_count=100)  # y = 1.5 m below
    carried = plane_to_frame(floor_optical, T)
    np.testing.assert_allclose(carried.normal, [0, 0, 1], atol=1e-12)
    assert carried.offset == pytest.approx(0.0, abs=1e-12)
    memory = BackgroundMemory()
    for k in range(3):
        memory.observe(Background([dataclasses.replace(floor_optical, offset=1.5 + 0.01 * (k - 1))]), T)
    table = Plane("floor", np.array([0.0, -1.0, 0.0]), 0.75, inlier_count=250)  # a table top taken for the floor
    memory.observe(Background([table, Plane("wall", np.array([0.0, 0.0, -1.0]), 3.0)]), T)
    bg = memory.background()
    assert bg.floor.offset == pytest.approx(0.0, abs=1e-9) and bg.gravity_source == "floor"
    assert [p.label for p in bg.planes] == ["floor", "wall"]
    memory.clear()
    assert memory.background().floor is None and memory.background().gravity is None
