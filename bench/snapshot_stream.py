"""Snapshot latency and intake rate under a 1920x1440 RGB-D stream at 10.5 Hz (issue 25).

    python bench/snapshot_stream.py [--calls 6] [--history 10] [--out bench/results/snapshot_stream.json]

For each node setting (compute_process, torch_threads, max_image_size) it starts the node (smoke
profile, reliable inputs, no overlay, no export) and test/camera_streamer.py in another process,
makes one warm-up ``~/snapshot`` call (the streamer publishes reliable, with ``--history`` as
its publisher history depth), then ``--calls`` calls back to back. Per call: success, sensor
depth used, the latency (s, wall clock around the service call) and the node's reported intake rate
(images stored per second while the pipeline ran) against the streamer's publish rate over the whole
run, and against its rate while that call ran (from its per-image publish times).
The settings run one after the other in one invocation, so their ratios compare like with like.
Prints a table and writes the rows as JSON.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import rclpy
from std_srvs.srv import Trigger

ROOT = Path(__file__).resolve().parents[1]
SETTINGS = [{"compute_process": False, "torch_threads": 1, "max_image_size": 960},
            {"compute_process": True, "torch_threads": 1, "max_image_size": 960},
            {"compute_process": True, "torch_threads": 0, "max_image_size": 0}]


def run_setting(index: int, setting: dict, calls: int, history: int, tmp: Path) -> dict:
    ns = f"/dpa_bench_stream_{index}"
    log = open(tmp / f"node{ns.replace('/', '_')}.log", "w")
    cmd = [sys.executable, str(ROOT / "scripts" / "reconstruct_node"), "--ros-args", "--params-file",
           str(ROOT / "config" / "reconstruct.yaml"), "-r", f"__ns:={ns}", "-p", "profile:=smoke",
           "-p", "use_depth:=true", "-p", "input_reliability:=reliable", "-p", "publish_overlay:=false",
           "-p", "cloud_max_points:=20000"]
    cmd += [x for k, v in setting.items() for x in ("-p", f"{k}:={str(v).lower()}")]
    node = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT,
                            env=dict(os.environ, PYTHONUNBUFFERED="1", HF_HUB_OFFLINE="1"))
    streamer = None
    client_node = rclpy.create_node("dpa_bench_snapshot_client")
    try:
        client = client_node.create_client(Trigger, f"{ns}/dpa_reconstructor/snapshot")
        if not client.wait_for_service(timeout_sec=120.0):
            raise RuntimeError(f"no snapshot service in {ns}")
        stats_path = tmp / f"streamer{ns.replace('/', '_')}.json"
        streamer = subprocess.Popen([sys.executable, str(ROOT / "test" / "camera_streamer.py"), ns, str(stats_path),
                                     "--rate", "10.5", "--history", str(history)],
                                    stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT)
        assert streamer.stdout.readline().strip() == "READY"

        def call():
            t0 = time.monotonic()
            future = client.call_async(Trigger.Request())
            rclpy.spin_until_future_complete(client_node, future, timeout_sec=300.0)
            return future.result(), t0, time.monotonic()

        warm, _, _ = call()  # warm-up (model loading); again while the stream's first messages are on their way
        deadline = time.monotonic() + 60.0
        while not (warm and warm.success and " with sensor depth" in warm.message) and time.monotonic() < deadline:
            time.sleep(0.5)
            warm, _, _ = call()
        rows = []
        for _ in range(calls):
            res, t0, t1 = call()
            m = re.search(r"intake ([0-9.]+) images/s", res.message if res else "")
            depth = bool(res and " with sensor depth" in res.message)
            rows.append({"success": bool(res and res.success), "depth": depth, "t0": t0, "t1": t1,
                         "latency_s": t1 - t0, "intake_hz": float(m.group(1)) if m else None,
                         "message": res.message if res else "no reply"})
    finally:
        if streamer is not None:
            streamer.stdin.close()
            streamer.wait(timeout=60)
        node.terminate()
        node.wait(timeout=30)
        client_node.destroy_node()
    stats = json.loads(stats_path.read_text())
    sent = stats["publish_monotonic"]
    for row in rows:  # the streamer's own rate while this call ran (it slows too when the cores are short)
        row["published_hz"] = sum(row["t0"] <= t <= row["t1"] for t in sent) / row["latency_s"]
    return {**setting, "published_hz": stats["rate_hz"], "calls": rows}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--calls", type=int, default=6)
    ap.add_argument("--history", type=int, default=10,
                    help="the streamer's publisher history depth (10: rclcpp's and image_transport's default)")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "snapshot_stream.json")
    args = ap.parse_args()
    rclpy.init()
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for index, setting in enumerate(SETTINGS):
            row = run_setting(index, setting, args.calls, args.history, Path(tmp))
            results.append({**row, "streamer_history": args.history})
    rclpy.shutdown()
    print(f"{'compute_process':>15} {'torch_threads':>13} {'max_image_size':>14} {'ok+depth':>8} "
          f"{'latency s (mean/max)':>21} {'intake Hz (min/mean)':>21} {'published Hz':>12} "
          f"{'intake/published min':>20} {'/ same window min':>16}")
    for r in results:
        calls = r["calls"]
        good = sum(c["success"] and c["depth"] for c in calls)
        lat = [c["latency_s"] for c in calls]
        hz = [c["intake_hz"] for c in calls if c["intake_hz"] is not None] or [float("nan")]
        window = [c["intake_hz"] / c["published_hz"] for c in calls
                  if c["intake_hz"] is not None and c["published_hz"] > 0] or [float("nan")]
        print(f"{str(r['compute_process']):>15} {r['torch_threads']:>13} {r['max_image_size']:>14} "
              f"{f'{good}/{len(calls)}':>8} {f'{sum(lat) / len(lat):.2f} / {max(lat):.2f}':>21} "
              f"{f'{min(hz):.1f} / {sum(hz) / len(hz):.1f}':>21} {r['published_hz']:>12.1f} "
              f"{min(hz) / r['published_hz']:>20.2f} {min(window):>16.2f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
