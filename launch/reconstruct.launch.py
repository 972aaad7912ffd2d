"""Start the dpa_reconstructor node with its YAML, next to a camera driver.

    ros2 launch dpa_ros reconstruct.launch.py profile:=fast \
        image_topic:=/camera/color/image_raw camera_info_topic:=/camera/color/camera_info \
        depth_topic:=/camera/aligned_depth_to_color/image_raw use_depth:=true

Arguments: profile, namespace, config (parameter YAML; default: the installed
config/reconstruct.yaml), image_topic (``<image_topic>/compressed`` feeds ``image/compressed``),
camera_info_topic, depth_topic, use_depth. ``profile`` and ``use_depth`` override the YAML's values.
Everything else is in the YAML; this file only declares the node.
"""
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue
from launch_ros.substitutions import FindPackageShare

ARGUMENTS = (
    ("profile", "paper", "Model profile: paper, fast or smoke (overrides the YAML)"),
    ("namespace", "", "Namespace of the node and its relative topics"),
    ("config", PathJoinSubstitution([FindPackageShare("dpa_ros"), "config", "reconstruct.yaml"]),
     "Parameter YAML of dpa_reconstructor"),
    ("image_topic", "image", "Colour image topic (sensor_msgs/Image); <image_topic>/compressed for CompressedImage"),
    ("camera_info_topic", "camera_info", "CameraInfo topic of the colour image"),
    ("depth_topic", "depth", "Depth image aligned to the colour image (32FC1 m or 16UC1 mm)"),
    ("use_depth", "false", "Subscribe to depth_topic (overrides the YAML)"),
)


def generate_launch_description() -> LaunchDescription:
    args = [DeclareLaunchArgument(name, default_value=default, description=doc) for name, default, doc in ARGUMENTS]
    image_topic = LaunchConfiguration("image_topic")
    node = Node(
        package="dpa_ros",
        executable="reconstruct_node",
        name="dpa_reconstructor",
        namespace=LaunchConfiguration("namespace"),
        output="screen",
        emulate_tty=True,
        parameters=[
            LaunchConfiguration("config"),
            {
                "profile": ParameterValue(LaunchConfiguration("profile"), value_type=str),
                "use_depth": ParameterValue(LaunchConfiguration("use_depth"), value_type=bool),
            },
        ],
        remappings=[
            ("image", image_topic),
            ("image/compressed", [image_topic, "/compressed"]),
            ("camera_info", LaunchConfiguration("camera_info_topic")),
            ("depth", LaunchConfiguration("depth_topic")),
        ],
    )
    return LaunchDescription(args + [node])
