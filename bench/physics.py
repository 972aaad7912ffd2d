"""Physical-consistency stage benchmark: time per scene and penetration before/after, on rendered scenes.

    .venv/bin/python bench/physics.py [--seeds 0-7] [--pitches 20,36,55] [--min-faces 2000] [--threads N]
                                      [--no-mujoco]

Scenes (dpa_testing.synthetic shapes, 6 objects each, camera 1.3 m high at each pitch):
  stack   — a table instance with a mug and a box on its top, a box with a smaller box on it, a chair;
  cluster — six floor objects (boxes, cylinders, an L-shape, a chair) in two rows 1 cm apart.
The true poses rest exactly on their supports. They are rendered (320×240, exact z-buffer) to get each
object's observed depth points, then disturbed like a layout under noisy depth: floor objects sunk
2–10 cm into the floor, stacked ones 0–3 cm into what carries them, every object shifted horizontally
by N(0, 1.5 cm) and, in the cluster, neighbours pushed 2–4 cm towards each other. Meshes are loop-subdivided
until they have at least ``--min-faces`` faces (same geometry, the face counts of generated meshes).
``--floor-error`` hands the stage a floor that far above the true one (a fitted floor's error).

Timed: :func:`dpa_ros.geometry.physics.settle_objects` per scene (wall and process CPU time, after one
warm-up call that imports open3d). Reported per scene: deepest and mean penetration before/after (m),
pairs or planes still penetrating more than 5 mm, mean/max shift, mean centre error against the true
pose before and after, and whether every object got its true support. Prints a table and writes JSON to
bench/results/.

Simulator check (MuJoCo, unless ``--no-mujoco``): the true, the disturbed (layout) and the settled poses
are each loaded as free bodies on a floor plane (collision geometry: the shapes' convex parts, the boxes
they are built of, so exactly the meshes' geometry) and run for 2 s. An object is stable when it drifted
≤ 2 cm and turned ≤ 5°; rates count objects whose true pose is stable (columns "stable L" and "stable S":
layout and settled poses, stable/counted per scene). Also printed: the deepest contact at t = 0.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import trimesh

RESULTS = Path(__file__).resolve().parent / "results"


def _dense(mesh: trimesh.Trimesh, min_faces: int) -> trimesh.Trimesh:
    v, f = np.asarray(mesh.vertices), np.asarray(mesh.faces)
    while len(f) < min_faces:
        v, f = trimesh.remesh.subdivide(v, f)
    return trimesh.Trimesh(v, f, process=False)


def _table() -> trimesh.Trimesh:
    from dpa_testing import synthetic as syn

    box = syn._box
    parts = [box([1.2, 0.04, 0.8], [0, 0.73, 0])]
    parts += [box([0.05, 0.71, 0.05], [x, 0.355, z]) for x in (-0.55, 0.55) for z in (-0.35, 0.35)]
    return trimesh.util.concatenate(parts)


def _layout(kind: str):
    """(label, builder, scale, world x, y, yaw, index of the object it stands on or -1)."""
    from dpa_testing import synthetic as syn

    if kind == "stack":
        return [("table", _table, 1.0, 0.0, 2.8, 5.0, -1),
                ("mug", syn.make_cylinder, 0.1, 0.25, 2.7, 0.0, 0),
                ("box", syn.make_box, 0.22, -0.3, 2.9, 20.0, 0),
                ("crate", syn.make_box, 0.45, -1.0, 2.2, -15.0, -1),
                ("small box", syn.make_box, 0.2, -1.0, 2.2, 30.0, 3),
                ("chair", syn.make_chair, 0.8, 0.9, 2.1, 35.0, -1)]
    shapes = [("box", syn.make_box, 0.4), ("can", syn.make_cylinder, 0.3), ("cabinet", syn.make_l_shape, 0.6),
              ("chair", syn.make_chair, 0.6), ("box", syn.make_box, 0.35), ("can", syn.make_cylinder, 0.25)]
    return [(lab, b, s, -0.5 + 0.5 * (k % 3), 2.1 + 0.7 * (k // 3), 0.0, -1) for k, (lab, b, s) in enumerate(shapes)]


def _true_scene(kind: str, pitch: float, rng: np.random.Generator):
    """Meshes (own frame), true poses, true supports (index or -1) and the room's camera/world transform."""
    from dpa_testing import synthetic as syn

    T_cw = syn.look_at_level(1.3, pitch)
    T_wc = np.linalg.inv(T_cw)
    meshes, poses, below = [], [], []
    for _label, builder, scale, x, y, yaw, on in _layout(kind):
        mesh = builder()
        T = syn.object_pose(T_cw, mesh, scale, x, y, yaw)
        if on >= 0:   # lift onto the top of what carries it
            top = trimesh.transform_points(trimesh.transform_points(meshes[on].vertices, poses[on]), T_wc)[:, 2].max()
            T[:3, 3] += T_cw[:3, :3] @ np.array([0.0, 0.0, top])
        meshes.append(mesh)
        poses.append(T)
        below.append(on)
    if kind == "cluster":   # close the rows up to 1 cm gaps along world x
        for k in (1, 2, 4, 5):
            left = trimesh.transform_points(trimesh.transform_points(meshes[k - 1].vertices, poses[k - 1]), T_wc)
            me = trimesh.transform_points(trimesh.transform_points(meshes[k].vertices, poses[k]), T_wc)
            poses[k][:3, 3] += T_cw[:3, :3] @ np.array([left[:, 0].max() + 0.01 - me[:, 0].min(), 0.0, 0.0])
    return meshes, poses, below, T_cw


