"""The ``dpa_reconstructor`` node's parameters: one table (:data:`PARAMETERS`) of names, defaults,
descriptions and constraints. It is the one place the node's defaults live; ``config/reconstruct.yaml``
lists the same values (a test checks it) and docs/interfaces.md explains them.

ROS-free: :meth:`ParamSpec.descriptor` imports ``rcl_interfaces`` only when called, so the table and
:func:`check_parameter` can be used (and tested) without rclpy.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Callable

from dpa_ros.export import FORMATS as EXPORT_FORMATS
from dpa_ros.geometry.gravity import GravityError, check_gravity
from dpa_ros.ros.scheduler import BUSY_POLICIES

MAX_QUEUE_LIMIT = 8


@dataclass(frozen=True)
class ParamSpec:
    """One declared parameter: default (its type is the parameter's type), description, constraints.

    ``choices``: the allowed string values; ``range``: inclusive (low, high) for numbers;
    ``read_only``: fixed for the node's life (changing it would mean reloading models or subscriptions).
    """

    name: str
    default: Any
    description: str
    read_only: bool = False
    choices: tuple[str, ...] = ()
    range: tuple[float, float] | None = None
    item_type: type = float  # the element type of an array parameter whose default is []

    def descriptor(self):
        """The ``rcl_interfaces/ParameterDescriptor`` the node declares this parameter with."""
        from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor, ParameterType

        d = ParameterDescriptor(name=self.name, description=self.description, read_only=self.read_only)
        d.type = _parameter_type(self.default, ParameterType, self.item_type)
        if self.choices:
            d.additional_constraints = "one of: " + ", ".join(self.choices)
        if self.range is not None and not isinstance(self.default, bool):
            lo, hi = self.range
            if isinstance(self.default, int):
                d.integer_range = [IntegerRange(from_value=int(lo), to_value=int(hi), step=0)]
            else:
                d.floating_point_range = [FloatingPointRange(from_value=float(lo), to_value=float(hi), step=0.0)]
        return d


def _parameter_type(value: Any, types, item_type: type = float) -> int:
    if isinstance(value, bool):
        return types.PARAMETER_BOOL
    if isinstance(value, int):
        return types.PARAMETER_INTEGER
    if isinstance(value, float):
        return types.PARAMETER_DOUBLE
    if isinstance(value, str):
        return types.PARAMETER_STRING
    if isinstance(value, (list, tuple)) and not value:
        return types.PARAMETER_STRING_ARRAY if item_type is str else types.PARAMETER_DOUBLE_ARRAY
    if isinstance(value, (list, tuple)) and all(isinstance(v, float) for v in value):
        return types.PARAMETER_DOUBLE_ARRAY
    if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        return types.PARAMETER_STRING_ARRAY
    raise TypeError(f"no ROS parameter type for {value!r}")


#: Every node parameter, in declaration order (config/reconstruct.yaml and docs/interfaces.md list the same).
PARAMETERS: tuple[ParamSpec, ...] = (
    # models (fixed for the node's life: changing them means reloading every model)
    ParamSpec("profile", "paper", "Model profile: paper, fast, smoke, or a name under config_path", read_only=True),
    ParamSpec("config_path", "", "Profile YAML file or directory of NAME.yaml ('' = the package's config/profiles)",
              read_only=True),
    ParamSpec("weights_dir", "", "Local model weights directory ('' = $DPA_WEIGHTS_DIR or the Hugging Face cache)",
              read_only=True),
    ParamSpec("device", "", "Torch device: cpu, cuda, cuda:1 ... ('' = the profile's choice)", read_only=True),
    ParamSpec("seed", -1, "Random seed of the generative stages (-1 = the profile's seed)", read_only=True,
              range=(-1, 2**31 - 1)),
    ParamSpec("load_on_start", True, "Load the models when the node starts (false: on the first request)",
              read_only=True),
    ParamSpec("load_wait_s", 120.0, "A request that comes while the models load at start waits up to this for "
              "the load, then takes the newest frame (s; longer: refused with the reason)", range=(0.0, 3600.0)),
    ParamSpec("box_threshold", -1.0, "Grounding DINO box threshold (applied from the next request on; "
              "negative = the profile's segmenter.box_threshold)", range=(-1.0, 1.0)),
    ParamSpec("text_threshold", -1.0, "Grounding DINO text threshold (applied from the next request on; "
              "negative = the profile's segmenter.text_threshold)", range=(-1.0, 1.0)),
    ParamSpec("score_threshold", -1.0, "Keep instances with detector confidence above this (sigma; applied "
              "from the next request on; negative = the profile's segmenter.keep_threshold)", range=(-1.0, 1.0)),
    ParamSpec("prompt", "", "Detection prompt of categories, 'chair. table.' ('' = the profile's prompt)"),
    # inputs
    ParamSpec("image_transport", "raw", "Colour input: raw (image), compressed (image/compressed) or both",
              read_only=True, choices=("raw", "compressed", "both")),
    ParamSpec("use_depth", False, "Subscribe to the aligned depth image (32FC1 m or 16UC1 mm); a complete frame "
              "then includes depth", read_only=True),
    ParamSpec("require_depth", False, "With use_depth: fail a request when no image has a matching depth, instead "
              "of reconstructing without depth after frame_wait_s"),
    ParamSpec("input_reliability", "best_effort", "QoS reliability of the input subscriptions "
              "(best_effort = sensor-data QoS, also receives from reliable publishers)", read_only=True,
              choices=("best_effort", "reliable")),
    ParamSpec("input_depth", 5, "QoS history depth of the input subscriptions; images and depths keep 3x as "
              "many for stamp matching, camera_info 10x", read_only=True, range=(1, 100)),
    ParamSpec("sync_tolerance_s", 0.02, "Largest stamp difference between an image and its camera_info and depth (s)",
              range=(0.0, 10.0)),
    ParamSpec("frame_wait_s", 0.5, "Longest wait of a request for the camera_info and depth of the newest image (s)",
              range=(0.0, 10.0)),
    ParamSpec("max_frame_age_s", 2.0, "Refuse a frame whose image stamp is older than this against the node's "
              "clock (s; 0 = any age)", range=(0.0, 1e6)),
    ParamSpec("intrinsics", "auto", "Camera matrix: k (raw image), p (rectified image: left 3x3 of P), "
              "auto (P when the distortion is all zero, else K)", choices=("auto", "k", "p")),
    ParamSpec("distortion", "rectify", "A camera_info with lens distortion (unless intrinsics is p): rectify "
              "(remap image and depth to P with OpenCV), refuse (fail the request with the reason) or ignore "
              "(use K as if pinhole)", choices=("rectify", "refuse", "ignore")),
    # triggering
    ParamSpec("mode", "on_demand", "on_demand: reconstruct on ~/reconstruct or ~/snapshot; continuous: "
              "also reconstruct the newest frame whenever idle", choices=("on_demand", "continuous")),
    ParamSpec("max_rate_hz", 0.2, "Continuous mode: most reconstructions started per second",
              range=(0.001, 30.0)),
    ParamSpec("busy_policy", "reject", "While a reconstruction runs: reject new requests, or queue them",
              choices=BUSY_POLICIES),
    ParamSpec("max_queue", 2, "busy_policy queue: most requests waiting behind the running one",
              range=(1, MAX_QUEUE_LIMIT)),
    # outputs
    ParamSpec("frame_prefix", "dpa_", "Object TF frames are <frame_prefix>object_<id>"),
    ParamSpec("export_dir", "", "Export every scene to <export_dir>/<sec>_<nanosec>/ ('' = no export)"),
    ParamSpec("export_formats", list(EXPORT_FORMATS),
              "Formats written besides scene.json (dpa_ros.export): " + ", ".join(EXPORT_FORMATS)),
    ParamSpec("marker_mesh", "triangle_list", "Mesh markers: triangle_list (inline, coloured) or "
              "mesh_resource (file:// URI of the exported mesh; needs export_dir)",
              choices=("triangle_list", "mesh_resource")),
    ParamSpec("marker_alpha", 1.0, "Opacity of the mesh markers", range=(0.0, 1.0)),
    ParamSpec("label_height_m", 0.08, "Height of the text label markers (m)", range=(0.001, 10.0)),
    ParamSpec("cloud_max_points", 0, "Most points in ~/scene_cloud, evenly subsampled (0 = all)",
              range=(0, 100_000_000)),
    ParamSpec("publish_detections", True, "Publish each scene as vision_msgs/Detection3DArray on detections_topic",
              read_only=True),
    ParamSpec("detections_topic", "~/detections", "Topic of the Detection3DArray (reliable, transient-local)",
              read_only=True),
    ParamSpec("publish_collision_objects", True, "Publish one moveit_msgs/CollisionObject per object on "
              "collision_object_topic (ADD; REMOVE for the previous scene's objects)", read_only=True),
    ParamSpec("collision_object_topic", "/collision_object", "Topic of the CollisionObjects (absolute: "
              "move_group listens on /collision_object whatever this node's namespace)", read_only=True),
    # gravity (precedence: gravity > gravity_frame > use_imu; none set: the fitted floor)
    ParamSpec("gravity", [], "Fixed gravity: unit vector pointing down in the camera optical frame, [x, y, z] "
              "([] = unset); wins over gravity_frame and use_imu"),
    ParamSpec("gravity_frame", "", "Frame whose -z is down (REP 105, e.g. base_link): gravity is the rotation "
              "camera frame <- gravity_frame at the image stamp, through TF ('' = unset)"),
    ParamSpec("use_imu", False, "Gravity from the imu topic (sensor_msgs/Imu): averaged linear_acceleration, "
              "rotated into the camera frame through TF; used when gravity and gravity_frame are unset",
              read_only=True),
    ParamSpec("imu_window_s", 0.5, "IMU: average the samples stamped from this long before the image to half "
              "as long after it (s)", range=(0.001, 10.0)),
    ParamSpec("imu_max_silence_s", 0.5, "IMU: wait up to this long for the samples after the image stamp, and "
              "refuse when no sample is within this of it (s)",
              range=(0.001, 60.0)),
    ParamSpec("imu_max_error_m_s2", 0.5, "IMU: refuse as accelerating when |mean| differs from 9.80665 m/s^2, or "
              "the samples scatter (RMS) about their mean, by more than this (m/s^2)", range=(0.01, 10.0)),
    ParamSpec("tf_tolerance_s", 0.1, "TF: use a transform's nearest sample when the image stamp is at most this "
              "outside its samples; farther is refused as stale (s)", range=(0.0, 10.0)),
    ParamSpec("tf_wait_s", 0.5, "TF: wait up to this long for the transforms at the image stamp to arrive "
              "(they are often delivered after the image) before refusing (s)", range=(0.0, 10.0)),
    ParamSpec("tf_history_s", 10.0, "TF: seconds of /tf history kept per transform", read_only=True,
              range=(0.1, 600.0)),
    ParamSpec("gravity_floor_warn_deg", 10.0, "Warn when the given gravity and the fitted floor's normal differ "
              "by more than this (degrees)", range=(0.0, 180.0)),
    ParamSpec("publish_overlay", True, "Publish ~/overlay (sensor_msgs/Image rgb8): the input image with each "
              "object's silhouette, outline and label; also written as preview.png with export_dir",
              read_only=True),
    # --- intake under load (issue 25) ---
    ParamSpec("max_image_size", 0, "Processing resolution: a chosen frame whose long side exceeds this is "
              "downscaled to it (px; image area-averaged, depth nearest-neighbour, camera_info K scaled with "
              "them; 0 = as received)", range=(0, 16384)),
    ParamSpec("torch_threads", 0, "torch intra-op threads for the pipeline (torch.set_num_threads; 0 = torch's "
              "default, every core): fewer leaves a core for intake", read_only=True, range=(0, 256)),
    ParamSpec("compute_process", True, "Run the pipeline in a child process, so its Python never holds the "
              "node's interpreter lock while frames arrive (false: in the node's process, e.g. under a debugger)",
              read_only=True),
    # --- scene memory and known objects (issue 25) ---
    ParamSpec("fixed_frame", "", "Scene memory: frame the objects are remembered in (odom, map); every "
              "reconstruction is placed there through TF at the image stamp, and ~/scene carries the memory "
              "with stable ids ('' = memory off)", read_only=True),
    ParamSpec("forget_after", 3, "Scene memory: a remembered object that should be visible but is not found in "
              "this many consecutive reconstructions is forgotten (snapshots)", range=(1, 1000)),
    ParamSpec("mesh_roots", [], "Directories (absolute) under which Reconstruct goal instances' file:// meshes "
              "are read ([] = goals with instances are refused)", item_type=str),
)
PARAMETER_INDEX = {p.name: p for p in PARAMETERS}


def parameter_defaults() -> dict[str, Any]:
    """{name: default} of every declared parameter (config/reconstruct.yaml holds the same values)."""
    return {p.name: p.default for p in PARAMETERS}


#: The node's threshold parameters and the profile's ``segmenter.*`` keys they stand for.
THRESHOLD_KEYS = {"box_threshold": "box_threshold", "text_threshold": "text_threshold",
                  "score_threshold": "keep_threshold"}


def segmenter_thresholds(value_of: Callable[[str], Any], profile_segmenter=None) -> dict[str, float]:
    """The segmenter thresholds a request runs with, as ``SegmenterConfig`` keys.

    ``value_of(name)`` reads a node parameter. A threshold parameter set to a value >= 0 wins; a
    negative one (the default, -1) takes ``profile_segmenter``'s value (the loaded profile's
    SegmenterConfig), or is left out when that is None, so the profile's value stays.
    """
    out = {}
    for param, key in THRESHOLD_KEYS.items():
        value = float(value_of(param))
        if value >= 0.0:
            out[key] = value
        elif profile_segmenter is not None:
            out[key] = float(getattr(profile_segmenter, key))
    return out


def check_parameter(name: str, value: Any) -> str | None:
    """The reason ``value`` is not allowed for ``name`` (a choice, an export format, a gravity vector, a
    mesh root that is not an existing absolute directory), or None.

    Types and numeric ranges are enforced by ROS through the descriptors.
    """
    spec = PARAMETER_INDEX.get(name)
    if spec is None:
        return None
    if spec.choices and value not in spec.choices:
        return f"{name} must be one of {', '.join(spec.choices)}, got '{value}'"
    if name == "gravity" and len(value):
        try:
            check_gravity(value)
        except GravityError as exc:
            return f"gravity must be [] or a unit-able [x, y, z] in the camera optical frame: {exc}"
    if name == "mesh_roots":
        bad = [r for r in value if not (os.path.isabs(r) and os.path.isdir(r))]
        if bad:
            return f"mesh_roots: {bad} not absolute paths to existing directories"
    if name == "export_formats":
        bad = [f for f in value if f not in EXPORT_FORMATS]
        if bad:
            return f"export_formats: unknown format(s) {bad}; choose from {', '.join(EXPORT_FORMATS)}"
    return None
