"""The shared vocabulary of every stage: the camera, the scene and its parts, atomic file writes.

- :mod:`~dpa_ros.core.camera` — :class:`~dpa_ros.core.camera.CameraModel`, the pinhole camera
  (camera optical frame, REP 103: x right, y down, z forward; metres; pixels (u, v) = (column, row))
- :mod:`~dpa_ros.core.scene` — :class:`~dpa_ros.core.scene.Scene`, its objects, planes and
  background, and the ``scene.json`` directory format
- :mod:`~dpa_ros.core.fileio` — files that appear complete or not at all
- :mod:`~dpa_ros.core.errors` — :class:`~dpa_ros.core.errors.ConfigError`, raised by every
  configuration check

Nothing here imports the rest of ``dpa_ros`` (``test/test_layering.py`` checks it), so every
other layer can depend on it.
"""