def _disturbed(kind, poses, below, T_cw, rng):
    """Poses as a layout under noisy depth leaves them (see the module docstring)."""
    R = T_cw[:3, :3]
    out = [p.copy() for p in poses]
    offsets = [np.zeros(3) for _ in poses]
    for k, on in enumerate(below):
        sink = rng.uniform(0.02, 0.10) if on < 0 else rng.uniform(0.0, 0.03)
        offsets[k] = np.array([*rng.normal(0.0, 0.015, 2), -sink]) + (offsets[on] if on >= 0 else 0.0)
    if kind == "cluster":
        for k in (1, 2, 4, 5):
            offsets[k][0] -= rng.uniform(0.02, 0.04)
    for T, off in zip(out, offsets):
        T[:3, 3] += R @ off
    return out


def _observed(meshes, poses, T_cw):
    from dpa_ros.core.camera import CameraModel
    from dpa_testing import synthetic as syn

    camera = CameraModel.from_fov(320, 240, 70.0)
    placed = []
    for m, T in zip(meshes, poses):
        m = m.copy()
        m.apply_transform(T)
        placed.append(m)
    depth, ids = syn.render(placed, camera)
    return [camera.backproject(depth, ids == k) for k in range(len(meshes))]


def _mujoco_xml(parts: list[list[np.ndarray]]) -> str:
    """A MuJoCo scene: a floor plane at world z = 0 and one free body per object, its convex parts as mesh
    geoms (``parts[i][k]``: world-frame vertices of object i's part k)."""
    assets, bodies = [], []
    for i, object_parts in enumerate(parts):
        centre = np.concatenate(object_parts).mean(0)
        geoms = []
        for k, v in enumerate(object_parts):
            coords = " ".join(f"{x:.6f}" for x in (v - centre).ravel())
            assets.append(f'<mesh name="m{i}_{k}" vertex="{coords}"/>')
            geoms.append(f'<geom type="mesh" mesh="m{i}_{k}"/>')
        pos = " ".join(f"{x:.6f}" for x in centre)
        bodies.append(f'<body name="b{i}" pos="{pos}"><freejoint/>{"".join(geoms)}</body>')
    return (f'<mujoco><option timestep="0.002"/><asset>{"".join(assets)}</asset><worldbody>'
            f'<geom type="plane" size="20 20 0.1"/>{"".join(bodies)}</worldbody></mujoco>')


def _simulate(meshes, poses, T_cw, seconds: float = 2.0) -> dict:
    """Run the scene in MuJoCo; per object drift (m), turn (deg), and the deepest contact at t = 0 (m)."""
    import mujoco

    T_wc = np.linalg.inv(T_cw)
    parts = [[trimesh.transform_points(p.vertices, T_wc @ T) for p in m.split(only_watertight=False)]
             for m, T in zip(meshes, poses)]
    model = mujoco.MjModel.from_xml_string(_mujoco_xml(parts))
    data = mujoco.MjData(model)
    mujoco.mj_forward(model, data)
    deepest = max([0.0] + [-float(data.contact[c].dist) for c in range(data.ncon)])
    start = data.qpos.copy().reshape(-1, 7)
    for _ in range(int(round(seconds / model.opt.timestep))):
        mujoco.mj_step(model, data)
    end = data.qpos.reshape(-1, 7)
    drift = np.linalg.norm(end[:, :3] - start[:, :3], axis=1)
    dots = np.abs(np.sum(end[:, 3:] * start[:, 3:], axis=1)) / np.linalg.norm(end[:, 3:], axis=1)
    turn = np.degrees(2 * np.arccos(np.clip(dots, -1.0, 1.0)))
    return {"drift_m": drift.tolist(), "turn_deg": turn.tolist(), "deepest_contact_t0_m": deepest,
            "stable": ((drift <= 0.02) & (turn <= 5.0)).tolist()}


