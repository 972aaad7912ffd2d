#!/usr/bin/env bash
# `make demo`: reconstruct the shipped sample frame (samples/room), offline, two ways, and say what
# was produced. Run inside `. ./activate.sh` (make does this).
#   1. dpa-reconstruct --instances: the layout solver fits the sample's mesh proposals to its depth
#      and masks (no learned model); dpa-eval scores the result against the sample's ground truth.
#   2. The ROS node gets the sample as live topics from its rosbag and a Reconstruct goal carrying
#      the sample's instances (masks + mesh proposals, read under mesh_roots): the same fit from the
#      node, scored against the ground truth by dpa-eval on the node's export.
#   3. The node's full pipeline (smoke profile: tiny random models, real code paths, meaningless
#      objects) on the same stream: a client asks ~/snapshot and prints what the node published.
# Everything started here is stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
SAMPLE=samples/room
OUT=${DEMO_OUT:-out/demo}
rm -rf "$OUT" && mkdir -p "$OUT" && OUT=$(realpath "$OUT")
# Keep the demo's DDS traffic on this machine.
export ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST ROS_DOMAIN_ID=${ROS_DOMAIN_ID:-42} HF_HUB_OFFLINE=1

echo "== 1/3  dpa-reconstruct --instances on $SAMPLE (layout fit of known shapes, no learned model)"
dpa-reconstruct --image "$SAMPLE/rgb.png" --depth "$SAMPLE/depth.png" --camera-info "$SAMPLE/camera_info.yaml" \
  --instances "$SAMPLE/instances.json" --config "$SAMPLE/demo_config.yaml" --out "$OUT/instances" --no-progress
echo "-- accuracy against the sample's ground truth (dpa-eval):"
dpa-eval "$OUT/instances" "$SAMPLE/ground_truth"
echo "-- files: $(cd "$OUT/instances" && find . -maxdepth 2 -type f | sort | head -20 | tr '\n' ' ')"
echo "-- picture of the fit (input image + each object's silhouette and label): $OUT/instances/preview.png"

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; pids=(); }
trap cleanup EXIT
TOPICS=(-r image:=/camera/color/image_raw -r camera_info:=/camera/color/camera_info
        -r depth:=/camera/aligned_depth_to_color/image_raw)
play_bag() {
  python -m dpa_ros.ros.bag_player "$SAMPLE/rosbag" --rate 2 > "$1" 2>&1 &
  pids+=($!)
  # Let discovery settle and the first frames arrive before asking.
  for _ in $(seq 50); do grep -q "playing" "$1" 2>/dev/null && break; sleep 0.2; done
  sleep 2
}

echo
echo "== 2/3  ROS 2 node dpa_reconstructor fed by $SAMPLE/rosbag, a Reconstruct goal with the sample's instances"
# no model is loaded (load_on_start false: goal instances need none); the layout settings of step 1
reconstruct_node --ros-args --params-file config/reconstruct.yaml -p profile:=smoke -p use_depth:=true \
  -p load_on_start:=false -p config_path:="$(realpath "$SAMPLE/demo_config.yaml")" \
  -p mesh_roots:="['$(realpath "$SAMPLE/meshes")']" -p export_dir:="$OUT/ros_instances" "${TOPICS[@]}" \
  > "$OUT/node_instances.log" 2>&1 &
pids+=($!)
play_bag "$OUT/player_instances.log"
if ! python -m dpa_ros.ros.demo_client --wait-node 180 --instances "$SAMPLE/instances.json" \
    --save-overlay "$OUT/ros_instances_overlay.png"; then
  echo "-- the node's log:"; tail -30 "$OUT/node_instances.log"; exit 1
fi
echo "-- accuracy of the node's fit against the sample's ground truth (dpa-eval on its export):"
dpa-eval "$(find "$OUT/ros_instances" -mindepth 1 -maxdepth 1 -type d | sort | tail -1)" "$SAMPLE/ground_truth"
cleanup

echo
echo "== 3/3  ROS 2 node dpa_reconstructor (profile smoke, full pipeline) fed by $SAMPLE/rosbag"
reconstruct_node --ros-args --params-file config/reconstruct.yaml -p profile:=smoke -p use_depth:=true \
  -p export_dir:="$OUT/ros" "${TOPICS[@]}" > "$OUT/node.log" 2>&1 &
pids+=($!)
play_bag "$OUT/player.log"
if ! python -m dpa_ros.ros.demo_client --wait-node 180 --save-overlay "$OUT/ros_overlay.png"; then
  echo "-- the node's log:"; tail -30 "$OUT/node.log"; exit 1
fi
echo "-- node log (stages): "; grep -E "loaded|stage|objects" "$OUT/node.log" | sed 's/^/   /' | tail -15
echo
echo "Demo outputs are in $OUT/ (instances/, ros_instances/ and ros/)."
echo "Pictures: $OUT/instances/preview.png (dpa-reconstruct), $OUT/ros_instances_overlay.png (the node's fit of"
echo "          the goal's instances), $OUT/ros_overlay.png (the node's ~/overlay topic, /dpa_reconstructor/overlay,"
echo "          smoke models; also preview.png in each export folder under $OUT/ros*/)."
