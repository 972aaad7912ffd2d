"""Floor and support fitting under stereo depth noise: found rate, errors and time per call.

Renders :mod:`dpa_testing.synthetic_planes` rooms (a floor, a 1.0 × 0.7 m table top at
0.75 m that is no instance, a back and a side wall) from a camera 1.2–1.6 m high, rolled up to
±15°, pitched 0–75° down, under RealSense D435-like noise (640 × 480, fx 380 px, 5 cm baseline,
0.08 px disparity noise, quantisation, 2 % outliers, flying pixels, 2 % holes), and fits them with
:func:`dpa_ros.geometry.planes.fit_background` (no hints). Also a floor seen only between 3.5 and
4.5 m. Prints a table and writes bench/results/planes.json.

    python bench/planes.py [--seeds 10]
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from dpa_ros.geometry.planes import fit_background
from dpa_testing.synthetic_planes import camera_pose, render_planes, room

PITCHES = (0, 20, 36, 50, 70, 75)
TABLE_HEIGHT = 0.75


def _angle_deg(a, b) -> float:
    return float(np.degrees(np.arccos(np.clip(np.dot(a, b), -1.0, 1.0))))


def _table_scene(pitch: float, seed: int):
    rng = np.random.default_rng(7919 * seed + int(pitch))
    height, roll = rng.uniform(1.2, 1.6), rng.uniform(-15, 15)
    forward = (height - TABLE_HEIGHT) / np.tan(np.radians(max(pitch, 20.0) + 5.0))
    return render_planes(room(table=(0.4, forward, TABLE_HEIGHT, 1.0, 0.7)), camera_pose(height, pitch, roll),
                         seed=seed)


def _score(scene, points, seed: int) -> dict:
    t0 = time.perf_counter()
    bg = fit_background(points, seed=seed)
    seconds = time.perf_counter() - t0
    row = {"seconds": seconds, "points": len(points), "floor": bg.floor is not None}
    if bg.floor is not None:
        n, d = scene.plane("floor")
        row.update(normal_deg=_angle_deg(bg.floor.normal, n), offset_m=float(bg.floor.offset - d))
    names = {r.name for r in scene.rectangles}
    walls = [p for p in bg.planes if p.label == "wall"]
    visible_walls = [r.name for k, r in enumerate(scene.rectangles)
                     if r.name.endswith("wall") and (scene.ids == k).mean() > 0.05]
    row["walls_found"] = all(any(_angle_deg(w.normal, scene.plane(name)[0]) < 2.0 for w in walls)
                             for name in visible_walls)
    row["extra_supports"] = max(0, sum(p.label == "support" for p in bg.planes) - ("table" in names))
    if "table" in names:
        supports = [p for p in bg.planes if p.label == "support"]
        row["support"] = len(supports) == 1
        if len(supports) == 1:
            n, d = scene.plane("table")
            row.update(support_normal_deg=_angle_deg(supports[0].normal, n),
                       support_offset_m=float(supports[0].offset - d))
    return row


def _summary(rows: list[dict]) -> dict:
    found = [r for r in rows if r["floor"]]
    out = {"cases": len(rows), "floor_found": len(found) / len(rows),
           "seconds_median": float(np.median([r["seconds"] for r in rows])),
           "points_median": int(np.median([r["points"] for r in rows]))}
    if found:
        out["normal_deg_max"] = max(r["normal_deg"] for r in found)
        out["offset_cm_abs_max"] = 100 * max(abs(r["offset_m"]) for r in found)
        out["offset_cm_rms"] = 100 * float(np.sqrt(np.mean([r["offset_m"] ** 2 for r in found])))
    out["walls_found"] = sum(r["walls_found"] for r in rows) / len(rows)
    out["extra_supports"] = sum(r["extra_supports"] for r in rows)
    with_table = [r for r in rows if "support" in r]
    if with_table:
        out["support_found"] = sum(r["support"] for r in with_table) / len(with_table)
        sup = [r for r in with_table if r["support"]]
        if sup:
            out["support_offset_cm_abs_max"] = 100 * max(abs(r["support_offset_m"]) for r in sup)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "planes.json")
    args = parser.parse_args()
    results = {}
    for pitch in PITCHES:
        rows = []
        for seed in range(args.seeds):
            scene = _table_scene(pitch, seed)
            rows.append(_score(scene, scene.points(), seed))
        results[f"pitch_{pitch}"] = _summary(rows)
    rows = []
    for seed in range(args.seeds):
        scene = render_planes(room(table=None, back_wall_y=6.0, side_wall_x=None), camera_pose(1.5, 10, 5), seed=seed)
        near = (scene.ids == 0) & ((scene.true_depth < 3.5) | (scene.true_depth > 4.5))
        rows.append(_score(scene, scene.camera.backproject(scene.depth, ~near), seed))
    results["floor_at_4m"] = _summary(rows)
    rows = []
    for seed in range(args.seeds):
        scene = _table_scene(36, seed)
        pts = scene.points()
        rows.append(_score(scene, pts[np.random.default_rng(seed).choice(len(pts), 20000, replace=False)], seed))
    results["pitch_36_20k_points"] = _summary(rows)

    print(f"{'case':22s} {'n':>3s} {'floor':>6s} {'normal°max':>10s} {'offset cm max':>13s} {'rms':>5s} "
          f"{'support':>7s} {'sup cm max':>10s} {'walls':>5s} {'extra sup':>9s} {'points':>7s} {'ms/call':>7s}")
    for name, s in results.items():
        print(f"{name:22s} {s['cases']:3d} {s['floor_found']:6.0%} {s.get('normal_deg_max', float('nan')):10.3f} "
              f"{s.get('offset_cm_abs_max', float('nan')):13.2f} {s.get('offset_cm_rms', float('nan')):5.2f} "
              f"{s.get('support_found', float('nan')):7.0%} {s.get('support_offset_cm_abs_max', float('nan')):10.2f} "
              f"{s['walls_found']:5.0%} {s['extra_supports']:9d} {s['points_median']:7d} "
              f"{1000 * s['seconds_median']:7.1f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"seeds": args.seeds, "results": results}, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
