"""Layout solver benchmark: the legacy solver vs v2, at the `cpu` and the `paper` sizes, in one run.

    .venv/bin/python bench/layout.py [--configs cpu,paper] [--device cpu|cuda|auto] [--threads N]

Configurations (5 instances × 6 proposals × 10 restarts each):
  cpu   — 300 iterations, 1000 points per side
  paper — 1000 iterations, 5000 points per side (the paper's sizes)

The scene is synthetic (dpa_testing.synthetic): five objects on a floor, rendered at 640×480
with structured-light depth noise; each instance gets six proposals, its true shape (proposal 0)
among five others; meshes in the glTF convention. v2 is :func:`dpa_ros.geometry.layout.solve_layout`
with ``LayoutConfig(restarts, iterations, points)`` — its coarse-to-fine schedule is printed
(restarts tried, iterations and points per stage). The legacy solver is
:func:`dpa_ros.geometry.layout_legacy.solve_layout_legacy` (sample-to-sample Chamfer, all chains at
full size for all iterations). It is slow (N × M per iteration), so it runs on a part of the work
and its time is scaled to the whole, as the table says: at `cpu` on the first instance only (all
its proposals and restarts, every iteration; time × instances; accuracy for that instance), at
`paper` on every problem for ``--legacy-paper-iterations`` iterations (time scaled to all
iterations; no accuracy). Each run is its own process (its peak RSS is its own). Accuracy against
ground truth: centre error of each object (bounding-box centre of the true mesh), F-score@5cm of
the placed scene (:func:`dpa_ros.geometry.metrics.scene_metrics`), share of instances whose true
shape won. The host's load (``/proc/loadavg``) is printed with the timings, and the process CPU
time next to the wall time: on a shared machine the CPU time is the steadier figure. Prints a
table and writes JSON to bench/results/.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import platform
import resource
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

CONFIGS = {
    "cpu": dict(instances=5, proposals=6, restarts=10, iterations=300, points=1000),
    "paper": dict(instances=5, proposals=6, restarts=10, iterations=1000, points=5000),
}
RESULTS = Path(__file__).resolve().parent / "results"


def _scene_and_problems(cfg: dict, seed: int):
    from dpa_ros.geometry.layout import LayoutProblem
    from dpa_ros.geometry.targets import build_target
    from dpa_testing import synthetic

    def stretched(builder, sx):
        def make():
            m = builder()
            m.apply_scale([sx, 1.0, 1.0])
            return m
        return make
    shapes = [synthetic.make_chair, synthetic.make_l_shape, synthetic.make_box, synthetic.make_cylinder,
              stretched(synthetic.make_l_shape, 1.4), stretched(synthetic.make_chair, 1.5)]
    objects = [("chair", shapes[0], 0.8, -0.9, 2.7, 25.0), ("cabinet", shapes[1], 0.9, 0.6, 3.1, -30.0),
               ("box", shapes[2], 0.5, 0.25, 2.1, 10.0), ("bin", shapes[3], 0.5, -0.35, 2.0, 0.0),
               ("bench", shapes[4], 0.9, -0.2, 3.4, 15.0)][: cfg["instances"]]
    scene = synthetic.make_scene(width=640, height=480, objects=objects, noise_std=0.005, seed=seed)
    problems = []
    for k, (label, mask) in enumerate(zip(scene.labels, scene.masks)):
        target = build_target(scene.depth, scene.camera, mask, label, max_points=cfg["points"],
                              max_pixels=cfg["points"], seed=seed)
        proposals = [scene.meshes[k]] + [s() for j, s in enumerate(shapes) if j != k][: cfg["proposals"] - 1]
        problems.append(LayoutProblem(label, target, proposals))
    return scene, problems


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _accuracy(scene, problems, results, instances) -> dict:
    from dpa_ros.core.scene import Scene, SceneObject
    from dpa_ros.geometry.metrics import scene_metrics

    errors, objects = [], []
    for k, (prob, res) in zip(instances, zip(problems, results)):
        c = scene.meshes[k].bounds.mean(0)
        T, G = res.T_camera_object, scene.poses[k]
        chosen = prob.proposals[res.proposal_index]
        c_pred = T[:3, :3] @ chosen.bounds.mean(0) + T[:3, 3]
        errors.append(float(np.linalg.norm(c_pred - (G[:3, :3] @ c + G[:3, 3]))))
        objects.append(SceneObject(id=k, label=prob.name, score=1.0, mesh=chosen, T_camera_object=T, scale=res.scale))
    gt = scene.ground_truth_scene()
    gt.objects = [gt.objects[k] for k in instances]
    f = scene_metrics(Scene(camera=scene.camera, objects=objects), gt, count=20000)["fscore@0.05"]
    return {"centre_errors_m": errors, "worst_centre_error_m": max(errors), "fscore@0.05": f,
            "true_shape_rate": float(np.mean([r.proposal_index == 0 for r in results])),
            "chosen": [r.proposal_index for r in results], "fit_errors": [r.fit_error for r in results]}


def _run(variant: str, cfg: dict, device: str, seed: int, threads: int, part: dict, queue) -> None:
    """Child process: build the problems, run one variant on its part of the work, report."""
    import torch
    if threads:
        torch.set_num_threads(threads)
    threads = torch.get_num_threads()

    from dpa_ros.geometry.layout import LayoutConfig, solve_layout
    from dpa_ros.geometry.layout_legacy import solve_layout_legacy

    scene, problems = _scene_and_problems(cfg, seed)
    instances = part.get("instances") or list(range(len(problems)))
    iterations = part.get("iterations") or cfg["iterations"]
    config = LayoutConfig(restarts=cfg["restarts"], iterations=iterations, points=cfg["points"], seed=seed,
                          device=device, threads=threads)
    if variant == "v2" and cfg["points"] >= 5000:
        config = LayoutConfig.paper(seed=seed, device=device, threads=threads)
    solve = solve_layout if variant == "v2" else solve_layout_legacy
    subset = [problems[k] for k in instances]
    rss_before = _peak_rss_mb()
    if config.torch_device().type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    t0, c0 = time.perf_counter(), time.process_time()
    results = solve(subset, scene.camera, scene.depth, scene.gravity, config)
    if config.torch_device().type == "cuda":
        torch.cuda.synchronize()
    seconds, cpu_seconds = time.perf_counter() - t0, time.process_time() - c0
    out = {"variant": variant, "seconds": seconds, "cpu_seconds": cpu_seconds, "instances_run": instances,
           "iterations_run": iterations,
           "device": str(config.torch_device()), "threads": threads, "rss_before_mb": rss_before,
           "peak_rss_mb": _peak_rss_mb(), "schedule": config.schedule() if variant == "v2" else None,
           "cuda_peak_mb": torch.cuda.max_memory_allocated() / 2**20 if config.torch_device().type == "cuda" else None}
    if iterations == cfg["iterations"]:
        out.update(_accuracy(scene, subset, results, instances))
    queue.put(out)


def _spawn(variant, cfg, device, seed, threads, part):
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    p = ctx.Process(target=_run, args=(variant, cfg, device, seed, threads, part, q))
    p.start()
    out = q.get()
    p.join()
    return out


def _load() -> str:
    path = Path("/proc/loadavg")
    return " ".join(path.read_text().split()[:3]) if path.exists() else "n/a"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--configs", default="cpu,paper", help="comma-separated: cpu, paper")
    ap.add_argument("--device", default="cpu", help="cpu, cuda or auto (default cpu)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=0,
                    help="torch CPU threads for every run (default 0: torch's default, one per physical core, "
                         "as the solver's default config uses)")
    ap.add_argument("--legacy-paper-iterations", type=int, default=2,
                    help="iterations the legacy solver runs at the paper sizes (time scaled to all)")
    ap.add_argument("--skip-legacy", action="store_true", help="only v2")
    args = ap.parse_args(argv)
    report = {"host": platform.node(), "python": sys.version.split()[0], "device": args.device,
              "threads": args.threads, "runs": {}, "timestamp": datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")}
    for name in args.configs.split(","):
        cfg = CONFIGS[name]
        runs = {"load_before": _load(), "v2": _spawn("v2", cfg, args.device, args.seed, args.threads, {})}
        if not args.skip_legacy:
            part = {"instances": [0]} if name == "cpu" else {"iterations": args.legacy_paper_iterations}
            legacy = _spawn("legacy", cfg, args.device, args.seed, args.threads, part)
            scale = (cfg["instances"] / len(legacy["instances_run"])) * (cfg["iterations"] / legacy["iterations_run"])
            legacy["seconds_scaled"] = legacy["seconds"] * scale
            legacy["cpu_seconds_scaled"] = legacy["cpu_seconds"] * scale
            runs["legacy"] = legacy
        runs["load_after"] = _load()
        report["runs"][name] = {"settings": cfg, **runs}

    report["threads"] = sorted({r["v2"]["threads"] for r in report["runs"].values()})
    print(f"layout benchmark: the legacy solver vs v2, device {args.device}, "
          f"{'/'.join(map(str, report['threads']))} torch thread(s)")
    for name, r in report["runs"].items():
        cfg, v2 = r["settings"], r["v2"]
        print(f"\nconfig {name}: {cfg['instances']} instances × {cfg['proposals']} proposals × {cfg['restarts']} "
              f"restarts × {cfg['iterations']} iterations × {cfg['points']} points; load {r['load_before']} → "
              f"{r['load_after']}")
        print("  v2 schedule (restarts per proposal, iterations, points): " +
              ", ".join(f"({k}, {t}, {n})" for k, t, n in v2["schedule"]))
        rows = [("", "the legacy solver", "v2")]
        lg = r.get("legacy")

        def acc(run, key, fmt):
            return fmt(run[key]) if run is not None and key in run else "n/a"
        if lg is not None:
            how = (f"{lg['seconds_scaled']:.0f} (scaled from {lg['seconds']:.1f} s on instance 0)" if name == "cpu"
                   else f"{lg['seconds_scaled']:.0f} (scaled from {lg['seconds']:.1f} s for "
                        f"{lg['iterations_run']} iterations)")
        rows += [("wall time [s]", how if lg else "not run", f"{v2['seconds']:.1f}"),
                 ("CPU time [s] (scaled like the wall time)", acc(lg, "cpu_seconds_scaled", lambda v: f"{v:.0f}"),
                  f"{v2['cpu_seconds']:.1f}"),
                 ("peak RSS [MB]", acc(lg, "peak_rss_mb", lambda v: f"{v:.0f}"), f"{v2['peak_rss_mb']:.0f}"),
                 ("worst centre error [cm]", acc(lg, "worst_centre_error_m", lambda v: f"{100 * v:.1f} (instance 0)"),
                  f"{100 * v2['worst_centre_error_m']:.1f}"),
                 ("mean centre error [cm]", acc(lg, "centre_errors_m", lambda v: f"{100 * np.mean(v):.1f}"),
                  f"{100 * np.mean(v2['centre_errors_m']):.1f}"),
                 ("F-score@5cm [%]", acc(lg, "fscore@0.05", lambda v: f"{v:.1f}"), f"{v2['fscore@0.05']:.1f}"),
                 ("true shape chosen", acc(lg, "true_shape_rate", lambda v: f"{100 * v:.0f} %"),
                  f"{100 * v2['true_shape_rate']:.0f} %")]
        if v2.get("cuda_peak_mb") is not None:
            rows.insert(3, ("CUDA peak [MB]", acc(lg, "cuda_peak_mb", lambda v: f"{v:.0f}"),
                            f"{v2['cuda_peak_mb']:.0f}"))
        w = max(len(x[0]) for x in rows)
        for a, b, c in rows:
            print(f"  {a:<{w}}  {b:<48}  {c}")
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"layout_{args.device}_{report['timestamp']}.json"
    out.write_text(json.dumps(report, indent=2, default=float))
    print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
