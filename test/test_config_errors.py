"""Every configuration check raises one error type, ConfigError, with a message naming the field."""
from __future__ import annotations

import pytest

from dpa_ros.core.errors import ConfigError
from dpa_ros.geometry.layout import LayoutConfig, LayoutProblem
from dpa_ros.geometry.layout_legacy import solve_layout_legacy
from dpa_ros.geometry.physics import PhysicsConfig, PhysicsConfigError
from dpa_ros.geometry.targets import TargetConfig, build_target
from dpa_ros.priors.config import (
    DepthConfig,
    EnhancerConfig,
    GeneratorConfig,
    ProfileError,
    ScorerConfig,
    SegmenterConfig,
)
from dpa_ros.priors.errors import ReconstructionError
from dpa_ros.priors.profiles import load_profile
from dpa_testing import synthetic


@pytest.mark.parametrize("field,value", [
    ("restarts", 0), ("iterations", 0), ("points", 5), ("keep_restarts", 0), ("coarse_points", 3),
    ("silhouette_points", 9), ("dof", "6"), ("device", "tpu"), ("lambda_2d", -1.0), ("occlusion_margin", -0.01),
    ("lr", 0.0), ("scan_rotations", 4), ("scan_scales", ()), ("scan_scales", (1.0, -0.5)), ("scan_icp_steps", -1),
    ("scan_shift", -0.5), ("field_resolution", 4), ("threads", 0),
])
def test_layout_config_rejects_a_bad_value_naming_the_field(field, value):
    with pytest.raises(ConfigError, match=rf"\b{field}\b") as info:
        LayoutConfig(**{field: value})
    assert repr(value) in str(info.value) or str(value) in str(info.value)


@pytest.mark.parametrize("field,value", [("max_shift_m", -1.0), ("samples", 0), ("occupancy_rays", 2),
                                         ("max_stretch", 1.0)])
def test_physics_config_rejects_a_bad_value_with_config_error(field, value):
    with pytest.raises(ConfigError, match=rf"PhysicsConfig\.{field} ") as info:
        PhysicsConfig(**{field: value})
    assert isinstance(info.value, PhysicsConfigError)  # the old name still catches it


@pytest.mark.parametrize("value", [-1, 2.5, True])
def test_target_config_rejects_a_bad_depth_smoothing(value):
    with pytest.raises(ConfigError, match=rf"^targets depth_smoothing must be an integer >= 0 pixels, got {value!r}"):
        TargetConfig(depth_smoothing=value)


def test_the_legacy_solver_rejects_a_bad_block_size_naming_it():
    scene = synthetic.make_scene()
    problems = [LayoutProblem("0", build_target(scene.depth, scene.camera, scene.masks[0], "0"), [scene.meshes[0]])]
    with pytest.raises(ConfigError, match=r"block_elements must be >= 1 or None, got 0"):
        solve_layout_legacy(problems, scene.camera, scene.depth, config=LayoutConfig(iterations=1), block_elements=0)


@pytest.mark.parametrize("cls,data,field", [
    (SegmenterConfig, {"nms_iou": 1.5}, "segmenter.nms_iou"),
    (EnhancerConfig, {"source": "tiny", "candidates": -1}, "enhancer.candidates"),
    (ScorerConfig, {"source": "tiny", "top_k": 0}, "scorer.top_k"),
    (GeneratorConfig, {"source": "tiny", "grid_size": 0}, "generator.grid_size"),
    (DepthConfig, {"source": "tiny", "output": "meters"}, "depth.output"),
    (DepthConfig, {"source": "tiny", "min_sensor_fraction": "half"}, "depth.min_sensor_fraction"),
])
def test_stage_configs_reject_a_bad_value_with_config_error(cls, data, field):
    with pytest.raises(ConfigError, match=rf"^{field}\b"):
        cls.from_dict(data, field.split(".")[0])


@pytest.mark.parametrize("overrides,field", [
    ({"layout": {"restarts": 0}}, "restarts"), ({"physics": {"samples": 0}}, "PhysicsConfig.samples"),
    ({"segmenter": {"box_threshold": 2.0}}, "segmenter.box_threshold"), ({"min_image_side": 0}, "min_image_side"),
    ({"layout": {"restartz": 3}}, "layout.restartz"), ({"targets": {"depth_smoothing": -2}}, "depth_smoothing"),
])
def test_a_profile_rejects_a_bad_value_with_a_profile_error_that_is_a_config_error(overrides, field):
    with pytest.raises(ProfileError, match=rf"^profile 'smoke': .*{field}") as info:
        load_profile("smoke", overrides=overrides)
    # one type for every config check, and the callers that catch a failed reconstruction still do
    assert isinstance(info.value, ConfigError) and isinstance(info.value, ReconstructionError)
    assert isinstance(info.value, ValueError) and isinstance(info.value, RuntimeError)
