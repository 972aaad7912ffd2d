"""The ROS user's path (issue 23): the launch file as `ros2 launch` evaluates it, a namespaced node
that still reaches move_group on /collision_object, and threshold parameters that defer to the
profile. Real node processes over DDS (test_ros_node's helpers); the launch file is evaluated
against test/launch_standin.py because `launch` is not installable in the pip environment.
"""
from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

rclpy = pytest.importorskip("rclpy", reason="rclpy missing: run under `. ./activate.sh` after `make setup`")
pytestmark = pytest.mark.ros

import launch_standin  # noqa: E402
from moveit_msgs.msg import CollisionObject  # noqa: E402
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy  # noqa: E402
from sensor_msgs.msg import CameraInfo, Image  # noqa: E402
from test_ros_node import (  # noqa: E402
    CONFIG,
    LAUNCH,
    ROOT,
    Client,
    NodeProcess,
    good_frame,
    next_stamp,
    start_node,
    stop_node,
    wait_until,
)

from dpa_ros.ros import conversions as conv  # noqa: E402

SHARE = {"dpa_ros": ROOT, "rviz2": ROOT}  # the source tree has the installed share/dpa_ros layout
LAUNCHED_NS = "/dpa_test_launch"


def _my_yaml(tmp: Path, **values) -> Path:
    """config/reconstruct.yaml with ``values`` changed: what a user passes as config:=my.yaml."""
    data = yaml.safe_load(CONFIG.read_text())
    data["/**/dpa_reconstructor"]["ros__parameters"].update(values)
    path = tmp / "my.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


RVIZ = ROOT / "rviz" / "dpa.rviz"


def _rviz_displays(node) -> list[dict]:
    if isinstance(node, dict):
        found = [node] if "Class" in node and "Topic" in node else []
        return found + [d for v in node.values() for d in _rviz_displays(v)]
    if isinstance(node, list):
        return [d for v in node for d in _rviz_displays(v)]
    return []


def _rviz_topics() -> set[str]:
    return {d["Topic"]["Value"] for d in _rviz_displays(yaml.safe_load(RVIZ.read_text()))}


def test_rviz_config_is_yaml_with_latched_subscriptions_and_a_fixed_frame():
    config = yaml.safe_load(RVIZ.read_text())
    manager = config["Visualization Manager"]
    assert manager["Global Options"]["Fixed Frame"]
    displays = _rviz_displays(config)
    assert {d["Class"] for d in displays} == {"rviz_default_plugins/MarkerArray", "rviz_default_plugins/PointCloud2",
                                              "rviz_default_plugins/Image"}
    assert "rviz_default_plugins/TF" in {d["Class"] for d in manager["Displays"]}
    for d in displays:  # the node's outputs are reliable + transient local: RViz must ask for the same
        assert d["Topic"]["Durability Policy"] == "Transient Local" and d["Topic"]["Reliability Policy"] == "Reliable"
    assert _rviz_topics() == {"/dpa_reconstructor/markers", "/dpa_reconstructor/scene_cloud",
                              "/dpa_reconstructor/overlay"}


def _launch(**arguments) -> list[dict]:
    module = launch_standin.load_launch_file(LAUNCH)
    return launch_standin.evaluate(module, arguments, SHARE)[1]


def test_launch_file_is_parsed_without_launch_and_declares_rviz():
    module = launch_standin.load_launch_file(LAUNCH)
    declared, nodes = launch_standin.evaluate(module, {}, SHARE)
    assert list(declared) == ["profile", "use_depth", "namespace", "config", "image_topic", "camera_info_topic",
                              "depth_topic", "rviz"]
    assert declared["profile"].default_value == "" and declared["use_depth"].default_value == ""
    (node,) = nodes  # rviz off by default
    assert node["parameters"] == [str(ROOT / "config" / "reconstruct.yaml")]  # the installed YAML alone
    (_, rviz) = launch_standin.evaluate(module, {"rviz": "true"}, SHARE)[1]
    assert (rviz["package"], rviz["executable"]) == ("rviz2", "rviz2")
    assert rviz["arguments"] == ["-d", str(ROOT / "rviz" / "dpa.rviz")] and (ROOT / "rviz" / "dpa.rviz").is_file()


