"""The node's scene memory over DDS: a real node (smoke profile, ``fixed_frame:=odom``,
``forget_after:=2``), an odometry process (test/odom_peer.py) publishing the camera's pose in
``odom`` on /tf, and Reconstruct goals carrying each view's known objects (goal ``instances``, real
mesh files under ``mesh_roots``).

One rendered scene (dpa_testing.synthetic_views: chair, cabinet, box on a floor before a wall;
the world frame is ``odom``) is seen from three camera poses, then without the box from where it
stood, then with the chair moved. Ground truth is the world objects' poses. The single-view
baseline is the same fit the node runs (dpa_ros.assemble with the smoke profile's layout and
physics settings) on each view in this process.
"""
from __future__ import annotations

import dataclasses
import subprocess
import sys
import time

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy", reason="rclpy missing: run under `. ./activate.sh` after `make setup`")
pytestmark = pytest.mark.ros

from action_msgs.msg import GoalStatus  # noqa: E402
from moveit_msgs.msg import CollisionObject  # noqa: E402
from scipy.spatial.transform import Rotation  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402
from std_srvs.srv import Trigger  # noqa: E402
from test_ros_node import (  # noqa: E402
    CAMERA,
    LATCHED,
    RGB,
    ROOT,
    Client,
    start_node,
    stop_node,
    table_depth_mm,
    wait_until,
)
from tf2_msgs.msg import TFMessage  # noqa: E402

from dpa_ros.assemble import Instance as LayoutInstance  # noqa: E402
from dpa_ros.assemble import assemble_scene  # noqa: E402
from dpa_ros.msg import Instance  # noqa: E402
from dpa_ros.pipeline import Pipeline  # noqa: E402
from dpa_ros.ros import conversions as conv  # noqa: E402
from dpa_ros.ros.planning import COLLISION_OBJECT_QOS  # noqa: E402
from dpa_testing import synthetic_views as sv  # noqa: E402

Forget = pytest.importorskip("dpa_ros.srv", reason="dpa_ros services not built: `make setup`").Forget

NS = "/dpa_memory_test"
NODE = f"{NS}/dpa_reconstructor"
FRAME = "memory_camera_optical_frame"
FIXED = "odom"
FORGET_AFTER = 2
POSES = [(-0.4, 0.0, -8.0), (0.0, 0.0, 0.0), (0.4, 0.0, 8.0)]  # camera (x, y, yaw deg) in odom, as test_memory
MIN_PIXELS = 30
TIMEOUT = 240.0
#: The smoke profile with test_memory's layout settings (the smoke profile's own layout is coarse:
#: its meshes are meaningless); no model is loaded, since goal instances need none.
MEMORY_PROFILE = """base: smoke
name: memory
layout: {points: 300, iterations: 80, restarts: 4, field_resolution: 48}
"""


def centre_error(T: np.ndarray, mesh_vertices: np.ndarray, truth: sv.WorldObject) -> float:
    """Distance (m) between the placed mesh's box centre and the ground truth's."""
    c = (mesh_vertices.min(0) + mesh_vertices.max(0)) / 2.0
    g = truth.mesh.bounds.mean(0)
    G = truth.T_world_object
    return float(np.linalg.norm(T[:3, :3] @ c + T[:3, 3] - (G[:3, :3] @ g + G[:3, 3])))


def msg_error(obj, truth: sv.WorldObject) -> float:
    verts = np.array([(p.x, p.y, p.z) for p in obj.mesh.vertices])
    return centre_error(conv.pose_to_matrix(obj.pose, obj.scale), verts, truth)


