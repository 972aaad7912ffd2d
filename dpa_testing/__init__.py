"""Synthetic test scenes for test/, bench/ and scripts/: rendered RGB-D of known meshes at known poses.

Not part of the installed library (setup.py installs ``dpa_ros`` only); it is importable from a
source checkout, whose root ``activate.sh`` puts on ``PYTHONPATH``.

- :mod:`~dpa_testing.synthetic` — known meshes on a floor, rendered to depth, masks and RGB
- :mod:`~dpa_testing.synthetic_planes` — rooms of flat rectangles seen by an RGB-D camera with stereo depth noise
- :mod:`~dpa_testing.synthetic_views` — one scene seen from several camera poses
"""
