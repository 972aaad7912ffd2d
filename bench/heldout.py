"""Held-out layout evaluation: fresh rendered scenes through ``dpa-reconstruct --instances``.

    .venv/bin/python bench/heldout.py [--scenes 10] [--seed 1000] [--noise 0,0.005] [--config FILE.yaml] [--why]
    .venv/bin/python bench/heldout.py --physics [bench/simready.py's options]

``--physics`` runs the simulation-readiness bench instead (bench/simready.py: these furniture scenes
and tabletop scenes through an RGB-D sensor model, with the physics stage on and off side by side,
each exported to MJCF and run in MuJoCo); every other option is then simready's.

Every scene is new (its own seed): 4 objects drawn from boxes, cylinders, L- and U-shaped
cabinets, chairs, tables, open shelves, sofas and irregular meshes (trimesh primitives combined
and deformed), with random proportions, sizes, positions and yaws, standing on a floor in front of a wall, seen by a
camera at a random height (0.8–1.6 m) and pitch (10–35°). One object is placed at the left or
right image border (cut by it) and one partly behind another (occluded); draws that leave any
object less than ``--min-visible`` (default 30 %) of its whole silhouette are redrawn (a sliver of
an object cannot fix its pose; ``--min-visible 0`` keeps them). Depth is exact, or
carries range noise of std ``noise × range``. The meshes handed to the solver are glTF files in
the glTF convention (+Y up, front +Z) with a random origin offset and a random unit scale; each
instance gets 3 proposals — its true shape and 2 distractors (other shapes of the same scene's
draw, in random order).

Each scene is written to disk (RGB PNG, 16-bit millimetre depth PNG, camera_info YAML, mask PNGs,
.glb meshes, instances.json, the ground truth as a scene directory) and reconstructed by the
command-line entry point with default settings (plus ``--config`` when given), in this process
(the command's import time is not counted; ``--subprocess`` runs the real console command
instead and times it whole). Scored per scene: F-score@5cm and CD-L1 of all objects together
(:func:`dpa_ros.geometry.metrics.scene_metrics`, as ``dpa-eval`` does), the worst object
centre error (bounding-box centre of the true mesh), the share of objects whose true shape was
chosen, and wall time. ``--why`` says for every object more than 3 cm off whether the search or
the objective is at fault (the objective at the true pose against the returned one's). Prints a
table and writes JSON to bench/results/.
"""
from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import trimesh
import yaml
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"


def _box(extents, center):
    return trimesh.creation.box(extents=extents, transform=trimesh.transformations.translation_matrix(center))


def _unit(mesh: trimesh.Trimesh) -> trimesh.Trimesh:
    lo, hi = mesh.bounds
    mesh = mesh.copy()
    mesh.apply_translation(-(lo + hi) / 2)
    mesh.apply_scale(1.0 / float(np.max(hi - lo)))
    return mesh


# Shape builders, glTF convention (+y up, front +z), random proportions from rng.
def box(rng):
    return _unit(_box([1.0, rng.uniform(0.4, 1.2), rng.uniform(0.3, 0.8)], [0, 0, 0]))


def cylinder(rng):
    cyl = trimesh.creation.cylinder(radius=rng.uniform(0.2, 0.45), height=rng.uniform(0.5, 1.0), sections=32)
    cyl.apply_transform(trimesh.transformations.rotation_matrix(np.pi / 2, [1, 0, 0]))
    return _unit(cyl)


def l_shape(rng):
    h, d = rng.uniform(0.2, 0.35), rng.uniform(0.35, 0.6)
    w2, h2 = rng.uniform(0.25, 0.4), rng.uniform(0.4, 0.8)
    return _unit(trimesh.util.concatenate([_box([1.0, h, d], [0, 0, 0]),
                                           _box([w2, h2, d * 0.6], [-0.5 + w2 / 2, h / 2 + h2 / 2, -d * 0.2])]))