class MemoryClient(Client):
    """Client plus CollisionObjects and the memory services."""

    def __init__(self) -> None:
        super().__init__(NS)
        self.collision: list[CollisionObject] = []
        # the node's own QoS (depth 100): one scene's REMOVEs and ADDs come in a burst
        self.node.create_subscription(CollisionObject, "/collision_object", self._collision, COLLISION_OBJECT_QOS)
        self.tf_static: list[TFMessage] = []
        self.node.create_subscription(TFMessage, "/tf_static", self._tf, COLLISION_OBJECT_QOS)
        self.got["overlay"] = []
        self.node.create_subscription(Image, f"{NODE}/overlay", lambda m: self._store("overlay", m), LATCHED)
        self.clear_client = self.node.create_client(Trigger, f"{NODE}/clear_memory")
        self.forget_client = self.node.create_client(Forget, f"{NODE}/forget")

    def _collision(self, msg) -> None:
        with self.lock:
            self.collision.append(msg)

    def _tf(self, msg) -> None:
        with self.lock:
            self.tf_static.append(msg)

    def object_frames(self) -> dict[str, str]:
        """{child: parent} of the object frames in the node's last /tf_static message."""
        with self.lock:
            for m in reversed(self.tf_static):
                if all(t.child_frame_id.startswith("dpa_object_") for t in m.transforms):
                    return {t.child_frame_id: t.header.frame_id for t in m.transforms}
        return {}

    def removed(self) -> list[str]:
        with self.lock:
            return [c.id for c in self.collision if c.operation == CollisionObject.REMOVE]


class Odometry:
    def __init__(self, frame: str = FRAME) -> None:
        self.proc = subprocess.Popen([sys.executable, str(ROOT / "test" / "odom_peer.py"), FIXED, frame],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT)
        assert self.proc.stdout.readline().strip() == "READY", "odom_peer.py did not start"
        self.count = 0

    def move_to(self, T_odom_camera: np.ndarray) -> None:
        q = Rotation.from_matrix(T_odom_camera[:3, :3]).as_quat()
        self.proc.stdin.write(" ".join(f"{v:.9f}" for v in [*T_odom_camera[:3, 3], *q]) + "\n")
        self.proc.stdin.flush()
        assert self.proc.stdout.readline().strip() == f"POSE {self.count}"
        self.count += 1

    def close(self) -> None:
        self.proc.stdin.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


@pytest.fixture(scope="module")
def mesh_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("meshes")
    for obj in sv.default_objects():
        obj.mesh.export(root / f"{obj.label}.ply")
    return root


@pytest.fixture(scope="module")
def profiles(tmp_path_factory):
    root = tmp_path_factory.mktemp("profiles")
    (root / "memory.yaml").write_text(MEMORY_PROFILE)
    return root


@pytest.fixture(scope="module")
def node(tmp_path_factory, mesh_root, profiles):
    handle = start_node(tmp_path_factory.mktemp("ros_memory"), NS, "use_depth:=true", f"fixed_frame:={FIXED}",
                        f"forget_after:={FORGET_AFTER}", f"mesh_roots:=['{mesh_root}']", f"config_path:={profiles}",
                        "load_on_start:=false", "export_formats:=['mjcf']", profile="memory", export=False)
    try:
        yield handle
    finally:
        stop_node(handle)


@pytest.fixture(scope="module")
def odom():
    peer = Odometry()
    try:
        yield peer
    finally:
        peer.close()


@pytest.fixture(scope="module")
def client(node, odom):
    c = MemoryClient()
    try:
        assert c.wait_ready(90.0), f"node not ready in 90 s; log:\n{node.log()[-3000:]}"
        assert wait_until(lambda: c.forget_client.service_is_ready() and c.clear_client.service_is_ready(), 10.0)
        yield c
    finally:
        c.close()


