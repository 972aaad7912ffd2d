"""Pure numpy/torch geometry: depth alignment, layout optimisation, planes, metrics (the camera is dpa_ros.core.camera).

Nothing here imports ROS. Frames follow REP 103: the camera optical frame has x right,
y down, z forward; lengths are metres; pixel coordinates are (u, v) = (column, row) with the
centre of the top-left pixel at (0, 0).
"""