def u_shape(rng):
    h, d, w = rng.uniform(0.15, 0.3), rng.uniform(0.3, 0.5), rng.uniform(0.15, 0.25)
    h2 = rng.uniform(0.35, 0.7)
    parts = [_box([1.0, h, d], [0, 0, 0])]
    for x in (-0.5 + w / 2, 0.5 - w / 2):
        parts.append(_box([w, h2, d], [x, h / 2 + h2 / 2, 0]))
    return _unit(trimesh.util.concatenate(parts))


def chair(rng):
    s, leg, back = rng.uniform(0.4, 0.55), rng.uniform(0.35, 0.5), rng.uniform(0.35, 0.6)
    parts = [_box([s, 0.06, s], [0, 0, 0]), _box([s, back, 0.06], [0, 0.03 + back / 2, -s / 2 + 0.03])]
    for x in (-s / 2 + 0.03, s / 2 - 0.03):
        for z in (-s / 2 + 0.03, s / 2 - 0.03):
            parts.append(_box([0.05, leg, 0.05], [x, -0.03 - leg / 2, z]))
    return _unit(trimesh.util.concatenate(parts))


def table(rng):
    w, d, h = 1.0, rng.uniform(0.45, 0.8), rng.uniform(0.45, 0.8)
    parts = [_box([w, 0.05, d], [0, h / 2, 0])]
    for x in (-w / 2 + 0.05, w / 2 - 0.05):
        for z in (-d / 2 + 0.05, d / 2 - 0.05):
            parts.append(_box([0.06, h - 0.05, 0.06], [x, -0.025, z]))
    return _unit(trimesh.util.concatenate(parts))


def irregular(rng):
    """A deformed blob on a deformed block: an icosphere and a box, stretched, bent and noised."""
    blob = trimesh.creation.icosphere(subdivisions=3, radius=0.5)
    blob.apply_scale([rng.uniform(0.7, 1.3), rng.uniform(0.5, 1.0), rng.uniform(0.5, 1.0)])
    blob.apply_translation([rng.uniform(-0.2, 0.2), 0.35, 0.0])
    base = trimesh.creation.box(extents=[rng.uniform(0.8, 1.2), 0.35, rng.uniform(0.5, 0.9)])
    base = base.subdivide().subdivide()
    mesh = trimesh.util.concatenate([blob, base])
    v = mesh.vertices.copy()
    k = rng.uniform(-0.4, 0.4)
    v[:, 1] += k * v[:, 0] ** 2                               # bend
    v[:, 2] += rng.uniform(-0.3, 0.3) * v[:, 1]               # shear
    v += rng.normal(0, 0.01, v.shape)                         # surface noise
    return _unit(trimesh.Trimesh(v, mesh.faces, process=False))


def shelf(rng):
    """An open bookcase: two sides, a top, a bottom, a back and 1–3 shelves, open at the front (+z)."""
    h, d, t = rng.uniform(0.8, 1.6), rng.uniform(0.25, 0.45), 0.03
    parts = [_box([t, h, d], [x, 0, 0]) for x in (-0.5 + t / 2, 0.5 - t / 2)]
    parts.append(_box([1.0, h, t], [0, 0, -d / 2 + t / 2]))
    for y in np.linspace(-h / 2 + t / 2, h / 2 - t / 2, int(rng.integers(3, 6))):
        parts.append(_box([1.0, t, d], [0, y, 0]))
    return _unit(trimesh.util.concatenate(parts))


def sofa(rng):
    """A sofa: a seat block, a back along its rear and two arms."""
    d, seat = rng.uniform(0.6, 0.9), rng.uniform(0.35, 0.45)
    back, arm = rng.uniform(0.3, 0.5), rng.uniform(0.1, 0.2)
    parts = [_box([1.0, seat, d], [0, 0, 0]), _box([1.0, back, 0.18], [0, seat / 2 + back / 2, -d / 2 + 0.09])]
    for x in (-0.5 + arm / 2, 0.5 - arm / 2):
        parts.append(_box([arm, 0.2, d], [x, seat / 2 + 0.1, 0]))
    return _unit(trimesh.util.concatenate(parts))


