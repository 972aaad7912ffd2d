"""Print exact pins of the distributions pip installed in this interpreter's environment.

Unlike `pip freeze`, it skips the egg-info records that the ROS wheels embed for their Python
packages (action_msgs, rclpy, ...): those are not installable distributions on their own.
Usage: python scripts/freeze_lock.py > requirements/lock.txt
"""
from importlib.metadata import distributions

SKIP = {"pip", "wheel", "dpa-ros", "dpa_ros"}
pins = set()
for dist in distributions():
    if (dist.read_text("INSTALLER") or "").strip() != "pip":
        continue
    name = dist.metadata["Name"]
    if name.lower() in SKIP or dist.read_text("direct_url.json"):
        continue
    pins.add(f"{name}=={dist.version}")
print("# Exact pins of everything in the venv, resolved from requirements/ros.in + ml.in by 'make lock'")
print("# (python 3.11, x86_64, Debian 12). 'make setup' installs this file.")
print("\n".join(sorted(pins, key=str.lower)))
