"""The full image → scene pipeline (docs/method.md): deep priors for stages 1–5, the geometry core for 5–8.

    from dpa_ros.pipeline import Pipeline
    pipe = Pipeline.from_profile("paper", weights_dir="~/dpa_weights")
    pipe.load()                                    # optional: load every model now
    scene = pipe.run(image_rgb, camera, depth=None, progress=lambda stage, f: print(stage, f))

Stages, in :data:`STAGES` order: ``segment`` (Grounding DINO + SAM), ``enhance`` (Stable Diffusion
img2img, M candidates per instance), ``score`` (OpenCLIP, top K), ``generate`` (Shap-E, N meshes per
kept image), ``depth`` (monocular depth aligned to metres), then :func:`dpa_ros.assemble.assemble_scene`
runs ``background`` (planes), ``layout`` (7/5-DoF similarity fit), ``physics`` (supports, no
interpenetration) and ``assemble``. All instances go
through each stage together (one batch per model). Models load lazily on first use and stay
resident; :meth:`Pipeline.load` loads them up front and reports seconds per model.

Metric depth, in order of preference (``depth`` section of the profile): the sensor depth where it is
valid, holes filled by the monocular prediction aligned to it; else a metric-depth model (``output:
metric``, or ``metric_model``) as the reference; else a floor plane ``camera_height_m`` below a level
camera, fitted to the non-object pixels; else the prediction scaled so that its median depth is
``default_depth_m`` (logged as a warning: the scene's scale is then a guess).

Every failure a caller can act on is a :class:`ReconstructionError` with a one-line reason.
"""
from __future__ import annotations

import dataclasses
import logging
import time
from pathlib import Path
from typing import Callable

import numpy as np

from dpa_ros.assemble import Instance, assemble_scene
from dpa_ros.core.camera import CameraModel
from dpa_ros.core.scene import Scene
from dpa_ros.geometry.depth_alignment import DepthAlignmentError, align_depth, floor_depth
from dpa_ros.priors.base import Cancelled, LazyModel, MissingWeightsError, ReconstructionError, select_device
from dpa_ros.priors.config import Profile
from dpa_ros.priors.crops import white_canvas_crop
from dpa_ros.priors.depth import MonocularDepth, sensor_depth
from dpa_ros.priors.enhancer import StableDiffusionEnhancer
from dpa_ros.priors.generator import ShapEGenerator
from dpa_ros.priors.profiles import load_profile
from dpa_ros.priors.scorer import ClipScorer
from dpa_ros.priors.segmenter import GroundedSAM

__all__ = ["STAGES", "Pipeline", "ReconstructionError", "Cancelled", "MissingWeightsError"]

log = logging.getLogger(__name__)

STAGES = ("segment", "enhance", "score", "generate", "depth", "layout", "background", "physics", "assemble")

#: the order stages actually run in (assemble_scene fits the background before the layout)
_RUN_ORDER = ("segment", "enhance", "score", "generate", "depth", "background", "layout", "physics", "assemble")
#: relative cost of each stage, for the overall progress fraction: the paper's RTX 3090 seconds
#: (docs/method.md, "Paper figures to compare with"); its layout's 97.2 s is split between
#: background, layout, physics and assembly
_STAGE_COST = {"segment": 0.93, "enhance": 33.6, "score": 0.05, "generate": 39.2, "depth": 0.21,
               "background": 2.0, "layout": 93.2, "physics": 1.0, "assemble": 1.0}


def _progress_offsets() -> dict[str, tuple[float, float]]:
    total = sum(_STAGE_COST.values())
    out, acc = {}, 0.0
    for stage in _RUN_ORDER:
        out[stage] = (acc / total, _STAGE_COST[stage] / total)
        acc += _STAGE_COST[stage]
    return out


_OFFSETS = _progress_offsets()


class _Progress:
    """Turns (stage, fraction of the stage) into (stage, overall fraction), never going backwards."""

    def __init__(self, callback: Callable[[str, float], None] | None) -> None:
        self.callback = callback
        self.done = 0.0

    def __call__(self, stage: str, fraction: float) -> None:
        start, width = _OFFSETS[stage]
        self.done = max(self.done, min(1.0, start + width * min(max(float(fraction), 0.0), 1.0)))
        if self.callback is not None:
            self.callback(stage, self.done)


