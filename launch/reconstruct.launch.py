"""Start the dpa_reconstructor node with its YAML, next to a camera driver (and RViz with rviz:=true).

    ros2 launch dpa_ros reconstruct.launch.py profile:=fast use_depth:=true \
        image_topic:=/camera/camera/color/image_rect_raw \
        camera_info_topic:=/camera/camera/color/camera_info \
        depth_topic:=/camera/camera/aligned_depth_to_color/image_raw rviz:=true

Arguments: profile, use_depth, namespace, config (parameter YAML; default: the installed
config/reconstruct.yaml), image_topic (``<image_topic>/compressed`` feeds ``image/compressed``),
camera_info_topic, depth_topic, rviz (also start rviz2 with the installed rviz/dpa.rviz).
``profile`` and ``use_depth`` default to "" = take the YAML's value: only a value given on the
command line overrides the YAML. Everything else is in the YAML; this file only declares the nodes.
"""
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare

#: Launch arguments whose "" default defers to the YAML's value of the parameter of the same name.
YAML_OVERRIDES = ("profile", "use_depth")

ARGUMENTS = (
    ("profile", "", "Model profile: paper, fast or smoke ('' = the YAML's profile)"),
    ("use_depth", "", "Subscribe to depth_topic: true or false ('' = the YAML's use_depth)"),
    ("namespace", "", "Namespace of the node and its relative topics"),
    ("config", PathJoinSubstitution([FindPackageShare("dpa_ros"), "config", "reconstruct.yaml"]),
     "Parameter YAML of dpa_reconstructor"),
    ("image_topic", "image", "Colour image topic (sensor_msgs/Image, rectified: image_rect*); "
     "<image_topic>/compressed for CompressedImage"),
    ("camera_info_topic", "camera_info", "CameraInfo topic of the colour image"),
    ("depth_topic", "depth", "Depth image aligned to the colour image (32FC1 m or 16UC1 mm)"),
    ("rviz", "false", "Also start rviz2 with the package's rviz/dpa.rviz"),
)


def _overrides(context) -> dict:
    """The YAML_OVERRIDES given on the command line (non-empty), typed like the parameters."""
    out = {}
    for name in YAML_OVERRIDES:
        value = LaunchConfiguration(name).perform(context).strip()
        if not value:
            continue
        if name == "use_depth":
            if value.lower() not in ("true", "false"):
                raise ValueError(f"use_depth:={value}: expected true, false or '' (the YAML's value)")
            out[name] = value.lower() == "true"
        else:
            out[name] = value
    return out


def _nodes(context) -> list:
    image_topic = LaunchConfiguration("image_topic").perform(context)
    overrides = _overrides(context)
    parameters = [LaunchConfiguration("config").perform(context)] + ([overrides] if overrides else [])
    nodes = [Node(
        package="dpa_ros",
        executable="reconstruct_node",
        name="dpa_reconstructor",
        namespace=LaunchConfiguration("namespace").perform(context),
        output="screen",
        emulate_tty=True,
        parameters=parameters,
        remappings=[
            ("image", image_topic),
            ("image/compressed", image_topic + "/compressed"),
            ("camera_info", LaunchConfiguration("camera_info_topic").perform(context)),
            ("depth", LaunchConfiguration("depth_topic").perform(context)),
        ],
    )]
    if LaunchConfiguration("rviz").perform(context).strip().lower() == "true":
        rviz_config = PathJoinSubstitution([FindPackageShare("dpa_ros"), "rviz", "dpa.rviz"]).perform(context)
        nodes.append(Node(package="rviz2", executable="rviz2", name="rviz2", output="screen",
                          arguments=["-d", rviz_config]))
    return nodes


def generate_launch_description() -> LaunchDescription:
    args = [DeclareLaunchArgument(name, default_value=default, description=doc) for name, default, doc in ARGUMENTS]
    return LaunchDescription(args + [OpaqueFunction(function=_nodes)])
