"""Scene-memory benchmark: pose error of the remembered objects after 1, 2 and 3 views.

    .venv/bin/python bench/memory.py [--noise 0.01 ...] [--seed 0 ...] [--iterations 100] [--points 300]

One synthetic scene (dpa_testing.synthetic_views: a chair, an L-shaped cabinet and a box on a
floor before a wall), rendered at 160×120 from three camera poses 0.4 m apart (turned ±8°), with
structured-light depth noise (``--noise`` m × depth²/4 m). Each view is fitted by the layout solver
from its masks and the true meshes (dpa_ros.assemble.assemble_scene, as ``dpa-reconstruct
--instances``), placed in the world by the view's camera pose, and merged into a
:class:`dpa_ros.memory.SceneMemory`. ``--seed`` seeds the depth noise, the layout solver and the
memory; ``--noise`` and ``--seed`` take several values, and every (noise, seed) pair is one run.

With one run, the table gives after each view, over the objects, the mean centre error
(bounding-box centre of the true mesh, cm) and rotation error (degrees) of the memory, of that
view's own fit, and of the best single view so far (per object), and the scale error (%); the box
is symmetric, so its rotation error may be 180°. With several, a summary per noise level follows:
after the last view, the mean centre error of the memory and of each object's best single view
over all runs and objects, and how many objects are worse than their best single view (by more
than 0 and by more than 1 mm). Writes every row to JSON in bench/results/.
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


def _errors(T: np.ndarray, obj) -> tuple[float, float, float]:
    """Centre error (m), rotation error (degrees) and relative scale error of ``T`` against ``obj``."""
    c = obj.mesh.bounds.mean(0)
    G = obj.T_world_object
    centre = float(np.linalg.norm(T[:3, :3] @ c + T[:3, 3] - (G[:3, :3] @ c + G[:3, 3])))
    s, g = np.cbrt(np.linalg.det(T[:3, :3])), obj.scale
    R = (T[:3, :3] / s) @ (G[:3, :3] / g).T
    angle = float(np.degrees(np.arccos(np.clip((np.trace(R) - 1) / 2, -1, 1))))
    return centre, angle, float(s / g - 1)


def run(noise: float, seed: int, points: int, iterations: int) -> list[dict]:
    """One run: the three views at ``noise`` and ``seed``; one row per view."""
    from dpa_ros.assemble import Instance, assemble_scene
    from dpa_ros.geometry.layout import LayoutConfig
    from dpa_ros.memory import MemoryConfig, SceneMemory
    from dpa_testing import synthetic_views as sv

    objects = sv.default_objects()
    layout = LayoutConfig(points=points, iterations=iterations, restarts=4, seed=seed)
    memory = SceneMemory(MemoryConfig(seed=seed))
    best_single = [np.inf] * len(objects)
    best_single_rot = [np.inf] * len(objects)
    rows = []
    for n, pose in enumerate(POSES, start=1):
        view = sv.render_view(objects, sv.camera_pose(*pose), noise_std=noise, seed=seed + n)
        instances = [Instance(o.label, 1.0, m, [o.mesh]) for o, m in zip(objects, view.masks)]
        t0 = time.perf_counter()
        scene = assemble_scene(view.rgb, view.depth, view.camera, instances, config=layout)
        fit_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        update = memory.observe(scene, view.T_world_camera, view.depth, view.masks)
        observe_s = time.perf_counter() - t0
        remembered = {m.id: m for m in memory.objects}
        single = [_errors(view.T_world_camera @ o.T_camera_object, g) for o, g in zip(scene.objects, objects)]
        fused = [_errors(remembered[k].T_fixed_object, g) for k, g in zip(update.ids, objects)]
        best_single = [min(b, e[0]) for b, e in zip(best_single, single)]
        best_single_rot = [min(b, e[1]) for b, e in zip(best_single_rot, single)]
        rows.append({"noise": noise, "seed": seed, "views": n, "ids": update.ids,
                     "memory_centre_cm": [100 * e[0] for e in fused], "memory_rotation_deg": [e[1] for e in fused],
                     "memory_scale_err_pct": [100 * e[2] for e in fused],
                     "this_view_centre_cm": [100 * e[0] for e in single],
                     "this_view_rotation_deg": [e[1] for e in single],
                     "best_single_centre_cm": [100 * b for b in best_single],
                     "best_single_rotation_deg": list(best_single_rot),
                     "fit_s": fit_s, "observe_s": observe_s})
    return rows


def print_run(rows: list[dict], labels: list[str]) -> None:
    print(f"{'views':>5} {'object':>8} | {'memory cm':>9} {'deg':>6} {'scale %':>7} | {'this view cm':>12} {'deg':>6} "
          f"| {'best single cm':>14} {'deg':>6}")
    for r in rows:
        for j, label in enumerate(labels):
            print(f"{r['views']:>5} {label:>8} | {r['memory_centre_cm'][j]:9.2f} {r['memory_rotation_deg'][j]:6.1f} "
                  f"{r['memory_scale_err_pct'][j]:7.2f} | {r['this_view_centre_cm'][j]:12.2f} "
                  f"{r['this_view_rotation_deg'][j]:6.1f} | {r['best_single_centre_cm'][j]:14.2f} "
                  f"{r['best_single_rotation_deg'][j]:6.1f}")
        print(f"{'':>5} {'mean':>8} | {np.mean(r['memory_centre_cm']):9.2f} {'':>6} {'':>7} | "
              f"{np.mean(r['this_view_centre_cm']):12.2f} {'':>6} | {np.mean(r['best_single_centre_cm']):14.2f} "
              f"{'':>6}   fit {r['fit_s']:.1f} s, merge {r['observe_s']:.2f} s")


def summary(rows: list[dict]) -> list[dict]:
    """Per noise level, over the runs' last views: mean centre errors and objects worse than their best view."""
    last = max(r["views"] for r in rows)
    out = []
    for noise in sorted({r["noise"] for r in rows}):
        final = [r for r in rows if r["noise"] == noise and r["views"] == last]
        memory = np.concatenate([r["memory_centre_cm"] for r in final])
        best = np.concatenate([r["best_single_centre_cm"] for r in final])
        out.append({"noise": noise, "runs": len(final), "objects": len(memory), "views": last,
                    "memory_centre_cm": float(memory.mean()), "best_single_centre_cm": float(best.mean()),
                    "worse": int((memory > best).sum()), "worse_by_1mm": int((memory > best + 0.1).sum()),
                    "memory_worst_excess_cm": float((memory - best).max())})
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--noise", type=float, nargs="+", default=[0.01])
    ap.add_argument("--seed", type=int, nargs="+", default=[0])
    ap.add_argument("--iterations", type=int, default=100)
    ap.add_argument("--points", type=int, default=300)
    args = ap.parse_args()

    from dpa_testing import synthetic_views as sv

    labels = [o.label for o in sv.default_objects()]
    print(f"scene memory, {len(labels)} objects ({', '.join(labels)}), depth noise {args.noise} m·(z²/4 m), "
          f"seeds {args.seed}, layout points {args.points} iterations {args.iterations}")
    rows = []
    for noise in args.noise:
        for seed in args.seed:
            run_rows = run(noise, seed, args.points, args.iterations)
            rows += run_rows
            if len(args.noise) * len(args.seed) == 1:
                print_run(run_rows, labels)
            else:
                r = run_rows[-1]
                print(f"noise {noise} seed {seed}: after {r['views']} views memory "
                      + ", ".join(f"{lb} {m:.2f}" for lb, m in zip(labels, r["memory_centre_cm"]))
                      + " cm; best single " + ", ".join(f"{b:.2f}" for b in r["best_single_centre_cm"]) + " cm",
                      flush=True)
    table = summary(rows)
    if len(rows) > len(POSES):
        print(f"{'noise':>6} {'runs':>4} | {'memory cm':>9} {'best single cm':>14} | {'worse':>9} {'by >1 mm':>8} "
              f"{'worst excess cm':>15}")
        for s in table:
            print(f"{s['noise']:6.3f} {s['runs']:4d} | {s['memory_centre_cm']:9.2f} {s['best_single_centre_cm']:14.2f} "
                  f"| {s['worse']:>3d} of {s['objects']:<3d} {s['worse_by_1mm']:8d} "
                  f"{s['memory_worst_excess_cm']:15.2f}")
    RESULTS.mkdir(exist_ok=True)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    out = RESULTS / f"memory_{stamp}.json"
    out.write_text(json.dumps({"bench": "memory", "utc": stamp, "host": platform.node(), "args": vars(args),
                               "labels": labels, "summary": table, "rows": rows}, indent=2))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
