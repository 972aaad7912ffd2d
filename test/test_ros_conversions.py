"""Unit tests of dpa_ros.ros.conversions: pure message <-> numpy/library conversions, no DDS."""
import math

import numpy as np
import pytest

pytest.importorskip("rclpy", reason="rclpy missing: run under `. ./activate.sh` after `make setup`")
pytestmark = pytest.mark.ros

import trimesh  # noqa: E402
from rclpy.serialization import deserialize_message, serialize_message  # noqa: E402
from scipy.spatial.transform import Rotation  # noqa: E402
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, PointCloud2, PointField  # noqa: E402
from visualization_msgs.msg import Marker  # noqa: E402

from dpa_ros.core.camera import CameraModel  # noqa: E402
from dpa_ros.core.scene import Background, Plane, Scene, SceneObject  # noqa: E402
from dpa_ros.ros import conversions as cv  # noqa: E402
from dpa_ros.ros.conversions import ConversionError  # noqa: E402

RNG = np.random.default_rng(1234)


def _roundtrip(msg):
    """Through CDR, as a subscriber would receive it."""
    return deserialize_message(serialize_message(msg), type(msg))


# ------------------------------------------------------------------------------------------ images
@pytest.mark.parametrize("encoding", ["rgb8", "bgr8", "rgba8", "bgra8", "mono8", "16UC1", "32FC1"])
@pytest.mark.parametrize("pad", [0, 5])
@pytest.mark.parametrize("bigendian", [False, True])
def test_image_round_trip_with_padding_and_byte_order(encoding, pad, bigendian):
    dtype, ch = cv.ENCODINGS[encoding]
    shape = (7, 11) if ch == 1 else (7, 11, ch)
    if dtype == np.float32:
        arr = RNG.normal(2.0, 1.0, shape).astype(np.float32)
    else:
        arr = RNG.integers(0, np.iinfo(dtype).max, shape, endpoint=True).astype(dtype)
    row = 11 * ch * dtype.itemsize
    msg = _roundtrip(cv.numpy_to_image(arr, encoding, "cam", 5, step=row + pad, is_bigendian=bigendian))
    assert msg.step == row + pad and len(msg.data) == (row + pad) * 7
    assert msg.is_bigendian == int(bigendian) and msg.header.frame_id == "cam"
    back = cv.image_to_numpy(msg)
    assert back.dtype == dtype and back.shape == shape
    np.testing.assert_array_equal(back, arr)


def test_big_endian_bytes_are_really_big_endian():
    msg = cv.numpy_to_image(np.array([[0x0102]], np.uint16), "16UC1", is_bigendian=True)
    assert bytes(msg.data) == b"\x01\x02"
    msg = cv.numpy_to_image(np.array([[0x0102]], np.uint16), "16UC1", is_bigendian=False)
    assert bytes(msg.data) == b"\x02\x01"
    # a hand-made big-endian float image decodes to the right value
    hand = Image(height=1, width=1, encoding="32FC1", is_bigendian=1, step=4)
    hand.data = np.array([1.5], ">f4").tobytes()
    assert cv.image_to_numpy(hand)[0, 0] == 1.5


def test_padding_bytes_are_ignored():
    arr = RNG.integers(0, 255, (4, 3, 3), dtype=np.uint8)
    msg = cv.numpy_to_image(arr, "rgb8", step=16)
    data = np.frombuffer(msg.data, np.uint8).reshape(4, 16).copy()
    data[:, 9:] = 255  # garbage in the padding
    msg.data = data.tobytes()
    np.testing.assert_array_equal(cv.image_to_rgb(msg), arr)


