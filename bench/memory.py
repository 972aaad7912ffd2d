"""Scene-memory benchmark: pose error of the remembered objects after 1, 2 and 3 views.

    .venv/bin/python bench/memory.py [--noise 0.01 ...] [--seed 0 ...] [--scene default|random]
                                     [--iterations 100] [--points 300]

One synthetic scene (dpa_testing.synthetic_views: by default a chair, an L-shaped cabinet and a box
on a floor before a wall, seen from three camera poses 0.4 m apart, turned ±8°; with ``--scene
random`` three shapes, sizes, yaws, places and a camera path drawn from each seed), rendered at
160×120 with structured-light depth noise (``--noise`` m × depth²/4 m). Each view is fitted by the layout solver
from its masks and the true meshes (dpa_ros.assemble.assemble_scene, as ``dpa-reconstruct
--instances``), placed in the world by the view's camera pose, and merged into a
:class:`dpa_ros.memory.SceneMemory`. ``--seed`` seeds the depth noise, the layout solver and the
memory; ``--noise`` and ``--seed`` take several values, and every (noise, seed) pair is one run.

With one run, the table gives after each view, over the objects, the mean centre error
(bounding-box centre of the true mesh, cm) and rotation error (degrees) of the memory, of that
view's own fit, and of the best single view so far (per object), and the scale error (%); the box
is symmetric, so its rotation error may be 180°. With several, a summary per noise level follows:
after the last view, the mean centre error of the memory and of each object's best single view
over all runs and objects, how many objects are worse than their best single view (by more than 0
and by more than 1 mm), the largest scale error, the mean merge time per view and how often an
object's memory id changed (it should never). Writes every row to JSON in bench/results/.
"""
from __future__ import annotations

import argparse
import json
import platform
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"
POSES = [(-0.4, 0.0, -8.0), (0.0, 0.0, 0.0), (0.4, 0.0, 8.0)]
#: Fewest visible pixels for an object to be given to a view's fit.
MIN_PIXELS = 30


def _errors(T: np.ndarray, obj) -> tuple[float, float, float]:
    """Centre error (m), rotation error (degrees) and relative scale error of ``T`` against ``obj``."""
    c = obj.mesh.bounds.mean(0)
    G = obj.T_world_object
    centre = float(np.linalg.norm(T[:3, :3] @ c + T[:3, 3] - (G[:3, :3] @ c + G[:3, 3])))
    s, g = np.cbrt(np.linalg.det(T[:3, :3])), obj.scale
    R = (T[:3, :3] / s) @ (G[:3, :3] / g).T
    angle = float(np.degrees(np.arccos(np.clip((np.trace(R) - 1) / 2, -1, 1))))
    return centre, angle, float(s / g - 1)


def run(noise: float, seed: int, points: int, iterations: int, scene: str = "default") -> list[dict]:
    """One run: the three views at ``noise`` and ``seed``; one row per view. ``scene``: ``default``
    (:func:`dpa_testing.synthetic_views.default_objects` from :data:`POSES`) or ``random`` (a layout
    and camera path drawn from ``seed``, :func:`dpa_testing.synthetic_views.random_layout`). An object
    with fewer than ``MIN_PIXELS`` visible pixels in a view is not given to that view's fit."""
    from dpa_ros.assemble import Instance, assemble_scene
    from dpa_ros.geometry.layout import LayoutConfig
    from dpa_ros.memory import MemoryConfig, SceneMemory
    from dpa_testing import synthetic_views as sv

    if scene == "random":
        objects, poses = sv.random_layout(seed)
    else:
        objects, poses = sv.default_objects(), [sv.camera_pose(*p) for p in POSES]
    layout = LayoutConfig(points=points, iterations=iterations, restarts=4, seed=seed)
    memory = SceneMemory(MemoryConfig(seed=seed))
    nan = float("nan")
    best_single = [np.inf] * len(objects)
    best_single_rot = [np.inf] * len(objects)
    first_id: dict[int, int] = {}
    id_changes = 0
    rows = []
    for n, pose in enumerate(poses, start=1):
        view = sv.render_view(objects, pose, noise_std=noise, seed=seed + n)
        seen = [i for i, m in enumerate(view.masks) if m.sum() >= MIN_PIXELS]
        instances = [Instance(objects[i].label, 1.0, view.masks[i], [objects[i].mesh]) for i in seen]
        t0 = time.perf_counter()
        fit = assemble_scene(view.rgb, view.depth, view.camera, instances, config=layout)
        fit_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        update = memory.observe(fit, view.T_world_camera, view.depth, [view.masks[i] for i in seen])
        observe_s = time.perf_counter() - t0
        remembered = {m.id: m for m in memory.objects}
        single = [(nan, nan, nan)] * len(objects)
        for i, o in zip(seen, fit.objects):
            single[i] = _errors(view.T_world_camera @ o.T_camera_object, objects[i])
        for i, k in zip(seen, update.ids):
            id_changes += int(first_id.setdefault(i, k) != k)
        fused = [_errors(remembered[first_id[i]].T_fixed_object, g) if first_id.get(i) in remembered
                 else (nan, nan, nan) for i, g in enumerate(objects)]
        best_single = [min(b, e[0]) if e[0] == e[0] else b for b, e in zip(best_single, single)]
        best_single_rot = [min(b, e[1]) if e[1] == e[1] else b for b, e in zip(best_single_rot, single)]
        rows.append({"noise": noise, "seed": seed, "scene": scene, "views": n, "ids": update.ids,
                     "labels": [o.label for o in objects], "id_changes": id_changes,
                     "memory_centre_cm": [100 * e[0] for e in fused], "memory_rotation_deg": [e[1] for e in fused],
                     "memory_scale_err_pct": [100 * e[2] for e in fused],
                     "this_view_centre_cm": [100 * e[0] for e in single],
                     "this_view_rotation_deg": [e[1] for e in single],
                     "best_single_centre_cm": [100 * b for b in best_single],
                     "best_single_rotation_deg": list(best_single_rot),
                     "fit_s": fit_s, "observe_s": observe_s})
    return rows


