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
