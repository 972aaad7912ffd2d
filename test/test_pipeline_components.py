"""Components passed to the pipeline: a user's own segmenter, with no profile entry, runs the real stages."""
from pathlib import Path

import numpy as np
import pytest

from dpa_ros.core.camera import CameraModel
from dpa_ros.pipeline import Pipeline
from dpa_ros.priors.base import Detection
from dpa_ros.priors.profiles import load_profile
from dpa_ros.priors.segmenter import GroundedSAM

ASSET = Path(__file__).parent / "assets" / "coffee.png"
# (label, score, (row0, row1, col0, col1)) in the 200 × 300 test photo
BOXES = [("mug", 0.91, (60, 140, 40, 120)), ("saucer", 0.77, (90, 170, 170, 270))]


class BoxSegmenter:
    """A segmenter of the user's own: fixed rectangles; it has no ``load`` and no profile section."""

    def __init__(self) -> None:
        self.calls: list[tuple[tuple[int, ...], str]] = []

    def segment(self, image_rgb: np.ndarray, prompt: str) -> list[Detection]:
        self.calls.append((image_rgb.shape, prompt))
        out = []
        for label, score, (r0, r1, c0, c1) in BOXES:
            mask = np.zeros(image_rgb.shape[:2], bool)
            mask[r0:r1, c0:c1] = True
            out.append(Detection(label, score, np.array([c0, r0, c1 - 1, r1 - 1], float), mask))
        return out


@pytest.fixture(scope="module")
def camera(image):
    return CameraModel.from_fov(image.shape[1], image.shape[0], 60.0, frame_id="camera_color_optical_frame")


def test_a_user_segmenter_runs_the_pipeline(image, camera):
    segmenter = BoxSegmenter()
    pipe = Pipeline.from_profile("smoke", segmenter=segmenter)
    assert pipe.segmenter is segmenter and pipe.models()["segment"] is segmenter
    assert not any(isinstance(m, GroundedSAM) for m in pipe.models().values())  # none built

    scene = pipe.run(image, camera, prompt="mug. saucer.")
    assert segmenter.calls == [(image.shape, "mug. saucer.")]
    # every object is one of the user's detections, with its score, placed where its mask is
    assert sorted((o.label, o.score) for o in scene.objects) == sorted((label, s) for label, s, _ in BOXES)
    for obj in scene.objects:
        _, _, (r0, r1, c0, c1) = next(b for b in BOXES if b[0] == obj.label)
        u, v = camera.project(np.asarray(obj.T_camera_object)[:3, 3][None])[0]
        assert c0 - 15 <= u <= c1 + 15 and r0 - 15 <= v <= r1 + 15, (obj.label, u, v)
    assert scene.profile == "smoke" and scene.timings_s["segment"] >= 0


def test_the_constructor_takes_every_component_and_checks_them():
    smoke = Pipeline.from_profile("smoke")
    parts = dict(segmenter=BoxSegmenter(), enhancer=smoke.enhancer, scorer=smoke.scorer, generator=smoke.generator,
                 depth=smoke.depth_model)
    pipe = Pipeline(profile=load_profile("smoke"), seed=7, **parts)
    assert pipe.seed == 7 and pipe.layout_config.seed == 7 and pipe.metric_model is None
    with pytest.raises(TypeError, match=r"^segmenter: object does not follow the Segmenter protocol"):
        Pipeline(**{**parts, "segmenter": object()})
    with pytest.raises(TypeError, match=r"^depth: BoxSegmenter does not follow the DepthEstimator protocol"):
        Pipeline(**{**parts, "depth": BoxSegmenter()})
    with pytest.raises(TypeError, match=r"unknown component\(s\) \['segmentor'\]"):
        Pipeline.from_profile("smoke", segmentor=BoxSegmenter())