@pytest.mark.parametrize("encoding,convert", [
    ("rgb8", lambda rgb: rgb),
    ("bgr8", lambda rgb: rgb[:, :, ::-1]),
    ("rgba8", lambda rgb: np.concatenate([rgb, np.full(rgb.shape[:2] + (1,), 7, np.uint8)], axis=2)),
    ("bgra8", lambda rgb: np.concatenate([rgb[:, :, ::-1], np.full(rgb.shape[:2] + (1,), 7, np.uint8)], axis=2)),
])
def test_image_to_rgb_reorders_channels(encoding, convert):
    rgb = RNG.integers(0, 255, (6, 5, 3), dtype=np.uint8)
    out = cv.image_to_rgb(cv.numpy_to_image(convert(rgb), encoding))
    assert out.dtype == np.uint8 and out.flags.c_contiguous
    np.testing.assert_array_equal(out, rgb)


def test_mono8_becomes_grey_rgb():
    mono = RNG.integers(0, 255, (3, 4), dtype=np.uint8)
    out = cv.image_to_rgb(cv.numpy_to_image(mono, "mono8"))
    assert out.shape == (3, 4, 3)
    for c in range(3):
        np.testing.assert_array_equal(out[:, :, c], mono)


def _image(encoding="rgb8", width=4, height=3, step=None, data_len=None):
    msg = Image(height=height, width=width, encoding=encoding)
    msg.step = width * 3 if step is None else step
    msg.data = bytes(msg.step * height if data_len is None else data_len)
    return msg


@pytest.mark.parametrize("msg,reason", [
    (_image(data_len=35), "data has 35 bytes but step\\*height = 12\\*3 = 36"),
    (_image(step=13, data_len=36), "data has 36 bytes but step\\*height = 13\\*3 = 39"),
    (_image(step=10, data_len=30), "step 10 is smaller than width\\*pixel size 12"),
    (_image(encoding="yuv422"), "unsupported image encoding 'yuv422'"),
    (_image(encoding=""), "unsupported image encoding ''"),
    (_image(width=0, height=0, data_len=0), "zero size"),
    (_image(width=4, height=0, data_len=0), "zero size"),
])
def test_malformed_images_raise_clear_errors(msg, reason):
    with pytest.raises(ConversionError, match=reason):
        cv.image_to_numpy(msg)
    with pytest.raises(ConversionError, match=reason):
        cv.image_to_rgb(msg)


def test_depth_encoding_is_not_a_colour_image_and_vice_versa():
    with pytest.raises(ConversionError, match="not a colour encoding"):
        cv.image_to_rgb(cv.numpy_to_image(np.ones((2, 2), np.float32), "32FC1"))
    with pytest.raises(ConversionError, match="unsupported depth encoding 'rgb8'"):
        cv.depth_to_metres(cv.numpy_to_image(np.ones((2, 2, 3), np.uint8), "rgb8"))


def test_numpy_to_image_rejects_arrays_that_do_not_fit():
    with pytest.raises(ConversionError, match="does not fit rgb8"):
        cv.numpy_to_image(np.zeros((2, 2)), "rgb8")
    with pytest.raises(ConversionError, match="step 5 is smaller"):
        cv.numpy_to_image(np.zeros((2, 2, 3), np.uint8), "rgb8", step=5)


# ------------------------------------------------------------------------------------------- depth
@pytest.mark.parametrize("bigendian", [False, True])
def test_16uc1_millimetres_become_metres_and_zero_becomes_nan(bigendian):
    mm = np.array([[0, 1], [1500, 65535]], np.uint16)
    depth = cv.depth_to_metres(_roundtrip(cv.numpy_to_image(mm, "16UC1", is_bigendian=bigendian, step=6)))
    assert depth.dtype == np.float32 and depth.shape == (2, 2)
    assert math.isnan(depth[0, 0])
    np.testing.assert_allclose(depth[0, 1:], [0.001], rtol=1e-6)
    np.testing.assert_allclose(depth[1], [1.5, 65.535], rtol=1e-6)