def send_view(client: MemoryClient, odom: Odometry, view: sv.View, objects, mesh_root, frame=FRAME,
              uris=None):
    """Move the camera, publish the view, send a goal with its visible objects; (status, result, kept)."""
    odom.move_to(view.T_world_camera)
    keep = [i for i, m in enumerate(view.masks) if m.sum() >= MIN_PIXELS]
    stamp = time.time_ns()
    camera = dataclasses.replace(view.camera, frame_id=frame)
    client.publish({"image": conv.numpy_to_image(view.rgb, "rgb8", frame, stamp),
                    "info": conv.camera_info_from_model(camera, stamp=stamp),
                    "depth": conv.numpy_to_image(view.depth.astype(np.float32), "32FC1", frame, stamp)})
    instances = [Instance(label=objects[i].label,
                          mask=conv.numpy_to_image(view.masks[i].astype(np.uint8) * 255, "mono8"),
                          mesh_uris=[(uris or {}).get(i, f"file://{mesh_root}/{objects[i].label}.ply")])
                 for i in keep]
    handle, _ = client.send_goal(instances=instances)
    status, result = client.result(handle, TIMEOUT)
    return status, result, keep


def single_view_errors(view: sv.View, objects, profiles) -> list[float]:
    """The node's fit of one view alone (the node's profile), centre error per visible object."""
    settings = Pipeline.from_profile("memory", config_path=profiles)
    keep = [i for i, m in enumerate(view.masks) if m.sum() >= MIN_PIXELS]
    scene = assemble_scene(view.rgb, view.depth, view.camera,
                           [LayoutInstance(objects[i].label, 1.0, view.masks[i], [objects[i].mesh]) for i in keep],
                           config=settings.layout_config, physics=settings.profile.physics)
    return [centre_error(view.T_world_camera @ o.T_camera_object, np.asarray(o.mesh.vertices), objects[i])
            for o, i in zip(scene.objects, keep)]


def points_on(points: np.ndarray, truth: sv.WorldObject, margin: float = 0.03) -> int:
    """How many fixed-frame ``points`` lie within ``margin`` (m) of ``truth``'s box, above the floor."""
    G = truth.T_world_object
    local = (points - G[:3, 3]) @ np.linalg.inv(G[:3, :3]).T
    lo, hi = truth.mesh.bounds
    pad = margin / truth.scale
    inside = np.all((local >= lo - pad) & (local <= hi + pad), axis=1) & (points[:, 2] > margin)
    return int(inside.sum())


def tinted(overlay: Image, rgb: np.ndarray, mask: np.ndarray) -> float:
    """The share of ``mask``'s pixels the overlay draws over (differs from the input image)."""
    drawn = np.any(conv.image_to_numpy(overlay) != rgb, axis=-1)
    return float(drawn[mask].mean())


def latest(client: MemoryClient, key: str, stamp_ns: int, count: int):
    """The newest ``key`` message once at least ``count`` have arrived (the republish), its stamp checked."""
    assert wait_until(lambda: len(client.got[key]) >= count, 10.0), (key, len(client.got[key]), count)
    msg = client.got[key][-1][1]
    assert conv.stamp_to_ns(msg.header.stamp) == stamp_ns
    return msg


def test_refusals_name_the_reason_and_the_node_keeps_serving(node, client, odom, mesh_root, tmp_path):
    objects = sv.default_objects()
    view = sv.render_view(objects, sv.camera_pose(0.0, 0.0, 0.0))
    # no transform odom <- another optical frame
    status, result, _ = send_view(client, odom, view, objects, mesh_root, frame="elsewhere_optical_frame")
    assert status == GoalStatus.STATUS_ABORTED
    assert "scene memory: no transform odom <- elsewhere_optical_frame" in result.message, result.message
    # a mesh outside mesh_roots, and a missing one
    (tmp_path / "chair.ply").write_bytes((mesh_root / "chair.ply").read_bytes())
    status, result, _ = send_view(client, odom, view, objects, mesh_root, uris={0: f"file://{tmp_path}/chair.ply"})
    assert status == GoalStatus.STATUS_ABORTED and f"outside the mesh_roots ({mesh_root})" in result.message
    status, result, _ = send_view(client, odom, view, objects, mesh_root, uris={1: f"file://{mesh_root}/none.ply"})
    assert status == GoalStatus.STATUS_ABORTED and "instance 1 ('cabinet')" in result.message
    assert "no such file" in result.message
    # no valid depth inside the chair's mask: the layout refuses that instance
    holed = dataclasses.replace(view, depth=np.where(view.masks[0], np.nan, view.depth))
    status, result, _ = send_view(client, odom, holed, objects, mesh_root)
    assert status == GoalStatus.STATUS_ABORTED and "goal instances could not be fitted" in result.message
    assert "'chair'" in result.message, result.message
    assert node.proc.poll() is None


