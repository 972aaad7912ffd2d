"""Monocular depth adapters (stage 5: DPT-Hybrid layout, Depth Anything) and the sensor-depth path."""

import numpy as np
import pytest

from dpa_ros.core.camera import CameraModel
from dpa_ros.priors.base import ReconstructionError
from dpa_ros.priors.depth import MonocularDepth, sensor_depth
from dpa_ros.priors.profiles import load_profile


@pytest.fixture(scope="module")
def smoke_depth_cfg():
    return load_profile("smoke").depth


@pytest.mark.parametrize("kind,size", [("dpt", 64), ("depth_anything", 56)])
def test_prediction_shape_and_determinism(smoke_depth_cfg, image, kind, size):
    cfg = smoke_depth_cfg.replace(kind=kind, image_size=size)
    model = MonocularDepth(cfg, profile="smoke", device="cpu")
    pred = model.predict(image)
    assert pred.shape == image.shape[:2] and pred.dtype == np.float32
    assert np.all(np.isfinite(pred)) and pred.min() >= 0  # both heads end in a ReLU: relative values ≥ 0
    again = MonocularDepth(cfg, profile="smoke", device="cpu").predict(image)
    np.testing.assert_array_equal(pred, again)
    other = MonocularDepth(cfg.replace(seed=99), profile="smoke", device="cpu").predict(image)
    assert not np.array_equal(pred, other)
    grey = model.predict(np.full((31, 47, 3), 128, np.uint8))
    assert grey.shape == (31, 47) and np.all(np.isfinite(grey))


def test_bad_configuration_is_a_reconstruction_error(smoke_depth_cfg):
    with pytest.raises(ReconstructionError, match="kind"):
        MonocularDepth(smoke_depth_cfg.replace(kind="zoedepth"))
    with pytest.raises(ReconstructionError, match="output"):
        MonocularDepth(smoke_depth_cfg.replace(output="normals"))


def test_sensor_depth():
    cam = CameraModel.from_fov(4, 3, 60.0)
    raw = np.array([[1.0, 0.0, np.nan, 2.0], [-1.0, np.inf, 3.0, 1.5], [1.0, 1.0, 1.0, 1.0]], np.float64)
    d = sensor_depth(raw, cam)
    assert d.dtype == np.float32 and d.shape == (3, 4)
    assert np.isnan(d[0, 1]) and np.isnan(d[0, 2]) and np.isnan(d[1, 0]) and np.isnan(d[1, 1])
    assert d[1, 2] == 3.0 and np.isfinite(d).sum() == 8
    assert sensor_depth(raw[:, :, None], cam).shape == (3, 4)
    assert sensor_depth(None, cam) is None
    with pytest.raises(ReconstructionError, match="does not match"):
        sensor_depth(np.ones((4, 3)), cam)


@pytest.mark.real_weights
@pytest.mark.parametrize("profile", ["paper", "fast"])
def test_real_weights(image, profile, require_weights):
    cfg = load_profile(profile).depth
    require_weights(cfg, "depth", profile)
    pred = MonocularDepth(cfg, profile=profile).predict(image)
    assert pred.shape == image.shape[:2] and pred.std() > 0