SHAPES = {"box": box, "cylinder": cylinder, "l_shape": l_shape, "u_shape": u_shape, "chair": chair, "table": table,
          "irregular": irregular, "shelf": shelf, "sofa": sofa}


def _floor_point(T_cw: np.ndarray, camera, u: float, v: float) -> np.ndarray | None:
    """World (x, y) where the ray through pixel (u, v) meets the floor z = 0 (None above the horizon)."""
    ray_c = np.linalg.inv(camera.K) @ np.array([u, v, 1.0])
    R_wc = T_cw[:3, :3].T
    o = -R_wc @ T_cw[:3, 3]
    d = R_wc @ ray_c
    if d[2] >= -1e-6:
        return None
    return (o + d * (-o[2] / d[2]))[:2]


def visible_fractions(scene) -> list[float]:
    """Per object, its mask's share of the silhouette it would have alone on an unbounded image."""
    from dpa_ros.core.camera import CameraModel
    from dpa_testing import synthetic

    cam = scene.camera
    K = cam.K.copy()
    K[0, 2] += cam.width
    K[1, 2] += cam.height
    big = CameraModel(K=K, width=3 * cam.width, height=3 * cam.height)
    out = []
    for mesh, T, mask in zip(scene.meshes, scene.poses, scene.masks):
        placed = mesh.copy()
        placed.apply_transform(T)
        _, ids = synthetic.render([placed], big)
        out.append(float(mask.sum()) / max(1, int((ids == 0).sum())))
    return out


def make_heldout_scene(seed: int, noise: float, width: int = 320, height: int = 240, min_pixels: int = 150,
                       min_visible: float = 0.3):
    """One fresh scene (SyntheticScene, shape names), meshes in glTF convention.

    Draws are repeated (from ``[seed, attempt]``) until every object shows at least
    ``min_pixels`` pixels and at least ``min_visible`` of its whole silhouette (what the image
    border and the other objects leave of it), and the border object touches the image border.
    """
    for attempt in range(50):
        scene, names, border = _draw_scene(np.random.default_rng([seed, attempt]), width, height)
        if len(names) == 4 and min(int(m.sum()) for m in scene.masks) >= min_pixels and (
                scene.masks[border][:, 0].any() or scene.masks[border][:, -1].any()) and (
                min(visible_fractions(scene)) >= min_visible):
            break
    else:
        raise RuntimeError(f"scene {seed}: no valid draw in 50 attempts")
    if noise > 0:
        # Range noise of std noise × range: along each pixel's ray, z scales with the range.
        rng = np.random.default_rng([seed, 5])
        scene.depth = scene.depth * (1.0 + noise * rng.normal(size=scene.depth.shape))
    return scene, names


def _draw_scene(rng: np.random.Generator, width: int, height: int):
    from dpa_ros.core.camera import CameraModel
    from dpa_testing import synthetic

    cam_h, pitch = rng.uniform(0.8, 1.6), rng.uniform(10, 35)
    camera = CameraModel.from_fov(width, height, rng.uniform(60, 75))
    T_cw = synthetic.look_at_level(cam_h, pitch)
    names = list(rng.choice(sorted(SHAPES), size=4, replace=False))
    objects, placed = [], []
    border = int(rng.integers(0, 4))              # which object is cut by the image border
    occluded = (border + 1) % 4                    # which object hides partly behind the one before it
    for k, name in enumerate(names):
        mesh = SHAPES[name](rng)
        size = float(rng.uniform(0.45, 0.9))
        radius = 0.5 * size * float(np.linalg.norm(np.ptp(mesh.vertices, 0)[[0, 2]]))
        for _ in range(200):
            if k == border:
                u = rng.choice([0.02, 0.98]) * width
                v = rng.uniform(0.6, 0.85) * height
            elif k == occluded and placed:
                px, py, pr = placed[rng.integers(len(placed))]
                dist = np.hypot(px, py)
                step = pr + radius + rng.uniform(0.05, 0.25)
                lateral = rng.uniform(-0.5, 0.5) * (pr + radius)
                xy = np.array([px, py]) * (dist + step) / dist + np.array([py, -px]) / dist * lateral
                u = v = None
            else:
                u, v = rng.uniform(0.2, 0.8) * width, rng.uniform(0.55, 0.9) * height
            if u is not None:
                xy = _floor_point(T_cw, camera, u, v)
                if xy is None:
                    continue
            if not (1.2 < np.hypot(*xy) < 4.0 and xy[1] + radius < 4.4):
                continue
            if all(np.hypot(xy[0] - px, xy[1] - py) > radius + pr + 0.05 for px, py, pr in placed):
                break
        else:
            continue
        placed.append((float(xy[0]), float(xy[1]), radius))
        objects.append((name, (lambda m=mesh: m), size, float(xy[0]), float(xy[1]), float(rng.uniform(-180, 180))))
    scene = synthetic.make_scene(width=width, height=height, hfov_deg=float(np.degrees(2 * np.arctan(
        0.5 * width / camera.fx))), camera_height=cam_h, pitch_deg=pitch, objects=objects,
        seed=int(rng.integers(1 << 31)))
    return scene, [o[0] for o in objects], min(border, len(objects) - 1)