def check_memory_export(message: str, ids_by_label: dict[str, int]) -> None:
    """The export (export_dir) of the memory after the third view: in odom, with the floor (odom's
    z = 0 plane: its origin lies on it) and gravity -z, every object resting on it in MuJoCo."""
    import re

    from dpa_ros.core.scene import read_scene
    from dpa_ros.export.sim_check import check_scene

    found = re.search(r"exported to (\S+?)(;|$)", message)
    assert found, message
    scene = read_scene(found.group(1))
    assert scene.frame_id == FIXED and scene.in_fixed_frame
    assert {o.label: o.id for o in scene.objects} == ids_by_label
    floor = scene.background.floor
    assert floor is not None and np.degrees(np.arccos(min(1.0, floor.normal[2]))) < 1.0
    assert floor.offset == pytest.approx(0.0, abs=0.01)
    np.testing.assert_allclose(scene.background.gravity, [0, 0, -1], atol=0.02)
    report = check_scene(found.group(1), duration_s=2.0)
    assert not report.written_mjcf and len(report.objects) == 3
    for o in report.objects:
        assert o.penetration_t0_m < 0.005 and o.stable, o


def test_views_keep_ids_fuse_poses_forget_a_removed_object_and_follow_a_moved_one(node, client, odom, mesh_root,
                                                                                   profiles):
    objects = sv.default_objects()
    singles: dict[int, list[float]] = {i: [] for i in range(3)}
    ids_by_label: dict[str, int] = {}
    for n, pose in enumerate(POSES):
        view = sv.render_view(objects, sv.camera_pose(*pose))
        if n == len(POSES) - 1:  # export the memory after the last view (export_dir applies from the next scene)
            assert all(r.successful for r in client.set_params(export_dir=str(node.export_dir)))
        status, result, keep = send_view(client, odom, view, objects, mesh_root)
        assert status == GoalStatus.STATUS_SUCCEEDED and result.success, result.message
        assert keep == [0, 1, 2] and f"memory in {FIXED}" in result.message
        scene = result.scene
        assert scene.header.frame_id == FIXED
        labels = {o.label: o.id for o in scene.objects}
        assert sorted(labels) == sorted(o.label for o in objects) and len(scene.objects) == 3
        if n == 0:
            ids_by_label = labels
        assert labels == ids_by_label, f"ids changed at view {n}: {labels} vs {ids_by_label}"
        for i, e in enumerate(single_view_errors(view, objects, profiles)):
            singles[i].append(e)
        for i, obj in enumerate(objects):
            fused = msg_error(next(o for o in scene.objects if o.label == obj.label), obj)
            # 2 mm of slack: the memory subsamples each view's points
            assert fused <= min(singles[i]) + 2e-3, (obj.label, n, fused, singles[i])
    assert client.removed() == [], "a REMOVE was sent for an object still in the scene"
    assert all(r.successful for r in client.set_params(export_dir=""))
    check_memory_export(result.message, ids_by_label)
    # the ~/scene topic carries the same memory
    assert wait_until(lambda: client.got["scene"] and client.got["scene"][-1][1].header.frame_id == FIXED, 5.0)
    prefix = "dpa_"
    box = ids_by_label["box"]
    frames = {f"{prefix}object_{k}": FIXED for k in ids_by_label.values()}
    assert wait_until(lambda: client.object_frames() == frames, 5.0), client.object_frames()

    # the box taken away, seen from where it stood: forgotten after FORGET_AFTER views
    without_box = objects[:2]
    for n in range(FORGET_AFTER):
        view = sv.render_view(without_box, sv.camera_pose(0.2 * n, 0.0, 0.0))
        status, result, _ = send_view(client, odom, view, without_box, mesh_root)
        assert status == GoalStatus.STATUS_SUCCEEDED, result.message
        remembered = {o.label: o.id for o in result.scene.objects}
        if n < FORGET_AFTER - 1:
            assert remembered == ids_by_label and client.removed() == []
        else:
            assert remembered == {k: v for k, v in ids_by_label.items() if k != "box"}, remembered
    assert wait_until(lambda: client.removed() == [f"{prefix}object_{box}"], 5.0), client.removed()
    del frames[f"{prefix}object_{box}"]
    assert wait_until(lambda: client.object_frames() == frames, 5.0), client.object_frames()

    # the chair moved 0.46 m and turned: same id, at its new pose
    moved = list(without_box)
    moved[0] = sv.world_object("chair", objects[0].mesh, 0.8, -0.9, 2.3, 60.0)
    view = sv.render_view(moved, sv.camera_pose(0.1, 0.0, 0.0))
    status, result, _ = send_view(client, odom, view, moved, mesh_root)
    assert status == GoalStatus.STATUS_SUCCEEDED, result.message
    chair = next(o for o in result.scene.objects if o.label == "chair")
    assert chair.id == ids_by_label["chair"] and "moved" in result.message
    assert msg_error(chair, moved[0]) < 0.03 and msg_error(chair, objects[0]) > 0.3
    assert client.removed() == [f"{prefix}object_{box}"]

    # ~/forget one object, then ~/clear_memory: what is republished shows only what is remembered
    cabinet = ids_by_label["cabinet"]
    stamp = conv.stamp_to_ns(client.got["scene"][-1][1].header.stamp)
    cloud = conv.pointcloud2_to_arrays(client.got["cloud"][-1][1])[0]
    assert client.got["cloud"][-1][1].header.frame_id == FIXED
    assert points_on(cloud, moved[1]) > 50 and points_on(cloud, moved[0]) > 50
    overlay = client.got["overlay"][-1][1]
    assert tinted(overlay, view.rgb, view.masks[1]) > 0.5 and tinted(overlay, view.rgb, view.masks[0]) > 0.5
    counts = {key: len(client.got[key]) for key in ("cloud", "overlay")}
    res = Client._wait(client.forget_client.call_async(Forget.Request(id=cabinet)), 10.0)
    assert res.success, res.message
    assert wait_until(lambda: f"{prefix}object_{cabinet}" in client.removed(), 5.0)
    assert wait_until(lambda: [o.id for o in client.got["scene"][-1][1].objects] == [chair.id], 5.0)
    cloud = conv.pointcloud2_to_arrays(latest(client, "cloud", stamp, counts["cloud"] + 1))[0]
    assert points_on(cloud, moved[1]) == 0 and points_on(cloud, moved[0]) > 50  # the floor and wall stay
    overlay = latest(client, "overlay", stamp, counts["overlay"] + 1)
    assert tinted(overlay, view.rgb, view.masks[1]) < 0.02 and tinted(overlay, view.rgb, view.masks[0]) > 0.5
    res = Client._wait(client.forget_client.call_async(Forget.Request(id=cabinet)), 10.0)
    assert not res.success and f"no remembered object has id {cabinet}" in res.message
    res = Client._wait(client.clear_client.call_async(Trigger.Request()), 10.0)
    assert res.success and f"[{chair.id}]" in res.message, res.message
    assert wait_until(lambda: client.got["scene"][-1][1].objects == [], 5.0)
    assert wait_until(lambda: f"{prefix}object_{chair.id}" in client.removed(), 5.0)
    cloud = conv.pointcloud2_to_arrays(latest(client, "cloud", stamp, counts["cloud"] + 2))[0]
    assert points_on(cloud, moved[0]) == 0 and len(cloud) > 1000
    overlay = latest(client, "overlay", stamp, counts["overlay"] + 2)
    np.testing.assert_array_equal(conv.image_to_numpy(overlay), view.rgb)  # nothing remembered, nothing drawn
    assert node.proc.poll() is None


