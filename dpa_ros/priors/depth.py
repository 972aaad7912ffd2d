"""Stage 5, depth: a monocular depth model (DPT in Omnidata's DPT-Hybrid layout, or Depth Anything),
and the sensor-depth path that needs no model.

Profile section ``depth``: :class:`dpa_ros.priors.config.DepthConfig` — the relative depth model
(``kind``: dpt | depth_anything, ``output``: depth | disparity | metric), an optional
``metric_model`` (``output: metric``, e.g. Depth Anything V2 Metric Indoor) that gives the metric
reference for frames without sensor depth, and the fallbacks (``camera_height_m``,
``default_depth_m``, ``min_sensor_fraction``).

When the model's image processor has ``post_process_depth_estimation`` (transformers' DPT, Depth
Anything, ZoeDepth, Depth Pro processors) the prediction goes through it, resized to the input
image (ZoeDepth's padding removal needs the source size, which is passed); otherwise it is resized
bilinearly.

Outputs of :meth:`MonocularDepth.predict` are relative (affine-ambiguous) unless ``output`` is
``metric``; :mod:`dpa_ros.pipeline` aligns them to metres with :mod:`dpa_ros.geometry.depth_alignment`.
"""
from __future__ import annotations

import inspect

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from dpa_ros.core.camera import CameraModel
from dpa_ros.priors import random_models, tiny
from dpa_ros.priors.base import LazyModel, ReconstructionError
from dpa_ros.priors.config import DepthModelConfig
from dpa_ros.priors.weights import resolve, spec_for


class MonocularDepth(LazyModel):
    """A per-pixel depth (or disparity) prediction at the input image's resolution."""

    name = "depth"
    config_class = DepthModelConfig

    def __init__(self, cfg, *args, section: str = "depth", **kwargs) -> None:
        self.section = section
        super().__init__(cfg, *args, **kwargs)
        self.kind = self.cfg.kind
        self.output = self.cfg.output

    def _load(self) -> None:
        if self.source == "tiny":
            if self.kind == "dpt":
                self.model, self.processor = tiny.dpt_hybrid(self.cfg.seed, self.cfg.image_size)
            else:
                self.model, self.processor = tiny.depth_anything(self.cfg.seed, self.cfg.image_size,
                                                                 metric=self.output == "metric")
        elif self.source == "random":
            build = random_models.dpt_hybrid if self.kind == "dpt" else random_models.depth_anything_small
            self.model, self.processor = build(self.device)
        else:
            path = resolve(spec_for(self.cfg, self.section), self.profile, self.weights_dir)
            from transformers import AutoImageProcessor, DepthAnythingForDepthEstimation, DPTForDepthEstimation

            cls = DPTForDepthEstimation if self.kind == "dpt" else DepthAnythingForDepthEstimation
            self.processor = AutoImageProcessor.from_pretrained(path, local_files_only=True)
            self.model = cls.from_pretrained(path, local_files_only=True, dtype=self.dtype).eval()
        self.model.to(self.device, self.dtype)

    @torch.no_grad()
    def predict(self, image_rgb: np.ndarray) -> np.ndarray:
        """(H, W) float32 prediction (≥ 0) for a (H, W, 3) uint8 RGB image, resized to it (see the module docstring).

        Units follow ``output``: relative depth, relative disparity (both ≥ 0, affine-ambiguous),
        or metres.
        """
        self.load()
        h, w = image_rgb.shape[:2]
        inputs = self.processor(images=Image.fromarray(np.asarray(image_rgb, np.uint8)), return_tensors="pt")
        outputs = self.model(pixel_values=inputs["pixel_values"].to(self.device, self.dtype))
        post = getattr(self.processor, "post_process_depth_estimation", None)
        if post is not None:
            kwargs = {"target_sizes": [(h, w)]}
            if "source_sizes" in inspect.signature(post).parameters:  # ZoeDepth: undo its padding first
                kwargs["source_sizes"] = [(h, w)]
            outputs.predicted_depth = outputs.predicted_depth.float()
            pred = post(outputs, **kwargs)[0]["predicted_depth"].float()
            if pred.shape != (h, w):  # a processor that ignores target_sizes
                pred = F.interpolate(pred[None, None], size=(h, w), mode="bilinear", align_corners=False)[0, 0]
        else:
            pred = outputs.predicted_depth
            pred = F.interpolate(pred[:, None].float(), size=(h, w), mode="bilinear", align_corners=False)[0, 0]
        pred = pred.clamp_min(0.0)  # bicubic resizing overshoots below zero at sharp edges; no model output is < 0
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