def write_inputs(scene, names, seed: int, out: Path) -> dict:
    """The scene as dpa-reconstruct inputs under ``out``; returns the bookkeeping for scoring."""
    from dpa_ros.core.scene import write_scene

    rng = np.random.default_rng([seed, 99])
    out.mkdir(parents=True, exist_ok=True)
    Image.fromarray(scene.rgb).save(out / "rgb.png")
    depth_mm = np.where(np.isfinite(scene.depth), np.round(scene.depth * 1000), 0).clip(0, 65535).astype(np.uint16)
    Image.fromarray(depth_mm).save(out / "depth.png")
    (out / "cam.yaml").write_text(yaml.safe_dump(scene.camera.to_camera_info_dict()))
    (out / "meshes").mkdir(exist_ok=True)
    given = []                # per object: (unit → file transform, file name) of its own shape
    for k, mesh in enumerate(scene.meshes):
        scale = float(rng.uniform(0.3, 3.0))
        offset = rng.uniform(-1.0, 1.0, 3)
        M = np.eye(4)
        M[:3, :3] *= scale
        M[:3, 3] = offset
        m = mesh.copy()
        m.apply_transform(M)
        m.export(out / "meshes" / f"{k}.glb")
        given.append(M)
    entries = []
    truth = []
    for k, (label, mask) in enumerate(zip(names, scene.masks)):
        Image.fromarray(mask.astype(np.uint8) * 255).save(out / f"mask{k}.png")
        others = [j for j in range(len(names)) if j != k]
        props = [k] + list(rng.choice(others, size=2, replace=False))
        order = rng.permutation(3)
        props = [int(props[j]) for j in order]
        truth.append(props.index(k))
        entries.append({"label": label, "mask": f"mask{k}.png", "meshes": [f"meshes/{j}.glb" for j in props]})
    (out / "instances.json").write_text(json.dumps(entries, indent=1))
    write_scene(scene.ground_truth_scene(), out / "ground_truth")
    return {"true_proposal": truth, "given": given}


def score(scene, book: dict, out_dir: Path) -> dict:
    from dpa_ros.core.scene import read_scene
    from dpa_ros.geometry.metrics import scene_metrics

    pred = read_scene(out_dir)
    metrics = scene_metrics(pred, scene.ground_truth_scene(), count=20000)
    errors, right = [], []
    for k, obj in enumerate(pred.objects):
        truth = book["true_proposal"][k]
        right.append(obj.proposal_index == truth)
        # Centre of the true shape's bounding box, placed by the prediction (through the file's
        # transform when the true shape was chosen) and by the ground truth.
        c_unit = scene.meshes[k].bounds.mean(0)
        c_true = scene.poses[k][:3, :3] @ c_unit + scene.poses[k][:3, 3]
        c_file = obj.mesh.bounds.mean(0)
        c_pred = obj.T_camera_object[:3, :3] @ c_file + obj.T_camera_object[:3, 3]
        errors.append(float(np.linalg.norm(c_pred - c_true)))
    return {"fscore@0.05": metrics["fscore@0.05"], "cd_l1": metrics["cd_l1"], "centre_errors": errors,
            "worst_centre_error": max(errors), "true_shape": right}