def test_32fc1_metres_with_invalid_values_become_nan():
    raw = np.array([[0.0, -1.0, np.nan], [np.inf, 2.25, 0.5]], np.float32)
    depth = cv.depth_to_metres(cv.numpy_to_image(raw, "32FC1", is_bigendian=True))
    assert np.isnan(depth[0]).all() and math.isnan(depth[1, 0])
    np.testing.assert_array_equal(depth[1, 1:], [2.25, 0.5])


# ------------------------------------------------------------------------------------ compressed
def test_png_compressed_round_trip_is_exact():
    rgb = RNG.integers(0, 255, (9, 13, 3), dtype=np.uint8)
    msg = _roundtrip(cv.rgb_to_compressed(rgb, "png", "cam", 10))
    assert msg.format.endswith("png compressed bgr8")
    np.testing.assert_array_equal(cv.compressed_to_rgb(msg), rgb)


def test_jpeg_compressed_decodes_to_the_right_colours():
    rgb = np.zeros((16, 16, 3), np.uint8)
    rgb[:, :8] = (220, 30, 30)
    rgb[:, 8:] = (20, 40, 230)
    out = cv.compressed_to_rgb(cv.rgb_to_compressed(rgb, "jpeg"))
    assert out.shape == rgb.shape
    assert np.abs(out.astype(int) - rgb.astype(int)).mean() < 8  # lossy, but red stays red


@pytest.mark.parametrize("data,fmt,reason", [
    (b"", "jpeg", "no data"),
    (b"not an image at all", "jpeg", "cannot be decoded"),
    (b"\x89PNG....", "16UC1; compressedDepth", "not a colour image"),
])
def test_bad_compressed_images_raise(data, fmt, reason):
    msg = CompressedImage(format=fmt)
    msg.data = data
    with pytest.raises(ConversionError, match=reason):
        cv.compressed_to_rgb(msg)


# ----------------------------------------------------------------------------------------- cameras
def _info(K=(500.0, 0, 319.5, 0, 510.0, 239.5, 0, 0, 1), P=None, D=(), w=640, h=480, frame="cam_optical"):
    msg = CameraInfo(width=w, height=h)
    msg.header.frame_id = frame
    msg.k = list(map(float, K))
    msg.d = list(map(float, D))
    if P is not None:
        msg.p = list(map(float, P))
    return msg


def test_camera_model_from_k():
    cam = cv.camera_model_from_info(_roundtrip(_info()))
    assert (cam.width, cam.height, cam.frame_id) == (640, 480, "cam_optical")
    assert (cam.fx, cam.fy, cam.cx, cam.cy) == (500.0, 510.0, 319.5, 239.5)


def test_camera_model_prefers_p_for_undistorted_images_and_k_for_distorted_ones():
    P = (480.0, 0, 300.0, 0, 0, 490.0, 230.0, 0, 0, 0, 1, 0)
    assert cv.camera_model_from_info(_info(P=P)).fx == 480.0  # auto, no distortion → P
    assert cv.camera_model_from_info(_info(P=P, D=(0, 0, 0, 0, 0))).cy == 230.0
    distorted = _info(P=P, D=(-0.1, 0.01, 0, 0, 0))
    cam = cv.camera_model_from_info(distorted)  # auto, distortion → K (raw image)
    assert cam.fx == 500.0 and cam.is_distorted
    assert cv.camera_model_from_info(distorted, intrinsics="p").fx == 480.0  # user says: rectified image
    assert cv.camera_model_from_info(_info(P=P), intrinsics="k").fx == 500.0
    assert cv.camera_model_from_info(_info(), intrinsics="p").fx == 500.0  # P all zero → K
    assert cv.camera_model_from_info(_info(), frame_id="other").frame_id == "other"


@pytest.mark.parametrize("info,reason", [
    (_info(K=(0,) * 9), "K is all zero"),
    (_info(w=0, h=0), "zero size"),
    (_info(K=(-5.0, 0, 1, 0, 5.0, 1, 0, 0, 1)), "unusable.*positive finite focal"),
])
def test_unusable_camera_info_raises(info, reason):
    with pytest.raises(ConversionError, match=reason):
        cv.camera_model_from_info(info)