def test_full_pipeline_snapshots_are_remembered_with_stable_ids(node, client, odom):
    """The learned path (smoke models on test/assets/coffee.png, masks from the placed meshes): two
    snapshots of the same frame from the same pose give the same remembered ids in odom."""
    assert Client._wait(client.clear_client.call_async(Trigger.Request()), 10.0).success
    T = sv.camera_pose(0.0, 0.0, 0.0)
    camera = dataclasses.replace(CAMERA, frame_id=FRAME)
    replies = []
    for _ in range(2):
        odom.move_to(T)
        stamp = time.time_ns()
        client.publish({"image": conv.numpy_to_image(RGB, "rgb8", FRAME, stamp),
                        "info": conv.camera_info_from_model(camera, stamp=stamp),
                        "depth": conv.numpy_to_image(table_depth_mm(), "16UC1", FRAME, stamp)})
        res = client.snapshot(TIMEOUT)
        assert res.success and f"memory in {FIXED}" in res.message, res.message
        assert wait_until(lambda s=stamp: conv.stamp_to_ns(client.got["scene"][-1][1].header.stamp) == s, 10.0)
        replies.append((res.message, client.got["scene"][-1][1]))
    (first_message, first), (second_message, second) = replies
    assert first.header.frame_id == second.header.frame_id == FIXED and first.objects
    assert "added" in first_message and "added" not in second_message, second_message
    assert [o.id for o in second.objects] == [o.id for o in first.objects]


