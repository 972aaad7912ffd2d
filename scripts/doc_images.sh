#!/usr/bin/env bash
# Regenerate docs/images/ from a real run: the node (profile smoke) fed by the shipped sample's
# rosbag, triggered by demo_client; the overlay is the node's ~/overlay, the TF tree is drawn from
# the frames it published on /tf_static.   Use: . ./activate.sh && bash scripts/doc_images.sh
set -euo pipefail
OUT=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT
reconstruct_node --ros-args --params-file config/reconstruct.yaml -p profile:=smoke -p use_depth:=true \
  -r image:=/camera/color/image_raw -r camera_info:=/camera/color/camera_info \
  -r depth:=/camera/aligned_depth_to_color/image_raw > "$OUT/node.log" 2>&1 &
pids+=($!)
python -m dpa_ros.ros.bag_player samples/room/rosbag --rate 2 > "$OUT/player.log" 2>&1 &
pids+=($!)
sleep 3
python -m dpa_ros.ros.demo_client --wait-node 180 --json --save-overlay docs/images/overlay_sample.png > "$OUT/run.json"
python scripts/draw_tf_tree.py "$OUT/run.json" docs/images/tf_tree.png