def test_camera_info_from_model_round_trips():
    cam = CameraModel(K=np.array([[400.0, 0, 100], [0, 410, 80], [0, 0, 1]]), width=200, height=160, frame_id="c")
    back = cv.camera_model_from_info(_roundtrip(cv.camera_info_from_model(cam, stamp=7)))
    np.testing.assert_array_equal(back.K, cam.K)
    assert (back.width, back.height, back.frame_id) == (200, 160, "c")


# --------------------------------------------------------------------------------------- rotations
def _random_rotation(rng):
    q = rng.normal(size=4)
    return cv.quaternion_to_rotation(q / np.linalg.norm(q))


def test_quaternion_round_trip_including_half_turns():
    rots = [_random_rotation(RNG) for _ in range(200)]
    rots += [np.diag(d) for d in ((1, -1, -1), (-1, 1, -1), (-1, -1, 1), (1, 1, 1))]
    for R in rots:
        assert np.allclose(R @ R.T, np.eye(3), atol=1e-12) and np.isclose(np.linalg.det(R), 1.0)
        q = cv.rotation_to_quaternion(R)
        assert np.isclose(np.linalg.norm(q), 1.0) and q[3] >= 0
        np.testing.assert_allclose(cv.quaternion_to_rotation(q), R, atol=1e-9)


def test_known_quaternion():
    Rz90 = np.array([[0.0, -1, 0], [1, 0, 0], [0, 0, 1]])
    np.testing.assert_allclose(cv.rotation_to_quaternion(Rz90), [0, 0, math.sqrt(0.5), math.sqrt(0.5)], atol=1e-12)


def test_pose_of_a_similarity_transform_round_trips_with_its_scale():
    R = _random_rotation(RNG)
    T = np.eye(4)
    T[:3, :3] = 2.5 * R
    T[:3, 3] = (0.3, -0.2, 3.0)
    pose = cv.matrix_to_pose(T, 2.5)
    assert (pose.position.x, pose.position.y, pose.position.z) == (0.3, -0.2, 3.0)
    np.testing.assert_allclose(cv.pose_to_matrix(pose, 2.5), T, atol=1e-9)
    with pytest.raises(ConversionError, match="scale"):
        cv.matrix_to_pose(T, 0.0)
    T[0, 0] = np.nan
    with pytest.raises(ConversionError, match="not finite"):
        cv.matrix_to_pose(T, 2.5)


# ------------------------------------------------------------------------------------ point clouds
def test_rgb_packing_follows_the_rviz_convention():
    packed = cv.pack_rgb(np.array([[255, 0, 0], [0, 255, 0], [0, 0, 255], [1, 2, 3]], np.uint8))
    assert packed.tolist() == [0xFF0000, 0x00FF00, 0x0000FF, 0x010203]
    as_float = packed.view(np.float32)  # what an rgb FLOAT32 field holds
    np.testing.assert_array_equal(cv.unpack_rgb(as_float), [[255, 0, 0], [0, 255, 0], [0, 0, 255], [1, 2, 3]])


def test_pointcloud2_round_trip_layout_and_fields():
    pts = RNG.normal(size=(1000, 3)).astype(np.float32)
    cols = RNG.integers(0, 255, (1000, 3), dtype=np.uint8)
    msg = _roundtrip(cv.cloud_to_pointcloud2(pts, cols, "cam", 99))
    assert [(f.name, f.offset, f.datatype, f.count) for f in msg.fields] == [
        ("x", 0, PointField.FLOAT32, 1), ("y", 4, PointField.FLOAT32, 1), ("z", 8, PointField.FLOAT32, 1),
        ("rgb", 12, PointField.FLOAT32, 1)]
    assert (msg.height, msg.width, msg.point_step, msg.row_step) == (1, 1000, 16, 16000)
    assert len(msg.data) == 16000 and msg.is_dense and not msg.is_bigendian
    assert msg.header.frame_id == "cam" and cv.stamp_to_ns(msg.header.stamp) == 99
    back, back_cols = cv.pointcloud2_to_arrays(msg)
    np.testing.assert_array_equal(back, pts.astype(np.float64))
    np.testing.assert_array_equal(back_cols, cols)