def test_a_node_without_memory_answers_the_memory_services_with_the_reason(tmp_path):
    handle = start_node(tmp_path, "/dpa_memory_off", export=False)
    c = None
    try:
        c = Client("/dpa_memory_off")
        forget = c.node.create_client(Forget, "/dpa_memory_off/dpa_reconstructor/forget")
        assert wait_until(forget.service_is_ready, 90.0), handle.log()[-2000:]
        res = Client._wait(forget.call_async(Forget.Request(id=0)), 10.0)
        assert not res.success and "fixed_frame is empty" in res.message
    finally:
        if c is not None:
            c.close()
        stop_node(handle)



# ------------------------------------------------------------------------------ continuous mode
CONTINUOUS_NS = "/dpa_memory_continuous"
#: test/camera_streamer.py streams a floor 1.2 m below a camera pitched 30° down as depth; in odom
#: the camera stands there, so that floor is odom's z = 0 plane (odom's origin lies on it).
STREAM_FLOOR = (30.0, 1.2)
STREAM_POSE = sv.camera_pose(0.5, -0.3, 15.0, height=STREAM_FLOOR[1], pitch_deg=STREAM_FLOOR[0])
STREAM_SIZE = (320, 240)
CONTINUOUS_SCENES = 3
#: its own CollisionObject topic: /collision_object is transient-local, and the module's node has
#: REMOVEd objects there before
CONTINUOUS_COLLISION = "/dpa_memory_continuous_collision_object"


