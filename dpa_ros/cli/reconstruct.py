"""``dpa-reconstruct``: one image (+ optional depth) → a scene directory.

With ``--instances`` the learned stages 1–4 are skipped ("bring your own priors"): the given
masks and meshes are placed by the layout solver in the sensor's metric depth (``--depth`` is
then required); meshes follow the glTF convention (+Y up, front toward +Z) unless their entry's
``"up"`` or ``--mesh-up`` names another up axis. Without it the full pipeline of the chosen
``--profile`` runs. Besides ``scene.json`` (and the files it names) and the ``--export`` formats
(the exporter's list, :data:`dpa_ros.export.FORMATS`), it writes ``preview.png``: the input image
with every fitted object's silhouette, outline and label drawn over it (:mod:`dpa_ros.overlay`).
A camera_info with lens distortion is rectified first (:mod:`dpa_ros.geometry.rectify`; the scene
then uses P) or, with ``--distortion refuse``, refused. ``--images DIR_OR_GLOB`` runs a batch: the
models load once, every image gets ``<--out>/<stem>/``, a failing image is reported and the batch
goes on, and a summary table (and ``batch_summary.json``) lists every image; exit status 1 when
any failed. User errors end with exit status 2 and a one-line reason on stderr, never a traceback.
"""
from __future__ import annotations

import argparse
import glob
import json
import logging
import sys
import time
from pathlib import Path

import numpy as np
import yaml
from PIL import Image

from dpa_ros.core.scene import Scene, write_scene
from dpa_ros.export import FORMATS as EXPORT_FORMATS
from dpa_ros.export import ExportOptions, export_scene
from dpa_ros.geometry.gravity import GravityError, check_gravity
from dpa_ros.geometry.layout import LayoutConfig
from dpa_ros.geometry.mesh_frames import UP_AXES
from dpa_ros.geometry.physics import PhysicsConfig
from dpa_ros.geometry.rectify import DISTORTION_POLICIES, CameraInfo, rectify_frame
from dpa_ros.geometry.targets import TargetConfig
from dpa_ros.overlay import PREVIEW_PNG, write_preview
from dpa_ros.priors.config import (
    ProfileError,
    layout_from_dict,
    migrate_moved_keys,
    physics_from_dict,
    targets_from_dict,
)

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
    except (OSError, yaml.YAMLError) as exc:  # a YAML error spans lines (the excerpt, a caret): one line here
        raise UserError(f"cannot read config {config_path}: {' '.join(str(exc).split())}") from exc
    if not isinstance(data, dict):
        raise UserError(f"config {config_path} must be a YAML mapping")
    try:
        return migrate_moved_keys(data, f"config {config_path}")
    except ProfileError as exc:  # a moved key set in both its old and its new place
        raise UserError(str(exc)) from exc


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


def targets_config(config_path: Path | None) -> TargetConfig:
    """TargetConfig from the ``targets:`` section of a YAML config file."""
    try:
        return targets_from_dict(_section(_config_sections(config_path), "targets", config_path))
    except ProfileError as exc:
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
    try:
        instances = load_instances_json(args.instances, mesh_up=args.mesh_up)
    except InstancesFileError as exc:
        raise UserError(str(exc)) from exc
    config = layout_config(args.config, args.seed, args.device)
    physics = physics_config(args.config, args.no_physics)
    return assemble_scene(image, depth, camera, instances, config=config, progress=progress, profile="instances",
                          gravity=args.gravity, physics=physics, targets=targets_config(args.config))


class _PipelineCache:
    """One Pipeline per set of pipeline arguments in a dpa-reconstruct process: a batch loads its
    models once, for the first image; another profile, config or device builds its own."""

    pipeline = None
    key: tuple = ()


def _pipeline(args):
    """The process's Pipeline for --profile/--config (built once per set of arguments; models load
    on the first run)."""
    try:
        from dpa_ros.pipeline import Pipeline, ReconstructionError
    except ImportError as exc:
        raise UserError(f"full pipeline not available: {exc}; use --instances with --depth") from exc
    key = (args.profile, str(args.config), bool(args.no_physics), str(args.weights_dir), args.device, args.seed)
    if _PipelineCache.pipeline is None or _PipelineCache.key != key:
        overrides = {"physics": {"enabled": False}} if args.no_physics else None
        try:
            _PipelineCache.pipeline = Pipeline.from_profile(args.profile, config_path=args.config, overrides=overrides,
                                                            weights_dir=args.weights_dir, device=args.device,
                                                            seed=args.seed)
        except ReconstructionError as exc:
            raise UserError(str(exc)) from exc
        _PipelineCache.key = key
    return _PipelineCache.pipeline


