"""Background planes (floor, supports, walls) by sequential RANSAC with a robust refit, and gravity.

Points are in the camera optical frame (x right, y down, z forward), metres. A :class:`Plane`
is n·p + d = 0 with |n| = 1 and n pointing at the camera (d > 0).

Depth noise is range-dependent: an active-stereo or structured-light sensor measures z with
σ_z ≈ ``depth_noise`` · z² (``depth_noise`` = σ_disparity / (focal · baseline), 1/m). A point on a
plane at distance d from the camera then lies off the plane by σ = ``depth_noise`` · z · d along
its normal, so inlier bands widen and refit weights fall with range.
"""
from __future__ import annotations

import numpy as np
from scipy.spatial import ConvexHull, QhullError

from dpa_ros.core.scene import Background, Plane
from dpa_ros.geometry.gravity import check_gravity

#: Optical-frame "up" for a level camera (y points down).
LEVEL_UP = np.array([0.0, -1.0, 0.0])
#: Inlier band of a RANSAC hypothesis, in noise standard deviations.
INLIER_SIGMAS = 3.0
#: Tukey biweight cut-off of the robust refit, in noise standard deviations.
TUKEY_C = 4.685
#: RANSAC hypotheses refitted before the best is chosen.
LOCAL_OPTIMISED = 5
#: A plane's polygon is drawn around its points within this many noise standard deviations of it
#: (fewer than the refit's: flying pixels at a table's edge lie just off its plane, beyond its edge).
POLYGON_SIGMAS = 2.0
#: Planes closer than this to the camera centre (metres) are not fitted; they are seen edge-on.
MIN_OFFSET = 1e-6
#: A RANSAC hypothesis is scored on at most this many points (its inliers are then found on all).
SCORE_POINTS = 3000


def fit_plane_lstsq(points: np.ndarray) -> tuple[np.ndarray, float]:
    """Least-squares plane through ``points`` (N ≥ 3, metres), perpendicular distances: (unit normal
    towards the camera, d ≥ 0). Biased for a plane seen at a grazing angle under range noise
    (:func:`robust_refit` is not)."""
    c = points.mean(0)
    _, _, vt = np.linalg.svd(points - c, full_matrices=False)
    n = vt[-1]
    d = -float(n @ c)
    if d < 0:
        n, d = -n, -d
    return n, d


def _band(z: np.ndarray, offset: np.ndarray | float, threshold: float, depth_noise: float) -> np.ndarray:
    """Inlier distance (metres) of points at depth ``z`` from a plane ``offset`` m from the camera:
    ``threshold`` plus INLIER_SIGMAS noise standard deviations."""
    return threshold + INLIER_SIGMAS * depth_noise * np.multiply.outer(np.abs(z), np.abs(offset))


