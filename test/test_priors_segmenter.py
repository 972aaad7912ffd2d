"""Grounded-SAM adapter (stage 1) with the smoke profile's tiny Grounding DINO and SAM."""
import copy

import numpy as np
import pytest

from dpa_ros.priors.base import Detection, ReconstructionError
from dpa_ros.priors.profiles import load_profile
from dpa_ros.priors.segmenter import GroundedSAM, category_token_spans, parse_prompt

PROMPT = "cup. plate. spoon. table."


@pytest.fixture(scope="module")
def smoke_cfg():
    return load_profile("smoke").segmenter


@pytest.fixture(scope="module")
def segmenter(smoke_cfg):
    seg = GroundedSAM(smoke_cfg, profile="smoke", device="cpu")
    seg.load()
    return seg


def with_cfg(seg, overrides):
    """A view of a loaded segmenter (same resident models) with other thresholds."""
    view = copy.copy(seg)
    view.cfg = seg.cfg.replace(**overrides)
    return view


def test_parse_prompt_and_token_spans():
    assert parse_prompt("Sofa. chair.  table. chair.") == ["sofa", "chair", "table"]
    assert parse_prompt(" . ") == []
    text = "tv monitor. chair."
    offsets = [(0, 0), (0, 2), (3, 10), (10, 11), (12, 17), (17, 18), (0, 0)]
    assert category_token_spans(offsets, text, ["tv monitor", "chair"]) == [[1, 2], [4]]


def test_detections_on_photo(segmenter, image):
    dets = segmenter.segment(image, PROMPT)
    h, w = image.shape[:2]
    cfg = segmenter.cfg
    assert 0 < len(dets) <= cfg.max_instances
    for d in dets:
        assert isinstance(d, Detection)
        assert d.label in parse_prompt(PROMPT)
        assert cfg.keep_threshold < d.score <= 1.0
        assert d.box.shape == (4,) and d.box.dtype == np.float64
        assert 0 <= d.box[0] <= d.box[2] <= w - 1 and 0 <= d.box[1] <= d.box[3] <= h - 1
        assert d.mask.shape == (h, w) and d.mask.dtype == bool
        assert d.mask.sum() >= cfg.min_mask_pixels
    scores = [d.score for d in dets]
    assert scores == sorted(scores, reverse=True)


def test_nms_across_labels(segmenter, image):
    import torch
    from torchvision.ops import box_iou

    def overlaps(boxes):
        iou = box_iou(torch.as_tensor(boxes), torch.as_tensor(boxes)).numpy()
        np.fill_diagonal(iou, 0)
        return iou

    cats = parse_prompt(PROMPT)
    boxes, _, labels = with_cfg(segmenter, {"max_instances": None, "nms_iou": 1.0}).detect(image, cats)
    iou = overlaps(boxes)
    i, j = np.unravel_index(iou.argmax(), iou.shape)
    assert iou[i, j] > 0.05 and labels[i] != labels[j]  # overlapping boxes with different labels ...
    kept, _, kept_labels = with_cfg(segmenter, {"max_instances": None, "nms_iou": 0.05}).detect(image, cats)
    assert overlaps(kept).max() <= 0.05 + 1e-6 and len(kept) < len(boxes)  # ... are suppressed
    assert set(kept_labels) <= set(cats)


def test_deterministic_under_seed(smoke_cfg, segmenter, image):
    other = GroundedSAM(smoke_cfg, profile="smoke", device="cpu")
    a, b = segmenter.segment(image, PROMPT), other.segment(image, PROMPT)
    assert [(d.label, d.score) for d in a] == [(d.label, d.score) for d in b]
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x.box, y.box)
        np.testing.assert_array_equal(x.mask, y.mask)
    reseeded = GroundedSAM(smoke_cfg.replace(detector=smoke_cfg.detector.replace(seed=7)), profile="smoke",
                           device="cpu")
    c = reseeded.segment(image, PROMPT)
    def summary(dets):
        return [(d.label, round(d.score, 6), tuple(d.box)) for d in dets]
    assert summary(c) != summary(a)


def test_no_detections_above_threshold(segmenter, image):
    strict = with_cfg(segmenter, {"box_threshold": 1.0})
    assert strict.segment(image, PROMPT) == []
    assert strict.masks(image, np.zeros((0, 4))).shape == (0,) + image.shape[:2]


def test_grey_image_and_bad_inputs(segmenter):
    grey = np.full((64, 80, 3), 128, dtype=np.uint8)
    # thresholds at zero keep every box the detector proposes, so there is something to check
    detections = with_cfg(segmenter, {"box_threshold": 0.0, "text_threshold": 0.0}).segment(grey, PROMPT)
    assert detections
    for d in detections:
        assert d.mask.shape == (64, 80) and d.mask.dtype == bool and d.label in parse_prompt(PROMPT)
    with pytest.raises(ReconstructionError, match="uint8"):
        segmenter.segment(grey.astype(np.float32), PROMPT)
    with pytest.raises(ReconstructionError, match="empty detection prompt"):
        segmenter.segment(grey, " . ")


@pytest.mark.real_weights
def test_real_weights_fast_profile(image, require_weights):
    cfg = load_profile("fast").segmenter
    for section in ("detector", "sam"):
        require_weights(getattr(cfg, section), f"segmenter.{section}", "fast")
    dets = GroundedSAM(cfg, profile="fast").segment(image, "cup. spoon. plate.")
    assert any(d.label == "cup" for d in dets)
