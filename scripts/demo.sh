#!/usr/bin/env bash
# `make demo`: reconstruct the shipped sample frame (samples/room), offline, two ways, and say what
# was produced. Run inside `. ./activate.sh` (make does this).
#   1. dpa-reconstruct --instances: the layout solver fits the sample's mesh proposals to its depth
#      and masks (no learned model); dpa-eval scores the result against the sample's ground truth.
#   2. The ROS node (smoke profile: tiny random models, real code paths) gets the sample as live
#      topics from its rosbag; a client asks ~/snapshot and prints what the node published.
# Everything started here is stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
SAMPLE=samples/room
OUT=${DEMO_OUT:-out/demo}
rm -rf "$OUT" && mkdir -p "$OUT" && OUT=$(realpath "$OUT")
# Keep the demo's DDS traffic on this machine.
export ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST ROS_DOMAIN_ID=${ROS_DOMAIN_ID:-42} HF_HUB_OFFLINE=1

echo "== 1/2  dpa-reconstruct --instances on $SAMPLE (layout fit of known shapes, no learned model)"
dpa-reconstruct --image "$SAMPLE/rgb.png" --depth "$SAMPLE/depth.png" --camera-info "$SAMPLE/camera_info.yaml" \
  --instances "$SAMPLE/instances.json" --config "$SAMPLE/demo_config.yaml" --out "$OUT/instances" --no-progress
echo "-- accuracy against the sample's ground truth (dpa-eval):"
dpa-eval "$OUT/instances" "$SAMPLE/ground_truth"
echo "-- files: $(cd "$OUT/instances" && find . -maxdepth 2 -type f | sort | head -20 | tr '\n' ' ')"
echo "-- picture of the fit (input image + each object's silhouette and label): $OUT/instances/preview.png"

echo
echo "== 2/2  ROS 2 node dpa_reconstructor (profile smoke) fed by $SAMPLE/rosbag"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT
reconstruct_node --ros-args --params-file config/reconstruct.yaml -p profile:=smoke -p use_depth:=true \
  -p export_dir:="$OUT/ros" \
  -r image:=/camera/color/image_raw -r camera_info:=/camera/color/camera_info \
  -r depth:=/camera/aligned_depth_to_color/image_raw > "$OUT/node.log" 2>&1 &
pids+=($!)
python -m dpa_ros.ros.bag_player "$SAMPLE/rosbag" --rate 2 > "$OUT/player.log" 2>&1 &
pids+=($!)
# Let discovery settle and the first frames arrive before asking for a snapshot.
for _ in $(seq 50); do grep -q "playing" "$OUT/player.log" 2>/dev/null && break; sleep 0.2; done
sleep 2
if ! python -m dpa_ros.ros.demo_client --wait-node 180 --save-overlay "$OUT/ros_overlay.png"; then
  echo "-- the node's log:"; tail -30 "$OUT/node.log"; exit 1
fi
echo "-- node log (stages): "; grep -E "loaded|stage|objects" "$OUT/node.log" | sed 's/^/   /' | tail -15
echo
echo "Demo outputs are in $OUT/ (instances/ and ros/)."
echo "Pictures: $OUT/instances/preview.png (dpa-reconstruct), $OUT/ros_overlay.png (the node's ~/overlay topic,"
echo "          /dpa_reconstructor/overlay; also preview.png in each export folder under $OUT/ros/)."