def _pipeline_scene(args, image, depth, camera, progress) -> Scene:
    from dpa_ros.pipeline import ReconstructionError

    try:
        return _pipeline(args).run(image, camera, depth=depth, progress=progress, gravity=args.gravity,
                                   prompt=args.prompt)
    except ReconstructionError as exc:  # no detections, missing weights, bad depth ...: one line, exit 2
        raise UserError(str(exc)) from exc


def _export(scene_dir: Path, formats: tuple[str, ...], overwrite: bool) -> None:
    export_scene(scene_dir, formats=formats, options=ExportOptions(overwrite=overwrite))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="dpa-reconstruct", description=__doc__.splitlines()[0])
    source = ap.add_mutually_exclusive_group(required=True)
    source.add_argument("--image", type=Path, help="RGB image (PNG/JPEG)")
    source.add_argument("--images", metavar="DIR_OR_GLOB",
                        help="a batch: every image in a directory, or the files a glob matches ('photos/*.jpg'); "
                             "the models load once, each image gets its own folder <--out>/<image stem>/, a failing "
                             "image is reported and the batch goes on")
    ap.add_argument("--depth", type=Path, help="aligned depth: 16-bit PNG (times --depth-scale) or .npy in metres")
    ap.add_argument("--depth-scale", type=float, default=0.001, help="metres per PNG depth unit (default 0.001)")
    ap.add_argument("--camera-info", type=Path, required=True, help="ROS camera_info YAML (one camera for a batch)")
    ap.add_argument("--distortion", choices=DISTORTION_POLICIES, default="rectify",
                    help="an image whose camera_info has lens distortion: rectify it with the camera_info model "
                         "(K, D, R, P; the scene then uses P), or refuse it (default rectify)")
    ap.add_argument("--rectified", action="store_true",
                    help="the image is already rectified (ROS image_rect): use P and ignore the distortion")
    ap.add_argument("--instances", type=Path,
                    help="JSON list of {label, mask, meshes[, score, up]}: skip detection and generation "
                         "(needs --depth)")
    ap.add_argument("--mesh-up", choices=UP_AXES,
                    help="up axis of the --instances meshes without their own 'up' (default +y, glTF; "
                         "+z for ROS/Gazebo/Isaac/Blender/Shap-E assets)")
    ap.add_argument("--gravity", type=_gravity_vector, metavar="X,Y,Z",
                    help="gravity in the camera optical frame (x right, y down, z forward), pointing down, e.g. "
                         "0,0.8,0.6 for a camera pitched 37 deg down; wins over the fitted floor")
    ap.add_argument("--profile", default="paper", help="model profile: paper, fast or smoke (default paper)")
    ap.add_argument("--prompt", help="detection prompt, 'chair. table.' (default: the profile's)")
    ap.add_argument("--weights-dir", type=Path,
                    help="local model weights (default: $DPA_WEIGHTS_DIR or the Hugging Face cache)")
    ap.add_argument("--config", type=Path,
                    help="YAML config (its 'layout:' section sets the solver, 'targets:' the depth the layout "
                         "fits, 'physics:' the physics stage)")
    ap.add_argument("--no-physics", action="store_true",
                    help="skip the physics stage (objects are then left where the layout put them: possibly sunk "
                         "into the floor or into each other)")
    ap.add_argument("--out", type=Path, required=True,
                    help="output scene directory (with --images: the directory of the per-image folders)")
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


IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
BATCH_SUMMARY_JSON = "batch_summary.json"


def _check_inputs(args: argparse.Namespace) -> tuple[str, ...]:
    """The export formats; UserError for a bad flag or a missing input file."""
    formats = _export_formats(args.export)
    if args.depth_scale <= 0:
        raise UserError(f"--depth-scale must be positive, got {args.depth_scale}")
    if args.instances is not None and args.depth is None:
        raise UserError("--instances needs --depth (metric depth from the sensor)")
    if args.images is not None and (args.depth is not None or args.instances is not None):
        raise UserError("--images takes colour images only: --depth and --instances belong to one --image")
    for name in ("image", "camera_info", "depth", "instances", "config", "weights_dir"):
        p = getattr(args, name)
        if p is not None and not p.exists():
            raise UserError(f"--{name.replace('_', '-')} {p} does not exist")
    if args.instances is None:
        _pipeline(args)  # a bad --profile or --config fails here, before any image
    return formats


def _camera_frame(args, camera_info: CameraInfo, image: np.ndarray, depth: np.ndarray | None):
    """(image, depth, pinhole camera): rectified, used as it is (--rectified), or refused."""
    if args.rectified:
        return image, depth, camera_info.rectified_camera()
    image, depth, camera, note = rectify_frame(camera_info, image, depth, policy=args.distortion)
    log.info("%s", note)
    return image, depth, camera