def print_run(rows: list[dict]) -> None:
    print(f"{'views':>5} {'object':>8} | {'memory cm':>9} {'deg':>6} {'scale %':>7} | {'this view cm':>12} {'deg':>6} "
          f"| {'best single cm':>14} {'deg':>6}")
    for r in rows:
        for j, label in enumerate(r["labels"]):
            print(f"{r['views']:>5} {label:>8} | {r['memory_centre_cm'][j]:9.2f} {r['memory_rotation_deg'][j]:6.1f} "
                  f"{r['memory_scale_err_pct'][j]:7.2f} | {r['this_view_centre_cm'][j]:12.2f} "
                  f"{r['this_view_rotation_deg'][j]:6.1f} | {r['best_single_centre_cm'][j]:14.2f} "
                  f"{r['best_single_rotation_deg'][j]:6.1f}")
        print(f"{'':>5} {'mean':>8} | {np.nanmean(r['memory_centre_cm']):9.2f} {'':>6} {'':>7} | "
              f"{np.nanmean(r['this_view_centre_cm']):12.2f} {'':>6} | {np.nanmean(r['best_single_centre_cm']):14.2f} "
              f"{'':>6}   fit {r['fit_s']:.1f} s, merge {r['observe_s']:.2f} s")


def summary(rows: list[dict]) -> list[dict]:
    """Per scene kind and noise level, over the runs' last views: mean centre errors, objects worse
    than their best single view, the largest scale error and the id changes."""
    out = []
    for scene, noise in sorted({(r["scene"], r["noise"]) for r in rows}):
        group = [r for r in rows if r["scene"] == scene and r["noise"] == noise]
        final = [r for r in group if r["views"] == max(q["views"] for q in group if q["seed"] == r["seed"])]
        memory = np.concatenate([r["memory_centre_cm"] for r in final])
        best = np.concatenate([r["best_single_centre_cm"] for r in final])
        scale = np.concatenate([r["memory_scale_err_pct"] for r in final])
        ok = np.isfinite(memory) & np.isfinite(best)
        memory, best, scale = memory[ok], best[ok], scale[ok]
        out.append({"scene": scene, "noise": noise, "runs": len(final), "objects": int(ok.sum()),
                    "views": max(r["views"] for r in final),
                    "memory_centre_cm": float(memory.mean()), "best_single_centre_cm": float(best.mean()),
                    "worse": int((memory > best).sum()), "worse_by_1mm": int((memory > best + 0.1).sum()),
                    "memory_worst_excess_cm": float((memory - best).max()),
                    "memory_worst_scale_err_pct": float(np.abs(scale).max()),
                    "merge_s_mean": float(np.mean([r["observe_s"] for r in group])),
                    "id_changes": int(sum(r["id_changes"] for r in final))})
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--noise", type=float, nargs="+", default=[0.01])
    ap.add_argument("--seed", type=int, nargs="+", default=[0])
    ap.add_argument("--scene", choices=("default", "random"), default="default",
                    help="default: the chair, cabinet and box from three fixed poses; random: a layout and "
                         "camera path drawn from each seed")
    ap.add_argument("--iterations", type=int, default=100)
    ap.add_argument("--points", type=int, default=300)
    args = ap.parse_args()

    print(f"scene memory, {args.scene} scene, depth noise {args.noise} m·(z²/4 m), seeds {args.seed}, "
          f"layout points {args.points} iterations {args.iterations}")
    rows = []
    for noise in args.noise:
        for seed in args.seed:
            run_rows = run(noise, seed, args.points, args.iterations, args.scene)
            rows += run_rows
            if len(args.noise) * len(args.seed) == 1:
                print_run(run_rows)
            else:
                r = run_rows[-1]
                print(f"noise {noise} seed {seed}: after {r['views']} views memory "
                      + ", ".join(f"{lb} {m:.2f}" for lb, m in zip(r["labels"], r["memory_centre_cm"]))
                      + " cm; best single " + ", ".join(f"{b:.2f}" for b in r["best_single_centre_cm"]) + " cm",
                      flush=True)
    table = summary(rows)
    if len(rows) > len(POSES):
        print(f"{'scene':>7} {'noise':>6} {'runs':>4} | {'memory cm':>9} {'best single cm':>14} | {'worse':>9} "
              f"{'by >1 mm':>8} {'worst excess cm':>15} {'worst scale %':>13} {'merge s':>7} {'id changes':>10}")
        for s in table:
            print(f"{s['scene']:>7} {s['noise']:6.3f} {s['runs']:4d} | {s['memory_centre_cm']:9.2f} "
                  f"{s['best_single_centre_cm']:14.2f} | {s['worse']:>3d} of {s['objects']:<3d} "
                  f"{s['worse_by_1mm']:8d} {s['memory_worst_excess_cm']:15.2f} "
                  f"{s['memory_worst_scale_err_pct']:13.1f} {s['merge_s_mean']:7.2f} {s['id_changes']:10d}")
    RESULTS.mkdir(exist_ok=True)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    out = RESULTS / f"memory_{stamp}.json"
    out.write_text(json.dumps({"bench": "memory", "utc": stamp, "host": platform.node(), "args": vars(args),
                               "summary": table, "rows": rows}, indent=2))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
