"""Per-instance fitting targets: the instance's 3D points and 2D mask samples.

3D target points are the masked part of the metric depth back-projected into the camera optical
frame (metres), with outliers removed in two passes: a robust depth gate around the mask's
median depth (drops background pixels that bleed into the mask at depth edges), then a
statistical k-nearest-neighbour filter (drops isolated flying pixels). 2D samples are pixel
centres (u, v) inside the mask.

A depth sensor's per-pixel noise blurs the objective: under noise of std σ, a pose that misses a
surface by δ ≪ σ costs only about 0.4 δ²/σ more, so close poses and similar shapes become hard
to tell apart. :func:`smooth_depth_in_masks` averages each instance's depth over a small window
inside its own mask before its targets are built (away from depth edges), dividing σ by about
the window's side; :class:`TargetConfig` sets the window (profile section ``targets:``).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.ndimage import maximum_filter, minimum_filter, uniform_filter
from scipy.spatial import cKDTree

from dpa_ros.core.camera import CameraModel
from dpa_ros.core.errors import ConfigError


class InstanceInputError(ValueError):
    """An instance that cannot be fitted (bad mask, no valid depth, unusable mesh); names the instance."""


@dataclass(frozen=True)
class TargetConfig:
    """How :func:`~dpa_ros.assemble.assemble_scene` builds each instance's targets from the depth
    (profile section ``targets:``). Frozen and checked on construction
    (:class:`~dpa_ros.core.errors.ConfigError` naming the setting).

    Attributes:
        depth_smoothing: side (pixels) of the window each instance's depth is averaged over inside
            its mask before its targets are built (:func:`smooth_depth_in_masks`; not at depth edges
            of more than 2 × the layout's ``occlusion_margin``); 0 or 1 fits the depth as measured.
    """

    depth_smoothing: int = 5

    def __post_init__(self) -> None:
        if isinstance(self.depth_smoothing, bool) or not isinstance(self.depth_smoothing, (int, np.integer)) \
                or self.depth_smoothing < 0:
            raise ConfigError(f"targets depth_smoothing must be an integer >= 0 pixels, got {self.depth_smoothing!r}")


@dataclass
class InstanceTarget:
    """What the layout solver fits one instance to.

    Attributes:
        points: (N, 3) target points in the optical frame, metres (outliers removed, ≤ max_points).
        pixels: (M, 2) (u, v) pixel samples inside the mask (≤ max_pixels).
        mask: (H, W) bool visible pixels of the instance.
        removed_fraction: share of the masked valid-depth points the outlier filters dropped.
    """

    points: np.ndarray
    pixels: np.ndarray
    mask: np.ndarray
    removed_fraction: float


def check_mask(mask: np.ndarray, camera: CameraModel, name: str) -> np.ndarray:
    """The mask as (H, W) bool; raises :class:`InstanceInputError` naming ``name`` when unusable."""
    mask = np.asarray(mask)
    if mask.ndim == 3:
        mask = mask[..., 0] if mask.shape[2] in (1, 3, 4) else mask
    if mask.ndim != 2:
        raise InstanceInputError(f"instance {name}: mask must be a 2D image, got shape {mask.shape}")
    if mask.shape != (camera.height, camera.width):
        raise InstanceInputError(f"instance {name}: mask is {mask.shape[1]}x{mask.shape[0]} but the image is "
                                 f"{camera.width}x{camera.height}; the mask must cover the image pixel for pixel")
    mask = mask.astype(bool)
    if not mask.any():
        raise InstanceInputError(f"instance {name}: mask is empty (no pixel set)")
    return mask


def smooth_depth_in_masks(depth: np.ndarray, masks: list[np.ndarray], size: int, jump: float,
                          noise_floor: float = 0.002) -> np.ndarray:
    """Depth (H, W, metres, NaN invalid) with every pixel of each mask replaced by the mean valid depth of
    the same mask's pixels in the ``size`` × ``size`` window around it, unless the window's depths
    (in that mask) span more than ``jump`` metres (a depth edge, e.g. a seat in front of a leg:
    left as measured), and only for masks whose depth is noisy (:func:`depth_noise` at least
    ``noise_floor`` metres; clean depth is left alone, since a mean also rounds a box's edges).
    Pixels outside the masks, invalid pixels and ``size`` < 2 are unchanged.

    A mean over a planar patch is exact, so a plane's points stay on it while their noise falls
    by a factor of about ``size``; curved surfaces move by the window's sagitta (at 3 m, 5 px of a
    250 px focal length span 6 cm: 1.5 mm on a 0.3 m radius)."""
    out = np.array(depth, dtype=np.float64, copy=True)
    if size < 2:
        return out
    valid = np.isfinite(out) & (out > 0)
    for mask in masks:
        inside = np.asarray(mask, bool) & valid
        if not inside.any():
            continue
        d = np.where(inside, out, 0.0)
        count = uniform_filter(inside.astype(np.float64), size, mode="constant")
        mean = uniform_filter(d, size, mode="constant") / np.maximum(count, 1e-12)
        span = (maximum_filter(np.where(inside, d, -np.inf), size, mode="constant", cval=-np.inf)
                - minimum_filter(np.where(inside, d, np.inf), size, mode="constant", cval=np.inf))
        if depth_noise(out, inside) < noise_floor:
            continue
        smooth = inside & (span <= jump)
        out[smooth] = mean[smooth]
    return out


def depth_noise(depth: np.ndarray, mask: np.ndarray) -> float:
    """Robust per-pixel noise std (metres) of the valid depth inside ``mask``: 1.4826 × the MAD of the
    second differences d(i) − (d(i−1) + d(i+1)) / 2 along rows and columns, over √1.5 (their std
    for independent noise). Zero on any plane, so slanted surfaces and the odd crease or depth edge
    do not count; 0.0 when fewer than 10 pixels have both neighbours in the mask."""
    inside = np.asarray(mask, bool) & np.isfinite(depth)
    d = np.where(inside, depth, 0.0)
    residuals = []
    for axis in (0, 1):
        core = [slice(None)] * 2
        core[axis] = slice(1, -1)
        before, after = list(core), list(core)
        before[axis], after[axis] = slice(None, -2), slice(2, None)
        both = inside[tuple(core)] & inside[tuple(before)] & inside[tuple(after)]
        residuals.append((d[tuple(core)] - 0.5 * (d[tuple(before)] + d[tuple(after)]))[both])
    r = np.concatenate(residuals)
    if len(r) < 10:
        return 0.0
    return float(1.4826 * np.median(np.abs(r - np.median(r))) / np.sqrt(1.5))


def _subsample(rng: np.random.Generator, n: int, k: int) -> np.ndarray:
    return np.arange(n) if n <= k else np.sort(rng.choice(n, size=k, replace=False))


def build_target(depth: np.ndarray, camera: CameraModel, mask: np.ndarray, name: str, max_points: int = 2000,
                 max_pixels: int = 2000, min_points: int = 20, depth_gate_mad: float = 4.0,
                 knn: int = 8, knn_std: float = 2.5, seed: int = 0) -> InstanceTarget:
    """Build the 3D/2D target of one instance from a metric depth map (metres, NaN/0/inf invalid).

    Raises :class:`InstanceInputError` naming ``name`` when the mask is empty or does not match
    the image, or fewer than ``min_points`` valid depth pixels remain inside it.
    """
    mask = check_mask(mask, camera, name)
    rng = np.random.default_rng(seed)
    pts = camera.backproject(depth, mask)
    if len(pts) < min_points:
        raise InstanceInputError(f"instance {name}: only {len(pts)} of {int(mask.sum())} mask pixels have valid "
                                 f"depth (need {min_points})")
    n0 = len(pts)
    z = pts[:, 2]
    med = np.median(z)
    mad = 1.4826 * np.median(np.abs(z - med))
    # The gate never gets tighter than 10 % of the depth: a slanted surface spreads its depths.
    gate = max(depth_gate_mad * mad, 0.1 * med)
    pts = pts[np.abs(z - med) <= gate]
    kept = len(pts) / n0
    if len(pts) > knn + 1:
        sub = pts[_subsample(rng, len(pts), 4 * max_points)]
        dist, _ = cKDTree(sub).query(sub, k=knn + 1)
        mean_d = dist[:, 1:].mean(1)
        keep = mean_d <= mean_d.mean() + knn_std * mean_d.std()
        kept *= keep.mean()
        pts = sub[keep]
    if len(pts) < min_points:
        raise InstanceInputError(f"instance {name}: only {len(pts)} target points left after outlier removal "
                                 f"(need {min_points})")
    pts = pts[_subsample(rng, len(pts), max_points)]
    v, u = np.nonzero(mask)
    pix = np.stack([u, v], 1).astype(np.float64)
    pix = pix[_subsample(rng, len(pix), max_pixels)]
    return InstanceTarget(points=pts, pixels=pix, mask=mask, removed_fraction=float(1.0 - kept))