def test_pointcloud2_without_colours_and_with_nan():
    pts = np.array([[0, 0, 1], [np.nan, 0, 0]], np.float32)
    msg = cv.cloud_to_pointcloud2(pts)
    assert [f.name for f in msg.fields] == ["x", "y", "z"] and msg.point_step == 12 and not msg.is_dense
    back, cols = cv.pointcloud2_to_arrays(msg)
    assert cols is None and back.shape == (2, 3) and np.isnan(back[1, 0])
    with pytest.raises(ConversionError, match="3 colours for 2 points"):
        cv.cloud_to_pointcloud2(pts, np.zeros((3, 3), np.uint8))


def test_reading_a_foreign_padded_big_endian_organised_cloud():
    """Layout as another driver might send it: rgb first as UINT32, doubles, padding, 2 rows."""
    dt = np.dtype({"names": ["rgb", "x", "y", "z"], "formats": [">u4", ">f8", ">f8", ">f8"],
                   "offsets": [0, 8, 16, 24], "itemsize": 40})
    rec = np.zeros(6, dt)
    rec["x"], rec["y"], rec["z"] = np.arange(6), np.arange(6) * 2, np.arange(6) * 3
    rec["rgb"] = [0x102030 + i for i in range(6)]
    rows = rec.tobytes()
    data = rows[:120] + b"\0" * 8 + rows[120:] + b"\0" * 8  # row_step = 3*40 + 8
    msg = PointCloud2(height=2, width=3, point_step=40, row_step=128, is_bigendian=True)
    msg.fields = [PointField(name="rgb", offset=0, datatype=PointField.UINT32, count=1)] + [
        PointField(name=n, offset=8 * (i + 1), datatype=PointField.FLOAT64, count=1) for i, n in enumerate("xyz")]
    msg.data = data
    pts, cols = cv.pointcloud2_to_arrays(msg)
    np.testing.assert_array_equal(pts, np.stack([np.arange(6), np.arange(6) * 2, np.arange(6) * 3], 1))
    np.testing.assert_array_equal(cols[:, 2], 0x30 + np.arange(6))
    assert (cols[:, :2] == (0x10, 0x20)).all()


def test_malformed_pointcloud2_raises():
    msg = cv.cloud_to_pointcloud2(np.zeros((4, 3)))
    short = PointCloud2(height=1, width=4, point_step=12, row_step=48, fields=msg.fields)
    short.data = bytes(40)
    with pytest.raises(ConversionError, match="40 bytes"):
        cv.pointcloud2_to_arrays(short)
    no_z = PointCloud2(height=1, width=4, point_step=12, row_step=48, fields=msg.fields[:2])
    no_z.data = bytes(48)
    with pytest.raises(ConversionError, match="no field"):
        cv.pointcloud2_to_arrays(no_z)


# ------------------------------------------------------------------------------------------ scenes
def _library_scene() -> Scene:
    cam = CameraModel.from_fov(64, 48, 60.0, frame_id="cam_optical")
    box = trimesh.creation.box((0.4, 0.2, 0.3))
    box.visual.vertex_colors = RNG.integers(0, 255, (len(box.vertices), 4), dtype=np.uint8)
    sphere = trimesh.creation.icosphere(subdivisions=1, radius=0.1)  # no colours
    objs = []
    for i, (mesh, label, scale) in enumerate(((box, "chair", 1.5), (sphere, "lamp", 0.5))):
        T = np.eye(4)
        T[:3, :3] = scale * _random_rotation(RNG)
        T[:3, 3] = (0.2 * i, -0.1, 2.0 + i)
        objs.append(SceneObject(id=i + 3, label=label, score=0.9 - 0.1 * i, mesh=mesh, T_camera_object=T,
                                scale=scale, fit_error=0.01 * (i + 1)))
    bg = Background(planes=[Plane("floor", np.array([0.0, -1.0, 0.0]), 1.2, 500)], gravity=np.array([0.0, 1.0, 0.0]))
    return Scene(camera=cam, objects=objs, background=bg, cloud_points=RNG.normal(size=(50, 3)),
                 cloud_colors=RNG.integers(0, 255, (50, 3), dtype=np.uint8),
                 timings_s={"segment": 0.5, "layout": 1.25}, profile="smoke", stamp_ns=1_700_000_000_123_456_789)


