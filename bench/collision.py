"""Collision geometry for the simulator exports: CoACD against V-HACD (and one convex hull).

For each object (a table, a chair, an L-shaped cabinet, a mug, a bowl, plus a box and a can that
should stay one hull) and each method, it measures the time of the decomposition, the number of
parts, their summed volume over the mesh's volume (1 = the parts follow the surface; more = they
bulge out), and stability in MuJoCo: the object stands on the floor with a small probe resting
where the concave shape holds it (a box on the table top, the chair's seat and the cabinet's low
leg, a 2 cm cube inside the mug and the bowl); the scene goes through ``export_scene(["mjcf"])`` and
:func:`dpa_ros.export.sim_check.check_scene` (2 s). Stable = both the object and its probe stay
within 2 cm and 5°. Several yaws per object; every decomposition is seeded.

    python bench/collision.py [--yaws 3] [--out bench/results/collision.json]
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import trimesh

from dpa_ros.core.camera import CameraModel
from dpa_ros.core.scene import Background, Plane, Scene, SceneObject, write_scene
from dpa_ros.export import ExportOptions, export_scene
from dpa_ros.export.collision import decompose, fill_ratio
from dpa_ros.export.sim_check import check_scene
from dpa_testing.synthetic import look_at_level

METHODS = ("convex_hull", "coacd", "vhacd")


def _box(extents, center):
    return trimesh.creation.box(extents=extents, transform=trimesh.transformations.translation_matrix(center))


def _revolve(profile: list[tuple[float, float]]) -> trimesh.Trimesh:
    """A solid of revolution about z from a closed (r, z) profile (metres)."""
    return trimesh.creation.revolve(np.asarray(profile, float), sections=32)


def table():
    """0.8 × 0.6 m top, 0.72 m high, four legs (z up, bottom at z = 0); probe on the top."""
    parts = [_box([0.8, 0.6, 0.04], [0, 0, 0.70])]
    parts += [_box([0.05, 0.05, 0.68], [x, y, 0.34]) for x in (-0.35, 0.35) for y in (-0.25, 0.25)]
    return trimesh.util.concatenate(parts), ("box", [0.0, 0.0, 0.72], 0.1)


def chair():
    parts = [_box([0.45, 0.45, 0.04], [0, 0, 0.45]), _box([0.45, 0.04, 0.45], [0, -0.205, 0.695])]
    parts += [_box([0.04, 0.04, 0.43], [x, y, 0.215]) for x in (-0.2, 0.2) for y in (-0.2, 0.2)]
    return trimesh.util.concatenate(parts), ("box", [0.0, 0.05, 0.47], 0.1)


def l_shape():
    parts = [_box([0.9, 0.5, 0.25], [0, 0, 0.125]), _box([0.3, 0.5, 0.5], [-0.3, 0, 0.5])]
    return trimesh.util.concatenate(parts), ("box", [0.25, 0.0, 0.25], 0.1)


def mug():
    """Outer radius 4 cm, 10 cm high, 4 mm walls, 6 mm bottom; a 2 cm cube inside."""
    profile = [(0.0, 0.0), (0.04, 0.0), (0.04, 0.10), (0.036, 0.10), (0.036, 0.006), (0.0, 0.006)]
    return _revolve(profile), ("box", [0.0, 0.0, 0.006], 0.02)


def bowl():
    """A round bowl, 16 cm across, 6 cm deep, 5 mm thick, flat 6 cm bottom; a 2 cm cube inside."""
    outer = [(0.03 + 0.05 * np.sin(a), 0.06 * (1 - np.cos(a))) for a in np.linspace(0, np.pi / 2, 8)]
    inner = [(0.03 + 0.045 * np.sin(a), 0.005 + 0.055 * (1 - np.cos(a))) for a in np.linspace(np.pi / 2, 0, 8)]
    profile = [(0.0, 0.0)] + outer + inner + [(0.0, 0.005)]
    return _revolve(profile), ("box", [0.0, 0.0, 0.005], 0.02)


def box():
    return _box([0.4, 0.3, 0.3], [0, 0, 0.15]), None


def can():
    return _revolve([(0.0, 0.0), (0.033, 0.0), (0.033, 0.12), (0.0, 0.12)]), None


OBJECTS = {"table": table, "chair": chair, "l_shape": l_shape, "mug": mug, "bowl": bowl, "box": box, "can": can}


def _probe(size: float) -> trimesh.Trimesh:
    """A cube (a ball would roll and count as turned), bottom at z = 0."""
    return _box([size, size, size], [0, 0, size / 2])


def _scene(mesh: trimesh.Trimesh, probe, yaw_deg: float) -> Scene:
    """The object at world (0, 2.0) turned by ``yaw_deg``, its probe resting on it; camera 1.4 m high."""
    T_cw = look_at_level(1.4, 35.0)
    R = trimesh.transformations.rotation_matrix(np.radians(yaw_deg), [0, 0, 1])
    T_wo = trimesh.transformations.translation_matrix([0.0, 2.0, 0.0]) @ R
    objects = [SceneObject(id=0, label="object", score=1.0, mesh=mesh, T_camera_object=T_cw @ T_wo)]
    if probe is not None:
        kind, at, size = probe
        T_wp = T_wo @ trimesh.transformations.translation_matrix(np.asarray(at) + [0, 0, 0.0005])
        objects.append(SceneObject(id=1, label=kind, score=1.0, mesh=_probe(size), T_camera_object=T_cw @ T_wp))
    up = T_cw[:3, :3] @ np.array([0.0, 0.0, 1.0])
    floor = Plane(label="floor", normal=up, offset=1.4)
    return Scene(camera=CameraModel.from_fov(160, 120, 70.0), objects=objects,
                 background=Background(planes=[floor], gravity=-up, gravity_source="floor"))


def run(yaws: int) -> list[dict]:
    rows = []
    for name, build in OBJECTS.items():
        mesh, probe = build()
        for method in METHODS:
            if method == "convex_hull":
                t0 = time.perf_counter()
                parts = [mesh.convex_hull]
            else:
                t0 = time.perf_counter()
                parts = decompose(mesh, method, 16)
            seconds = time.perf_counter() - t0
            volume_ratio = sum(p.volume for p in parts) / mesh.volume
            stable, penetration = [], []
            for yaw in np.linspace(0, 90, yaws, endpoint=False):
                with tempfile.TemporaryDirectory() as d:
                    write_scene(_scene(mesh, probe, float(yaw)), d)
                    collision = "convex_hull" if method == "convex_hull" else "decomposition"
                    decomposer = "coacd" if method == "convex_hull" else method
                    export_scene(d, ["mjcf"], ExportOptions(collision=collision, decomposer=decomposer))
                    report = check_scene(d, duration_s=2.0)
                stable.append(all(o.stable for o in report.objects))
                penetration.append(max(o.penetration_t0_m for o in report.objects))
            rows.append({"object": name, "method": method, "seconds": seconds, "parts": len(parts),
                         "volume_ratio": volume_ratio, "fill_ratio": fill_ratio(mesh),
                         "stable_rate": float(np.mean(stable)), "penetration_t0_m": float(max(penetration)),
                         "probe": probe[0] if probe else None})
            print(f"{name:<8} {method:<12} {rows[-1]['seconds']:>7.3f} s {len(parts):>3} parts  "
                  f"volume x{volume_ratio:.2f}  "
                  f"penetration t0 {100 * rows[-1]['penetration_t0_m']:.2f} cm  "
                  f"stable {100 * rows[-1]['stable_rate']:.0f} %", flush=True)
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--yaws", type=int, default=3, help="yaw angles per object (0..90 deg)")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "collision.json")
    args = ap.parse_args(argv)
    rows = run(args.yaws)
    print(f"\n{'method':<12} {'time/object [s] mean/max':>25} {'parts mean':>10} {'volume ratio':>12} "
          f"{'stable (concave)':>16}")
    summary = {}
    for method in METHODS:
        sel = [r for r in rows if r["method"] == method]
        concave = [r for r in sel if r["probe"]]
        t = np.array([r["seconds"] for r in sel])
        summary[method] = {"seconds_mean": float(t.mean()), "seconds_max": float(t.max()),
                           "parts_mean": float(np.mean([r["parts"] for r in concave])),
                           "volume_ratio_mean": float(np.mean([r["volume_ratio"] for r in concave])),
                           "stable_rate_concave": float(np.mean([r["stable_rate"] for r in concave]))}
        s = summary[method]
        print(f"{method:<12} {s['seconds_mean']:>12.3f} / {s['seconds_max']:<10.3f} {s['parts_mean']:>10.1f} "
              f"{s['volume_ratio_mean']:>12.2f} {100 * s['stable_rate_concave']:>15.0f} %")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"yaws": args.yaws, "rows": rows, "summary": summary}, indent=2))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
