"""Background planes (floor, walls) by sequential RANSAC, and gravity from the floor normal.

Points are in the camera optical frame (x right, y down, z forward), metres. A :class:`Plane`
is n·p + d = 0 with |n| = 1 and n pointing at the camera (d > 0).
"""
from __future__ import annotations

import numpy as np

from dpa_ros.scene import Background, Plane

#: Optical-frame "up" for a level camera (y points down).
LEVEL_UP = np.array([0.0, -1.0, 0.0])


def fit_plane_lstsq(points: np.ndarray) -> tuple[np.ndarray, float]:
    """Least-squares plane through ``points`` (N ≥ 3, metres): (unit normal towards the camera, d)."""
    c = points.mean(0)
    _, _, vt = np.linalg.svd(points - c, full_matrices=False)
    n = vt[-1]
    d = -float(n @ c)
    if d < 0:
        n, d = -n, -d
    return n, d


def ransac_plane(points: np.ndarray, threshold: float, iterations: int, rng: np.random.Generator
                 ) -> tuple[np.ndarray, float, np.ndarray]:
    """Best plane by RANSAC then least-squares refit on its inliers: (normal, d, inlier mask)."""
    n_pts = len(points)
    idx = rng.integers(0, n_pts, size=(iterations, 3))
    a, b, c = points[idx[:, 0]], points[idx[:, 1]], points[idx[:, 2]]
    normals = np.cross(b - a, c - a)
    norms = np.linalg.norm(normals, axis=1)
    good = norms > 1e-9
    normals = normals[good] / norms[good, None]
    offsets = -(normals * a[good]).sum(1)
    if len(normals) == 0:
        return np.array([0.0, 0.0, 1.0]), 0.0, np.zeros(n_pts, bool)
    counts = (np.abs(points @ normals.T + offsets) < threshold).sum(0)
    k = int(np.argmax(counts))
    inliers = np.abs(points @ normals[k] + offsets[k]) < threshold
    for _ in range(2):       # refit, re-select
        n, d = fit_plane_lstsq(points[inliers])
        inliers = np.abs(points @ n + d) < threshold
    return n, d, inliers


def fit_background(points: np.ndarray, up_hint: np.ndarray | None = None, gravity: np.ndarray | None = None,
                   max_planes: int = 4,
                   threshold: float = 0.03, min_inliers: int = 200, min_fraction: float = 0.05,
                   floor_max_angle_deg: float = 35.0, wall_max_angle_deg: float = 20.0,
                   max_points: int = 20000, iterations: int = 300, seed: int = 0) -> Background:
    """Fit up to ``max_planes`` planes to background points and label them.

    Args:
        points: (N, 3) non-object points in the optical frame, metres.
        up_hint: rough up direction (default: a level camera's up, -y). The floor is the plane
            with the most inliers whose normal is within ``floor_max_angle_deg`` of it and that
            lies below the camera; walls are planes within ``wall_max_angle_deg`` of vertical
            (normal ⟂ up); others are labelled "plane".
        gravity: a known gravity direction (unit, pointing down, optical frame). It replaces
            ``up_hint`` and the fitted floor's normal as the scene's gravity.
        threshold: RANSAC inlier distance, metres.
        min_inliers, min_fraction: smallest plane kept (count, and share of the points).

    Returns a :class:`Background` whose ``gravity`` is minus the floor normal, or None when no
    floor was found.
    """
    if gravity is not None:
        up_hint = -np.asarray(gravity, float)
    up = LEVEL_UP if up_hint is None else np.asarray(up_hint, float) / np.linalg.norm(up_hint)
    pts = np.asarray(points, float)
    pts = pts[np.all(np.isfinite(pts), axis=1)]
    rng = np.random.default_rng(seed)
    if len(pts) > max_points:
        pts = pts[rng.choice(len(pts), max_points, replace=False)]
    total = len(pts)
    found: list[tuple[np.ndarray, float, int]] = []
    remaining = pts
    while len(found) < max_planes and len(remaining) >= max(min_inliers, 3):
        n, d, inl = ransac_plane(remaining, threshold, iterations, rng)
        count = int(inl.sum())
        if count < min_inliers or count < min_fraction * total:
            break
        found.append((n, d, count))
        remaining = remaining[~inl]
    cos_floor = np.cos(np.radians(floor_max_angle_deg))
    sin_wall = np.sin(np.radians(wall_max_angle_deg))
    floor_idx = None
    for k, (n, d, count) in enumerate(found):
        # Below the camera: the camera is on the plane's positive side and the normal points up.
        if n @ up >= cos_floor and d > 0 and (floor_idx is None or count > found[floor_idx][2]):
            floor_idx = k
    planes = []
    for k, (n, d, count) in enumerate(found):
        if k == floor_idx:
            label = "floor"
        elif abs(n @ (found[floor_idx][0] if floor_idx is not None else up)) <= sin_wall:
            label = "wall"
        else:
            label = "plane"
        planes.append(Plane(label=label, normal=n, offset=d, inlier_count=count))
    if gravity is not None:
        return Background(planes=planes, gravity=up * -1.0, gravity_source="given")
    if floor_idx is None:
        return Background(planes=planes)
    return Background(planes=planes, gravity=-found[floor_idx][0], gravity_source="floor")


def supporting_pixels(depth: np.ndarray, camera, planes: list[Plane], outside: np.ndarray,
                      threshold: float = 0.05, labels: tuple[str, ...] = ("floor", "wall"),
                      points: np.ndarray | None = None) -> np.ndarray:
    """(H, W) bool: pixels of ``outside`` (True where no object mask is) whose depth back-projects
    within ``threshold`` metres of a fitted plane labelled one of ``labels``.

    These are the scene's supporting surfaces: nothing stands behind a floor or a wall, so such a
    pixel cannot hide part of an object, and a mesh placed behind it (sunk into the floor, pushed
    through a wall) is wrong rather than occluded. With ``points`` (an object's points, optical
    frame), only planes that most of them lie in front of count: a plane the object stands behind
    (a cabinet front fitted as a wall) may well hide it. ``camera`` is a
    :class:`~dpa_ros.geometry.camera.CameraModel` of the depth image (metres, NaN/0 invalid).
    """
    depth = np.asarray(depth, float)
    valid = np.isfinite(depth) & (depth > 0) & np.asarray(outside, bool)
    out = np.zeros(depth.shape, bool)
    chosen = [p for p in planes if p.label in labels]
    if points is not None and len(points):
        pts = np.asarray(points, float)
        chosen = [p for p in chosen if np.median(pts @ np.asarray(p.normal, float) + p.offset) > 0]
    if not chosen or not valid.any():
        return out
    v, u = np.nonzero(valid)
    pts = camera.backproject(depth, valid)                 # row-major order, the order of (v, u)
    near = np.zeros(len(pts), bool)
    for p in chosen:
        near |= np.abs(pts @ np.asarray(p.normal, float) + p.offset) < threshold
    out[v[near], u[near]] = True
    return out