def diagnose(scene, book: dict, result: dict, d: Path, config: Path | None) -> list[str]:
    """Per object more than 3 cm off: the objective at the true pose of its true shape against the
    objective at the returned pose, on the inputs ``dpa-reconstruct`` built from the files in ``d``.
    SEARCH: the truth scores lower (the solver missed its basin); OBJECTIVE: the returned pose scores
    lower (the objective's minimum is off the truth, e.g. under depth noise)."""
    from dpa_ros import reconstruct
    from dpa_ros.assemble import layout_problems, load_instances_json
    from dpa_ros.core.camera import CameraModel
    from dpa_ros.geometry.layout import layout_objective
    from dpa_ros.geometry.planes import fit_background

    cfg = reconstruct.layout_config(config, None, None)
    camera = CameraModel.from_yaml(d / "cam.yaml")
    depth = reconstruct.load_depth(d / "depth.png", 0.001)
    instances = load_instances_json(d / "instances.json")
    masks = [inst.mask for inst in instances]
    background = fit_background(camera.backproject(depth, ~np.logical_or.reduce(masks)), seed=cfg.seed)
    problems, fit_depth = layout_problems(depth, camera, instances, masks, background, cfg,
                                          reconstruct.targets_config(config))
    placed = json.loads((d / "out" / "scene.json").read_text())["objects"]
    lines = []
    for k, error in enumerate(result["centre_errors"]):
        if error <= 0.03:
            continue
        truth, chosen = book["true_proposal"][k], placed[k]["proposal_index"]
        T_true = scene.poses[k] @ np.linalg.inv(book["given"][k])
        T_placed = np.asarray(placed[k]["T_camera_object"], float).reshape(4, 4)
        L_true = layout_objective(problems[k], camera, fit_depth, [T_true], truth, cfg)[0]
        L_placed = layout_objective(problems[k], camera, fit_depth, [T_placed], chosen, cfg)[0]
        scale = np.cbrt(np.linalg.det(T_placed[:3, :3]) / np.linalg.det(T_true[:3, :3]))
        lines.append(f"  object {k} ({scene.labels[k]}, {100 * result['visible'][k]:.0f} % visible): "
                     f"{100 * error:.1f} cm off, proposal {chosen} (true {truth}), L(truth) {L_true:.5f} vs "
                     f"L(returned) {L_placed:.5f}: {'SEARCH' if L_true < L_placed else 'OBJECTIVE'}"
                     + (f", scale ×{scale:.2f}" if chosen == truth else ""))
    return lines


