"""Per-stage run time of the image → scene pipeline, side by side with the paper's RTX 3090 figures.

    python bench/pipeline.py
        the ``smoke`` profile on the CPU, on the shipped photo (test/assets/coffee.png)
    python bench/pipeline.py --profile paper --random-weights --device cuda
        the ``paper`` (or ``fast``) architectures at their real sizes with random weights (speed does not
        depend on weight values), a 640×480 image, 5 instances
    python bench/pipeline.py --profile paper --random-weights --device cpu --only depth
        one stage alone on synthetic instances (for a quick check of the random-weight models on a CPU)

Each run prints a table (seconds per stage, the paper's seconds, and the lazy model-load seconds) and
writes it as JSON to ``bench/results/pipeline_<profile>_<device>_<UTC time>.json``. The pipeline is run
``--repeat`` times with the models resident; the table shows the last (warm) run, the JSON every run.
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch
import trimesh
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from dpa_ros.assemble import Instance, assemble_scene  # noqa: E402
from dpa_ros.core.camera import CameraModel  # noqa: E402
from dpa_ros.pipeline import STAGES, Pipeline  # noqa: E402
from dpa_ros.priors.crops import white_canvas_crop  # noqa: E402
from dpa_ros.priors.profiles import load_profile  # noqa: E402

#: The paper's run time on an RTX 3090 in seconds (docs/method.md, "Paper figures to compare with").
#: Its "layout" (97.2 s) covers our layout, background and assemble stages; the paper reports no
#: separate background/assemble time.
PAPER_RTX3090_S = {"segment": 0.93, "enhance": 33.6, "score": 0.05, "generate": 39.2, "depth": 0.21,
                   "layout": 97.2, "background": None, "assemble": None, "total": 171.2}
MODEL_STAGES = ("segment", "enhance", "score", "generate", "depth")
DEFAULT_IMAGE = REPO / "test" / "assets" / "coffee.png"


def random_overrides(profile: str, instances: int) -> dict:
    """Profile overrides: every model ``source: random``; detections forced to the top ``instances`` boxes."""
    return {"segmenter": {"detector": {"source": "random"}, "sam": {"source": "random"}, "box_threshold": 0.0,
                          "text_threshold": 0.0, "keep_threshold": 0.0, "max_instances": instances,
                          "min_mask_pixels": 1},
            "enhancer": {"source": "random"}, "scorer": {"source": "random"}, "generator": {"source": "random"},
            "depth": {"source": "random",
                      **({"metric_model": {"source": "random"}} if load_profile(profile).depth.metric_model else {})}}


def load_image(path: Path, size: tuple[int, int] | None) -> np.ndarray:
    img = Image.open(path).convert("RGB")
    if size is not None:
        img = img.resize(size, Image.BICUBIC)
    return np.asarray(img)


def synthetic_masks(height: int, width: int, n: int) -> list[np.ndarray]:
    """``n`` elliptical instance masks spread over the image (for --only)."""
    v, u = np.mgrid[0:height, 0:width]
    masks = []
    for i in range(n):
        cu, cv = width * (i + 0.5) / n, height * (0.45 + 0.1 * (i % 2))
        masks.append(((u - cu) / (0.4 * width / n)) ** 2 + ((v - cv) / (0.25 * height)) ** 2 <= 1.0)
    return masks


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def run_full(pipe: Pipeline, image: np.ndarray, camera: CameraModel, repeat: int) -> dict:
    """Load every model (timed), then ``repeat`` full runs; per-stage seconds of each."""
    load = pipe.load()
    runs = []
    for _ in range(repeat):
        sync(pipe.device)
        t0 = time.perf_counter()
        scene = pipe.run(image, camera)
        sync(pipe.device)
        stages = {s: scene.timings_s[s] for s in STAGES}
        stages["total"] = time.perf_counter() - t0
        runs.append({"stages": stages, "objects": len(scene.objects)})
    return {"load_s": load, "runs": runs}


def run_only(pipe: Pipeline, stage: str, image: np.ndarray, camera: CameraModel, n: int, repeat: int) -> dict:
    """One stage alone, on ``n`` synthetic instances: load seconds and the seconds of each run."""
    h, w = image.shape[:2]
    masks = synthetic_masks(h, w, n)
    e = pipe.profile.enhancer
    canvases = [white_canvas_crop(image, m, e.canvas_size, e.fill) for m in masks]
    k = pipe.profile.scorer.top_k
    model = {"segment": pipe.segmenter, "enhance": pipe.enhancer, "score": pipe.scorer, "generate": pipe.generator,
             "depth": pipe.depth_model}.get(stage)
    load = {stage: model.load()} if model is not None else {}
    meshes = [[trimesh.creation.icosphere(subdivisions=3) for _ in range(k * 2)] for _ in masks]
    depth = np.full((h, w), 2.0)

    def once():
        if stage == "segment":
            return pipe.segmenter.segment(image, pipe.profile.prompt)
        if stage == "enhance":
            return pipe.enhancer.enhance(canvases, ["chair"] * n, seed=0)
        if stage == "score":
            m = e.candidates
            return pipe.scorer.select(canvases, np.stack([np.stack([c] * m) for c in canvases]))
        if stage == "generate":
            return pipe.generator.generate([[c] * k for c in canvases], seed=0)
        if stage == "depth":
            return pipe.depth_model.predict(image)
        instances = [Instance("chair", 0.9, m, ms) for m, ms in zip(masks, meshes)]
        return assemble_scene(image, depth, camera, instances, config=pipe.layout_config)

    runs = []
    for _ in range(repeat):
        sync(pipe.device)
        t0 = time.perf_counter()
        once()
        sync(pipe.device)
        runs.append({"stages": {stage: time.perf_counter() - t0}})
    return {"load_s": load, "runs": runs}


def table(result: dict, title: str) -> str:
    last = result["runs"][-1]["stages"]
    rows = [f"{title}", f"{'stage':<12}{'this run (s)':>14}{'paper RTX 3090 (s)':>20}{'model load (s)':>16}"]
    for stage in (*STAGES, "total"):
        if stage not in last:
            continue
        paper = PAPER_RTX3090_S.get(stage)
        load = result["load_s"].get(stage)
        rows.append(f"{stage:<12}{last[stage]:>14.3f}{'' if paper is None else f'{paper:.2f}':>20}"
                    f"{'' if load is None else f'{load:.2f}':>16}")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default="smoke", help="smoke (default), fast or paper")
    ap.add_argument("--random-weights", action="store_true",
                    help="build the profile's architectures at real size with random weights (no weights needed)")
    ap.add_argument("--device", default=None, help="cpu, cuda (default: the profile's)")
    ap.add_argument("--image", type=Path, default=DEFAULT_IMAGE, help="input photo")
    ap.add_argument("--size", default=None, help="resize the image to WxH (default 640x480 with --random-weights)")
    ap.add_argument("--instances", type=int, default=5, help="instances with --random-weights or --only (default 5)")
    ap.add_argument("--only", choices=(*MODEL_STAGES, "layout"), help="time one stage alone on synthetic instances")
    ap.add_argument("--repeat", type=int, default=2, help="runs with resident models (default 2; the last is shown)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results", help="directory for the JSON")
    args = ap.parse_args(argv)

    size = args.size or ("640x480" if args.random_weights else None)
    wh = tuple(int(x) for x in size.lower().split("x")) if size else None
    image = load_image(args.image, wh)
    camera = CameraModel.from_fov(image.shape[1], image.shape[0], 60.0)
    overrides = random_overrides(args.profile, args.instances) if args.random_weights else None
    pipe = Pipeline.from_profile(args.profile, overrides=overrides, device=args.device, seed=args.seed)
    if args.only:
        result = run_only(pipe, args.only, image, camera, args.instances, args.repeat)
    else:
        result = run_full(pipe, image, camera, args.repeat)

    if pipe.device.type == "cuda":
        device_name = torch.cuda.get_device_name(pipe.device)
    else:
        device_name = platform.processor() or "cpu"
    title = (f"dpa_ros pipeline, profile {args.profile}{' (random weights)' if args.random_weights else ''}, "
             f"{pipe.device} ({device_name}), image {image.shape[1]}x{image.shape[0]}"
             + (f", objects placed {result['runs'][-1]['objects']}" if "objects" in result["runs"][-1] else ""))
    print(table(result, title))
    record = {"profile": args.profile, "random_weights": args.random_weights, "device": str(pipe.device),
              "device_name": device_name, "torch": torch.__version__, "threads": torch.get_num_threads(),
              "image_size": [image.shape[1], image.shape[0]], "instances_requested": args.instances,
              "only": args.only, "paper_rtx3090_s": PAPER_RTX3090_S,
              "utc": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"), **result}
    args.out.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    path = args.out / f"pipeline_{args.profile}{'_random' if args.random_weights else ''}" \
                      f"{'_' + args.only if args.only else ''}_{pipe.device.type}_{stamp}.json"
    path.write_text(json.dumps(record, indent=2))
    print(f"written {path.relative_to(REPO) if path.is_relative_to(REPO) else path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
