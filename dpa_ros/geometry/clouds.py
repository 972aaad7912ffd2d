"""Point-cloud helpers shared by the ROS node and the exporters."""
from __future__ import annotations

import numpy as np


def subsample_evenly(points: np.ndarray, colors: np.ndarray | None = None,
                     max_points: int = 0) -> tuple[np.ndarray, np.ndarray | None]:
    """At most ``max_points`` of ``points`` (N, 3), evenly spaced in their order, first and last kept.

    ``colors`` (N, 3) follow the points; colours of another length than the points are dropped
    (returned as None), as are empty ones. ``max_points`` 0 keeps every point.
    """
    pts = np.asarray(points).reshape(-1, 3)
    cols = None if colors is None else np.asarray(colors)
    if cols is not None and (len(cols) != len(pts) or len(cols) == 0):
        cols = None
    if max_points and len(pts) > max_points:
        idx = np.linspace(0, len(pts) - 1, int(max_points)).round().astype(np.int64)
        pts = pts[idx]
        cols = None if cols is None else cols[idx]
    return pts, cols
