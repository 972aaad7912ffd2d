"""``dpa-reconstruct``: one image (+ optional depth) → a scene directory.

With ``--instances`` the learned stages 1–4 are skipped ("bring your own priors"): the given
masks and meshes are placed by the layout solver in the sensor's metric depth (``--depth`` is
then required); meshes follow the glTF convention (+Y up, front toward +Z) unless their entry's
``"up"`` or ``--mesh-up`` names another up axis. Without it the full pipeline of the chosen
``--profile`` runs. Besides ``scene.json`` (and the files it names) and the ``--export`` formats
(the exporter's list, :data:`dpa_ros.export.FORMATS`), it writes ``preview.png``: the input image
with every fitted object's silhouette, outline and label drawn over it (:mod:`dpa_ros.overlay`).
User errors end with exit status 2 and a one-line reason on stderr, never a traceback.
"""
from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

import numpy as np
import yaml
from PIL import Image

from dpa_ros.export import FORMATS as EXPORT_FORMATS
from dpa_ros.export import ExportOptions, export_scene
from dpa_ros.geometry.camera import CameraModel
from dpa_ros.geometry.gravity import GravityError, check_gravity
from dpa_ros.geometry.layout import LayoutConfig
from dpa_ros.geometry.mesh_frames import UP_AXES
from dpa_ros.geometry.physics import PhysicsConfig
from dpa_ros.overlay import PREVIEW_PNG, write_preview
from dpa_ros.priors.config import ProfileError, layout_from_dict, physics_from_dict
from dpa_ros.scene import Scene, write_scene

log = logging.getLogger("dpa_ros.cli")


class UserError(Exception):
    """Bad input from the command line; reported as one line."""


def load_image(path: Path) -> np.ndarray:
    """(H, W, 3) uint8 RGB image."""
    try:
        with Image.open(path) as img:
            return np.asarray(img.convert("RGB"))
    except (OSError, ValueError) as exc:
        raise UserError(f"cannot read image {path}: {exc}") from exc


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
        raise UserError(f"cannot read depth {path}: {exc}") from exc
    if depth.ndim != 2:
        raise UserError(f"depth {path} must be a single-channel image, got shape {depth.shape}")
    depth[~np.isfinite(depth) | (depth <= 0)] = np.nan
    return depth


def _config_sections(config_path: Path | None) -> dict:
    """The YAML mapping of a --config file ({} without one)."""
    if config_path is None:
        return {}
    try:
        data = yaml.safe_load(config_path.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise UserError(f"cannot read config {config_path}: {exc}") from exc
    if not isinstance(data, dict):
        raise UserError(f"config {config_path} must be a YAML mapping")
    return data


def _section(data: dict, name: str, config_path: Path | None) -> dict:
    section = data.get(name, {}) or {}
    if not isinstance(section, dict):
        raise UserError(f"config {config_path}: '{name}' must be a mapping")
    return dict(section)


def layout_config(config_path: Path | None, seed: int | None, device: str | None) -> LayoutConfig:
    """LayoutConfig from the ``layout:`` section of a YAML config file, then --seed/--device."""
    values = _section(_config_sections(config_path), "layout", config_path)
    if seed is not None:
        values["seed"] = seed
    if device is not None:
        values["device"] = device
    try:
        return layout_from_dict(values)
    except ProfileError as exc:  # an unknown key (named, with the nearest valid one) or a bad value
        raise UserError(f"config {config_path}: {exc}") from exc


def physics_config(config_path: Path | None, disabled: bool) -> PhysicsConfig:
    """PhysicsConfig from the ``physics:`` section of a YAML config file; --no-physics turns it off."""
    values = _section(_config_sections(config_path), "physics", config_path)
    if disabled:
        values["enabled"] = False
    try:
        return physics_from_dict(values)
    except ProfileError as exc:
        raise UserError(f"config {config_path}: {exc}") from exc


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


def _instances_scene(args, image, depth, camera, progress) -> Scene:
    from dpa_ros.assemble import InstancesFileError, assemble_scene, load_instances_json
    if depth is None:
        raise UserError("--instances needs --depth (metric depth from the sensor)")
    try:
        instances = load_instances_json(args.instances, mesh_up=args.mesh_up)
    except InstancesFileError as exc:
        raise UserError(str(exc)) from exc
    config = layout_config(args.config, args.seed, args.device)
    physics = physics_config(args.config, args.no_physics)
    return assemble_scene(image, depth, camera, instances, config=config, progress=progress, profile="instances",
                          gravity=args.gravity, physics=physics)


def _pipeline_scene(args, image, depth, camera, progress) -> Scene:
    try:
        from dpa_ros.pipeline import Pipeline, ReconstructionError
    except ImportError as exc:
        raise UserError(f"full pipeline not available: {exc}; use --instances with --depth") from exc
    try:
        overrides = {"physics": {"enabled": False}} if args.no_physics else None
        pipeline = Pipeline.from_profile(args.profile, config_path=args.config, overrides=overrides,
                                         device=args.device, seed=args.seed)
        return pipeline.run(image, camera, depth=depth, progress=progress, gravity=args.gravity)
    except ReconstructionError as exc:  # no detections, missing weights, bad depth ...: one line, exit 2
        raise UserError(str(exc)) from exc


def _export(scene_dir: Path, formats: tuple[str, ...], overwrite: bool) -> None:
    export_scene(scene_dir, formats=formats, options=ExportOptions(overwrite=overwrite))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="dpa-reconstruct", description=__doc__.splitlines()[0])
    ap.add_argument("--image", type=Path, required=True, help="RGB image (PNG/JPEG)")
    ap.add_argument("--depth", type=Path, help="aligned depth: 16-bit PNG (times --depth-scale) or .npy in metres")
    ap.add_argument("--depth-scale", type=float, default=0.001, help="metres per PNG depth unit (default 0.001)")
    ap.add_argument("--camera-info", type=Path, required=True, help="ROS camera_info YAML")
    ap.add_argument("--instances", type=Path,
                    help="JSON list of {label, mask, meshes[, score, up]}: skip detection and generation")
    ap.add_argument("--mesh-up", choices=UP_AXES,
                    help="up axis of the --instances meshes without their own 'up' (default +y, glTF; "
                         "+z for ROS/Gazebo/Isaac/Blender/Shap-E assets)")
    ap.add_argument("--gravity", type=_gravity_vector, metavar="X,Y,Z",
                    help="gravity in the camera optical frame (x right, y down, z forward), pointing down, e.g. "
                         "0,0.8,0.6 for a camera pitched 37 deg down; wins over the fitted floor")
    ap.add_argument("--profile", default="paper", help="model profile: paper, fast or smoke (default paper)")
    ap.add_argument("--config", type=Path,
                    help="YAML config (its 'layout:' section sets the solver, 'physics:' the physics stage)")
    ap.add_argument("--no-physics", action="store_true",
                    help="skip the physics stage (objects are then left where the layout put them: possibly sunk "
                         "into the floor or into each other)")
    ap.add_argument("--out", type=Path, required=True, help="output scene directory")
    ap.add_argument("--seed", type=int, help="random seed (default: from config, else 0)")
    ap.add_argument("--device", help="cpu, cuda or auto")
    ap.add_argument("--export", default=",".join(EXPORT_FORMATS),
                    help=f"comma-separated export formats ({','.join(EXPORT_FORMATS)}) or 'none'")
    ap.add_argument("--force", action="store_true", help="replace what a previous run left in --out")
    ap.add_argument("--no-progress", action="store_true", help="no progress bar")
    ap.add_argument("-v", "--verbose", action="store_true")
    return ap.parse_args(argv)


