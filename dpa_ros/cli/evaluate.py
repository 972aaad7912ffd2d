"""``dpa-eval PRED GT``: score a reconstructed scene against a ground-truth scene.

PRED and GT are scene directories (or their scene.json) written by ``dpa-reconstruct`` /
:func:`dpa_ros.core.scene.write_scene`, or single mesh files already in the same frame (metres).
Prints CD-L1, CD-L1-S and F-score at each τ; ``--json FILE`` also writes them.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import trimesh

from dpa_ros.core.fileio import atomic_write_text
from dpa_ros.core.scene import SceneFormatError, read_scene
from dpa_ros.geometry import metrics


def _points(path: Path, count: int, seed: int):
    if path.is_dir() or path.suffix == ".json":
        return metrics.sample_scene_points(read_scene(path), count, seed)
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist")
    mesh = trimesh.load(path, force="mesh", process=False)
    return metrics.sample_mesh_points(mesh, count, seed)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="dpa-eval", description=__doc__.splitlines()[0])
    ap.add_argument("pred", type=Path, help="predicted scene directory, scene.json or mesh file")
    ap.add_argument("gt", type=Path, help="ground-truth scene directory, scene.json or mesh file")
    ap.add_argument("--tau", type=float, action="append",
                    help="F-score threshold in metres (repeatable; default 0.1 and 0.05)")
    ap.add_argument("--points", type=int, default=20000, help="points sampled on each side (default 20000)")
    ap.add_argument("--register", action="store_true",
                    help="paper protocol: centre the prediction on the ground truth, then rigid ICP")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path, help="also write the metrics to this JSON file")
    args = ap.parse_args(argv)
    taus = tuple(args.tau) if args.tau else (0.1, 0.05)
    try:
        p = _points(args.pred, args.points, args.seed)
        g = _points(args.gt, args.points, args.seed + 1)
        if args.register:
            p = metrics.paper_register(p, g)
        result = metrics.point_metrics(p, g, taus)
    except (OSError, ValueError, SceneFormatError) as exc:
        print(f"dpa-eval: error: {exc}", file=sys.stderr)
        return 2
    result["registered"] = bool(args.register)
    for key, value in result.items():
        unit = " %" if key.startswith("fscore") else (" m" if key.startswith("cd") else "")
        print(f"{key:>12}: {value:.4f}{unit}" if isinstance(value, float) else f"{key:>12}: {value}")
    if args.json:
        atomic_write_text(args.json, json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
