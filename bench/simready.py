"""Held-out simulation readiness: fresh scenes through ``dpa-reconstruct --instances`` with the
physics stage on and off, side by side, each exported to MJCF and run 2 s in MuJoCo.

    python bench/simready.py                                  # 12 tabletop + 8 furniture scenes
    python bench/simready.py --family tabletop --scenes 20 --seed 9100

Scene families (none of them is used by a test or was used to choose a default):

* ``tabletop``: a robot head camera 1.2–1.6 m high, pitched 30–70° down and rolled up to ±4°,
  looking at a table (4 legs and a top, 0.68–0.80 m high) with 3–6 household objects standing on
  it: mugs (open cup with a handle), bottles, bowls (open), boxes and cans at real sizes, random
  yaw, not touching each other. In half the scenes the table is an instance too; in the other half
  it is background (the fitted table top must then become a support plane).
* ``furniture``: the room scenes of ``bench/heldout.py`` (4 pieces of furniture on the floor, one
  cut by the image border, one behind another).

Every scene is degraded the way a real robot sees it: the depth as an active-stereo RGB-D sensor
measures it (noise growing with range in disparity space, disparity quantisation, flying pixels
at depth edges, holes, outliers, and the occlusion shadow the projector baseline leaves left of
foreground edges), masks eroded or dilated by up to ``--mask-noise`` px, and the true shape among
the 3 proposals scaled anisotropically by up to ``--aniso`` per axis (a generated mesh is never the
exact shape).

Per scene and physics setting: F-score@5 cm and the worst object-centre error against ground truth,
the physics stage's time, whether the floor (and gravity) was found without hints and how far the
fitted gravity is from the truth, and in MuJoCo per object the deepest contact at t = 0, drift,
turn and stable (≤ 2 cm, ≤ 5° after 2 s). The ground truth itself is simulated too: an object
counts towards the stable rate only where its true pose is stable. Prints a table, writes JSON to
bench/results/.
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import trimesh
import yaml
from PIL import Image
from scipy import ndimage

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
RESULTS = ROOT / "bench" / "results"

import heldout  # noqa: E402  (bench/heldout.py: the furniture scenes and their scoring)

from dpa_ros.core.camera import CameraModel  # noqa: E402
from dpa_ros.core.scene import Background, Plane, Scene, SceneObject, write_scene  # noqa: E402
from dpa_ros.geometry.mesh_frames import rotation_to_gltf  # noqa: E402
from dpa_testing import synthetic  # noqa: E402
from dpa_testing.synthetic_planes import StereoSensor, camera_pose  # noqa: E402

#: glTF object frame (+y up) from a z-up authoring frame
GLTF_FROM_ZUP = np.eye(4)
GLTF_FROM_ZUP[:3, :3] = rotation_to_gltf("+z")


# ---------------------------------------------------------------------------------------------
# Household objects, authored z-up at real sizes (metres), returned in the glTF convention.

def _revolve(profile: list[tuple[float, float]], sections: int = 28) -> trimesh.Trimesh:
    """A solid of revolution about z from a closed (r, z) profile (listed from the axis, outward)."""
    return trimesh.creation.revolve(np.asarray(profile, float), sections=sections)


def _gltf(mesh: trimesh.Trimesh) -> trimesh.Trimesh:
    mesh = mesh.copy()
    mesh.apply_transform(GLTF_FROM_ZUP)
    return mesh


def mug(rng):
    r, h, wall, bottom = rng.uniform(0.035, 0.045), rng.uniform(0.08, 0.10), 0.005, 0.008
    cup = _revolve([(0, 0), (r, 0), (r, h), (r - wall, h), (r - wall, bottom), (0, bottom)])
    handle = trimesh.creation.box(extents=[0.03, 0.012, 0.6 * h],
                                  transform=trimesh.transformations.translation_matrix([r + 0.012, 0, 0.5 * h]))
    return _gltf(trimesh.util.concatenate([cup, handle]))


def bottle(rng):
    r, h = rng.uniform(0.03, 0.045), rng.uniform(0.18, 0.28)
    neck_r, neck = 0.4 * r, rng.uniform(0.04, 0.07)
    body = h - neck
    return _gltf(_revolve([(0, 0), (r, 0), (r, body), (neck_r, body + 0.3 * neck), (neck_r, h), (0, h)]))


def bowl(rng):
    r, h, wall = rng.uniform(0.06, 0.09), rng.uniform(0.045, 0.07), 0.006
    foot = 0.5 * r
    outer = [(foot, 0)] + [(foot + (r - foot) * np.sin(a), h * (1 - np.cos(a)))
                           for a in np.linspace(0.15, np.pi / 2, 6)]
    inner = [(max(0.0, x - wall), max(wall, z)) for x, z in reversed(outer)]
    return _gltf(_revolve([(0, 0)] + outer + inner + [(0, wall)]))


def small_box(rng):
    ext = [rng.uniform(0.06, 0.16), rng.uniform(0.05, 0.12), rng.uniform(0.04, 0.14)]
    return _gltf(trimesh.creation.box(extents=ext, transform=trimesh.transformations.translation_matrix(
        [0, 0, ext[2] / 2])))


def can(rng):
    r, h = rng.uniform(0.032, 0.04), rng.uniform(0.1, 0.13)
    return _gltf(_revolve([(0, 0), (r, 0), (r, h), (0, h)]))


HOUSEHOLD = {"mug": mug, "bottle": bottle, "bowl": bowl, "box": small_box, "can": can}


def table_mesh(rng) -> tuple[trimesh.Trimesh, float, np.ndarray]:
    """A table (top + 4 legs) authored z-up with its feet at z = 0: (glTF mesh, top height, top size)."""
    w, d, h, t = rng.uniform(0.9, 1.3), rng.uniform(0.6, 0.85), rng.uniform(0.68, 0.8), 0.03
    parts = [trimesh.creation.box(extents=[w, d, t], transform=trimesh.transformations.translation_matrix(
        [0, 0, h - t / 2]))]
    for x in (-w / 2 + 0.04, w / 2 - 0.04):
        for y in (-d / 2 + 0.04, d / 2 - 0.04):
            parts.append(trimesh.creation.box(extents=[0.05, 0.05, h - t],
                                              transform=trimesh.transformations.translation_matrix(
                                                  [x, y, (h - t) / 2])))
    return _gltf(trimesh.util.concatenate(parts)), h, np.array([w, d])


# ---------------------------------------------------------------------------------------------
# The sensor: stereo depth with an occlusion shadow.

SENSOR = StereoSensor()


def rgbd_depth(depth: np.ndarray, camera: CameraModel, rng: np.random.Generator) -> np.ndarray:
    """Exact depth → what an active-stereo RGB-D camera (D435-like, colour-aligned) measures.

    On top of :meth:`StereoSensor.corrupt`, the projector/second camera sits to the right, so the
    background just left of a foreground edge is seen by one camera only: a band of
    f·b·(1/z_near − 1/z_far) pixels there has no depth.
    """
    fb = camera.fx * SENSOR.baseline_m
    out = SENSOR.corrupt(depth, camera.fx, rng)
    z = np.where(np.isfinite(depth), depth, np.inf)
    H, W = depth.shape
    for v in range(H):
        row = z[v]
        for u in np.nonzero(row[1:] + 0.05 < row[:-1])[0] + 1:   # a nearer surface starts at u
            width = int(fb * (1.0 / row[u] - 1.0 / min(row[u - 1], 1e3)))
            out[v, max(0, u - width):u] = np.nan
    return out


def noisy_mask(mask: np.ndarray, max_px: int, rng: np.random.Generator) -> np.ndarray:
    """The mask eroded or dilated by 0..max_px pixels (never emptied)."""
    k = int(rng.integers(-max_px, max_px + 1)) if max_px > 0 else 0
    if k == 0:
        return mask
    op = ndimage.binary_dilation if k > 0 else ndimage.binary_erosion
    out = op(mask, iterations=abs(k))
    return out if out.sum() >= 20 else mask


# ---------------------------------------------------------------------------------------------
# Scenes: a common record of what the bench needs.

class BenchScene:
    """camera, rgb, exact depth, per instance (label, mask, glTF mesh, T_camera_object), gravity, and
    the ground-truth Scene (with the table as a support plane when it is no instance)."""

    def __init__(self, camera, rgb, depth, labels, masks, meshes, poses, gravity, truth: Scene, family: str,
                 pitch: float, extra: dict):
        self.camera, self.rgb, self.depth = camera, rgb, depth
        self.labels, self.masks, self.meshes, self.poses = labels, masks, meshes, poses
        self.gravity, self.truth, self.family, self.pitch, self.extra = gravity, truth, family, pitch, extra


def _world_rect(T_cw, corners_w) -> trimesh.Trimesh:
    m = trimesh.Trimesh(vertices=corners_w, faces=[[0, 1, 2], [0, 2, 3]])
    m.apply_transform(T_cw)
    return m


def tabletop_scene(seed: int, width: int, height: int) -> BenchScene:
    rng = np.random.default_rng([seed, 1])
    for _attempt in range(50):
        cam_h, pitch, roll = rng.uniform(1.2, 1.6), rng.uniform(30, 70), rng.uniform(-4, 4)
        camera = CameraModel.from_fov(width, height, rng.uniform(65, 75))
        T_cw = camera_pose(cam_h, pitch, roll)
        table, top_h, top = table_mesh(rng)
        # the table centre where the optical axis meets the table-top height, a little jittered
        dist = (cam_h - top_h) / np.tan(np.radians(pitch)) + rng.uniform(-0.1, 0.15)
        table_xy = np.array([rng.uniform(-0.1, 0.1), max(dist, 0.45 + top[1] / 2)])
        table_yaw = rng.uniform(-12, 12)
        T_table = synthetic.object_pose(T_cw, table, 1.0, table_xy[0], table_xy[1], table_yaw)
        n_obj = int(rng.integers(3, 7))
        placed, labels, meshes, poses = [], [], [], []
        yaw_t = np.radians(table_yaw)
        Rt = np.array([[np.cos(yaw_t), -np.sin(yaw_t)], [np.sin(yaw_t), np.cos(yaw_t)]])
        for _ in range(200):
            if len(labels) == n_obj:
                break
            name = str(rng.choice(sorted(HOUSEHOLD)))
            mesh = HOUSEHOLD[name](rng)
            radius = 0.5 * float(np.linalg.norm(np.ptp(mesh.vertices, 0)[[0, 2]]))
            local = rng.uniform(-0.5, 0.5, 2) * (top - 2 * radius - 0.04)
            xy = table_xy + Rt @ local
            if any(np.hypot(*(xy - p)) < radius + r + 0.03 for p, r in placed):
                continue
            T_wo = np.linalg.inv(T_cw) @ synthetic.object_pose(T_cw, mesh, 1.0, xy[0], xy[1], rng.uniform(-180, 180))
            T_wo[2, 3] += top_h
            placed.append((xy, radius))
            labels.append(name)
            meshes.append(mesh)
            poses.append(T_cw @ T_wo)
        table_instance = bool(rng.random() < 0.5)
        placed_meshes = []
        for m, T in zip(meshes, poses):
            pm = m.copy()
            pm.apply_transform(T)
            placed_meshes.append(pm)
        table_placed = table.copy()
        table_placed.apply_transform(T_table)
        floor = _world_rect(T_cw, [[-5, 0.2, 0], [5, 0.2, 0], [5, 8, 0], [-5, 8, 0]])
        wall_y = table_xy[1] + rng.uniform(1.0, 2.5)
        wall = _world_rect(T_cw, [[-5, wall_y, 0], [5, wall_y, 0], [5, wall_y, 3], [-5, wall_y, 3]])
        depth, ids = synthetic.render(placed_meshes + [table_placed, floor, wall], camera)
        n = len(meshes)
        masks = [ids == i for i in range(n)]
        if table_instance:
            masks.append(ids == n)
        if min(int(m.sum()) for m in masks) < 40:
            continue
        break
    else:
        raise RuntimeError(f"tabletop scene {seed}: no valid draw in 50 attempts")
    if table_instance:
        labels, meshes, poses = labels + ["table"], meshes + [table], poses + [T_table]
    palette = rng.integers(40, 255, size=(n + 3, 3))
    rgb = np.zeros((height, width, 3), np.uint8)
    for i in range(n + 3):
        rgb[ids == i] = palette[i]
    gravity = T_cw[:3, :3] @ np.array([0.0, 0.0, -1.0])
    up = -gravity
    planes = [Plane(label="floor", normal=up, offset=float(cam_h))]
    if not table_instance:
        w, d = top / 2
        corners = [[-w, -d], [w, -d], [w, d], [-w, d]]
        corners_w = np.array([[*(table_xy + Rt @ np.array(c)), top_h] for c in corners])
        corners_c = corners_w @ T_cw[:3, :3].T + T_cw[:3, 3]
        planes.append(Plane(label="support", normal=up, offset=float(cam_h - top_h), polygon=corners_c))
    truth = Scene(camera=camera, objects=[SceneObject(id=i, label=lab, score=1.0, mesh=m, T_camera_object=T,
                                                       scale=1.0, fit_error=0.0, proposal_index=0)
                                          for i, (lab, m, T) in enumerate(zip(labels, meshes, poses))],
                  background=Background(planes=planes, gravity=gravity, gravity_source="truth"),
                  profile="ground_truth")
    return BenchScene(camera, rgb, depth, labels, masks, meshes, poses, gravity, truth, "tabletop", pitch,
                      {"table_instance": table_instance, "camera_height": cam_h, "roll": roll})


def furniture_scene(seed: int, width: int, height: int) -> BenchScene:
    scene, names = heldout.make_heldout_scene(seed, 0.0, width=width, height=height)
    T_cw = scene.extra["T_camera_world"]
    pitch = float(np.degrees(np.arcsin(-T_cw[2, 2]))) if T_cw.shape == (4, 4) else float("nan")
    return BenchScene(scene.camera, scene.rgb, scene.depth, names, scene.masks, scene.meshes, scene.poses,
                      scene.gravity, scene.ground_truth_scene(), "furniture", pitch, {})


FAMILIES = {"tabletop": tabletop_scene, "furniture": furniture_scene}


# ---------------------------------------------------------------------------------------------

def write_inputs(bs: BenchScene, seed: int, out: Path, mask_noise: int, aniso: float) -> dict:
    """rgb.png, depth.png (16-bit mm, RGB-D sensor), cam.yaml and instances.json (3 proposals each:
    the true shape scaled anisotropically about its box centre, and two other objects' shapes)."""
    rng = np.random.default_rng([seed, 7])
    out.mkdir(parents=True, exist_ok=True)
    Image.fromarray(bs.rgb).save(out / "rgb.png")
    depth = rgbd_depth(bs.depth, bs.camera, rng)
    depth_mm = np.where(np.isfinite(depth), np.round(depth * 1000), 0).clip(0, 65535).astype(np.uint16)
    Image.fromarray(depth_mm).save(out / "depth.png")
    (out / "cam.yaml").write_text(yaml.safe_dump(bs.camera.to_camera_info_dict()))
    (out / "meshes").mkdir(exist_ok=True)
    n = len(bs.meshes)
    for k, mesh in enumerate(bs.meshes):
        m = mesh.copy()
        centre = m.bounds.mean(0)
        m.apply_translation(-centre)
        m.apply_transform(np.diag([*(1.0 + rng.uniform(-aniso, aniso, 3)), 1.0]))
        m.apply_translation(centre)
        m.export(out / "meshes" / f"{k}_true.glb")
        mesh.export(out / "meshes" / f"{k}.glb")
    entries, truth = [], []
    for k, (label, mask) in enumerate(zip(bs.labels, bs.masks)):
        Image.fromarray(noisy_mask(mask, mask_noise, rng).astype(np.uint8) * 255).save(out / f"mask{k}.png")
        others = [j for j in range(n) if j != k]
        picks = list(rng.choice(others, size=min(2, len(others)), replace=False))
        files = [f"meshes/{k}_true.glb"] + [f"meshes/{j}.glb" for j in picks]
        order = rng.permutation(len(files))
        entries.append({"label": label, "mask": f"mask{k}.png", "meshes": [files[j] for j in order]})
        truth.append(int(np.argmin(order)))
    (out / "instances.json").write_text(json.dumps(entries, indent=1))
    return {"true_proposal": truth}


def score(bs: BenchScene, out_dir: Path) -> dict:
    from dpa_ros.core.scene import read_scene
    from dpa_ros.geometry.metrics import scene_metrics

    pred = read_scene(out_dir)
    metrics = scene_metrics(pred, bs.truth, count=20000)
    errors = []
    for k, obj in enumerate(pred.objects):
        c_true = bs.poses[k][:3, :3] @ bs.meshes[k].bounds.mean(0) + bs.poses[k][:3, 3]
        c_pred = obj.T_camera_object[:3, :3] @ obj.mesh.bounds.mean(0) + obj.T_camera_object[:3, 3]
        errors.append(float(np.linalg.norm(c_pred - c_true)))
    g = pred.background.gravity
    gerr = float(np.degrees(np.arccos(np.clip(np.dot(g, bs.gravity), -1, 1)))) if g is not None else None
    return {"fscore@0.05": metrics["fscore@0.05"], "centre_errors": errors, "worst_centre_error": max(errors),
            "gravity_source": pred.background.gravity_source, "gravity_error_deg": gerr,
            "floor_found": pred.background.floor is not None,
            "supports": [o.support for o in pred.objects],
            "physics_s": pred.timings_s.get("physics", 0.0), "layout_s": pred.timings_s.get("layout", 0.0)}


def simulate(scene_dir: Path) -> dict:
    from dpa_ros.export.sim_check import check_scene

    report = check_scene(scene_dir, duration_s=2.0, write_mjcf=True)
    return {"stable": [bool(o.stable) for o in report.objects],
            "penetration_t0_m": [float(o.penetration_t0_m) for o in report.objects],
            "drift_m": [float(o.drift_m) for o in report.objects],
            "turn_deg": [float(o.turn_deg) for o in report.objects]}


def run_scene(family: str, seed: int, args, keep: Path | None) -> dict:
    from dpa_ros.cli import reconstruct

    bs = FAMILIES[family](seed, args.width, args.height)
    row: dict = {"family": family, "seed": seed, "labels": bs.labels, "pitch_deg": bs.pitch, **bs.extra}
    with tempfile.TemporaryDirectory(prefix="dpa_simready_") as tmp:
        d = (keep / f"{family}_{seed}") if keep else Path(tmp)
        write_inputs(bs, seed, d, args.mask_noise, args.aniso)
        write_scene(bs.truth, d / "truth")
        row["truth"] = simulate(d / "truth")
        for setting in ("physics", "no_physics"):
            out = d / setting
            argv = ["--image", str(d / "rgb.png"), "--depth", str(d / "depth.png"), "--camera-info",
                    str(d / "cam.yaml"), "--instances", str(d / "instances.json"), "--out", str(out),
                    "--export", "none", "--no-progress", "--force"]
            if setting == "no_physics":
                argv.append("--no-physics")
            t0 = time.perf_counter()
            if reconstruct.main(argv) != 0:
                raise RuntimeError(f"dpa-reconstruct failed on {family} scene {seed}")
            row[setting] = {"seconds": time.perf_counter() - t0, **score(bs, out), **simulate(out)}
    return row


def _summary(rows: list[dict], setting: str) -> dict:
    stable = truth_stable = 0
    pen = []
    for r in rows:
        for ok, ok_true, p in zip(r[setting]["stable"], r["truth"]["stable"], r[setting]["penetration_t0_m"]):
            if ok_true:
                truth_stable += 1
                stable += ok
            pen.append(p)
    f = [r[setting]["fscore@0.05"] for r in rows]
    w = [r[setting]["worst_centre_error"] * 100 for r in rows]
    ce = [e * 100 for r in rows for e in r[setting]["centre_errors"]]
    return {"scenes": len(rows), "objects_truth_stable": truth_stable, "stable": stable,
            "stable_rate": stable / max(1, truth_stable), "max_penetration_t0_cm": 100 * max(pen),
            "contacts_over_1cm": int(sum(p > 0.01 for p in pen)),
            "fscore_mean": float(np.mean(f)), "centre_cm_mean": float(np.mean(ce)),
            "worst_centre_cm_max": float(np.max(w)),
            "floor_found": sum(r[setting]["floor_found"] for r in rows),
            "gravity_error_deg_max": max((r[setting]["gravity_error_deg"] or 0.0) for r in rows),
            "physics_s_mean": float(np.mean([r[setting]["physics_s"] for r in rows])),
            "physics_s_max": float(np.max([r[setting]["physics_s"] for r in rows]))}


def _deg(value: float | None) -> str:
    return "none" if value is None else f"{value:.2f}°"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--family", default="tabletop,furniture", help="comma list of: " + ", ".join(FAMILIES))
    ap.add_argument("--scenes", default="12,8", help="scenes per family (one number, or one per family)")
    ap.add_argument("--seed", type=int, default=9100, help="first seed (scene k of a family uses seed + k)")
    ap.add_argument("--mask-noise", type=int, default=2, help="masks eroded/dilated by up to this many px")
    ap.add_argument("--aniso", type=float, default=0.15, help="true-shape proposal scaled by up to ± this per axis")
    ap.add_argument("--width", type=int, default=400)
    ap.add_argument("--height", type=int, default=300)
    ap.add_argument("--keep", type=Path, help="keep every scene's inputs and outputs under this directory")
    args = ap.parse_args(argv)
    families = [f.strip() for f in args.family.split(",") if f.strip()]
    counts = [int(c) for c in args.scenes.split(",")]
    counts = counts * len(families) if len(counts) == 1 else counts
    load = Path("/proc/loadavg").read_text().split()[:3] if Path("/proc/loadavg").exists() else []
    rows = []
    for family, count in zip(families, counts):
        for k in range(count):
            r = run_scene(family, args.seed + k, args, args.keep)
            rows.append(r)
            on, off = r["physics"], r["no_physics"]
            print(f"{family} {r['seed']} pitch {r['pitch_deg']:.0f}: stable {sum(on['stable'])}/{len(on['stable'])} "
                  f"(off {sum(off['stable'])}, truth {sum(r['truth']['stable'])}), pen t0 "
                  f"{100 * max(on['penetration_t0_m']):.1f} cm (off {100 * max(off['penetration_t0_m']):.1f}), "
                  f"F@5cm {on['fscore@0.05']:.1f} (off {off['fscore@0.05']:.1f}), worst centre "
                  f"{100 * on['worst_centre_error']:.1f} cm (off {100 * off['worst_centre_error']:.1f}), gravity "
                  f"{on['gravity_source']} {_deg(on['gravity_error_deg'])}, "
                  f"physics {on['physics_s']:.2f} s, {','.join(r['labels'])}", flush=True)
    print(f"\nsimulation readiness, RGB-D sensor, masks ±{args.mask_noise} px, proposals ±{args.aniso:.0%} "
          f"anisotropic; MuJoCo 2 s; host load {' '.join(load)}")
    head = (f"{'family':>10} {'physics':>7} {'scenes':>6} {'stable*':>11} {'pen t0 max':>10} {'>1cm':>4} "
            f"{'F@5cm':>6} {'centre cm':>9} {'worst cm':>8} {'floor':>5} {'grav err':>8} {'stage s mean/max':>16}")
    print(head)
    summary = {}
    for family in families:
        sel = [r for r in rows if r["family"] == family]
        for setting in ("physics", "no_physics"):
            s = _summary(sel, setting)
            summary[f"{family}/{setting}"] = s
            print(f"{family:>10} {'on' if setting == 'physics' else 'off':>7} {s['scenes']:>6} "
                  f"{s['stable']:>4}/{s['objects_truth_stable']:<3} {100 * s['stable_rate']:3.0f}% "
                  f"{s['max_penetration_t0_cm']:>8.1f}cm {s['contacts_over_1cm']:>4} {s['fscore_mean']:>6.1f} "
                  f"{s['centre_cm_mean']:>9.2f} {s['worst_centre_cm_max']:>8.1f} "
                  f"{s['floor_found']:>2}/{s['scenes']:<2} "
                  f"{s['gravity_error_deg_max']:>7.2f}° {s['physics_s_mean']:>7.3f}/{s['physics_s_max']:.3f}")
    print("* objects stable after 2 s (≤ 2 cm, ≤ 5°) among those whose true pose is stable")
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    path = RESULTS / f"simready_{stamp}.json"
    meta = {"host": platform.node(), "load": load, "timestamp": stamp,
            "args": {k: str(v) for k, v in vars(args).items()}}
    path.write_text(json.dumps({**meta, "summary": summary, "scenes": rows}, indent=2, default=float))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
