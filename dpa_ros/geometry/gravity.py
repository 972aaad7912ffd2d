"""Gravity directions: checking a given vector, and deriving one from a rotation or an accelerometer.

Every vector here is a unit vector pointing **down** (towards the floor), expressed in the camera
optical frame (REP 103: x right, y down, z forward) unless a docstring says otherwise.
"""
from __future__ import annotations

import numpy as np


class GravityError(ValueError):
    """A gravity vector (or a source of one) that cannot be used."""


def check_gravity(vector, name: str = "gravity") -> np.ndarray:
    """``vector`` as a float64 unit 3-vector; raises :class:`GravityError` for a wrong shape, a
    non-finite entry or a (near) zero length."""
    g = np.asarray(vector, dtype=np.float64).reshape(-1)
    if g.shape != (3,):
        raise GravityError(f"{name} must have 3 components, got {g.size}")
    if not np.all(np.isfinite(g)):
        raise GravityError(f"{name} has a non-finite component: {g.tolist()}")
    norm = float(np.linalg.norm(g))
    if norm < 1e-6:
        raise GravityError(f"{name} is (near) zero: {g.tolist()}")
    return g / norm


STANDARD_GRAVITY_M_S2 = 9.80665
DOWN_IN_REP105 = np.array([0.0, 0.0, -1.0])  # a REP 105 body frame (base_link, odom, map): z up


def gravity_from_rotation(R_camera_from_frame) -> np.ndarray:
    """Gravity in the camera optical frame from the rotation ``R_camera_from_frame`` (3×3, maps
    vectors of a z-up frame such as ``base_link`` into the camera frame): ``R · (0, 0, -1)``."""
    R = np.asarray(R_camera_from_frame, dtype=np.float64)
    if R.shape != (3, 3) or not np.all(np.isfinite(R)):
        raise GravityError(f"rotation must be a finite 3x3 matrix, got shape {R.shape}")
    return check_gravity(R @ DOWN_IN_REP105, "gravity from the rotation")


def angle_deg(a, b) -> float:
    """Angle between two 3-vectors, degrees."""
    a, b = check_gravity(a, "first vector"), check_gravity(b, "second vector")
    return float(np.degrees(np.arccos(np.clip(np.dot(a, b), -1.0, 1.0))))


def gravity_from_accelerometer(accelerations, max_error_m_s2: float = 0.5) -> tuple[np.ndarray, str]:
    """Down vector (unit, in the accelerometer's frame) from (N, 3) ``accelerations`` (m/s²).

    An accelerometer at rest measures the reaction to gravity: about 9.81 m/s² pointing **up**, so
    down is minus the mean. Raises :class:`GravityError` when the sensor is accelerating: the mean's
    length differs from standard gravity by more than ``max_error_m_s2``, or the samples scatter
    about their mean by more than that (RMS, m/s²; vibration or motion during the window).
    Returns (down, summary) where the summary names the sample count, |mean| and RMS scatter.
    """
    a = np.asarray(accelerations, dtype=np.float64)
    if a.ndim != 2 or a.shape[1] != 3 or len(a) == 0:
        raise GravityError(f"accelerations must be (N, 3) with N >= 1, got shape {a.shape}")
    a = a[np.all(np.isfinite(a), axis=1)]
    if len(a) == 0:
        raise GravityError("every accelerometer sample has a non-finite component")
    mean = a.mean(axis=0)
    norm = float(np.linalg.norm(mean))
    scatter = float(np.sqrt(np.mean(np.sum((a - mean) ** 2, axis=1))))
    summary = f"{len(a)} samples, |mean| {norm:.3f} m/s^2, RMS scatter {scatter:.3f} m/s^2"
    if abs(norm - STANDARD_GRAVITY_M_S2) > max_error_m_s2:
        raise GravityError(f"IMU is accelerating (or not in m/s^2): {summary}; |mean| differs from "
                           f"{STANDARD_GRAVITY_M_S2} by more than {max_error_m_s2:g}")
    if scatter > max_error_m_s2:
        raise GravityError(f"IMU is accelerating or vibrating: {summary}; scatter above {max_error_m_s2:g}")
    return -mean / norm, summary


def floor_disagreement_deg(gravity, background) -> float | None:
    """Angle (degrees) between a given ``gravity`` and the down direction of ``background``'s fitted
    floor (minus its normal), or None when the background has no floor.

    A given gravity far off the floor leaves the floor unlabelled (only planes within a few
    degrees of horizontal to it are floors), so without a ``floor`` the largest non-wall plane
    facing up against ``gravity`` stands in for it."""
    floor = background.floor
    if floor is None:
        g = check_gravity(gravity)
        candidates = [p for p in background.planes if p.label != "wall"
                      and float(np.dot(p.normal, -g)) > 0.5]
        if not candidates:
            return None
        floor = max(candidates, key=lambda p: p.inlier_count)
    return angle_deg(gravity, -np.asarray(floor.normal, dtype=np.float64))