def ransac_plane(points: np.ndarray, threshold: float, iterations: int, rng: np.random.Generator,
                 depth_noise: float = 0.0) -> tuple[np.ndarray, float, np.ndarray] | None:
    """Best plane by RANSAC, then refits on its inliers: (normal, d, inlier mask).

    Hypotheses (``iterations`` random triples) are scored by MSAC on up to SCORE_POINTS points, the
    LOCAL_OPTIMISED best are refitted to their inliers and scored again, and the winner is refitted
    on all ``points`` (least squares, then :func:`robust_refit` when ``depth_noise`` > 0).

    A point is an inlier when within ``threshold`` + 3 σ of the plane, σ = ``depth_noise`` · z · d
    (module docstring; 0: a fixed band). Returns None when ``points`` hold no plane: fewer than 3
    points, or all of them identical or collinear.
    """
    pts = np.asarray(points, float)
    n_pts = len(pts)
    if n_pts < 3:
        return None
    idx = rng.integers(0, n_pts, size=(iterations, 3))
    a, b, c = pts[idx[:, 0]], pts[idx[:, 1]], pts[idx[:, 2]]
    normals = np.cross(b - a, c - a)
    norms = np.linalg.norm(normals, axis=1)
    spans = np.linalg.norm(b - a, axis=1) * np.linalg.norm(c - a, axis=1)
    good = norms > 1e-6 * np.maximum(spans, 1e-300)          # sine of the triangle's angle at a
    if not good.any():
        return None
    normals = normals[good] / norms[good, None]
    offsets = -(normals * a[good]).sum(1)
    seen = np.abs(offsets) > MIN_OFFSET          # a plane through the camera is seen edge-on: no surface
    if not seen.any():
        return None
    normals, offsets = normals[seen], offsets[seen]
    scored = pts if n_pts <= SCORE_POINTS else pts[rng.choice(n_pts, SCORE_POINTS, replace=False)]
    bands = _band(scored[:, 2], offsets, threshold, depth_noise)
    # MSAC score: each inlier counts 1 − (distance / band)², so that a plane through a thin strip of
    # wall beats a slab across the strip that holds as many of its points, but loosely.
    scores = np.maximum(0.0, 1.0 - ((scored @ normals.T + offsets) / bands) ** 2).sum(0)
    # Local optimisation: the best few hypotheses refitted to their inliers and scored again.
    best, best_score = None, -1.0
    for k in np.argsort(scores)[::-1][:LOCAL_OPTIMISED]:
        n, d, _ = _refine(scored, normals[k], float(offsets[k]), threshold, depth_noise, robust=False)
        score = float(np.maximum(0.0, 1.0 - ((scored @ n + d) / _band(scored[:, 2], d, threshold, depth_noise)) ** 2
                                 ).sum())
        if score > best_score:
            best, best_score = (n, d), score
    n, d, inliers = _refine(pts, best[0], best[1], threshold, depth_noise)
    if d < 0:
        n, d = -n, -d
    return n, d, inliers


def _refine(points: np.ndarray, normal: np.ndarray, offset: float, threshold: float, depth_noise: float,
            robust: bool = True) -> tuple[np.ndarray, float, np.ndarray]:
    """Refit a RANSAC hypothesis to its inliers among ``points`` and re-select them, twice; the
    refit is least squares, then (``robust``) :func:`robust_refit`."""
    n, d = normal, offset
    inliers = np.abs(points @ n + d) < _band(points[:, 2], d, threshold, depth_noise)
    for _ in range(2):
        if inliers.sum() < 3:
            break
        n_fit, d_fit = fit_plane_lstsq(points[inliers])
        if d_fit < MIN_OFFSET:
            break
        n, d = n_fit, d_fit
        if robust and depth_noise > 0:  # unbiased under range noise, so the band holds all of a far floor
            n, d, _ = robust_refit(points[inliers], n, d, threshold, depth_noise, iterations=4)
        inliers = np.abs(points @ n + d) < _band(points[:, 2], d, threshold, depth_noise)
    return n, d, inliers


def _inverse_depth(points: np.ndarray) -> np.ndarray:
    """1/z of each point (1/m), 0 for points at or behind the camera (z ≤ 1 µm)."""
    z = points[:, 2]
    front = z > 1e-6
    return np.where(front, 1.0 / np.where(front, z, 1.0), 0.0)


def _residual(points: np.ndarray, normal: np.ndarray, offset: float, threshold: float, depth_noise: float
              ) -> tuple[np.ndarray, np.ndarray]:
    """Inverse-depth residual (1/m) of each point from the plane, and its noise variance
    (:func:`robust_refit`)."""
    offset = float(offset) if abs(offset) > MIN_OFFSET else MIN_OFFSET
    inv_z = _inverse_depth(points)
    var = depth_noise ** 2 + (threshold / INLIER_SIGMAS / abs(offset) * inv_z) ** 2
    return inv_z + (points * inv_z[:, None]) @ normal / offset, var


