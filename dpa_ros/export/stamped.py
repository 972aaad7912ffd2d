"""One export directory per reconstructed frame: ``<base>/<sec>_<nanosec>/``.

A stream of scenes (the ROS node's) writes each scene, named by its image stamp, into a directory of its
own under one base directory. A name already taken (the same frame reconstructed twice) gets ``-2``,
``-3``, ... appended, so an export never overwrites an earlier one.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

import numpy as np

from dpa_ros.core.scene import Scene, write_scene
from dpa_ros.overlay import PREVIEW_PNG, write_png

log = logging.getLogger(__name__)


def stamp_dirname(stamp_ns: int) -> str:
    """``<sec>_<nanosec>`` (nanoseconds zero-padded to 9 digits) of a stamp in ns."""
    sec, nsec = divmod(int(stamp_ns), 1_000_000_000)
    return f"{sec}_{nsec:09d}"


def new_stamped_dir(base: str | Path, stamp_ns: int) -> Path:
    """An absolute path under ``base`` named after ``stamp_ns`` that does not exist yet (not created)."""
    base = Path(base).expanduser().resolve()
    name = stamp_dirname(stamp_ns)
    out, k = base / name, 1
    while out.exists():
        k += 1
        out = base / f"{name}-{k}"
    return out


@dataclass
class StampedExport:
    """Where one scene was exported: its directory, each object's mesh (``file://`` URI by object id), and
    warnings (a format that could not be written; the reconstruction itself still stands)."""

    directory: Path | None
    mesh_uris: dict[int, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


def export_stamped(scene: Scene, base: str | Path, stamp_ns: int, formats: Iterable[str],
                   preview: np.ndarray | None = None) -> StampedExport:
    """Write scene.json, objects/<id>.obj and scene_cloud.ply, ``preview`` ((H, W, 3) uint8 RGB, the
    overlay picture) as preview.png, then ``formats`` (see :func:`dpa_ros.export.export_scene`), into
    :func:`new_stamped_dir` ``(base, stamp_ns)``.

    Never raises for a failed write: a failed scene.json gives ``directory=None`` and a warning, a
    failed preview or format a warning.
    """
    out = new_stamped_dir(base, stamp_ns)
    t0 = time.monotonic()
    try:
        write_scene(scene, out)
    except Exception as exc:
        return StampedExport(None, warnings=[f"export to {out} failed: {type(exc).__name__}: {exc}"])
    result = StampedExport(out, {int(o.id): (out / "objects" / f"{o.id}.obj").as_uri() for o in scene.objects})
    if preview is not None:
        try:
            write_png(out / PREVIEW_PNG, preview)
        except Exception as exc:
            result.warnings.append(f"{PREVIEW_PNG} not written: {type(exc).__name__}: {exc}")
    formats = list(formats)
    if formats:
        try:
            from dpa_ros.export import export_scene

            export_scene(out, formats=formats, scene=scene)
        except ImportError as exc:
            result.warnings.append(f"export formats skipped ({exc}); wrote scene.json and meshes")
        except Exception as exc:
            result.warnings.append(f"export of {', '.join(formats)} failed: {type(exc).__name__}: {exc}")
    log.info("exported scene to %s in %.2f s", out, time.monotonic() - t0)
    return result
