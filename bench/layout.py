"""Layout solver benchmark: (a) the batched solver vs (b) the reference per-problem Python loop.

    .venv/bin/python bench/layout.py [--config cpu|paper] [--device cpu|cuda|auto]

Configurations (DESIGN.md §2 step 6, issue 3):
  cpu   — 5 instances × 6 proposals × 10 restarts, 300 iterations, 1000 points per side
  paper — 5 instances × 6 proposals × 10 restarts, 1000 iterations, 5000 points per side (a GPU job)

The scene is synthetic (dpa_ros.geometry.synthetic): five objects on a floor, rendered at 640×480
so every mask has ≥ 1000 pixels; each instance gets six proposals (the true shape among five
others). (a) is :func:`solve_layout`; (b) is :func:`solve_layout_loop` — same objective, same
initialisation, same Adam steps, one (instance, proposal, restart) at a time with a dense
distance matrix under autograd. (b) is slow, so by default it runs on an evenly spaced subset of
the problems and its time is scaled to all of them (``--reference-problems 0`` runs them all);
the subset's final objectives are compared problem by problem with (a)'s. Each variant runs in
its own process so its peak memory (max RSS, and CUDA peak allocation on a GPU) is its own.
Prints a table and writes JSON to bench/results/.
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
    from dpa_ros.geometry import synthetic
    from dpa_ros.geometry.layout import LayoutProblem
    from dpa_ros.geometry.targets import build_target

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


def _run(variant: str, cfg: dict, device: str, seed: int, subset: list[int] | None, threads: int | None,
         queue) -> None:
    """Child process: build the problems, run one variant, report time, memory and objectives."""
    import torch
    if threads:
        torch.set_num_threads(threads)

    from dpa_ros.geometry import layout as L

    scene, problems = _scene_and_problems(cfg, seed)
    config = L.LayoutConfig(restarts=cfg["restarts"], iterations=cfg["iterations"], points=cfg["points"],
                            seed=seed, device=device)
    lcfg, dof, dev, block, lscene, items = L._setup(problems, scene.camera, scene.depth, scene.gravity, config)
    rss_before = _peak_rss_mb()
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    if variant == "batched":
        batch = L._collate(items, dev)
        params, losses = L._optimise(batch, lscene, lcfg, dof, L._directed_blocked, block)
        results = L._results(problems, items, params, losses, batch, dof)
        per_problem = losses.cpu().double().numpy()
        instance_errors = [r.fit_error for r in results]
        chosen = [r.proposal_index for r in results]
    else:
        per_problem = np.full(len(items), np.nan)
        for b in subset:
            one = L._collate([items[b]], dev)
            _, loss = L._optimise(one, lscene, lcfg, dof, L._directed_dense, block)
            per_problem[b] = float(loss[0])
        instance_errors, chosen = None, None
    if dev.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - t0
    queue.put({
        "variant": variant, "seconds": seconds, "problems_run": len(items) if subset is None else len(subset),
        "problems_total": len(items), "dof": dof, "device": str(dev), "threads": torch.get_num_threads(),
        "rss_before_mb": rss_before, "peak_rss_mb": _peak_rss_mb(),
        "cuda_peak_mb": torch.cuda.max_memory_allocated() / 2**20 if dev.type == "cuda" else None,
        "per_problem": per_problem.tolist(), "instance_errors": instance_errors, "chosen_proposals": chosen,
    })


def _spawn(variant, cfg, device, seed, subset, threads):
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    p = ctx.Process(target=_run, args=(variant, cfg, device, seed, subset, threads, q))
    p.start()
    out = q.get()
    p.join()
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", choices=sorted(CONFIGS), default="cpu")
    ap.add_argument("--device", default="auto", help="cpu, cuda or auto (default)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--iterations", type=int, help="override the configuration's iteration count")
    ap.add_argument("--reference-problems", type=int, default=30,
                    help="problems the reference loop runs (evenly spaced; its time is scaled to all); 0 = all")
    ap.add_argument("--threads", type=int, help="torch CPU threads for both variants (default: torch's choice)")
    args = ap.parse_args(argv)
    cfg = dict(CONFIGS[args.config])
    if args.iterations:
        cfg["iterations"] = args.iterations
    total = cfg["instances"] * cfg["proposals"] * cfg["restarts"]
    k = total if args.reference_problems in (0, None) or args.reference_problems >= total else args.reference_problems
    subset = sorted({int(round(x)) for x in np.linspace(0, total - 1, k)})

    a = _spawn("batched", cfg, args.device, args.seed, None, args.threads)
    b = _spawn("loop", cfg, args.device, args.seed, subset, args.threads)
    b_total = b["seconds"] * total / len(subset)
    pa = np.asarray(a["per_problem"])[subset]
    pb = np.asarray(b["per_problem"])[subset]
    report = {
        "config": args.config, "settings": cfg, "problems": total, "device": a["device"], "dof": a["dof"],
        "host": platform.node(), "python": sys.version.split()[0], "cpu_threads": a["threads"],
        "time_a_s": a["seconds"], "time_b_s": b_total, "time_b_measured_s": b["seconds"],
        "b_problems_measured": len(subset), "b_over_a": b_total / a["seconds"],
        "peak_rss_a_mb": a["peak_rss_mb"], "peak_rss_b_mb": b["peak_rss_mb"],
        "rss_before_a_mb": a["rss_before_mb"], "rss_before_b_mb": b["rss_before_mb"],
        "cuda_peak_a_mb": a["cuda_peak_mb"], "cuda_peak_b_mb": b["cuda_peak_mb"],
        "final_error_a_mean": float(pa.mean()), "final_error_b_mean": float(pb.mean()),
        "final_error_max_abs_diff": float(np.abs(pa - pb).max()),
        "problems_a_better": int((pa < pb - 1e-4).sum()), "problems_b_better": int((pb < pa - 1e-4).sum()),
        "final_errors_a": pa.tolist(), "final_errors_b": pb.tolist(),
        "a_instance_errors": a["instance_errors"], "a_chosen_proposals": a["chosen_proposals"],
        "timestamp": datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ"),
    }
    rows = [("", "(a) batched", "(b) loop, dense"),
            ("time [s]", f"{report['time_a_s']:.1f}",
             f"{b_total:.1f}" + ("" if len(subset) == total else f" (scaled from {b['seconds']:.1f} s on {len(subset)}/{total})")),
            ("b / a", f"{report['b_over_a']:.2f}x", ""),
            ("peak RSS [MB]", f"{a['peak_rss_mb']:.0f} (before solve {a['rss_before_mb']:.0f})",
             f"{b['peak_rss_mb']:.0f} (before solve {b['rss_before_mb']:.0f})"),
            ("final error, mean over compared problems", f"{report['final_error_a_mean']:.5f}",
             f"{report['final_error_b_mean']:.5f}"),
            ("problems fitting better by > 1e-4", f"{report['problems_a_better']}", f"{report['problems_b_better']}")]
    if a["cuda_peak_mb"] is not None:
        rows.insert(4, ("CUDA peak [MB]", f"{a['cuda_peak_mb']:.0f}", f"{b['cuda_peak_mb']:.0f}"))
    print(f"layout benchmark, config {args.config}: {cfg}, {total} problems, device {a['device']}, "
          f"{a['threads']} threads, {a['dof']} DoF")
    w = max(len(r[0]) for r in rows)
    for r in rows:
        print(f"{r[0]:<{w}}  {r[1]:<34}  {r[2]}")
    print(f"best per instance (a): errors {[round(e, 5) for e in a['instance_errors']]}, "
          f"proposals {a['chosen_proposals']} (the true shape is proposal 0)")
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"layout_{args.config}_{a['device'].split(':')[0]}_{report['timestamp']}.json"
    out.write_text(json.dumps(report, indent=2))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