def robust_refit(points: np.ndarray, normal: np.ndarray, offset: float, threshold: float, depth_noise: float,
                 fixed_normal: bool = False, iterations: int = 10) -> tuple[np.ndarray, float, np.ndarray]:
    """Refit the plane (``normal``, ``offset``) to ``points`` by iteratively reweighted least squares.

    Depth noise runs along each pixel's ray, not along the plane's normal, so the residual fitted
    is in inverse depth, where stereo noise is even and the model is linear: a plane n·p + d = 0
    has 1/z = −(n·ray)/d with ray = p/z = (x/z, y/z, 1) known exactly from the pixel. (A
    perpendicular least-squares fit tilts a plane seen at a grazing angle under range noise.) Each
    residual's noise is hypot(``depth_noise``, ``threshold``/3 / (z·d)) (1/m; the second term is
    ``threshold``/3 metres along the normal), and its weight the Tukey biweight of the residual in
    those units times 1/σ². ``fixed_normal`` refits only d. Returns (normal, d, per-point
    weights); points of other surfaces and points with z ≤ 0 get weight 0.
    """
    n, d = np.asarray(normal, float), float(offset)
    inv_z = _inverse_depth(points)
    rays = points * inv_z[:, None]
    w = np.zeros(len(points))
    if abs(d) <= MIN_OFFSET:
        return n, d, w
    for _ in range(iterations):
        e, var = _residual(points, n, d, threshold, depth_noise)
        u2 = e * e / (TUKEY_C ** 2 * var)
        w = np.where((inv_z > 0) & (u2 < 1), (1 - u2) ** 2, 0.0) / var
        if np.count_nonzero(w) < 3:
            break
        if fixed_normal:
            along = rays @ n
            with np.errstate(divide="ignore", invalid="ignore"):
                new_n, new_d = n, -np.float64(w @ (along * along)) / np.float64(w @ (inv_z * along))
        else:
            A = rays * w[:, None]
            q = np.linalg.lstsq(A.T @ rays, A.T @ inv_z, rcond=None)[0]    # 1/z = q·ray, q = −n/d
            with np.errstate(divide="ignore"):
                new_d = 1.0 / np.float64(np.linalg.norm(q))
            new_n = -q * new_d
        if not (np.isfinite(new_d) and new_d > MIN_OFFSET):
            break
        moved = abs(new_d - d) + np.linalg.norm(new_n - n)
        n, d = new_n, float(new_d)
        if moved < 1e-5:
            break
    return n, d, w


def plane_polygon(points: np.ndarray, normal: np.ndarray, offset: float) -> np.ndarray | None:
    """Convex hull of ``points`` (N, 3, optical frame) projected onto the plane (``normal``,
    ``offset``): (K, 3) optical-frame corners in order around it, or None when they span no area."""
    n = np.asarray(normal, float)
    e1 = np.cross(n, [1.0, 0.0, 0.0] if abs(n[0]) < 0.9 else [0.0, 1.0, 0.0])
    e1 /= np.linalg.norm(e1)
    e2 = np.cross(n, e1)
    uv = np.stack([points @ e1, points @ e2], 1)
    if len(uv) < 3:
        return None
    try:
        hull = ConvexHull(uv)
    except (QhullError, ValueError):
        return None
    corners = uv[hull.vertices]                          # counter-clockwise in (e1, e2)
    return -offset * n + corners[:, :1] * e1 + corners[:, 1:] * e2


def _among_neighbours(points: np.ndarray, members: np.ndarray, bin_rad: float) -> np.ndarray:
    """``members`` (bool per point) less those that are not most of their part of the image.

    Points are binned by viewing direction (x/z, y/z) in ``bin_rad``-wide squares; a member counts
    only in a square where members are at least half the points and two or more. A stray point
    (an outlier whose depth happens to put it on a table's plane, beyond the table's edge) is
    alone among the floor points around it in the image, so its square fails.
    """
    inv_z = _inverse_depth(points)
    cells = np.floor(points[:, :2] * inv_z[:, None] / bin_rad).astype(np.int64)
    cells -= cells.min(0)
    width = int(cells[:, 1].max()) + 1
    key = cells[:, 0] * width + cells[:, 1]
    total = np.bincount(key)
    inside = np.bincount(key[members], minlength=len(total))
    good = (inside >= 2) & (2 * inside >= total)
    return members & good[key] & (inv_z > 0)