def test_launch_arguments_given_on_the_command_line_override_the_yaml(tmp_path):
    my = _my_yaml(tmp_path, profile="smoke")
    (node,) = _launch(config=str(my), profile="fast", use_depth="true")
    assert node["parameters"] == [str(my), {"profile": "fast", "use_depth": True}]
    with pytest.raises(ValueError, match="use_depth:=maybe"):
        _launch(use_depth="maybe")


def test_launched_with_config_the_yamls_values_hold_and_collision_objects_reach_slash_collision_object(tmp_path):
    """config:=my.yaml (profile smoke, use_depth true) with namespace:=/dpa_test_launch and no
    other argument: the node runs what the YAML says, and its CollisionObjects go to the absolute
    /collision_object that move_group listens on, not /dpa_test_launch/collision_object."""
    my = _my_yaml(tmp_path, profile="smoke", use_depth=True, export_dir="")
    (node,) = _launch(config=str(my), namespace=LAUNCHED_NS, image_topic="camera/color/image_rect_raw",
                      camera_info_topic="camera/color/camera_info",
                      depth_topic="camera/aligned_depth_to_color/image_raw")
    assert node["parameters"] == [str(my)]  # nothing from the launch file overrides the YAML
    cmd = [sys.executable, str(ROOT / "scripts" / "reconstruct_node")] + launch_standin.ros_args(node)
    log_path = tmp_path / "node.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT,
                                env=dict(os.environ, PYTHONUNBUFFERED="1",
                                         RCUTILS_LOGGING_BUFFERED_STREAM="1", RCUTILS_COLORIZED_OUTPUT="0"))
    handle = NodeProcess(proc, log_path, tmp_path / "export")
    c = Client(LAUNCHED_NS)
    # the Client's inputs are <ns>/image ...: point them at the remapped topics
    c.pubs = {"image": c.node.create_publisher(Image, f"{LAUNCHED_NS}/camera/color/image_rect_raw", 5),
              "info": c.node.create_publisher(CameraInfo, f"{LAUNCHED_NS}/camera/color/camera_info", 5),
              "depth": c.node.create_publisher(Image, f"{LAUNCHED_NS}/camera/aligned_depth_to_color/image_raw", 5)}
    received: list = []
    qos = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)
    c.node.create_subscription(CollisionObject, "/collision_object", received.append, qos)
    try:
        ready = handle.wait_for_log(r"ready: profile '(\w+)', inputs (\S+)", 90.0)
        assert ready, handle.log()[-3000:]
        assert ready.group(1) == "smoke"  # the YAML's profile, not the launch file's
        assert f"{LAUNCHED_NS}/camera/aligned_depth_to_color/image_raw" in handle.log()  # the YAML's use_depth
        assert "publishes /collision_object" in handle.log()
        assert c.wait_ready(90.0), handle.log()[-3000:]
        stamp = next_stamp()
        c.publish(good_frame(stamp))
        res = c.snapshot()
        assert res.success, res.message
        assert "with sensor depth" in res.message
        scene = c.latest("scene", stamp)
        assert scene is not None and scene.objects
        assert wait_until(lambda: len([m for m in received if conv.stamp_to_ns(m.header.stamp) == stamp])
                          >= len(scene.objects), 10.0)
        ids = [m.id for m in received if conv.stamp_to_ns(m.header.stamp) == stamp and m.operation == m.ADD]
        assert ids == [f"dpa_object_{o.id}" for o in scene.objects]
        names = dict(c.node.get_topic_names_and_types())
        assert f"{LAUNCHED_NS}/collision_object" not in names

        # rviz/dpa.rviz (namespaced as its header says) names only topics this node publishes
        published = {name for name in names if any(
            (i.node_name, i.node_namespace) == ("dpa_reconstructor", LAUNCHED_NS)
            for i in c.node.get_publishers_info_by_topic(name))}
        rviz_topics = _rviz_topics()
        assert rviz_topics and {LAUNCHED_NS + t for t in rviz_topics} <= published, (rviz_topics, published)
    finally:
        c.close()
        stop_node(handle)


PICKY_PROFILE = """base: smoke
name: picky
segmenter: {keep_threshold: 1.0}
"""


