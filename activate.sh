# Source me: `. ./activate.sh` gives a shell with the venv, ROS 2 (pip) and dpa_ros's messages.
_dpa_root=$(cd "$(dirname "${BASH_SOURCE[0]:-$0}")" && pwd)
. "$_dpa_root/.venv/bin/activate"
if [ -f "$_dpa_root/install/setup.bash" ]; then
  # colcon's setup scripts reference unset variables; don't let `set -u` callers trip on them.
  case $- in *u*) _dpa_u=1; set +u;; *) _dpa_u=;; esac
  . "$_dpa_root/install/setup.bash"
  [ -n "$_dpa_u" ] && set -u
fi
# The source tree first: its dpa_ros package is extended (pkgutil.extend_path) by the generated
# dpa_ros.msg / dpa_ros.action in install/.
export PYTHONPATH="$_dpa_root${PYTHONPATH:+:$PYTHONPATH}"
unset _dpa_root _dpa_u