def test_scene_to_msg_carries_every_field():
    scene = _library_scene()
    msg = _roundtrip(cv.scene_to_msg(scene, mesh_uris={3: "file:///tmp/objects/3.obj"}))
    assert msg.header.frame_id == "cam_optical"
    assert (msg.header.stamp.sec, msg.header.stamp.nanosec) == (1_700_000_000, 123_456_789)
    assert [o.id for o in msg.objects] == [3, 4] and [o.label for o in msg.objects] == ["chair", "lamp"]
    assert msg.objects[0].mesh_uri == "file:///tmp/objects/3.obj" and msg.objects[1].mesh_uri == ""
    assert msg.objects[0].scale == 1.5 and msg.objects[1].fit_error == pytest.approx(0.02)
    assert len(msg.objects[0].vertex_colors) == 8 and len(msg.objects[1].vertex_colors) == 0
    assert len(msg.objects[1].mesh.triangles) == len(scene.objects[1].mesh.faces)
    assert msg.background_planes[0].label == "floor" and msg.background_planes[0].inlier_count == 500
    np.testing.assert_allclose(msg.background_planes[0].plane.coef, [0, -1, 0, 1.2])
    assert (msg.gravity.x, msg.gravity.y, msg.gravity.z) == (0.0, 1.0, 0.0)
    assert [(t.stage, t.seconds) for t in msg.timings] == [("segment", 0.5), ("layout", 1.25)]
    assert msg.profile == "smoke"


def test_scene_object_round_trips_through_the_message():
    scene = _library_scene()
    msg = _roundtrip(cv.scene_to_msg(scene))
    for lib, m in zip(scene.objects, msg.objects):
        back = cv.object_from_msg(m)
        np.testing.assert_allclose(back.T_camera_object, lib.T_camera_object, atol=1e-9)
        np.testing.assert_allclose(back.mesh.vertices, lib.mesh.vertices)
        np.testing.assert_array_equal(back.mesh.faces, lib.mesh.faces)
        np.testing.assert_allclose(back.mesh_in_camera().vertices, lib.mesh_in_camera().vertices, atol=1e-9)
    np.testing.assert_array_equal(cv.object_from_msg(msg.objects[0]).mesh.visual.vertex_colors,
                                  scene.objects[0].mesh.visual.vertex_colors)


def test_empty_scene_and_unknown_gravity():
    scene = Scene(camera=CameraModel.from_fov(8, 6, 60.0, frame_id="c"))
    msg = cv.scene_to_msg(scene, stamp=5)
    assert msg.objects == [] and msg.background_planes == []
    assert (msg.gravity.x, msg.gravity.y, msg.gravity.z) == (0, 0, 0)
    assert cv.scene_to_markers(msg).markers[0].action == Marker.DELETEALL and len(cv.scene_to_markers(msg).markers) == 1
    assert cv.scene_to_transforms(msg, "dpa_") == []