def _nearest_plane(points: np.ndarray, normals: list[np.ndarray], offsets: list[float], threshold: float,
                   depth_noise: float) -> np.ndarray:
    """Per point, the index of the plane its inverse depth fits best in units of its noise (see
    :func:`robust_refit`), or -1 for none.

    A point whose pixel is where two planes' predicted depths are within 2 Tukey cut-offs (near the
    line a wall meets the floor) is -1 too: there range noise carries points of each surface onto
    the other, and which of them cross depends on the noise, so that keeping either biases both.
    The test uses the pixel's ray and the planes only, not the noisy depth.
    """
    if not normals:
        return np.full(len(points), -1)
    z = points[:, 2]
    front = z > 1e-6
    inv_z = np.where(front, 1.0 / np.where(front, z, 1.0), 0.0)
    d = np.abs(np.asarray(offsets, float))
    predicted = -(points * inv_z[:, None]) @ np.stack(normals, 1) / d          # 1/z of each plane at each ray
    var = depth_noise ** 2 + (threshold / INLIER_SIGMAS * np.multiply.outer(inv_z, 1.0 / d)) ** 2
    owner = np.argmin((predicted - inv_z[:, None]) ** 2 / var, axis=1)
    rows = np.arange(len(points))
    if len(normals) > 1:
        gap2 = (predicted - predicted[rows, owner][:, None]) ** 2 / var[rows, owner][:, None]
        gap2[rows, owner] = np.inf
        owner[gap2.min(1) < (2 * TUKEY_C) ** 2] = -1
    owner[~front] = -1
    return owner