def reconstruct_one(args: argparse.Namespace, image_path: Path, out: Path, camera_info: CameraInfo,
                    formats: tuple[str, ...], show_progress: bool) -> tuple[Path, int]:
    """Reconstruct ``image_path`` into the scene directory ``out``; (scene.json path, objects placed)."""
    if not args.force and out.is_dir() and any(out.iterdir()):
        raise UserError(f"--out {out} is not empty; use --force to replace its contents")
    image = load_image(image_path)
    depth = load_depth(args.depth, args.depth_scale) if args.depth is not None else None
    image, depth, camera = _camera_frame(args, camera_info, image, depth)
    progress = _Progress(enabled=show_progress)
    t0 = time.perf_counter()
    try:
        build = _instances_scene if args.instances is not None else _pipeline_scene
        scene = build(args, image, depth, camera, progress)
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
        _export(out, formats, overwrite=args.force)
    return json_path, len(scene.objects)


def run(args: argparse.Namespace) -> Path:
    """Reconstruct one --image and write the scene directory; return the scene.json path."""
    formats = _check_inputs(args)
    camera_info = CameraInfo.from_yaml(args.camera_info)
    show = not args.no_progress and sys.stderr.isatty()
    return reconstruct_one(args, args.image, args.out, camera_info, formats, show)[0]


def batch_images(pattern: str) -> list[Path]:
    """The images of a --images argument: a directory's image files, or a glob's matches, sorted."""
    path = Path(pattern)
    if path.is_dir():
        found = [p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES]
    else:
        found = [Path(p) for p in glob.glob(pattern, recursive=True) if Path(p).is_file()]
    if not found:
        raise UserError(f"--images {pattern}: no image files there (a directory of {', '.join(IMAGE_SUFFIXES)} "
                        "files, or a glob such as 'photos/*.jpg')")
    return sorted(found)


def _output_dirs(images: list[Path], out: Path) -> list[Path]:
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


def run_batch(args: argparse.Namespace) -> list[dict]:
    """Reconstruct every --images file into <--out>/<stem>/; one row per image (also written to
    <--out>/batch_summary.json): ``image``, ``out``, ``ok``, ``objects``, ``seconds``, ``error``.

    A failing image (unreadable, wrong size for the camera, no detections ...) is logged and
    recorded, and the batch goes on; the models are loaded once, by the first image that needs them.
    """
    formats = _check_inputs(args)
    camera_info = CameraInfo.from_yaml(args.camera_info)
    images = batch_images(args.images)
    from tqdm import tqdm

    rows = []
    bar = tqdm(list(zip(images, _output_dirs(images, args.out))), unit="image", dynamic_ncols=True,
               disable=args.no_progress or not sys.stderr.isatty())
    for image, out in bar:
        bar.set_postfix_str(image.name)
        t0 = time.perf_counter()
        row = {"image": str(image), "out": str(out), "ok": False, "objects": 0, "seconds": 0.0, "error": ""}
        try:
            _, row["objects"] = reconstruct_one(args, image, out, camera_info, formats, show_progress=False)
            row["ok"] = True
        except Exception as exc:  # one bad image must not stop the batch: reported per image
            row["error"] = str(exc) if isinstance(exc, (UserError, ValueError)) else f"{type(exc).__name__}: {exc}"
            log.warning("%s failed: %s", image, row["error"])
        row["seconds"] = round(time.perf_counter() - t0, 3)
        rows.append(row)
    bar.close()
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / BATCH_SUMMARY_JSON).write_text(json.dumps(rows, indent=2) + "\n")
    return rows


def summary_table(rows: list[dict]) -> str:
    """The batch's table: one line per image, then the totals."""
    width = max([len(Path(r["image"]).name) for r in rows] + [5])
    lines = [f"{'image':<{width}}  {'result':<6}  {'objects':>7}  {'seconds':>8}  output / reason"]
    for r in rows:
        result = "ok" if r["ok"] else "FAILED"
        lines.append(f"{Path(r['image']).name:<{width}}  {result:<6}  {r['objects']:>7}  {r['seconds']:>8.2f}  "
                     f"{r['out'] if r['ok'] else r['error']}")
    failed = sum(not r["ok"] for r in rows)
    lines.append(f"{len(rows) - failed} of {len(rows)} images reconstructed, {failed} failed")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Exit 0 on success; 2 on bad input (one line on stderr); with --images, 1 when any image failed."""
    args = parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(message)s")
    try:
        if args.images is not None:
            rows = run_batch(args)
            print(summary_table(rows))
            return 1 if any(not r["ok"] for r in rows) else 0
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