@pytest.mark.slow
def test_continuous_mode_merges_every_streamed_frame_into_the_memory(tmp_path):
    """mode continuous with fixed_frame (smoke models; continuous requests carry no goal instances):
    a camera process streams one static RGB-D frame over and over, an odometry process holds the
    camera still in odom. Every reconstruction is merged: each ~/scene is in odom, the ids of one
    scene are the next one's, no CollisionObject is REMOVEd, and every export (export_dir) holds the
    memory's floor (the streamed floor: odom's z = 0 plane, through odom's origin) and a MuJoCo model
    whose ground plane it is."""
    import json

    import mujoco

    from dpa_ros.core.scene import read_scene
    from dpa_ros.export import ExportOptions, world_frame

    handle = start_node(tmp_path, CONTINUOUS_NS, "mode:=continuous", "max_rate_hz:=2.0", f"fixed_frame:={FIXED}",
                        "use_depth:=true", "export_formats:=['mjcf']", "publish_overlay:=false",
                        f"collision_object_topic:={CONTINUOUS_COLLISION}")
    streamer = odom = client = None
    try:
        from camera_streamer import FRAME as STREAM_FRAME

        odom = Odometry(STREAM_FRAME)
        odom.move_to(STREAM_POSE)
        client = MemoryClient.__new__(MemoryClient)
        Client.__init__(client, CONTINUOUS_NS)
        client.collision = []
        client.node.create_subscription(CollisionObject, CONTINUOUS_COLLISION, client._collision,
                                        COLLISION_OBJECT_QOS)
        assert client.wait_ready(90.0), handle.log()[-3000:]
        streamer = subprocess.Popen([sys.executable, str(ROOT / "test" / "camera_streamer.py"), CONTINUOUS_NS,
                                     str(tmp_path / "stream.json"), "--width", str(STREAM_SIZE[0]), "--height",
                                     str(STREAM_SIZE[1]), "--rate", "5", "--floor",
                                     *map(str, STREAM_FLOOR)], stdin=subprocess.PIPE,
                                    stdout=subprocess.PIPE, text=True, cwd=ROOT)
        assert streamer.stdout.readline().strip() == "READY"

        def scenes():
            with client.lock:
                by_stamp = {conv.stamp_to_ns(m.header.stamp): m for _, m in client.got["scene"]}
            return [by_stamp[k] for k in sorted(by_stamp)]

        assert wait_until(lambda: len(scenes()) >= CONTINUOUS_SCENES, TIMEOUT), \
            f"{len(scenes())} scenes; log:\n{handle.log()[-4000:]}"
        got = scenes()
        assert all(m.header.frame_id == FIXED for m in got), [m.header.frame_id for m in got]
        ids = [[o.id for o in m.objects] for m in got]
        labels = [sorted((o.id, o.label) for o in m.objects) for m in got]
        assert ids[0], "the smoke models placed no object"
        for before, after in zip(labels, labels[1:]):
            assert after == before, f"ids or labels changed between consecutive scenes: {labels}"
        with client.lock:
            removed = [c.id for c in client.collision if c.operation == CollisionObject.REMOVE]
            added = {c.id for c in client.collision if c.operation == CollisionObject.ADD}
        assert removed == [], f"REMOVE sent for {removed} while the memory kept {ids[-1]}"
        assert added == {f"dpa_object_{k}" for k in ids[-1]}
        log = handle.log()
        assert "continuous: skipped frame" not in log and "scene memory: no transform" not in log

        # every reconstruction was exported as the memory, in odom, with the floor kept there
        dirs = sorted(p.parent for p in handle.export_dir.glob("*/scene.json"))
        assert len(dirs) >= CONTINUOUS_SCENES, dirs
        for d in dirs[:CONTINUOUS_SCENES]:
            scene = read_scene(d)
            assert scene.frame_id == FIXED and scene.in_fixed_frame
            np.testing.assert_allclose(scene.T_frame_camera, STREAM_POSE, atol=1e-4)
            floor = scene.background.floor
            assert floor is not None, json.loads((d / "scene.json").read_text())["background"]
            assert np.degrees(np.arccos(min(1.0, floor.normal[2]))) < 1.0  # odom's z = 0 plane
            assert floor.offset == pytest.approx(0.0, abs=0.01)
            assert world_frame(scene, ExportOptions()).source == "fixed_floor"
            model = mujoco.MjModel.from_xml_path(str(d / "mujoco" / "scene.xml"))
            assert model.geom("floor").type[0] == mujoco.mjtGeom.mjGEOM_PLANE
            np.testing.assert_allclose(model.opt.gravity, [0, 0, -9.80665])
            assert '"source": "fixed_floor"' in (d / "mujoco" / "scene.xml").read_text()  # the frame metadata
        assert handle.proc.poll() is None
    finally:
        if streamer is not None:
            streamer.stdin.close()
            streamer.wait(timeout=60)
        if client is not None:
            client.close()
        if odom is not None:
            odom.close()
        stop_node(handle)
