"""ROS 2 adapter of the dpa_ros library: the ``reconstruct_node`` and its message conversions.

Everything ROS lives in this subpackage; ``import dpa_ros`` never imports it (docs/interfaces.md).

- :mod:`dpa_ros.ros.conversions`: pure functions between ROS messages and numpy / the library's
  :class:`~dpa_ros.core.scene.Scene` (images, depth, CameraInfo, PointCloud2, Scene, markers, TF).
- :mod:`dpa_ros.ros.tf`: a static TF publisher (tf2_ros when installed, else /tf_static directly)
  and a TF listener (tf2_ros's Buffer when installed, else :mod:`dpa_ros.ros.tf_buffer`).
- :mod:`dpa_ros.ros.tf_buffer`: a TF buffer of /tf and /tf_static (history, interpolation, lookup).
- :mod:`dpa_ros.ros.imu`: the IMU's recent accelerometer samples, and gravity from them.
- :mod:`dpa_ros.ros.gravity_sources`: gravity for a request (``gravity``, ``gravity_frame``, IMU).
- :mod:`dpa_ros.ros.reconstruct_node`: the node ``dpa_reconstructor`` (executable ``reconstruct_node``),
  wiring of the modules below.
- :mod:`dpa_ros.ros.params`: the node's parameter table (defaults, descriptions, constraints).
- :mod:`dpa_ros.ros.frame_buffer`: the newest complete input frame, matched by stamp.
- :mod:`dpa_ros.ros.inputs`: the chosen frame's messages → the pipeline's inputs, validated.
- :mod:`dpa_ros.ros.scheduler`: admission, queue, one worker thread, cancellation, stage timing.
- :mod:`dpa_ros.ros.instances`: a Reconstruct goal's known objects → layout instances (meshes read
  only under ``mesh_roots``).
- :mod:`dpa_ros.ros.scene_memory`: each reconstruction merged into the scene memory in ``fixed_frame``.
- :mod:`dpa_ros.ros.scene_publisher`: every output of one scene (export, topics, TF, planning).
- :mod:`dpa_ros.ros.log_bridge`: the library's Python logging → the node's ROS log.
- :mod:`dpa_ros.ros.demo_client`: a small client that triggers a reconstruction and prints the outputs.
- :mod:`dpa_ros.ros.bag_player`: plays a rosbag's frames as live, re-stamped topics.

Importing this package itself imports nothing from ROS; ``params``, ``frame_buffer``, ``scheduler``,
``tf_buffer``, ``imu``, ``scene_memory`` and ``log_bridge`` import no rclpy either (they are unit-tested
without DDS); the others do.
"""