def test_transforms_one_per_object_child_of_the_image_frame():
    scene = _library_scene()
    msg = cv.scene_to_msg(scene)
    tfs = cv.scene_to_transforms(msg, "robot1/")
    assert [t.child_frame_id for t in tfs] == ["robot1/object_3", "robot1/object_4"]
    for t, o, obj in zip(tfs, msg.objects, scene.objects):
        assert t.header.frame_id == "cam_optical" and t.header.stamp == msg.header.stamp
        tr, rot, pos, ori = t.transform.translation, t.transform.rotation, o.pose.position, o.pose.orientation
        assert (tr.x, tr.y, tr.z) == (pos.x, pos.y, pos.z)
        assert (rot.x, rot.y, rot.z, rot.w) == (ori.x, ori.y, ori.z, ori.w)
        # the object's pose itself: its translation, and its rotation without the scale
        T = np.asarray(obj.T_camera_object)
        np.testing.assert_allclose([tr.x, tr.y, tr.z], T[:3, 3], atol=1e-12)
        np.testing.assert_allclose(Rotation.from_quat([rot.x, rot.y, rot.z, rot.w]).as_matrix(), T[:3, :3] / obj.scale,
                                   atol=1e-9)


def test_markers_triangle_list():
    scene = _library_scene()
    msg = cv.scene_to_msg(scene)
    markers = _roundtrip(cv.scene_to_markers(msg, alpha=0.5)).markers
    assert len(markers) == 1 + 2 * len(scene.objects)
    assert markers[0].action == Marker.DELETEALL
    meshes = [m for m in markers if m.ns == cv.MESH_NS]
    labels = [m for m in markers if m.ns == cv.LABEL_NS]
    assert [m.id for m in meshes] == [3, 4] and [m.id for m in labels] == [3, 4]
    for m, lib in zip(meshes, scene.objects):
        assert m.type == Marker.TRIANGLE_LIST and m.header.frame_id == "cam_optical"
        assert len(m.points) == 3 * len(lib.mesh.faces)
        assert (m.scale.x, m.scale.y, m.scale.z) == (lib.scale,) * 3
        # the marker's points, scaled and posed, are the mesh in the camera frame
        T = cv.pose_to_matrix(m.pose, m.scale.x)
        pts = np.array([(p.x, p.y, p.z) for p in m.points]) @ T[:3, :3].T + T[:3, 3]
        np.testing.assert_allclose(pts, lib.mesh_in_camera().vertices[lib.mesh.faces.ravel()], atol=1e-9)
    assert len(meshes[0].colors) == len(meshes[0].points) and meshes[0].colors[0].a == 0.5
    assert len(meshes[1].colors) == 0 and meshes[1].color.a == 0.5  # no vertex colours → label colour
    for t, lib in zip(labels, scene.objects):
        assert t.type == Marker.TEXT_VIEW_FACING and lib.label in t.text
        assert t.pose.position.y < lib.mesh_in_camera().vertices[:, 1].min()  # above the top (y down)


def test_markers_mesh_resource_uses_the_uri_and_falls_back_without_one():
    msg = cv.scene_to_msg(_library_scene(), mesh_uris={3: "file:///x/objects/3.obj"})
    meshes = [m for m in cv.scene_to_markers(msg, mesh_mode="mesh_resource").markers if m.ns == cv.MESH_NS]
    assert meshes[0].type == Marker.MESH_RESOURCE and meshes[0].mesh_resource == "file:///x/objects/3.obj"
    assert meshes[0].points == [] and meshes[0].scale.x == 1.5
    assert meshes[1].type == Marker.TRIANGLE_LIST and len(meshes[1].points) > 0
    with pytest.raises(ConversionError, match="mesh_mode"):
        cv.scene_to_markers(msg, mesh_mode="sphere")


def test_label_colours_are_stable_and_differ():
    assert cv.label_color("chair") == cv.label_color("chair")
    assert cv.label_color("chair") != cv.label_color("table")


def test_stamp_conversions():
    assert cv.stamp_to_ns(cv.ns_to_stamp(12_345_678_901)) == 12_345_678_901
    assert cv.ns_to_stamp(1_500_000_000).sec == 1 and cv.ns_to_stamp(1_500_000_000).nanosec == 500_000_000
