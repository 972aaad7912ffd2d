"""Rotations, quaternions and similarity transforms: the project's one place for pose maths.

Every conversion between rotation matrices, quaternions and Euler angles goes through
:class:`scipy.spatial.transform.Rotation` here, so the conventions are stated once:

- quaternions are ``(x, y, z, w)`` (ROS ``geometry_msgs/Quaternion`` order, scipy's default),
  unit length, with ``w >= 0`` (of the two signs that describe one rotation, the one with a
  non-negative scalar part);
- Euler angles are fixed-axis ``xyz`` (roll about x, then pitch about y, then yaw about z, all
  about the parent's axes), radians: the SDFormat / URDF ``rpy`` convention;
- a similarity transform is a 4×4 matrix ``T`` whose upper-left 3×3 block is ``scale * R``
  (R a proper rotation, scale > 0, dimensionless) and whose last column holds the translation
  in metres; it maps points of the child frame (an object's mesh) into the parent frame.

The layout solver's differentiable rotations (torch, batched) are a separate matter: they live in
:mod:`dpa_ros.geometry.layout`.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
from scipy.spatial.transform import Rotation

__all__ = ["nearest_rotation", "rotation_to_quaternion", "quaternion_to_rotation", "rotation_to_rpy",
           "similarity_to_pose", "pose_to_similarity"]


def nearest_rotation(M: np.ndarray) -> np.ndarray:
    """The proper rotation (3×3, det +1) closest to ``M`` in the Frobenius norm (SVD projection).

    A reflection (det < 0) becomes the nearest rotation by flipping its weakest singular direction.
    """
    U, _, Vt = np.linalg.svd(np.asarray(M, dtype=np.float64).reshape(3, 3))
    if np.linalg.det(U @ Vt) < 0:
        U[:, -1] *= -1
    return U @ Vt


def rotation_to_quaternion(R: np.ndarray) -> np.ndarray:
    """Unit quaternion ``(x, y, z, w)``, ``w >= 0``, of a rotation matrix (re-orthonormalised first)."""
    q = Rotation.from_matrix(nearest_rotation(R)).as_quat()
    q = q / np.linalg.norm(q)
    return -q if q[3] < 0 else q


def quaternion_to_rotation(q: Sequence[float]) -> np.ndarray:
    """Rotation matrix (3×3) of a quaternion ``(x, y, z, w)``; it is normalised first.

    Raises ValueError for a zero or non-finite quaternion.
    """
    q = np.asarray(q, dtype=np.float64).reshape(4)
    if not np.all(np.isfinite(q)) or not np.linalg.norm(q) > 0:
        raise ValueError(f"quaternion {q.tolist()} is zero or not finite")
    return Rotation.from_quat(q).as_matrix()


def rotation_to_rpy(R: np.ndarray) -> np.ndarray:
    """Fixed-axis ``xyz`` Euler angles ``(roll, pitch, yaw)`` in radians of a rotation matrix."""
    return Rotation.from_matrix(nearest_rotation(R)).as_euler("xyz")


def similarity_to_pose(T: np.ndarray, scale: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """(translation (3,) in metres, quaternion (x, y, z, w)) of the rigid part of a similarity transform.

    ``T``'s 3×3 block is ``scale * R``; the scale itself is not part of a pose (ROS poses and TF
    cannot carry one) and travels separately. Raises ValueError when ``T`` is not finite or
    ``scale`` is not positive.
    """
    T = np.asarray(T, dtype=np.float64).reshape(4, 4)
    if not np.all(np.isfinite(T)) or not np.isfinite(scale) or not scale > 0:
        raise ValueError(f"transform is not finite or its scale {scale} is not positive")
    return T[:3, 3].copy(), rotation_to_quaternion(T[:3, :3] / scale)


def pose_to_similarity(translation: Sequence[float], quaternion: Sequence[float], scale: float = 1.0) -> np.ndarray:
    """4×4 similarity transform from a translation (m), a quaternion ``(x, y, z, w)`` and a uniform scale.

    The inverse of :func:`similarity_to_pose`.
    """
    T = np.eye(4)
    T[:3, :3] = quaternion_to_rotation(quaternion) * float(scale)
    T[:3, 3] = np.asarray(translation, dtype=np.float64).reshape(3)
    return T