def _centre_errors(meshes, poses, true_poses):
    return [float(np.linalg.norm(trimesh.transform_points(m.bounding_box.vertices, T).mean(0)
                                 - trimesh.transform_points(m.bounding_box.vertices, Tt).mean(0)))
            for m, T, Tt in zip(meshes, poses, true_poses)]


def run_scene(kind: str, pitch: float, seed: int, min_faces: int, mujoco: bool = False,
              floor_error: float = 0.0) -> dict:
    from dpa_ros.core.scene import Background, Plane, SceneObject
    from dpa_ros.geometry.physics import PhysicsConfig, settle_objects

    rng = np.random.default_rng([seed, int(round(pitch))])
    meshes, true_poses, below, T_cw = _true_scene(kind, pitch, rng)
    observed = _observed(meshes, true_poses, T_cw)
    start = _disturbed(kind, true_poses, below, T_cw, rng)
    gravity = T_cw[:3, :3] @ np.array([0.0, 0.0, -1.0])
    # the stage sees a fitted floor ``floor_error`` m above the true one (the simulator keeps the true floor)
    background = Background(planes=[Plane("floor", -gravity, 1.3 - floor_error)], gravity=gravity,
                            gravity_source="given")
    dense = [_dense(m, min_faces) for m in meshes]
    objects = [SceneObject(id=k, label="o", score=1.0, mesh=m, T_camera_object=T,
                           scale=float(np.cbrt(np.linalg.det(T[:3, :3]))))
               for k, (m, T) in enumerate(zip(dense, start))]
    t0, c0 = time.perf_counter(), time.process_time()
    results = settle_objects(objects, background, PhysicsConfig(), observed=observed)
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    before = [r.penetration_before_m for r in results]
    after = [r.penetration_after_m for r in results]
    true_support = ["floor" if on < 0 else f"object_{on}" for on in below]
    sim = {} if not mujoco else {
        "sim": {name: _simulate(meshes, p, T_cw) for name, p in
                (("true", true_poses), ("layout", start), ("settled", [r.T_camera_object for r in results]))}}
    return {**sim, "kind": kind, "pitch_deg": pitch, "seed": seed, "objects": len(objects),
            "faces": [len(m.faces) for m in dense], "seconds": seconds, "cpu_seconds": cpu,
            "penetration_before_m": before, "penetration_after_m": after,
            "over_5mm_after": int(sum(a > 0.005 for a in after)),
            "shift_m": [r.shift_m for r in results],
            "centre_error_before_m": _centre_errors(meshes, start, true_poses),
            "centre_error_after_m": _centre_errors(meshes, [r.T_camera_object for r in results], true_poses),
            "supports": [r.support for r in results], "true_supports": true_support,
            "supports_right": all(r.support == t for r, t in zip(results, true_support))}


def _stable_text(sim: dict, state: str) -> str:
    """``stable/counted`` among the objects stable at their true pose."""
    pairs = [(st, tr) for st, tr in zip(sim[state]["stable"], sim["true"]["stable"]) if tr]
    return f"{sum(st for st, _ in pairs)}/{len(pairs)}"