def run_scene(seed: int, noise: float, config: Path | None, subprocess_cli: bool, keep: Path | None,
              min_visible: float = 0.3, why: bool = False) -> dict:
    from dpa_ros.cli import reconstruct

    scene, names = make_heldout_scene(seed, noise, min_visible=min_visible)
    with tempfile.TemporaryDirectory(prefix="dpa_heldout_") as tmp:
        d = (keep / f"scene_{seed}_{noise:g}") if keep else Path(tmp)
        book = write_inputs(scene, names, seed, d)
        args = ["--image", str(d / "rgb.png"), "--depth", str(d / "depth.png"), "--camera-info", str(d / "cam.yaml"),
                "--instances", str(d / "instances.json"), "--out", str(d / "out"), "--export", "none",
                "--no-progress", "--force"]
        if config is not None:
            args += ["--config", str(config)]
        t0 = time.perf_counter()
        if subprocess_cli:
            proc = subprocess.run([sys.executable, "-m", "dpa_ros.cli.reconstruct", *args],
                                  capture_output=True, text=True)
            if proc.returncode != 0:
                raise RuntimeError(proc.stderr)
        elif reconstruct.main(args) != 0:
            raise RuntimeError(f"dpa-reconstruct failed on scene {seed}")
        seconds = time.perf_counter() - t0
        result = score(scene, book, d / "out")
        result["visible"] = visible_fractions(scene)
        if why:
            result["why"] = diagnose(scene, book, result, d, config)
        layout_s = json.loads((d / "out" / "scene.json").read_text())["timings_s"]["layout"]
    return {"seed": seed, "noise": noise, "shapes": names, "seconds": seconds, "layout_s": layout_s, **result}


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if "--physics" in argv:
        import simready  # bench/simready.py, next to this file

        return simready.main([a for a in argv if a != "--physics"])
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenes", type=int, default=10, help="scenes per noise level")
    ap.add_argument("--seed", type=int, default=1000, help="first scene seed (scene k uses seed + k)")
    ap.add_argument("--noise", default="0,0.005", help="comma-separated range-noise levels (std / range)")
    ap.add_argument("--config", type=Path, help="YAML passed to dpa-reconstruct --config (default: none)")
    ap.add_argument("--subprocess", action="store_true", help="run the console command in a subprocess")
    ap.add_argument("--keep", type=Path, help="keep every scene's inputs and outputs under this directory")
    ap.add_argument("--min-visible", type=float, default=0.3,
                    help="least share of each object's whole silhouette left visible (default 0.3)")
    ap.add_argument("--why", action="store_true",
                    help="for every object more than 3 cm off, compare the objective at the truth with the returned "
                         "pose's (SEARCH: the truth scores lower; OBJECTIVE: it does not)")
    args = ap.parse_args(argv)
    load = Path("/proc/loadavg").read_text().split()[:3] if Path("/proc/loadavg").exists() else []
    rows = []
    for noise in [float(x) for x in args.noise.split(",")]:
        for k in range(args.scenes):
            r = run_scene(args.seed + k, noise, args.config, args.subprocess, args.keep, args.min_visible, args.why)
            rows.append(r)
            print(f"scene {r['seed']} noise {noise:g}: F@5cm {r['fscore@0.05']:.1f}  worst centre "
                  f"{100 * r['worst_centre_error']:.1f} cm  true shape {sum(r['true_shape'])}/4  "
                  f"{r['seconds']:.1f} s (layout {r['layout_s']:.1f} s)  {','.join(r['shapes'])}", flush=True)
            for line in r.get("why", []):
                print(line, flush=True)
    summary = []
    print(f"\nheld-out scenes via dpa-reconstruct --instances, every object >= {args.min_visible:.0%} visible, "
          f"host load {' '.join(load)}")
    print(f"{'noise':>6} {'scenes':>6} {'F@5cm mean':>10} {'F@5cm min':>9} {'worst centre [cm] mean/max':>27} "
          f"{'true shape':>10} {'time [s] mean/max':>18}")
    for noise in sorted({r["noise"] for r in rows}):
        sel = [r for r in rows if r["noise"] == noise]
        f = np.array([r["fscore@0.05"] for r in sel])
        w = np.array([r["worst_centre_error"] for r in sel]) * 100
        ts = np.array([r["seconds"] for r in sel])
        right = sum(sum(r["true_shape"]) for r in sel)
        total = sum(len(r["true_shape"]) for r in sel)
        summary.append({"noise": noise, "scenes": len(sel), "fscore_mean": f.mean(), "fscore_min": f.min(),
                        "worst_centre_cm_mean": w.mean(), "worst_centre_cm_max": w.max(),
                        "true_shape_rate": right / total, "seconds_mean": ts.mean(), "seconds_max": ts.max()})
        print(f"{noise:>6g} {len(sel):>6} {f.mean():>10.2f} {f.min():>9.2f} {w.mean():>13.2f} / {w.max():<11.2f} "
              f"{right:>4}/{total:<5} {ts.mean():>8.1f} / {ts.max():<7.1f}")
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    path = RESULTS / f"heldout_{stamp}.json"
    meta = {"host": platform.node(), "load": load, "config": str(args.config) if args.config else None,
            "min_visible": args.min_visible, "subprocess": args.subprocess, "timestamp": stamp}
    path.write_text(json.dumps({**meta, "summary": summary, "scenes": rows}, indent=2, default=float))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
