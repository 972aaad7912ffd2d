"""CameraModel: camera_info YAML parsing, back-projection and projection in the optical frame."""
import numpy as np
import pytest
import yaml

from dpa_ros.core.camera import CameraInfoError, CameraModel

CAMERA_INFO_YAML = """\
image_width: 640
image_height: 480
camera_name: head_camera
camera_matrix:
  rows: 3
  cols: 3
  data: [525.0, 0.0, 319.5, 0.0, 526.0, 239.5, 0.0, 0.0, 1.0]
distortion_model: plumb_bob
distortion_coefficients:
  rows: 1
  cols: 5
  data: [0.1, -0.2, 0.0, 0.0, 0.0]
rectification_matrix:
  rows: 3
  cols: 3
  data: [1, 0, 0, 0, 1, 0, 0, 0, 1]
projection_matrix:
  rows: 3
  cols: 4
  data: [525.0, 0.0, 319.5, 0.0, 0.0, 526.0, 239.5, 0.0, 0.0, 0.0, 1.0, 0.0]
"""


def test_from_yaml_reads_ros_camera_info(tmp_path):
    path = tmp_path / "cam.yaml"
    path.write_text(CAMERA_INFO_YAML)
    cam = CameraModel.from_yaml(path)
    assert (cam.width, cam.height) == (640, 480)
    assert cam.fx == 525.0 and cam.fy == 526.0 and cam.cx == 319.5 and cam.cy == 239.5
    assert cam.frame_id == "head_camera"
    assert cam.is_distorted


def test_camera_info_dict_round_trip(tmp_path):
    cam = CameraModel.from_fov(320, 240, 60.0, frame_id="cam_optical")
    path = tmp_path / "rt.yaml"
    path.write_text(yaml.safe_dump(cam.to_camera_info_dict()))
    back = CameraModel.from_yaml(path)
    np.testing.assert_allclose(back.K, cam.K)
    assert (back.width, back.height, back.frame_id) == (320, 240, "cam_optical")
    assert not back.is_distorted


@pytest.mark.parametrize("text, needle", [
    ("image_width: 640\n", "camera_matrix"),
    ("image_width: 10\nimage_height: 10\ncamera_matrix: {data: [1, 2, 3]}\n", "9 values"),
    ("image_width: 10\nimage_height: 10\ncamera_matrix: {data: [0, 0, 5, 0, 1, 5, 0, 0, 1]}\n", "focal"),
    ("- just\n- a list\n", "mapping"),
])
def test_bad_camera_info_is_a_clear_error(tmp_path, text, needle):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(CameraInfoError, match=needle):
        CameraModel.from_yaml(path)


def test_backproject_then_project_returns_the_pixels():
    cam = CameraModel.from_fov(64, 48, 70.0)
    rng = np.random.default_rng(0)
    depth = rng.uniform(0.5, 4.0, (48, 64))
    pts = cam.backproject(depth)
    assert pts.shape == (48 * 64, 3)
    np.testing.assert_allclose(pts[:, 2], depth.ravel())
    u, v = cam.pixel_grid()
    np.testing.assert_allclose(cam.project(pts), np.stack([u.ravel(), v.ravel()], 1), atol=1e-9)


def test_optical_frame_axes():
    """REP 103: a pixel right of / below the principal point has x > 0 / y > 0."""
    cam = CameraModel(K=np.array([[100.0, 0, 50], [0, 100.0, 40], [0, 0, 1]]), width=100, height=80)
    depth = np.full((80, 100), np.nan)
    depth[60, 90] = 2.0
    (x, y, z), = cam.backproject(depth)
    assert x == pytest.approx((90 - 50) * 2.0 / 100) and y == pytest.approx((60 - 40) * 2.0 / 100) and z == 2.0


def test_backproject_drops_invalid_depth_and_applies_mask():
    cam = CameraModel.from_fov(4, 3, 90.0)
    depth = np.array([[1.0, np.nan, 0.0, np.inf], [2.0, -1.0, 3.0, 4.0], [1.0, 1.0, 1.0, 1.0]])
    assert len(cam.backproject(depth)) == 8
    mask = np.zeros((3, 4), bool)
    mask[1, :] = True
    assert sorted(cam.backproject(depth, mask)[:, 2]) == [2.0, 3.0, 4.0]
    with pytest.raises(ValueError, match="does not match"):
        cam.backproject(np.ones((4, 3)))