class Pipeline:
    """Image → :class:`~dpa_ros.core.scene.Scene` with the models of one profile.

    Args:
        profile: the typed profile (:func:`dpa_ros.priors.profiles.load_profile`), or a profile
            mapping, validated into one.
        weights_dir: where weights are looked for before the Hugging Face cache.
        device: torch device; None uses the profile's ``device`` (``auto``: CUDA when available).
        seed: seeds every stochastic stage; None uses the profile's ``seed``. Same seed, same inputs,
            same device → same scene.
    """

    def __init__(self, profile: Profile | dict, weights_dir: str | Path | None = None, device: str | None = None,
                 seed: int | None = None) -> None:
        self.profile = profile if isinstance(profile, Profile) else Profile.from_dict(profile)
        self.name = self.profile.name
        self.device = select_device(device if device is not None else self.profile.device)
        self.seed = int(seed if seed is not None else self.profile.seed)
        args = dict(profile=self.name, weights_dir=weights_dir, device=self.device)
        self.segmenter = GroundedSAM(self.profile.segmenter, **args)
        self.enhancer = StableDiffusionEnhancer(self.profile.enhancer, **args)
        self.scorer = ClipScorer(self.profile.scorer, **args)
        self.generator = ShapEGenerator(self.profile.generator, **args)
        self.depth_cfg = self.profile.depth
        self.depth_model = MonocularDepth(self.depth_cfg, section="depth", **args)
        metric_cfg = self.depth_cfg.metric_model
        self.metric_model = (MonocularDepth(metric_cfg, section="depth.metric_model", **args)
                             if metric_cfg is not None else None)
        layout_device = str(self.device) if self.device.type == "cuda" else "cpu"
        self.layout_config = dataclasses.replace(self.profile.layout, seed=self.seed, device=layout_device).validate()

    @classmethod
    def from_profile(cls, name: str, config_path: str | Path | None = None, overrides: dict | None = None,
                     weights_dir: str | Path | None = None, device: str | None = None,
                     seed: int | None = None) -> "Pipeline":
        """A pipeline for profile ``name`` (``paper``, ``fast``, ``smoke`` or a custom one).

        ``config_path`` (a YAML file refining the profile, or a directory of profiles) and
        ``overrides`` (a nested dict) are applied as in :func:`dpa_ros.priors.profiles.load_profile`.
        Nothing is loaded yet.
        """
        return cls(load_profile(name, config_path, overrides), weights_dir=weights_dir, device=device, seed=seed)

    def models(self) -> dict[str, LazyModel]:
        """The adapters by stage name (``depth_metric`` only when the profile has a metric model)."""
        out: dict[str, LazyModel] = {"segment": self.segmenter, "score": self.scorer, "generate": self.generator,
                                     "depth": self.depth_model}
        if self.profile.enhancer.candidates > 0:
            out["enhance"] = self.enhancer
        if self.metric_model is not None:
            out["depth_metric"] = self.metric_model
        return {k: out[k] for k in ("segment", "enhance", "score", "generate", "depth", "depth_metric") if k in out}

    def load(self) -> dict[str, float]:
        """Load every model now; seconds per model (0.0 for one already resident).

        Raises :class:`MissingWeightsError` for the first model whose weights are absent.
        """
        return {name: model.load() for name, model in self.models().items()}

    # ------------------------------------------------------------------------------------------

    def _check_image(self, image_rgb: np.ndarray, camera: CameraModel) -> np.ndarray:
        img = np.asarray(image_rgb)
        if img.ndim == 3 and img.shape[2] == 4:
            img = img[:, :, :3]
        if img.ndim != 3 or img.shape[2] != 3:
            raise ReconstructionError(f"image must be (H, W, 3) RGB, got shape {img.shape}")
        if img.dtype != np.uint8:
            raise ReconstructionError(f"image must be uint8, got {img.dtype}")
        min_side = self.profile.min_image_side
        if min(img.shape[:2]) < min_side:
            raise ReconstructionError(f"image too small: {img.shape[1]}x{img.shape[0]} px "
                                      f"(need at least {min_side} px a side)")
        if img.shape[:2] != (camera.height, camera.width):
            raise ReconstructionError(f"image is {img.shape[1]}x{img.shape[0]} but the camera is "
                                      f"{camera.width}x{camera.height}")
        return np.ascontiguousarray(img)

    def metric_depth(self, image_rgb: np.ndarray, camera: CameraModel, sensor: np.ndarray | None,
                     objects_mask: np.ndarray) -> tuple[np.ndarray, str]:
        """(H, W) float64 z-depth in metres (NaN invalid) and the reference it was aligned to.

        ``sensor`` is validated sensor depth (metres, NaN invalid) or None; ``objects_mask`` (H, W)
        bool marks instance pixels, kept out of the floor fit. See the module docstring for the order.
        """
        cfg = self.depth_cfg
        min_frac = cfg.min_sensor_fraction
        if _sensor_complete(sensor):
            return sensor.astype(np.float64), "sensor"
        pred = self.depth_model.predict(image_rgb).astype(np.float64)
        kind = self.depth_model.output
        if kind == "metric":
            pred_m = np.where(pred > 0, pred, np.nan)
            if sensor is not None and np.isfinite(sensor).mean() >= min_frac:
                return np.where(np.isfinite(sensor), sensor, pred_m), "sensor+metric_model"
            return pred_m, "metric_model"
        references: list[tuple[str, Callable[[], np.ndarray], np.ndarray | None]] = []
        if sensor is not None and np.isfinite(sensor).mean() >= min_frac:
            references.append(("sensor", lambda: sensor, None))
        if self.metric_model is not None:
            references.append(("metric_model", lambda: self.metric_model.predict(image_rgb), None))
        if cfg.camera_height_m:
            references.append(("floor", lambda: floor_depth(camera, cfg.camera_height_m), ~objects_mask))
        for name, reference, mask in references:
            try:
                depth = _align(pred, np.asarray(reference(), np.float64), kind, mask)
            except DepthAlignmentError as exc:
                log.info("depth alignment to %s failed: %s", name, exc)
                continue
            if name == "sensor":
                depth = np.where(np.isfinite(sensor), sensor, depth)
                name = "sensor+model"
            return depth, name
        default = cfg.default_depth_m
        log.warning("no usable metric depth reference; scaling the %s prediction to a median depth of %.2f m "
                    "(give sensor depth or depth.camera_height_m for a metric scene)", kind, default)
        return _median_scaled(pred, kind, default), "default_depth"

    # ------------------------------------------------------------------------------------------

    def run(self, image_rgb: np.ndarray, camera: CameraModel, depth: np.ndarray | None = None,
            prompt: str | None = None, progress: Callable[[str, float], None] | None = None,
            cancel: Callable[[], bool] | None = None, gravity: np.ndarray | None = None,
            gravity_source: str = "given") -> Scene:
        """Reconstruct one image.

        Args:
            image_rgb: (H, W, 3) uint8 RGB (an alpha channel is dropped), H×W = the camera's size.
            camera: intrinsics; its ``frame_id`` is the scene's frame.
            depth: optional aligned sensor depth (H, W), metres, NaN or 0 invalid.
            prompt: detection prompt ``"chair. table."``; None uses the profile's ``prompt``.
            progress: called as ``progress(stage, overall_fraction)``, fraction in [0, 1], non-decreasing.
            cancel: polled before every stage; returning True raises :class:`Cancelled`.
            gravity: known gravity (unit, pointing down, optical frame), e.g. from TF or an IMU; it
                wins over the fitted floor. ``gravity_source`` is recorded with it in the scene.

        Returns:
            The scene: objects with poses in the camera optical frame (metres), background planes,
            the coloured cloud, ``timings_s`` (every stage of :data:`STAGES`, plus ``load`` when
            models were loaded during this call), ``profile``.

        Raises:
            ReconstructionError: bad input, no detections, missing weights (:class:`MissingWeightsError`),
                a stage failure; :class:`Cancelled` when ``cancel()`` said so.
        """
        report = _Progress(progress)
        image = self._check_image(image_rgb, camera)
        sensor = sensor_depth(depth, camera)
        prompt = prompt if prompt is not None else self.profile.prompt
        timings: dict[str, float] = {}
        loading = 0.0

        def begin(stage: str, *models: LazyModel) -> float:
            nonlocal loading
            if cancel is not None and cancel():
                raise Cancelled(f"cancelled before stage '{stage}'")
            report(stage, 0.0)
            loading += sum(model.load() for model in models)
            return time.perf_counter()

        def end(stage: str, t0: float) -> None:
            timings[stage] = time.perf_counter() - t0
            report(stage, 1.0)

        t0 = begin("segment", self.segmenter)
        detections = self.segmenter.segment(image, prompt)
        end("segment", t0)
        if not detections:
            raise ReconstructionError(f"no objects detected for prompt '{prompt}'")
        labels = [d.label for d in detections]

        ecfg = self.profile.enhancer
        t0 = begin("enhance", *([self.enhancer] if ecfg.candidates > 0 else []))
        canvases = [white_canvas_crop(image, d.mask, ecfg.canvas_size, ecfg.fill) for d in detections]
        candidates = self.enhancer.enhance(canvases, labels, seed=self.seed)
        end("enhance", t0)

        t0 = begin("score", self.scorer)
        kept, _ = self.scorer.select(canvases, candidates)
        end("score", t0)

        t0 = begin("generate", self.generator)
        proposals = self.generator.generate(kept, seed=self.seed)
        end("generate", t0)

        depth_models = [] if _sensor_complete(sensor) else [m for m in (self.depth_model, self.metric_model) if m]
        t0 = begin("depth", *depth_models)  # a complete sensor depth needs no model (nor its weights)
        objects_mask = np.logical_or.reduce([d.mask for d in detections])
        metric, reference = self.metric_depth(image, camera, sensor, objects_mask)
        log.info("metric depth from %s", reference)
        end("depth", t0)

        instances = []
        for det, meshes, canvas in zip(detections, proposals, canvases):
            if not meshes:
                log.warning("dropping a %s: Shap-E gave no mesh", det.label)
                continue
            if np.isfinite(metric[det.mask]).sum() < 3:
                log.warning("dropping a %s: no valid depth inside its mask", det.label)
                continue
            instances.append(Instance(label=det.label, score=det.score, mask=det.mask, meshes=meshes, crop_rgb=canvas))
        if not instances:
            raise ReconstructionError(f"none of the {len(detections)} detected objects could be placed "
                                      "(no mesh proposals or no valid depth)")
        if cancel is not None and cancel():
            raise Cancelled("cancelled before stage 'background'")
        try:
            scene = assemble_scene(image, metric, camera, instances, config=self.layout_config, progress=report,
                                   timings=timings, profile=self.name, gravity=gravity,
                                   gravity_source=gravity_source, physics=self.profile.physics)
        except ValueError as exc:  # InstanceInputError and other input problems of the geometry core
            raise ReconstructionError(f"layout failed: {exc}") from exc
        scene.timings_s = {stage: float(timings.get(stage, 0.0)) for stage in STAGES}
        if loading > 0:
            scene.timings_s["load"] = loading
        return scene