def _range(text: str) -> list[int]:
    if "-" in text:
        lo, hi = text.split("-")
        return list(range(int(lo), int(hi) + 1))
    return [int(s) for s in text.split(",")]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", default="0-7", help="seed range a-b or list (default 0-7)")
    ap.add_argument("--pitches", default="20,36,55", help="camera pitches in degrees (default 20,36,55)")
    ap.add_argument("--kinds", default="stack,cluster")
    ap.add_argument("--min-faces", type=int, default=2000, help="subdivide meshes to at least this many faces")
    ap.add_argument("--floor-error", type=float, default=0.0,
                    help="m: the floor the stage is given lies this far above the true one (default 0)")
    ap.add_argument("--no-mujoco", action="store_true", help="skip the MuJoCo stability check")
    ap.add_argument("--threads", type=int, default=0, help="open3d threads (OMP_NUM_THREADS); 0: its default")
    args = ap.parse_args(argv)
    if args.threads:
        os.environ["OMP_NUM_THREADS"] = str(args.threads)
    warm = run_scene("cluster", 20.0, 999, 12)   # imports open3d, builds first scenes
    del warm
    load_before = Path("/proc/loadavg").read_text().split()[:3] if Path("/proc/loadavg").exists() else []
    runs = [run_scene(kind, float(p), s, args.min_faces, mujoco=not args.no_mujoco,
                      floor_error=args.floor_error)
            for kind in args.kinds.split(",") for p in args.pitches.split(",") for s in _range(args.seeds)]
    load_after = Path("/proc/loadavg").read_text().split()[:3] if Path("/proc/loadavg").exists() else []

    print(f"physics stage benchmark: {len(runs)} scenes × 6 objects, meshes ≥ {args.min_faces} faces, "
          f"floor error {100 * args.floor_error:.1f} cm, "
          f"{os.cpu_count()} CPUs, load {' '.join(load_before)} → {' '.join(load_after)}")
    head = (f"{'scene':<10}{'pitch':>6}{'seed':>5}{'wall s':>8}{'cpu s':>7}{'pen before max/mean mm':>24}"
            f"{'pen after max/mean mm':>23}{'>5mm':>5}{'shift mean/max cm':>19}{'centre err cm before→after':>28}"
            f"{'supports':>9}" + ("" if args.no_mujoco else f"{'stable L':>10}{'stable S':>10}"))
    print(head)
    for r in runs:
        b, a = np.array(r["penetration_before_m"]) * 1e3, np.array(r["penetration_after_m"]) * 1e3
        sh = np.array(r["shift_m"]) * 100
        err = f"{100 * np.mean(r['centre_error_before_m']):.1f} → {100 * np.mean(r['centre_error_after_m']):.1f}"
        print(f"{r['kind']:<10}{r['pitch_deg']:>6.0f}{r['seed']:>5}{r['seconds']:>8.3f}{r['cpu_seconds']:>7.2f}"
              f"{f'{b.max():.1f}/{b.mean():.1f}':>24}{f'{a.max():.1f}/{a.mean():.1f}':>23}{r['over_5mm_after']:>5}"
              f"{f'{sh.mean():.1f}/{sh.max():.1f}':>19}{err:>28}{'ok' if r['supports_right'] else 'WRONG':>9}"
              + ("" if "sim" not in r else "".join(f"{_stable_text(r['sim'], k):>10}" for k in ("layout", "settled"))))
    secs = np.array([r["seconds"] for r in runs])
    summary = {
        "scenes": len(runs), "seconds_median": float(np.median(secs)), "seconds_max": float(secs.max()),
        "cpu_seconds_median": float(np.median([r["cpu_seconds"] for r in runs])),
        "penetration_before_max_m": float(max(max(r["penetration_before_m"]) for r in runs)),
        "penetration_after_max_m": float(max(max(r["penetration_after_m"]) for r in runs)),
        "objects_over_5mm_after": int(sum(r["over_5mm_after"] for r in runs)),
        "objects": int(sum(r["objects"] for r in runs)),
        "centre_error_before_mean_m": float(np.mean([np.mean(r["centre_error_before_m"]) for r in runs])),
        "centre_error_after_mean_m": float(np.mean([np.mean(r["centre_error_after_m"]) for r in runs])),
        "supports_right_rate": float(np.mean([r["supports_right"] for r in runs])),
    }
    print(f"\nper scene: wall median {summary['seconds_median']:.3f} s, max {summary['seconds_max']:.3f} s; "
          f"CPU median {summary['cpu_seconds_median']:.2f} s")
    print(f"deepest penetration: before {1e3 * summary['penetration_before_max_m']:.1f} mm, after "
          f"{1e3 * summary['penetration_after_max_m']:.1f} mm; objects over 5 mm after: "
          f"{summary['objects_over_5mm_after']} of {summary['objects']}")
    print(f"mean centre error: {100 * summary['centre_error_before_mean_m']:.2f} cm before, "
          f"{100 * summary['centre_error_after_mean_m']:.2f} cm after; scenes with every support right: "
          f"{100 * summary['supports_right_rate']:.0f} %")
    if not args.no_mujoco:
        for state in ("true", "layout", "settled"):
            counted = [(st, tr) for r in runs for st, tr in zip(r["sim"][state]["stable"], r["sim"]["true"]["stable"])]
            rate = float(np.mean([st for st, tr in counted if tr])) if any(tr for _, tr in counted) else float("nan")
            deepest = max(r["sim"][state]["deepest_contact_t0_m"] for r in runs)
            summary[f"mujoco_{state}"] = {"stable_rate": rate, "deepest_contact_t0_m": deepest,
                                          "objects_counted": int(sum(tr for _, tr in counted))}
            print(f"MuJoCo 2 s, {state:>7} poses: {100 * rate:5.1f} % stable (≤ 2 cm, ≤ 5°) of the "
                  f"{summary[f'mujoco_{state}']['objects_counted']} objects stable at their true pose; "
                  f"deepest contact at t=0 {1e3 * deepest:.1f} mm")
    report = {"host": platform.node(), "python": sys.version.split()[0], "cpus": os.cpu_count(),
              "load_before": load_before, "load_after": load_after, "args": vars(args), "summary": summary,
              "runs": runs, "timestamp": datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")}
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"physics_{report['timestamp']}.json"
    out.write_text(json.dumps(report, indent=2, default=float))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
