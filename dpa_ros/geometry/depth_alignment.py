"""Relative (affine-ambiguous) depth → metric depth: robust closed-form scale and shift.

A monocular depth model predicts d up to an unknown affine map; the metric depth is s·d + t.
:func:`align_depth` solves (s, t) against metric reference depth pixels (an RGB-D sensor's depth
where valid, or a metric-depth model): a least-median-of-squares start over random pixel pairs
(robust to up to half the pixels being wrong), then closed-form least squares on the pixels whose
residual is within ``outlier_k`` robust standard deviations (1.4826·MAD), re-selected until
stable. :func:`align_depth_to_floor` builds the reference from a floor plane at a known camera
height instead. Depth maps are z-depth in the camera optical frame; NaN, inf and values ≤ 0 (in
the reference) are invalid.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dpa_ros.core.camera import CameraModel
from dpa_ros.geometry.planes import LEVEL_UP


class DepthAlignmentError(ValueError):
    """Depth maps that cannot be aligned (too few valid pixels, mismatched shapes, degenerate fit)."""


@dataclass(frozen=True)
class DepthAlignment:
    """Result of an alignment: metric = scale · relative + shift.

    Attributes:
        scale: s (metres per relative unit; negative when the input is inverse-depth-like).
        shift: t, metres.
        residual: RMS of the inliers' residual |s·d + t − reference|, metres.
        inlier_fraction: share of the valid pixels kept by the outlier rejection.
        valid_pixels: how many pixels were valid in both maps.
    """

    scale: float
    shift: float
    residual: float
    inlier_fraction: float
    valid_pixels: int

    def apply(self, relative: np.ndarray) -> np.ndarray:
        """Metric depth (metres) from the relative map; invalid input stays NaN, results ≤ 0 become NaN."""
        rel = np.asarray(relative, dtype=np.float64)
        out = self.scale * rel + self.shift
        out[~np.isfinite(rel) | ~(out > 0)] = np.nan
        return out


def align_depth(relative: np.ndarray, reference: np.ndarray, mask: np.ndarray | None = None,
                min_valid: int = 100, outlier_k: float = 3.0, iterations: int = 5, lmeds_trials: int = 200,
                seed: int = 0) -> DepthAlignment:
    """Robust closed-form fit of ``scale * relative + shift ≈ reference``.

    Args:
        relative: (H, W) relative depth (any affine units); NaN/inf invalid.
        reference: (H, W) metric depth in metres; NaN/inf/≤0 invalid.
        mask: optional (H, W) bool restricting the pixels used.
        min_valid: fewest valid pixels accepted.
        outlier_k: residual cut in robust standard deviations.
        iterations: least-squares re-selection rounds.
        lmeds_trials: random pixel pairs tried for the least-median-of-squares start.
        seed: seeds those pairs (the result is deterministic).

    Raises :class:`DepthAlignmentError` when shapes differ, fewer than ``min_valid`` pixels are
    valid in both maps, or the relative depth is constant over them.
    """
    rel = np.asarray(relative, dtype=np.float64)
    ref = np.asarray(reference, dtype=np.float64)
    if rel.shape != ref.shape:
        raise DepthAlignmentError(f"relative depth {rel.shape} and reference depth {ref.shape} differ in shape")
    valid = np.isfinite(rel) & np.isfinite(ref) & (ref > 0)
    if mask is not None:
        mask = np.asarray(mask, bool)
        if mask.shape != rel.shape:
            raise DepthAlignmentError(f"alignment mask {mask.shape} does not match depth {rel.shape}")
        valid &= mask
    n_valid = int(valid.sum())
    if n_valid < min_valid:
        raise DepthAlignmentError(f"only {n_valid} pixels have valid relative and reference depth "
                                  f"(need {min_valid}); check the depth input")
    d, r = rel[valid], ref[valid]
    if np.ptp(d) <= 1e-12 * max(1.0, np.abs(d).max()):
        raise DepthAlignmentError("relative depth is constant over the valid pixels; scale is undetermined")
    # Least median of squares over random pixel pairs (tolerates up to half the pixels being
    # outliers), then least squares on the inliers, re-selected a few times.
    rng = np.random.default_rng(seed)
    sub = rng.choice(n_valid, size=min(n_valid, 5000), replace=False)
    pairs = rng.integers(0, n_valid, size=(lmeds_trials, 2))
    dd = d[pairs[:, 0]] - d[pairs[:, 1]]
    ok = np.abs(dd) > 1e-12
    s_c = (r[pairs[ok, 0]] - r[pairs[ok, 1]]) / dd[ok]
    t_c = r[pairs[ok, 0]] - s_c * d[pairs[ok, 0]]
    med = np.median(np.abs(s_c[:, None] * d[sub] + t_c[:, None] - r[sub]), axis=1)
    best = int(np.argmin(med))
    s, t = float(s_c[best]), float(t_c[best])
    sigma = 1.4826 * float(med[best])
    inl = np.abs(s * d + t - r) <= max(outlier_k * sigma, 1e-9)
    for _ in range(iterations):
        if int(inl.sum()) < 3:
            raise DepthAlignmentError("depth alignment found no consistent set of pixels")
        A = np.stack([d[inl], np.ones(int(inl.sum()))], 1)
        (s, t), *_ = np.linalg.lstsq(A, r[inl], rcond=None)
        res = np.abs(s * d + t - r)
        sigma = 1.4826 * np.median(res[inl])
        new = res <= max(outlier_k * sigma, 1e-9)
        if int(new.sum()) < 3 or np.array_equal(new, inl):
            break
        inl = new
    res = s * d[inl] + t - r[inl]
    return DepthAlignment(scale=float(s), shift=float(t), residual=float(np.sqrt(np.mean(res ** 2))),
                          inlier_fraction=float(inl.mean()), valid_pixels=n_valid)


def floor_depth(camera: CameraModel, camera_height: float, up: np.ndarray | None = None) -> np.ndarray:
    """Z-depth (H, W, metres) of a floor plane ``camera_height`` below the camera; NaN above the horizon.

    ``up`` is the floor normal in the optical frame (default: a level camera, -y).
    """
    if not camera_height > 0:
        raise DepthAlignmentError(f"camera height must be positive metres, got {camera_height}")
    n = LEVEL_UP if up is None else np.asarray(up, float) / np.linalg.norm(up)
    u, v = camera.pixel_grid()
    rays = np.stack([(u - camera.cx) / camera.fx, (v - camera.cy) / camera.fy, np.ones_like(u)], -1)
    # Floor: n·p + h = 0 with p = z·ray  →  z = −h / (n·ray), valid where the ray goes down.
    nr = rays @ n
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(nr < -1e-6, -camera_height / nr, np.nan)
    return z


def align_depth_to_floor(relative: np.ndarray, camera: CameraModel, camera_height: float,
                         up: np.ndarray | None = None, floor_mask: np.ndarray | None = None,
                         min_valid: int = 100, outlier_k: float = 2.5) -> DepthAlignment:
    """Align relative depth using a floor plane at a known camera height as the metric reference.

    The reference is the floor's depth along every pixel ray below the horizon
    (:func:`floor_depth`); ``floor_mask`` (e.g. a floor segmentation, or the non-object pixels)
    restricts it further. Objects standing on the floor are rejected as outliers by the robust fit
    as long as the floor is the majority of the used pixels.
    """
    ref = floor_depth(camera, camera_height, up)
    return align_depth(relative, ref, mask=floor_mask, min_valid=min_valid, outlier_k=outlier_k)
