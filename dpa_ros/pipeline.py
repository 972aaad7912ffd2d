"""The full image → scene pipeline (docs/method.md): deep priors for stages 1–5, the geometry core for 5–8.

    from dpa_ros.pipeline import Pipeline
    pipe = Pipeline.from_profile("paper", weights_dir="~/dpa_weights")
    pipe.load()                                    # optional: load every model now
    scene = pipe.run(image_rgb, camera, depth=None, progress=lambda stage, f: print(stage, f))

    pipe = Pipeline.from_profile("fast", segmenter=MySegmenter())   # your own component for a stage

Each model stage's component follows a protocol of :mod:`dpa_ros.priors.protocols`;
:meth:`Pipeline.from_profile` builds the profile's adapters for the ones not passed in, and
``Pipeline(segmenter=..., enhancer=..., scorer=..., generator=..., depth=...)`` takes them all.

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

import contextlib
import dataclasses
import logging
import time
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from dpa_ros.assemble import Instance, assemble_scene
from dpa_ros.core.camera import CameraModel
from dpa_ros.core.scene import Scene
from dpa_ros.geometry.depth_alignment import DepthAlignmentError, align_depth, floor_depth
from dpa_ros.geometry.layout import LayoutConfig
from dpa_ros.priors.base import Cancelled, MissingWeightsError, ReconstructionError, select_device
from dpa_ros.priors.config import Profile
from dpa_ros.priors.crops import white_canvas_crop
from dpa_ros.priors.depth import MonocularDepth, sensor_depth
from dpa_ros.priors.enhancer import StableDiffusionEnhancer
from dpa_ros.priors.generator import ShapEGenerator
from dpa_ros.priors.profiles import load_profile
from dpa_ros.priors.protocols import DepthEstimator, Enhancer, Generator, Scorer, Segmenter
from dpa_ros.priors.scorer import ClipScorer
from dpa_ros.priors.segmenter import GroundedSAM

__all__ = ["STAGES", "Pipeline", "ReconstructionError", "Cancelled", "MissingWeightsError"]

log = logging.getLogger(__name__)

#: Every stage, as named in progress reports and ``Scene.timings_s``.
STAGES = ("segment", "enhance", "score", "generate", "depth", "layout", "background", "physics", "assemble")

#: the order stages actually run in (assemble_scene fits the background before the layout)
_RUN_ORDER = ("segment", "enhance", "score", "generate", "depth", "background", "layout", "physics", "assemble")
#: relative cost of each stage, for the overall progress fraction: the paper's seconds per stage
#: (docs/method.md, "Paper figures to compare with"), its layout time split between background,
#: layout, physics and assembly
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

#: the keyword arguments of Pipeline that from_profile passes through
_COMPONENTS = {"segmenter", "enhancer", "scorer", "generator", "depth", "metric_depth_model", "layout_config"}


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
    """Image → :class:`~dpa_ros.core.scene.Scene` from one component per model stage.

    The components follow the protocols of :mod:`dpa_ros.priors.protocols`; any object with their
    methods will do (a custom segmenter needs no profile entry). :meth:`from_profile` builds the
    ones not given from a profile. Nothing is loaded on construction.

    Args:
        segmenter: stage 1 (:class:`~dpa_ros.priors.protocols.Segmenter`).
        enhancer: stage 2 (:class:`~dpa_ros.priors.protocols.Enhancer`); run with
            ``profile.enhancer.candidates`` > 0 only.
        scorer: stage 3 (:class:`~dpa_ros.priors.protocols.Scorer`).
        generator: stage 4 (:class:`~dpa_ros.priors.protocols.Generator`).
        depth: stage 5, the image's depth (:class:`~dpa_ros.priors.protocols.DepthEstimator`).
        metric_depth_model: an optional second estimator with ``output == "metric"``, the metric
            reference for frames without sensor depth (see the module docstring).
        layout_config: the layout solver's settings; None: ``profile.layout`` with the pipeline's
            seed and device.
        profile: the settings of the stages (prompt, minimum image side, crop canvas, depth
            references, targets, physics) and the scene's ``profile`` name; None: :class:`Profile` defaults.
        device: torch device; None uses the profile's ``device`` (``auto``: CUDA when available).
        seed: seeds every stochastic stage; None uses the profile's ``seed``. Same seed, same inputs,
            same device → same scene.

    Raises:
        TypeError: a component lacks a method of its protocol (the message names it).
    """

    def __init__(self, *, segmenter: Segmenter, enhancer: Enhancer, scorer: Scorer, generator: Generator,
                 depth: DepthEstimator, metric_depth_model: DepthEstimator | None = None,
                 layout_config: LayoutConfig | None = None, profile: Profile | dict | None = None,
                 device: str | None = None, seed: int | None = None) -> None:
        for name, component, protocol in (("segmenter", segmenter, Segmenter), ("enhancer", enhancer, Enhancer),
                                          ("scorer", scorer, Scorer), ("generator", generator, Generator),
                                          ("depth", depth, DepthEstimator),
                                          ("metric_depth_model", metric_depth_model, DepthEstimator)):
            if not (component is None and name == "metric_depth_model") and not isinstance(component, protocol):
                raise TypeError(f"{name}: {type(component).__name__} does not follow the {protocol.__name__} "
                                f"protocol (dpa_ros.priors.protocols)")
        self.profile = profile if isinstance(profile, Profile) else Profile.from_dict(profile)
        self.name = self.profile.name
        self.device = select_device(device if device is not None else self.profile.device)
        self.seed = int(seed if seed is not None else self.profile.seed)
        self.segmenter = segmenter
        self.enhancer = enhancer
        self.scorer = scorer
        self.generator = generator
        self.depth_model = depth
        self.metric_model = metric_depth_model
        self.depth_cfg = self.profile.depth
        if layout_config is None:
            layout_device = str(self.device) if self.device.type == "cuda" else "cpu"
            layout_config = dataclasses.replace(self.profile.layout, seed=self.seed, device=layout_device)
        self.layout_config = layout_config

    @classmethod
    def from_profile(cls, profile: str | Profile | dict, config_path: str | Path | None = None,
                     overrides: dict | None = None, weights_dir: str | Path | None = None, device: str | None = None,
                     seed: int | None = None, **components) -> "Pipeline":
        """A pipeline whose components are the adapters of ``profile``, except those passed in.

        Args:
            profile: a profile name (``paper``, ``fast``, ``smoke`` or a custom one), refined by
                ``config_path`` (a YAML file, or a directory of profiles) and ``overrides`` (a nested
                dict) as in :func:`dpa_ros.priors.profiles.load_profile`; or a typed :class:`Profile`
                or a profile mapping (then ``config_path`` and ``overrides`` must be None).
            weights_dir: where the adapters look for weights before the Hugging Face cache.
            device, seed: as in :class:`Pipeline`.
            components: any of the constructor's ``segmenter``, ``enhancer``, ``scorer``,
                ``generator``, ``depth``, ``metric_depth_model``, ``layout_config``, used as given.

        Nothing is loaded yet.
        """
        unknown = set(components) - _COMPONENTS
        if unknown:
            raise TypeError(f"from_profile: unknown component(s) {sorted(unknown)} (valid: {sorted(_COMPONENTS)})")
        if isinstance(profile, str):
            profile = load_profile(profile, config_path, overrides)
        elif config_path is not None or overrides is not None:
            raise TypeError("from_profile: config_path and overrides apply to a profile name only")
        profile = profile if isinstance(profile, Profile) else Profile.from_dict(profile)
        dev = select_device(device if device is not None else profile.device)
        args = dict(profile=profile.name, weights_dir=weights_dir, device=dev)
        builders = {
            "segmenter": lambda: GroundedSAM(profile.segmenter, **args),
            "enhancer": lambda: StableDiffusionEnhancer(profile.enhancer, **args),
            "scorer": lambda: ClipScorer(profile.scorer, **args),
            "generator": lambda: ShapEGenerator(profile.generator, **args),
            "depth": lambda: MonocularDepth(profile.depth, section="depth", **args),
            "metric_depth_model": lambda: (MonocularDepth(profile.depth.metric_model, section="depth.metric_model",
                                                          **args) if profile.depth.metric_model is not None else None),
        }
        for name, build in builders.items():
            if name not in components:
                components[name] = build()
        return cls(profile=profile, device=device, seed=seed, **components)

    def models(self) -> dict[str, object]:
        """The components by stage name (``enhance`` only with enhancer candidates, ``depth_metric`` only
        with a metric depth model)."""
        out: dict[str, object] = {"segment": self.segmenter, "score": self.scorer, "generate": self.generator,
                                  "depth": self.depth_model}
        if self.profile.enhancer.candidates > 0:
            out["enhance"] = self.enhancer
        if self.metric_model is not None:
            out["depth_metric"] = self.metric_model
        return {k: out[k] for k in ("segment", "enhance", "score", "generate", "depth", "depth_metric") if k in out}

    def load(self) -> dict[str, float]:
        """Load every model now; seconds per model (0.0 for one already resident or without ``load``).

        Raises :class:`MissingWeightsError` for the first model whose weights are absent.
        """
        return {name: _load(model) for name, model in self.models().items()}

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
        image = self._check_image(image_rgb, camera)
        sensor = sensor_depth(depth, camera)
        prompt = prompt if prompt is not None else self.profile.prompt
        report = _Progress(progress)
        clock = _StageClock(report, cancel)

        with clock.stage("segment", self.segmenter):
            detections = self.segmenter.segment(image, prompt)
        if not detections:
            raise ReconstructionError(f"no objects detected for prompt '{prompt}'")
        with clock.stage("enhance", *self._enhancer_models()):
            canvases, candidates = self._enhance(image, detections)
        with clock.stage("score", self.scorer):
            kept, _ = self.scorer.select(canvases, candidates)
        with clock.stage("generate", self.generator):
            proposals = self.generator.generate(kept, seed=self.seed)
        with clock.stage("depth", *self._depth_models(sensor)):  # complete sensor depth needs no model
            metric = self._metric_depth_of_scene(image, camera, sensor, detections)
        instances = self._instances(detections, proposals, canvases, metric)
        clock.check_cancel("background")
        try:  # background, layout, physics, assemble
            scene = assemble_scene(image, metric, camera, instances, config=self.layout_config, progress=report,
                                   timings=clock.timings, profile=self.name, gravity=gravity,
                                   gravity_source=gravity_source, physics=self.profile.physics,
                                   targets=self.profile.targets)
        except ValueError as exc:  # InstanceInputError and other input problems of the geometry core
            raise ReconstructionError(f"layout failed: {exc}") from exc
        scene.timings_s = {stage: float(clock.timings.get(stage, 0.0)) for stage in STAGES}
        if clock.loading > 0:
            scene.timings_s["load"] = clock.loading
        return scene

    def _enhancer_models(self) -> list[object]:
        return [self.enhancer] if self.profile.enhancer.candidates > 0 else []

    def _enhance(self, image: np.ndarray, detections: list) -> tuple[list[np.ndarray], np.ndarray]:
        """Each detection's white-canvas crop, and the enhancer's candidates of them."""
        ecfg = self.profile.enhancer
        canvases = [white_canvas_crop(image, d.mask, ecfg.canvas_size, ecfg.fill) for d in detections]
        return canvases, self.enhancer.enhance(canvases, [d.label for d in detections], seed=self.seed)

    def _depth_models(self, sensor: np.ndarray | None) -> list[object]:
        return [] if _sensor_complete(sensor) else [m for m in (self.depth_model, self.metric_model) if m]

    def _metric_depth_of_scene(self, image: np.ndarray, camera: CameraModel, sensor: np.ndarray | None,
                               detections: list) -> np.ndarray:
        objects_mask = np.logical_or.reduce([d.mask for d in detections])
        metric, reference = self.metric_depth(image, camera, sensor, objects_mask)
        log.info("metric depth from %s", reference)
        return metric

    @staticmethod
    def _instances(detections: list, proposals: list, canvases: list[np.ndarray], metric: np.ndarray) -> list[Instance]:
        """The detections that can be placed: with at least one mesh and valid depth in their mask."""
        instances = []
        for det, meshes, canvas in zip(detections, proposals, canvases):
            if not meshes:
                log.warning("dropping a %s: the generator gave no mesh", det.label)
                continue
            if np.isfinite(metric[det.mask]).sum() < 3:
                log.warning("dropping a %s: no valid depth inside its mask", det.label)
                continue
            instances.append(Instance(label=det.label, score=det.score, mask=det.mask, meshes=meshes, crop_rgb=canvas))
        if not instances:
            raise ReconstructionError(f"none of the {len(detections)} detected objects could be placed "
                                      "(no mesh proposals or no valid depth)")
        return instances


def _load(component: object) -> float:
    """``component.load()``'s seconds, 0.0 for a component without ``load``."""
    load = getattr(component, "load", None)
    return float(load()) if callable(load) else 0.0


class _StageClock:
    """Runs the stages' bookkeeping: cancel check, progress at 0 and 1, model loading, seconds per stage."""

    def __init__(self, report: _Progress, cancel: Callable[[], bool] | None) -> None:
        self.report = report
        self.cancel = cancel
        self.timings: dict[str, float] = {}
        self.loading = 0.0

    def check_cancel(self, stage: str) -> None:
        if self.cancel is not None and self.cancel():
            raise Cancelled(f"cancelled before stage '{stage}'")

    @contextlib.contextmanager
    def stage(self, stage: str, *models: object) -> Iterator[None]:
        """Loads ``models`` (seconds counted as loading), then times the block as ``stage``."""
        self.check_cancel(stage)
        self.report(stage, 0.0)
        self.loading += sum(_load(model) for model in models)
        t0 = time.perf_counter()
        yield
        self.timings[stage] = time.perf_counter() - t0
        self.report(stage, 1.0)


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