def _scatter(values: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``values`` of the points in ``mask``, placed in a zero array of the mask's length."""
    out = np.zeros(len(mask))
    out[mask] = values
    return out


def _support(points: np.ndarray, normal: np.ndarray, offset: float, threshold: float, depth_noise: float) -> int:
    """How many ``points`` lie within the Tukey cut-off of the plane (``normal``, ``offset``)."""
    e, var = _residual(points, normal, offset, threshold, depth_noise)
    return int(np.count_nonzero(e * e < TUKEY_C ** 2 * var))


def _mostly_fits(points: np.ndarray, normal: np.ndarray, offset: float, threshold: float, depth_noise: float) -> bool:
    """Whether most ``points`` lie within the Tukey cut-off of the plane (``normal``, ``offset``)."""
    e, var = _residual(points, normal, offset, threshold, depth_noise)
    return bool(np.mean(e * e < TUKEY_C ** 2 * var) > 0.5)


def _camera_tilt(up: np.ndarray) -> tuple[float, float]:
    """(pitch down, roll) in degrees of a camera whose scene "up" is ``up`` (optical frame)."""
    pitch = np.degrees(np.arcsin(np.clip(-up[2], -1.0, 1.0)))
    roll = np.degrees(np.arctan2(up[0], -up[1]))
    return float(pitch), float(roll)


def _horizontal_group(normals: list[np.ndarray], counts: list[int], candidates: list[int],
                      max_angle_deg: float) -> list[int]:
    """Among ``candidates`` (plane indices), the group of near-parallel normals (within
    ``max_angle_deg`` of one of them) with the most inliers in all."""
    cos_tol = np.cos(np.radians(max_angle_deg))
    best: list[int] = []
    for k in candidates:
        group = [j for j in candidates if normals[j] @ normals[k] >= cos_tol]
        if sum(counts[j] for j in group) > sum(counts[j] for j in best):
            best = group
    return best


def fit_background(points: np.ndarray, up_hint: np.ndarray | None = None, gravity: np.ndarray | None = None,
                   max_planes: int = 6, threshold: float = 0.02, depth_noise: float = 0.0042,
                   min_inliers: int = 200, min_fraction: float = 0.03,
                   max_pitch_deg: float = 80.0, max_roll_deg: float = 30.0, floor_max_angle_deg: float = 35.0,
                   horizontal_max_angle_deg: float = 5.0, wall_max_angle_deg: float = 20.0,
                   min_support_height: float = 0.1, max_points: int = 20000, max_refit_points: int = 50000,
                   iterations: int = 300, polygon_bin_rad: float = 0.02, seed: int = 0) -> Background:
    """Fit up to ``max_planes`` planes to background points and label them floor, support, wall or plane.

    Planes come one at a time by RANSAC (:func:`ransac_plane`, with a range-aware inlier band) on
    ``max_points`` of the points. Then each of up to ``max_refit_points`` points goes to the plane
    it fits best (none near where two planes meet), every plane is refitted to its points by
    :func:`robust_refit`, twice, and a plane left with fewer than ``min_inliers`` / ``min_fraction``
    points within its Tukey cut-off is dropped. Then "up" is decided:

    - ``gravity`` given: up = −gravity. Horizontal planes are those whose normal is within
      ``horizontal_max_angle_deg`` of up; their normals are snapped to up and only their offsets
      refitted. The returned gravity is ``gravity`` itself (``gravity_source="given"``).
    - ``up_hint`` given: planes within ``floor_max_angle_deg`` of it may be horizontal.
    - neither: planes whose normal, taken as up, means a camera pitched between −15° (up) and
      ``max_pitch_deg`` down with a roll within ±``max_roll_deg`` may be horizontal (a floor or table
      in front of and below the camera; walls and ceilings face the camera from elsewhere).

    Without gravity the candidates are grouped by normals within ``horizontal_max_angle_deg`` of
    each other, and the group with the most inliers is the horizontal one. The **floor** is its
    lowest plane (largest d, the camera's height above it); without gravity, gravity is minus the
    floor's normal (``gravity_source="floor"``). Horizontal planes at least
    ``min_support_height`` m above the floor are **supports** (a table top that is no instance, a
    shelf board). Rule for a view without the floor: the lowest horizontal plane seen is taken as
    the floor, so a table top is a support only when a lower horizontal plane is seen too, and a
    table top that fills the view is the floor. **Walls** have normals within ``wall_max_angle_deg``
    of ⟂ up; everything else (a ceiling, a horizontal plane just above the floor, a slope) is
    "plane". Floors and supports get ``polygon``: the convex hull (:func:`plane_polygon`) of their
    points within 2 σ, less stray ones (:func:`_among_neighbours`, ``polygon_bin_rad``).

    Args:
        points: (N, 3) non-object points in the optical frame, metres (non-finite rows dropped).
        up_hint: rough up direction (optical frame), or None.
        gravity: known gravity direction (pointing down, optical frame). A unit vector is returned
            as given; another is normalised.
        threshold: inlier distance for noise-free points, metres.
        depth_noise: the sensor's σ_z / z², 1/m (0.0042 is a RealSense D435 at 640 × 480).
        min_inliers, min_fraction: smallest plane kept (count, and share of the points).
        max_points: points RANSAC searches (a random subset of more).
        max_refit_points: points the planes are refitted to and their polygons drawn from (a random
            subset of more; the RANSAC points are among them).

    Returns a :class:`Background`; its ``gravity`` is None when none was given and no floor found.
    Raises ValueError for points that are not (N, 3) and GravityError for an unusable gravity.
    """
    pts = np.asarray(points, float)
    if pts.ndim != 2 or pts.shape[1] != 3:
        raise ValueError(f"points must be an (N, 3) array, got shape {pts.shape}")
    g = None if gravity is None else check_gravity(gravity)
    if g is not None and abs(np.linalg.norm(gravity) - 1.0) < 1e-9:
        g = np.array(gravity, dtype=np.float64).reshape(3)           # a unit vector is returned as given
    pts = pts[np.all(np.isfinite(pts), axis=1)]
    rng = np.random.default_rng(seed)
    if len(pts) > max_refit_points:
        pts = pts[rng.random(len(pts)) < max_refit_points / len(pts)]
    pts = pts[rng.permutation(len(pts))]        # so that the RANSAC sample below is a random one
    sample = pts[:max_points]
    total = len(sample)
    normals, offsets, counts = [], [], []
    taken = np.zeros(total, bool)
    while len(normals) < max_planes and (~taken).sum() >= max(min_inliers, 3):
        rest = np.flatnonzero(~taken)
        found = ransac_plane(sample[rest], threshold, iterations, rng, depth_noise)
        if found is None:
            break
        n, d, inl = found
        count = int(inl.sum())
        if count < min_inliers or count < min_fraction * total:
            break
        taken[rest[inl]] = True
        if any(_mostly_fits(sample[rest[inl]], m, e, threshold, depth_noise) for m, e in zip(normals, offsets)):
            continue         # a slab of an earlier plane's noise tail, outside its RANSAC band
        normals.append(n)
        offsets.append(d)
        counts.append(count)
    # Each point to its nearest plane, refit; again with the refitted planes, less any that kept too
    # few points.
    weights = [np.zeros(len(pts)) for _ in normals]
    smallest = max(min_inliers, min_fraction * len(pts))
    for round_ in range(2 + max_planes):
        owner = _nearest_plane(pts, normals, offsets, threshold, depth_noise)
        for k in range(len(normals)):
            normals[k], offsets[k], w = robust_refit(pts[owner == k], normals[k], offsets[k], threshold,
                                                     depth_noise)
            weights[k] = _scatter(w, owner == k)
            counts[k] = _support(pts, normals[k], offsets[k], threshold, depth_noise)
        weakest = int(np.argmin(counts)) if counts else -1
        if (not counts or counts[weakest] >= smallest) and round_ >= 1:
            break
        kept = [k for k in range(len(normals)) if k != weakest or counts[k] >= smallest]
        normals, offsets, counts = [normals[k] for k in kept], [offsets[k] for k in kept], [counts[k] for k in kept]
        weights = [weights[k] for k in kept]

    cos_h = np.cos(np.radians(horizontal_max_angle_deg))
    if g is not None:
        up = -g
        horizontal = [k for k, n in enumerate(normals) if n @ up >= cos_h]
        for k in horizontal:
            normals[k], offsets[k], w = robust_refit(pts[owner == k], up, offsets[k], threshold, depth_noise,
                                                     fixed_normal=True)
            weights[k] = _scatter(w, owner == k)
            counts[k] = _support(pts, normals[k], offsets[k], threshold, depth_noise)
    else:
        if up_hint is not None:
            hint = np.asarray(up_hint, float) / np.linalg.norm(up_hint)
            candidates = [k for k, n in enumerate(normals) if n @ hint >= np.cos(np.radians(floor_max_angle_deg))]
        else:
            tilts = [_camera_tilt(n) for n in normals]
            candidates = [k for k, (pitch, roll) in enumerate(tilts)
                          if -15.0 <= pitch <= max_pitch_deg and abs(roll) <= max_roll_deg]
        horizontal = _horizontal_group(normals, counts, candidates, horizontal_max_angle_deg)
        up = normals[max(horizontal, key=lambda k: offsets[k])] if horizontal else (
            LEVEL_UP if up_hint is None else hint)
    floor_idx = max(horizontal, key=lambda k: offsets[k]) if horizontal else None

    sin_wall = np.sin(np.radians(wall_max_angle_deg))
    planes = []
    for k, (n, d) in enumerate(zip(normals, offsets)):
        polygon = None
        if k == floor_idx:
            label = "floor"
        elif k in horizontal and d <= offsets[floor_idx] - min_support_height:
            label = "support"
        elif k not in horizontal and abs(n @ up) <= sin_wall:
            label = "wall"
        else:
            label = "plane"
        if label in ("floor", "support"):
            e, var = _residual(pts, n, d, threshold, depth_noise)
            members = (weights[k] > 0) & (e * e < POLYGON_SIGMAS ** 2 * var)
            polygon = plane_polygon(pts[_among_neighbours(pts, members, polygon_bin_rad)], n, d)
        planes.append(Plane(label=label, normal=np.asarray(n, float), offset=float(d), inlier_count=counts[k],
                            polygon=polygon))
    if g is not None:
        return Background(planes=planes, gravity=g, gravity_source="given")
    if floor_idx is None:
        return Background(planes=planes)
    return Background(planes=planes, gravity=-normals[floor_idx], gravity_source="floor")


def supporting_pixels(depth: np.ndarray, camera, planes: list[Plane], outside: np.ndarray,
                      threshold: float = 0.05, labels: tuple[str, ...] = ("floor", "wall"),
                      points: np.ndarray | None = None) -> np.ndarray:
    """(H, W) bool: pixels of ``outside`` (True where no object mask is) whose depth back-projects
    within ``threshold`` metres of a fitted plane labelled one of ``labels``.

    These are the scene's supporting surfaces: nothing stands behind a floor or a wall, so such a
    pixel cannot hide part of an object, and a mesh placed behind it (sunk into the floor, pushed
    through a wall) is wrong rather than occluded. Support planes (a table top) are not in the
    default ``labels``: what is under a table is hidden by it. With ``points`` (an object's points,
    optical frame), only planes that most of them lie in front of count: a plane the object stands
    behind (a cabinet front fitted as a wall) may well hide it. ``camera`` is a
    :class:`~dpa_ros.core.camera.CameraModel` of the depth image (metres, NaN/0 invalid).
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