def test_threshold_parameters_defer_to_the_profile_until_set(tmp_path):
    """A profile keeping only sigma > 1 (no detection can pass): with the node's default
    score_threshold (-1) the profile's value holds and nothing is detected; set to 0 at run time,
    objects are found; set back to -1, the profile's value holds again."""
    (tmp_path / "picky.yaml").write_text(PICKY_PROFILE)
    ns = "/dpa_test_thresholds"
    handle = start_node(tmp_path, ns, f"config_path:={tmp_path}", profile="picky", export=False)
    c = Client(ns)
    try:
        assert c.wait_ready(90.0), handle.log()[-3000:]

        def snapshot():
            c.publish(good_frame(next_stamp()))
            return c.snapshot()
        res = snapshot()
        assert not res.success and "no objects detected" in res.message, res.message
        assert all(r.successful for r in c.set_params(score_threshold=0.0))
        res = snapshot()
        assert res.success, res.message
        assert all(r.successful for r in c.set_params(score_threshold=-1.0))
        res = snapshot()
        assert not res.success and "no objects detected" in res.message, res.message
    finally:
        c.close()
        stop_node(handle)


# ------------------------------------------------------------------------- README quick start
def _quickstart_commands() -> list[list[str]]:
    text = (ROOT / "README.md").read_text()
    block = text.split("<!-- quickstart -->", 1)[1].split("<!-- /quickstart -->", 1)[0]
    code = block.split("```bash", 1)[1].split("```", 1)[0].replace("\\\n", " ")
    return [shlex.split(line, comments=True) for line in code.splitlines() if line.strip()]


def test_readme_quick_start_commands_are_the_launch_files_and_the_nodes():
    """Every quick-start line is a launch the launch file accepts (arguments it declares), the
    node's service or action by its real name and type, or the weights command; nothing else."""
    from std_srvs.srv import Trigger

    from dpa_ros.action import Reconstruct
    from dpa_ros.priors.profiles import load_profile
    from dpa_ros.ros.reconstruct_node import NODE_NAME

    commands = _quickstart_commands()
    assert 0 < len(commands) <= 10
    kinds = []
    for cmd in commands:
        if cmd[:3] == ["ros2", "launch", "realsense2_camera"]:
            assert "align_depth.enable:=true" in cmd  # the camera half: realsense-ros's own launch file
            kinds.append("camera")
        elif cmd[:4] == ["ros2", "launch", "dpa_ros", LAUNCH.name]:
            arguments = dict(a.split(":=", 1) for a in cmd[4:])
            (node, *others) = _launch(**arguments)  # raises for an argument the file does not declare
            remaps = dict(node["remappings"])
            assert remaps["image"] == arguments["image_topic"] and remaps["depth"] == arguments["depth_topic"]
            assert remaps["image"].startswith("/camera/camera/color/")  # realsense-ros 4.x names
            assert node["parameters"][1] == {"profile": arguments["profile"], "use_depth": True}
            assert [o["executable"] for o in others] == (["rviz2"] if arguments.get("rviz") == "true" else [])
            kinds.append("launch")
        elif cmd[:3] == ["ros2", "service", "call"]:
            assert cmd[3:] == [f"/{NODE_NAME}/snapshot", "std_srvs/srv/Trigger"]
            assert Trigger.__module__.startswith("std_srvs")
            kinds.append("service")
        elif cmd[:3] == ["ros2", "action", "send_goal"]:
            assert cmd[3] == "--feedback" and cmd[4:6] == [f"/{NODE_NAME}/reconstruct", "dpa_ros/action/Reconstruct"]
            goal = yaml.safe_load(cmd[6])
            assert set(goal) <= set(Reconstruct.Goal.get_fields_and_field_types())
            kinds.append("action")
        elif cmd[:2] == ["dpa-weights", "download"]:
            assert cmd[2] == "--profile" and load_profile(cmd[3]).name == cmd[3]
            kinds.append("weights")
        else:
            pytest.fail(f"README quick start runs something no test or launch file declares: {' '.join(cmd)}")
    assert sorted(kinds) == sorted(["camera", "weights", "launch", "service", "action"])
