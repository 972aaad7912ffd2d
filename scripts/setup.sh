#!/usr/bin/env bash
# One-command environment for dpa_ros on Debian 12 with Python 3.11:
#   Debian packages -> .venv from requirements/lock.txt -> editable dpa_ros -> colcon build of the
#   package's messages (and stand-ins for tf2_msgs, vision_msgs, moveit_msgs where no real one exists)
#   into install/.
# Idempotent: each step is skipped when the inputs it depends on are unchanged (stamps in
# .setup-stamps/), so a second run finishes in seconds.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
VENV=$ROOT/.venv
STAMPS=$ROOT/.setup-stamps
PYTHON=${PYTHON:-python3.11}
mkdir -p "$STAMPS"

log() { printf '[setup %s] %s\n' "$(date +%H:%M:%S)" "$*"; }
hash_of() { cat "$@" 2>/dev/null | sha256sum | cut -c1-16; }
stamp_ok() { [ -f "$STAMPS/$1" ] && [ "$(cat "$STAMPS/$1")" = "$2" ]; }

# 1. Debian packages: a compiler and CMake for the message build, libusb/libGL/libgomp for open3d,
#    libsdformat (the parser `gz sim` uses) so the tests load the exported Gazebo world with it.
APT_PACKAGES=(cmake g++ make git pkg-config libusb-1.0-0 libgl1 libgomp1 libsdformat-dev)
missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  log "installing Debian packages: ${missing[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# 2. The virtual environment, from the lock file.
req_hash=$(hash_of requirements/lock.txt)
if [ ! -x "$VENV/bin/python" ]; then
  log "creating $VENV with $($PYTHON --version)"
  "$PYTHON" -m venv "$VENV"
fi
if ! stamp_ok venv "$req_hash"; then
  log "installing requirements/lock.txt into .venv (first time: about 3 minutes, ~7.5 GB)"
  t0=$SECONDS
  "$VENV/bin/python" -m pip install -qq --upgrade pip
  # -qq: errors only (this machine's pip configuration warns once per package about local indexes)
  "$VENV/bin/python" -m pip install -qq --no-input -r requirements/lock.txt
  # The ROS wheels were built in a manylinux container: their exported CMake files name its
  # Python and numpy include directories. Point them at this venv's.
  py_inc=$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')
  np_inc=$("$VENV/bin/python" -c 'import numpy; print(numpy.get_include())')
  { grep -rl '/opt/python/cp311-cp311' "$VENV/share" --include='*.cmake' 2>/dev/null || true; } | while read -r f; do
    sed -i -e "s#/opt/python/cp311-cp311/lib/python3.11/site-packages/numpy/_core/include#$np_inc#g" \
           -e "s#/opt/python/cp311-cp311/include/python3.11#$py_inc#g" "$f"
  done
  echo "$req_hash" > "$STAMPS/venv"
  rm -f "$STAMPS/build"
  log "venv ready in $((SECONDS - t0)) s"
fi

# 3. dpa_ros itself, editable (library + dpa-* commands), in 'compat' mode: a plain path entry
#    that pkgutil.extend_path can see, so dpa_ros.msg from install/ joins the source package.
if ! stamp_ok editable "$(hash_of setup.py)"; then
  log "installing dpa_ros (editable)"
  "$VENV/bin/python" -m pip install -qq --no-deps --no-build-isolation -e . --config-settings editable_mode=compat
  hash_of setup.py > "$STAMPS/editable"
fi

# 4. Messages: colcon build of this package (and the ros_shims/ stand-ins that are missing) into install/.
build_inputs=$(find msg srv action ros_shims CMakeLists.txt package.xml scripts launch config -type f 2>/dev/null | sort || true)
build_hash=$(hash_of $build_inputs requirements/lock.txt)
if ! stamp_ok build "$build_hash" || [ ! -f install/setup.bash ]; then
  # colcon builds the package through a symlink (build/.pkgsrc/dpa_ros -> the repo): CMake refuses
  # to export include directories that lie inside the source directory, and the venv's numpy
  # headers (which rosidl's Python typesupport exports) do when the source directory is the repo.
  mkdir -p build/.pkgsrc log
  ln -sfn "$ROOT" build/.pkgsrc/dpa_ros
  paths=("$ROOT/build/.pkgsrc/dpa_ros")
  # A stand-in (ros_shims/<pkg>: the real package's .msg files, unchanged) only where no real <pkg>
  # is importable; one built before (install/<pkg>) is rebuilt.
  for shim in tf2_msgs vision_msgs object_recognition_msgs moveit_msgs; do
    if ! "$VENV/bin/python" -c "import $shim.msg" 2>/dev/null || [ -d "install/$shim" ]; then
      paths+=("$ROOT/ros_shims/$shim")
    fi
  done
  log "building messages with colcon: ${paths[*]##*/}"
  t0=$SECONDS
  (
    export AMENT_PREFIX_PATH=$VENV CMAKE_PREFIX_PATH=$VENV PATH=$VENV/bin:$PATH
    unset COLCON_PREFIX_PATH
    "$VENV/bin/colcon" --log-base log build --paths "${paths[@]}" --build-base build --install-base install \
      --symlink-install --event-handlers console_direct- status- \
      --cmake-args -DPython3_EXECUTABLE="$VENV/bin/python" -DBUILD_TESTING=OFF -Wno-dev >log/colcon-build.txt 2>&1 \
      || { tail -40 log/colcon-build.txt; echo "colcon build failed: see log/colcon-build.txt" >&2; exit 1; }
  )
  echo "$build_hash" > "$STAMPS/build"
  log "messages built in $((SECONDS - t0)) s"
fi

# 5. Smoke check of the whole environment.
# shellcheck source=/dev/null
. "$ROOT/activate.sh"
python - <<'PY'
import rclpy, dpa_ros, torch
from dpa_ros.msg import Scene
from dpa_ros.action import Reconstruct
from tf2_msgs.msg import TFMessage
from vision_msgs.msg import Detection3DArray
from moveit_msgs.msg import CollisionObject
print(f"[setup] ok: dpa_ros {dpa_ros.__version__}, rclpy, torch {torch.__version__}, messages built")
PY