def _gravity_vector(text: str) -> np.ndarray:
    """--gravity X,Y,Z as a unit vector (argparse type: a bad value is a usage error naming it)."""
    try:
        values = [float(v) for v in text.split(",")]
        return check_gravity(values, "--gravity")
    except (ValueError, GravityError) as exc:
        raise argparse.ArgumentTypeError(f"expected three comma-separated numbers, not all zero: {exc}") from exc


def _export_formats(text: str) -> tuple[str, ...]:
    if text.strip().lower() == "none":
        return ()
    formats = tuple(f.strip().lower() for f in text.split(",") if f.strip())
    unknown = [f for f in formats if f not in EXPORT_FORMATS]
    if unknown:
        raise UserError(f"--export: unknown format(s) {', '.join(unknown)}; "
                        f"choose from {', '.join(EXPORT_FORMATS)} or none")
    return formats


def run(args: argparse.Namespace) -> Path:
    """Reconstruct and write the scene directory; return the scene.json path."""
    formats = _export_formats(args.export)
    if args.depth_scale <= 0:
        raise UserError(f"--depth-scale must be positive, got {args.depth_scale}")
    for name in ("image", "camera_info", "depth", "instances", "config"):
        p = getattr(args, name)
        if p is not None and not p.exists():
            raise UserError(f"--{name.replace('_', '-')} {p} does not exist")
    if not args.force and args.out.is_dir() and any(args.out.iterdir()):
        raise UserError(f"--out {args.out} is not empty; use --force to replace its contents")
    camera = CameraModel.from_yaml(args.camera_info)
    image = load_image(args.image)
    depth = load_depth(args.depth, args.depth_scale) if args.depth is not None else None
    progress = _Progress(enabled=not args.no_progress and sys.stderr.isatty())
    t0 = time.perf_counter()
    try:
        build = _instances_scene if args.instances is not None else _pipeline_scene
        scene = build(args, image, depth, camera, progress)
    finally:
        progress.close()
    json_path = write_scene(scene, args.out)
    preview = write_preview(args.out / PREVIEW_PNG, image, scene)
    for stage, seconds in scene.timings_s.items():
        log.info("stage %-12s %8.2f s", stage, seconds)
    log.info("%d objects placed in %.2f s; scene written to %s", len(scene.objects), time.perf_counter() - t0,
             json_path)
    log.info("preview (input image with the fitted objects drawn over it): %s", preview)
    if formats:
        _export(args.out, formats, overwrite=args.force)
    return json_path


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(message)s")
    try:
        run(args)
    except (UserError, ValueError, FileNotFoundError) as exc:
        # ValueError covers the library's input errors (camera_info, instances, depth alignment).
        if args.verbose:
            log.exception("details")
        print(f"dpa-reconstruct: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
