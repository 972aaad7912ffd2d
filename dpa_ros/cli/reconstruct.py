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

The work is :mod:`dpa_ros.reconstruct`'s; this module parses the arguments and maps errors to
exit codes.
"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import numpy as np

from dpa_ros.export import FORMATS as EXPORT_FORMATS
from dpa_ros.geometry.gravity import GravityError, check_gravity
from dpa_ros.geometry.mesh_frames import UP_AXES
from dpa_ros.geometry.rectify import DISTORTION_POLICIES, CameraInfo
from dpa_ros.reconstruct import (
    InputError,
    PipelineCache,
    ReconstructOptions,
    batch_images,
    cached_pipeline,
    load_depth,
    reconstruct_image,
    run_batch,
    summary_table,
)

__all__ = ["EXPORT_FORMATS", "load_depth", "main", "parse_args", "reconstruct_one"]

log = logging.getLogger("dpa_ros.cli")

#: the process's Pipeline cache (:class:`dpa_ros.reconstruct.PipelineCache`)
_PipelineCache = PipelineCache


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
        raise InputError(f"--export: unknown format(s) {', '.join(unknown)}; "
                         f"choose from {', '.join(EXPORT_FORMATS)} or none")
    return formats


def _pipeline(args: argparse.Namespace):
    """The process's Pipeline for --profile/--config (:func:`dpa_ros.reconstruct.cached_pipeline`)."""
    return cached_pipeline(ReconstructOptions.from_namespace(args))


def _check_inputs(args: argparse.Namespace) -> tuple[str, ...]:
    """The export formats; InputError for a bad flag or a missing input file."""
    formats = _export_formats(args.export)
    if args.depth_scale <= 0:
        raise InputError(f"--depth-scale must be positive, got {args.depth_scale}")
    if args.instances is not None and args.depth is None:
        raise InputError("--instances needs --depth (metric depth from the sensor)")
    if args.images is not None and (args.depth is not None or args.instances is not None):
        raise InputError("--images takes colour images only: --depth and --instances belong to one --image")
    for name in ("image", "camera_info", "depth", "instances", "config", "weights_dir"):
        p = getattr(args, name)
        if p is not None and not p.exists():
            raise InputError(f"--{name.replace('_', '-')} {p} does not exist")
    if args.instances is None:
        _pipeline(args)  # a bad --profile or --config fails here, before any image
    return formats


def reconstruct_one(args: argparse.Namespace, image_path: Path, out: Path, camera_info: CameraInfo,
                    formats: tuple[str, ...], show_progress: bool) -> tuple[Path, int]:
    """Reconstruct ``image_path`` into ``out`` (:func:`dpa_ros.reconstruct.reconstruct_image`);
    (scene.json path, objects placed)."""
    return reconstruct_image(ReconstructOptions.from_namespace(args), image_path, out, camera_info, formats,
                             show_progress)


def _show_progress(args: argparse.Namespace) -> bool:
    return not args.no_progress and sys.stderr.isatty()


def main(argv: list[str] | None = None) -> int:
    """Exit 0 on success; 2 on bad input (one line on stderr); with --images, 1 when any image failed."""
    args = parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(message)s")
    try:
        formats = _check_inputs(args)
        camera_info = CameraInfo.from_yaml(args.camera_info)
        if args.images is not None:
            rows = run_batch(batch_images(args.images), args.out,
                             lambda image, out: reconstruct_one(args, image, out, camera_info, formats, False)[1],
                             _show_progress(args))
            print(summary_table(rows))
            return 1 if any(not r["ok"] for r in rows) else 0
        reconstruct_one(args, args.image, args.out, camera_info, formats, _show_progress(args))
    except (ValueError, FileNotFoundError) as exc:
        # InputError and the library's input errors (camera_info, instances, depth alignment).
        if args.verbose:
            log.exception("details")
        print(f"dpa-reconstruct: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
