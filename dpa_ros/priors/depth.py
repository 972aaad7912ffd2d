"""Stage 5, depth: a monocular depth model (DPT in Omnidata's DPT-Hybrid layout, or Depth Anything),
and the sensor-depth path that needs no model.

Profile section ``depth``::

    kind: dpt                  # dpt (DPTForDepthEstimation) | depth_anything (DepthAnythingForDepthEstimation)
    model_id: Intel/dpt-hybrid-midas
    output: disparity          # what the model predicts: depth | disparity (inverse depth) | metric (metres)
    metric_model: {...}        # optional second model (same keys, output: metric) used as the metric
                               # reference when no sensor depth is given
    camera_height_m: 1.2       # reference of last resort: camera height above the floor plane
    default_depth_m: 2.5       # if no reference works: median scene depth is set to this (logged)
    min_sensor_fraction: 0.05  # sensor depth counts when at least this fraction of pixels is valid

Outputs of :meth:`MonocularDepth.predict` are relative (affine-ambiguous) unless ``output`` is
``metric``; :mod:`dpa_ros.pipeline` aligns them to metres with :mod:`dpa_ros.geometry.depth_alignment`.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from dpa_ros.geometry.camera import CameraModel
from dpa_ros.priors import random_models, tiny
from dpa_ros.priors.base import LazyModel, ReconstructionError
from dpa_ros.priors.weights import resolve, spec_for

KINDS = ("dpt", "depth_anything")
OUTPUTS = ("depth", "disparity", "metric")


class MonocularDepth(LazyModel):
    """A per-pixel depth (or disparity) prediction at the input image's resolution."""

    name = "depth"

    def __init__(self, cfg: dict, *args, section: str = "depth", **kwargs) -> None:
        super().__init__(cfg, *args, **kwargs)
        self.section = section
        self.kind = self.cfg.get("kind", "dpt")
        self.output = self.cfg.get("output", "disparity")
        if self.kind not in KINDS:
            raise ReconstructionError(f"{section}.kind must be one of {KINDS}, got '{self.kind}'")
        if self.output not in OUTPUTS:
            raise ReconstructionError(f"{section}.output must be one of {OUTPUTS}, got '{self.output}'")

    def _load(self) -> None:
        if self.source == "tiny":
            build = tiny.dpt_hybrid if self.kind == "dpt" else tiny.depth_anything
            self.model, self.processor = build(int(self.cfg.get("seed", 0)), int(self.cfg.get("image_size", 64)))
        elif self.source == "random":
            build = random_models.dpt_hybrid if self.kind == "dpt" else random_models.depth_anything_small
            self.model, self.processor = build(self.device)
        else:
            from transformers import AutoImageProcessor, DepthAnythingForDepthEstimation, DPTForDepthEstimation

            path = resolve(spec_for(self.cfg, self.section), self.profile, self.weights_dir)
            cls = DPTForDepthEstimation if self.kind == "dpt" else DepthAnythingForDepthEstimation
            self.processor = AutoImageProcessor.from_pretrained(path, local_files_only=True)
            self.model = cls.from_pretrained(path, local_files_only=True, dtype=self.dtype).eval()
        self.model.to(self.device, self.dtype)

    @torch.no_grad()
    def predict(self, image_rgb: np.ndarray) -> np.ndarray:
        """(H, W) float32 prediction for a (H, W, 3) uint8 RGB image, bilinearly resized to it.

        Units follow ``output``: relative depth, relative disparity (both ≥ 0, affine-ambiguous),
        or metres.
        """
        self.load()
        h, w = image_rgb.shape[:2]
        inputs = self.processor(images=Image.fromarray(np.asarray(image_rgb, np.uint8)), return_tensors="pt")
        pred = self.model(pixel_values=inputs["pixel_values"].to(self.device, self.dtype)).predicted_depth
        pred = F.interpolate(pred[:, None].float(), size=(h, w), mode="bilinear", align_corners=False)[0, 0]
        return np.nan_to_num(pred.cpu().numpy().astype(np.float32), nan=0.0, posinf=0.0, neginf=0.0)


def sensor_depth(depth: np.ndarray | None, camera: CameraModel) -> np.ndarray | None:
    """A sensor depth image as (H, W) float32 metres with NaN where invalid (0, negative, non-finite).

    Raises :class:`ReconstructionError` when its shape does not match the camera.
    """
    if depth is None:
        return None
    d = np.asarray(depth, dtype=np.float32)
    if d.ndim == 3 and d.shape[2] == 1:
        d = d[:, :, 0]
    if d.shape != (camera.height, camera.width):
        raise ReconstructionError(f"depth shape {d.shape} does not match the image/camera "
                                  f"{camera.height}x{camera.width}")
    d = d.copy()
    d[~np.isfinite(d) | (d <= 0)] = np.nan
    return d
