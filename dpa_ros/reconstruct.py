"""Image files in, scene directories out: the library behind ``dpa-reconstruct``.

:func:`reconstruct_image` reads one image (+ optional depth) and the camera_info, rectifies it
(:mod:`dpa_ros.geometry.rectify`), reconstructs it — the given instances placed in the sensor's
metric depth (:func:`dpa_ros.assemble.assemble_scene`) or the full pipeline of a profile
(:class:`dpa_ros.pipeline.Pipeline`, built once per process and set of options,
:func:`cached_pipeline`) — and writes ``scene.json`` (and the files it names), ``preview.png``
(:mod:`dpa_ros.overlay`) and the export formats (:func:`dpa_ros.export.export_scene`).
:func:`run_batch` runs it over many images, each into its own folder, a failing image recorded and
the batch going on. Bad input is an :class:`InputError` with a one-line reason.

Units: depth in metres (a 16-bit PNG times ``depth_scale`` metres per unit); poses in the camera
optical frame (REP 103: x right, y down, z forward).
"""
from __future__ import annotations

import dataclasses
import glob
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import yaml
from PIL import Image

from dpa_ros.core.scene import Scene, write_scene
from dpa_ros.export import ExportOptions, export_scene
from dpa_ros.geometry.layout import LayoutConfig
from dpa_ros.geometry.physics import PhysicsConfig
from dpa_ros.geometry.rectify import CameraInfo, rectify_frame
from dpa_ros.geometry.targets import TargetConfig
from dpa_ros.overlay import PREVIEW_PNG, write_preview
from dpa_ros.priors.config import (
    ProfileError,
    layout_from_dict,
    migrate_moved_keys,
    physics_from_dict,
    targets_from_dict,
)

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
BATCH_SUMMARY_JSON = "batch_summary.json"


class InputError(ValueError):
    """Bad input (a file, a config, an option); ``str(err)`` is a one-line reason."""


@dataclass(frozen=True)
class ReconstructOptions:
    """What one reconstruction reads and how (the options of ``dpa-reconstruct``).

    Attributes:
        depth: aligned depth file: a 16-bit PNG (times ``depth_scale``) or a .npy in metres; None: none.
        depth_scale: metres per PNG depth unit.
        instances: JSON list of ``{label, mask, meshes[, score, up]}``: the learned stages are
            skipped (needs ``depth``); None: the full pipeline of ``profile``.
        mesh_up: up axis of the instances' meshes without their own ``up`` (None: ``+y``, glTF).
        gravity: unit gravity in the camera optical frame, pointing down; None: from the floor.
        profile: the model profile of the full pipeline.
        prompt: the detection prompt; None: the profile's.
        weights_dir: local model weights; None: ``$DPA_WEIGHTS_DIR`` or the Hugging Face cache.
        config: YAML config file (its ``layout:``, ``targets:`` and ``physics:`` sections; merged
            over the profile for the full pipeline); None: none.
        no_physics: skip the physics stage.
        seed: random seed; None: the config's, else 0.
        device: ``cpu``, ``cuda`` or ``auto``; None: the config's.
        rectified: the image is already rectified: use P and ignore the distortion.
        distortion: a distorted image is ``rectify``-ed or ``refuse``-d.
        force: replace what a previous run left in the output directory.
    """

    depth: Path | None = None
    depth_scale: float = 0.001
    instances: Path | None = None
    mesh_up: str | None = None
    gravity: np.ndarray | None = None
    profile: str = "paper"
    prompt: str | None = None
    weights_dir: Path | None = None
    config: Path | None = None
    no_physics: bool = False
    seed: int | None = None
    device: str | None = None
    rectified: bool = False
    distortion: str = "rectify"
    force: bool = False

    @classmethod
    def from_namespace(cls, namespace) -> "ReconstructOptions":
        """The options of an ``argparse.Namespace`` holding (at least) these fields."""
        return cls(**{f.name: getattr(namespace, f.name) for f in dataclasses.fields(cls)})


def load_image(path: Path) -> np.ndarray:
    """(H, W, 3) uint8 RGB image."""
    try:
        with Image.open(path) as img:
            return np.asarray(img.convert("RGB"))
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot read image {path}: {exc}") from exc


def load_depth(path: Path, depth_scale: float) -> np.ndarray:
    """Metric depth (H, W) in metres: a .npy in metres, or an image (16-bit PNG) times ``depth_scale``.

    Zero, NaN and inf stay invalid (NaN).
    """
    try:
        if path.suffix.lower() == ".npy":
            depth = np.load(path).astype(np.float64)
        else:
            with Image.open(path) as img:
                depth = np.asarray(img).astype(np.float64) * depth_scale
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot read depth {path}: {exc}") from exc
    if depth.ndim != 2:
        raise InputError(f"depth {path} must be a single-channel image, got shape {depth.shape}")
    depth[~np.isfinite(depth) | (depth <= 0)] = np.nan
    return depth


