"""The command-line tools, one module each, each a thin parser over library functions.

- :mod:`~dpa_ros.cli.reconstruct` — ``dpa-reconstruct`` (:func:`dpa_ros.reconstruct.reconstruct_image`,
  :func:`dpa_ros.reconstruct.run_batch`)
- :mod:`~dpa_ros.cli.export` — ``dpa-export`` (:func:`dpa_ros.export.export_scene`)
- :mod:`~dpa_ros.cli.evaluate` — ``dpa-eval`` (:mod:`dpa_ros.geometry.metrics`)
- :mod:`~dpa_ros.cli.sim_check` — ``dpa-sim-check`` (:func:`dpa_ros.export.sim_check.check_scene`)
- :mod:`~dpa_ros.cli.weights` — ``dpa-weights`` (:mod:`dpa_ros.priors.weights`)

The ROS node's entry point is :func:`dpa_ros.ros.reconstruct_node.main`.
"""