def _sensor_complete(sensor: np.ndarray | None) -> bool:
    """True when sensor depth is valid on (nearly, 99.9 %) every pixel: no model is needed then."""
    return sensor is not None and float(np.isfinite(sensor).mean()) >= 0.999


def _align(pred: np.ndarray, reference: np.ndarray, kind: str, mask: np.ndarray | None) -> np.ndarray:
    """Metric depth from a relative prediction and a metric reference (both (H, W), metres for the reference).

    A ``disparity`` prediction is aligned affinely to the reference's inverse depth and inverted;
    a ``depth`` prediction to the reference directly. Raises :class:`DepthAlignmentError` when the
    fit is degenerate or leaves under half of the pixels with a positive depth.
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        target = 1.0 / reference if kind == "disparity" else reference
    fit = align_depth(pred, np.where(np.isfinite(target) & (target > 0), target, np.nan), mask=mask)
    aligned = fit.apply(pred)
    with np.errstate(divide="ignore", invalid="ignore"):
        depth = 1.0 / aligned if kind == "disparity" else aligned
    depth = np.where(np.isfinite(depth) & (depth > 0), depth, np.nan)
    if np.isfinite(depth).mean() < 0.5:
        raise DepthAlignmentError(f"alignment (scale {fit.scale:.3g}, shift {fit.shift:.3g}) leaves "
                                  f"{np.isfinite(depth).mean():.0%} of the pixels with a positive depth")
    return depth


def _median_scaled(pred: np.ndarray, kind: str, median_m: float) -> np.ndarray:
    """A guess at metric depth: the prediction scaled (no shift) to a median of ``median_m`` metres.

    A disparity is inverted first; a constant or non-positive prediction gives a flat ``median_m``.
    """
    pos = np.isfinite(pred) & (pred > 0)
    if pos.mean() < 0.5 or np.ptp(pred[pos]) <= 1e-12 * max(1.0, float(np.abs(pred[pos]).max())):
        return np.full(pred.shape, median_m)
    rel = np.full(pred.shape, np.nan)
    rel[pos] = 1.0 / pred[pos] if kind == "disparity" else pred[pos]
    return rel * (median_m / np.nanmedian(rel))