def _config_sections(config_path: Path | None) -> dict:
    """The YAML mapping of a config file ({} without one), moved keys in their new place."""
    if config_path is None:
        return {}
    try:
        data = yaml.safe_load(config_path.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:  # a YAML error spans lines (the excerpt, a caret): one line here
        raise InputError(f"cannot read config {config_path}: {' '.join(str(exc).split())}") from exc
    if not isinstance(data, dict):
        raise InputError(f"config {config_path} must be a YAML mapping")
    try:
        return migrate_moved_keys(data, f"config {config_path}")
    except ProfileError as exc:  # a moved key set in both its old and its new place
        raise InputError(str(exc)) from exc


def _section(config_path: Path | None, name: str, build: Callable[[dict], object], **changes):
    """Section ``name`` of the config file built by ``build`` after ``changes``; InputError naming the file."""
    section = _config_sections(config_path).get(name, {}) or {}
    if not isinstance(section, dict):
        raise InputError(f"config {config_path}: '{name}' must be a mapping")
    try:
        return build({**section, **changes})
    except ProfileError as exc:  # an unknown key (named, with the nearest valid one) or a bad value
        raise InputError(f"config {config_path}: {exc}") from exc


def layout_config(config_path: Path | None, seed: int | None, device: str | None) -> LayoutConfig:
    """LayoutConfig from the ``layout:`` section of a YAML config file, then ``seed`` / ``device``."""
    changes = {k: v for k, v in (("seed", seed), ("device", device)) if v is not None}
    return _section(config_path, "layout", layout_from_dict, **changes)


def targets_config(config_path: Path | None) -> TargetConfig:
    """TargetConfig from the ``targets:`` section of a YAML config file."""
    return _section(config_path, "targets", targets_from_dict)


def physics_config(config_path: Path | None, disabled: bool) -> PhysicsConfig:
    """PhysicsConfig from the ``physics:`` section of a YAML config file; ``disabled`` turns it off."""
    return _section(config_path, "physics", physics_from_dict, **({"enabled": False} if disabled else {}))


class _Progress:
    """A tqdm bar over stages: each (stage, fraction) report moves it."""

    def __init__(self, enabled: bool):
        from tqdm import tqdm
        self.bar = tqdm(total=100, unit="%", disable=not enabled, leave=False, dynamic_ncols=True)
        self.stage = ""

    def __call__(self, stage: str, fraction: float) -> None:
        if stage != self.stage:
            self.stage = stage
            self.bar.set_description(stage)
        self.bar.n = int(round(100 * min(max(fraction, 0.0), 1.0)))
        self.bar.refresh()

    def close(self) -> None:
        self.bar.close()


def instances_scene(options: ReconstructOptions, image, depth, camera, progress) -> Scene:
    """The ``options.instances`` placed in ``depth`` (metres) with the config file's layout,
    targets and physics settings."""
    from dpa_ros.assemble import InstancesFileError, assemble_scene, load_instances_json
    try:
        instances = load_instances_json(options.instances, mesh_up=options.mesh_up)
    except InstancesFileError as exc:
        raise InputError(str(exc)) from exc
    config = layout_config(options.config, options.seed, options.device)
    physics = physics_config(options.config, options.no_physics)
    return assemble_scene(image, depth, camera, instances, config=config, progress=progress, profile="instances",
                          gravity=options.gravity, physics=physics, targets=targets_config(options.config))


class PipelineCache:
    """One Pipeline per set of pipeline options in a process: a batch loads its models once, for
    the first image; another profile, config or device builds its own."""

    pipeline = None
    key: tuple = ()


def cached_pipeline(options: ReconstructOptions):
    """The process's Pipeline for the options' profile and config (built once per set of them;
    models load on the first run); InputError for a bad profile or config."""
    try:
        from dpa_ros.pipeline import Pipeline, ReconstructionError
    except ImportError as exc:
        raise InputError(f"full pipeline not available: {exc}; use --instances with --depth") from exc
    key = (options.profile, str(options.config), bool(options.no_physics), str(options.weights_dir), options.device,
           options.seed)
    if PipelineCache.pipeline is None or PipelineCache.key != key:
        overrides = {"physics": {"enabled": False}} if options.no_physics else None
        try:
            PipelineCache.pipeline = Pipeline.from_profile(options.profile, config_path=options.config,
                                                           overrides=overrides, weights_dir=options.weights_dir,
                                                           device=options.device, seed=options.seed)
        except ReconstructionError as exc:
            raise InputError(str(exc)) from exc
        PipelineCache.key = key
    return PipelineCache.pipeline


def pipeline_scene(options: ReconstructOptions, image, depth, camera, progress) -> Scene:
    """The full pipeline of the options' profile on ``image`` (and ``depth``, metres, if any)."""
    from dpa_ros.pipeline import ReconstructionError

    try:
        return cached_pipeline(options).run(image, camera, depth=depth, progress=progress, gravity=options.gravity,
                                            prompt=options.prompt)
    except ReconstructionError as exc:  # no detections, missing weights, bad depth ...: one line
        raise InputError(str(exc)) from exc


def camera_frame(options: ReconstructOptions, camera_info: CameraInfo, image: np.ndarray, depth: np.ndarray | None):
    """(image, depth, pinhole camera): rectified, used as it is (``options.rectified``), or refused."""
    if options.rectified:
        return image, depth, camera_info.rectified_camera()
    image, depth, camera, note = rectify_frame(camera_info, image, depth, policy=options.distortion)
    log.info("%s", note)
    return image, depth, camera


def reconstruct_image(options: ReconstructOptions, image_path: Path, out: Path, camera_info: CameraInfo,
                      formats: tuple[str, ...], show_progress: bool) -> tuple[Path, int]:
    """Reconstruct ``image_path`` into the scene directory ``out`` and export ``formats`` there;
    (scene.json path, objects placed). InputError (a ValueError) for bad input."""
    if not options.force and out.is_dir() and any(out.iterdir()):
        raise InputError(f"--out {out} is not empty; use --force to replace its contents")
    image = load_image(image_path)
    depth = load_depth(options.depth, options.depth_scale) if options.depth is not None else None
    image, depth, camera = camera_frame(options, camera_info, image, depth)
    progress = _Progress(enabled=show_progress)
    t0 = time.perf_counter()
    try:
        build = instances_scene if options.instances is not None else pipeline_scene
        scene = build(options, image, depth, camera, progress)
    finally:
        progress.close()
    json_path = write_scene(scene, out)
    preview = write_preview(out / PREVIEW_PNG, image, scene)
    for stage, seconds in scene.timings_s.items():
        log.info("stage %-12s %8.2f s", stage, seconds)
    log.info("%d objects placed in %.2f s; scene written to %s", len(scene.objects), time.perf_counter() - t0,
             json_path)
    log.info("preview (input image with the fitted objects drawn over it): %s", preview)
    if formats:
        export_scene(out, formats=formats, options=ExportOptions(overwrite=options.force))
    return json_path, len(scene.objects)


def batch_images(pattern: str) -> list[Path]:
    """The images of a batch: a directory's image files, or a glob's matches, sorted."""
    path = Path(pattern)
    if path.is_dir():
        found = [p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES]
    else:
        found = [Path(p) for p in glob.glob(pattern, recursive=True) if Path(p).is_file()]
    if not found:
        raise InputError(f"--images {pattern}: no image files there (a directory of {', '.join(IMAGE_SUFFIXES)} "
                         "files, or a glob such as 'photos/*.jpg')")
    return sorted(found)


def output_dirs(images: list[Path], out: Path) -> list[Path]:
    """<out>/<stem>/ per image; a stem seen twice gets the file's suffix, then a counter."""
    dirs, used = [], set()
    for image in images:
        name = image.stem
        if name in used:
            name = f"{image.stem}_{image.suffix.lstrip('.')}"
        k = 2
        while name in used:
            name, k = f"{image.stem}_{k}", k + 1
        used.add(name)
        dirs.append(out / name)
    return dirs


def run_batch(images: list[Path], out: Path, reconstruct: Callable[[Path, Path], int],
              show_progress: bool) -> list[dict]:
    """``reconstruct(image, folder)`` (objects placed) for every image into ``<out>/<stem>/``
    (:func:`output_dirs`); one row per image (also written to ``<out>/batch_summary.json``):
    ``image``, ``out``, ``ok``, ``objects``, ``seconds``, ``error``.

    A failing image (unreadable, wrong size for the camera, no detections ...) is logged and
    recorded, and the batch goes on.
    """
    from tqdm import tqdm

    rows = []
    bar = tqdm(list(zip(images, output_dirs(images, out))), unit="image", dynamic_ncols=True,
               disable=not show_progress)
    for image, folder in bar:
        bar.set_postfix_str(image.name)
        t0 = time.perf_counter()
        row = {"image": str(image), "out": str(folder), "ok": False, "objects": 0, "seconds": 0.0, "error": ""}
        try:
            row["objects"] = reconstruct(image, folder)
            row["ok"] = True
        except Exception as exc:  # one bad image must not stop the batch: reported per image
            row["error"] = str(exc) if isinstance(exc, ValueError) else f"{type(exc).__name__}: {exc}"
            log.warning("%s failed: %s", image, row["error"])
        row["seconds"] = round(time.perf_counter() - t0, 3)
        rows.append(row)
    bar.close()
    out.mkdir(parents=True, exist_ok=True)
    (out / BATCH_SUMMARY_JSON).write_text(json.dumps(rows, indent=2) + "\n")
    return rows


def summary_table(rows: list[dict]) -> str:
    """A batch's table: one line per image, then the totals."""
    width = max([len(Path(r["image"]).name) for r in rows] + [5])
    lines = [f"{'image':<{width}}  {'result':<6}  {'objects':>7}  {'seconds':>8}  output / reason"]
    for r in rows:
        result = "ok" if r["ok"] else "FAILED"
        lines.append(f"{Path(r['image']).name:<{width}}  {result:<6}  {r['objects']:>7}  {r['seconds']:>8.2f}  "
                     f"{r['out'] if r['ok'] else r['error']}")
    failed = sum(not r["ok"] for r in rows)
    lines.append(f"{len(rows) - failed} of {len(rows)} images reconstructed, {failed} failed")
    return "\n".join(lines)
