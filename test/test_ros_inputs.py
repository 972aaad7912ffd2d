"""dpa_ros.ros.inputs: a chosen frame's real messages (through CDR) converted, and downscaled to max_image_size."""
import numpy as np
import pytest

pytest.importorskip("rclpy", reason="rclpy missing: run under `. ./activate.sh` after `make setup`")
pytestmark = pytest.mark.ros

from rclpy.serialization import deserialize_message, serialize_message  # noqa: E402

from dpa_ros.core.camera import CameraModel  # noqa: E402
from dpa_ros.ros import conversions as conv  # noqa: E402
from dpa_ros.ros.frame_buffer import FrameSet, Stamped  # noqa: E402
from dpa_ros.ros.inputs import frame_from_messages  # noqa: E402

FRAME = "cam_optical"
STAMP = 1_764_000_000_000_000_000


def _cdr(msg):
    return deserialize_message(serialize_message(msg), type(msg))


def chosen_set(width: int, height: int):
    """A 4:3 frame: a left half at 1 m and a right half at 3 m with a hole, and a colour gradient."""
    rgb = np.zeros((height, width, 3), np.uint8)
    rgb[..., 0] = np.linspace(0, 255, width, dtype=np.uint8)[None, :]
    depth_mm = np.full((height, width), 1000, np.uint16)
    depth_mm[:, width // 2:] = 3000
    depth_mm[10:20, 10:20] = 0  # invalid
    camera = CameraModel(np.array([[1000.0, 0, 959.5], [0, 1000.0, 719.5], [0, 0, 1]]), width, height, FRAME)
    img = _cdr(conv.numpy_to_image(rgb, "rgb8", FRAME, STAMP))
    depth = _cdr(conv.numpy_to_image(depth_mm, "16UC1", FRAME, STAMP))
    info = _cdr(conv.camera_info_from_model(camera, STAMP))
    return FrameSet(Stamped(STAMP, ("image", img)), Stamped(STAMP, info), Stamped(STAMP, depth), 0.0), camera


def test_max_image_size_downscales_image_depth_and_intrinsics_together():
    chosen, camera = chosen_set(1920, 1440)
    full = frame_from_messages(chosen)
    small = frame_from_messages(chosen, max_image_size=960)
    assert full.rgb.shape == (1440, 1920, 3) and small.rgb.shape == (720, 960, 3)
    assert small.depth.shape == (720, 960) and (small.camera.width, small.camera.height) == (960, 720)
    K = small.camera.K
    assert np.allclose([K[0, 0], K[1, 1], K[0, 2], K[1, 2]], [500.0, 500.0, 479.5, 359.5])
    # the same ray: a scene point projects to the same relative place in both images
    point = np.array([[0.3, -0.2, 2.0]])
    uv_full, uv_small = camera.project(point)[0], small.camera.project(point)[0]
    assert np.allclose((uv_full + 0.5) / 2.0 - 0.5, uv_small)
    # depth taken, never interpolated: only the source values (1 m, 3 m, NaN), and the edge stays sharp
    values = np.unique(small.depth[np.isfinite(small.depth)])
    assert np.allclose(values, [1.0, 3.0])
    assert np.isnan(small.depth[6:9, 6:9]).all()
    assert np.allclose(small.depth[:, 479], 1.0) and np.allclose(small.depth[:, 480], 3.0)


def test_a_frame_within_max_image_size_is_untouched():
    chosen, camera = chosen_set(1920, 1440)
    same = frame_from_messages(chosen, max_image_size=1920)
    assert same.rgb.shape == (1440, 1920, 3) and np.array_equal(same.camera.K, camera.K)


def distorted_set(width: int = 640, height: int = 480):
    """A raw (distorted, plumb_bob) 640×480 frame with one bright dot where the lens images a known
    point, the depth 2 m everywhere, and its camera_info through CDR; (set, dot's pinhole pixel in P)."""
    import cv2

    w, h = width, height
    K = np.array([[520.0, 0, 319.5], [0, 520.0, 239.5], [0, 0, 1]])
    D = np.array([-0.28, 0.09, 0.0005, -0.0003, 0.0])
    P = np.array([[480.0, 0, 322.0, 0], [0, 480.0, 236.0, 0], [0, 0, 1, 0]])
    point = np.array([[0.55, -0.35, 2.0]])
    raw_uv = cv2.projectPoints(point, np.zeros(3), np.zeros(3), K, D)[0].reshape(2)
    rgb = np.zeros((h, w, 3), np.uint8)
    cv2.circle(rgb, tuple(int(round(c)) for c in raw_uv), 3, (255, 255, 255), -1)
    info = conv.camera_info_from_model(CameraModel(K, w, h, FRAME), STAMP)
    info.d, info.distortion_model, info.p = D.tolist(), "plumb_bob", P.ravel().tolist()
    img = _cdr(conv.numpy_to_image(rgb, "rgb8", FRAME, STAMP))
    depth = _cdr(conv.numpy_to_image(np.full((h, w), 2000, np.uint16), "16UC1", FRAME, STAMP))
    chosen = FrameSet(Stamped(STAMP, ("image", img)), Stamped(STAMP, _cdr(info)), Stamped(STAMP, depth), 0.0)
    pinhole_uv = (P[:, :3] @ point[0])[:2] / point[0, 2]
    return chosen, P[:, :3], pinhole_uv


def test_a_distorted_camera_is_rectified_to_p_or_refused_or_ignored_as_asked():
    from dpa_ros.ros.inputs import InputError

    chosen, P, pinhole_uv = distorted_set()
    frame = frame_from_messages(chosen)  # default: rectify
    assert np.allclose(frame.camera.K, P) and not frame.camera.is_distorted
    assert any(n.startswith("rectified the image (plumb_bob") for n in frame.notes)
    ys, xs = np.nonzero(frame.rgb[..., 0] > 128)  # the dot now lies where the pinhole camera P projects the point
    assert np.hypot(xs.mean() - pinhole_uv[0], ys.mean() - pinhole_uv[1]) < 1.0
    valid = np.isfinite(frame.depth)
    assert valid.mean() > 0.8 and np.allclose(frame.depth[valid], 2.0)  # depth remapped, never blended
    with pytest.raises(InputError, match=r"camera_info with lens distortion: .*plumb_bob.*image_rect"):
        frame_from_messages(chosen, distortion="refuse")
    ignored = frame_from_messages(chosen, distortion="ignore")
    assert ignored.camera.is_distorted and any("distortion coefficients ignored" in n for n in ignored.notes)
    assert np.array_equal(ignored.rgb, conv.image_to_rgb(chosen.image.payload[1]))
    # intrinsics p says the image is rectified already: nothing is remapped
    as_rectified = frame_from_messages(chosen, intrinsics="p")
    assert np.allclose(as_rectified.camera.K, P) and np.array_equal(as_rectified.rgb, ignored.rgb)
