"""ROS 2 adapter of the dpa_ros library: the ``reconstruct_node`` and its message conversions.

Everything ROS lives in this subpackage; ``import dpa_ros`` never imports it (DESIGN.md §3).

- :mod:`dpa_ros.ros.conversions`: pure functions between ROS messages and numpy / the library's
  :class:`~dpa_ros.scene.Scene` (images, depth, CameraInfo, PointCloud2, Scene, markers, TF).
- :mod:`dpa_ros.ros.tf`: a static TF publisher (tf2_ros when installed, else /tf_static directly).
- :mod:`dpa_ros.ros.reconstruct_node`: the node ``dpa_reconstructor`` (executable ``reconstruct_node``).
- :mod:`dpa_ros.ros.demo_client`: a small client that triggers a reconstruction and prints the outputs.

Importing this package itself imports nothing from ROS; the modules above do.
"""
