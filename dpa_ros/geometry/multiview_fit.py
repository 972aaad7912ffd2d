"""A mesh's similarity pose (rotation, translation, uniform scale) fitted to depth points seen from
several camera poses, in one fixed frame.

Residuals follow the depth camera: a point is matched to the closest of the mesh faces that face its
own camera (a point seen through a thin part is not pulled onto its back), weighted by 1/σ² with
σ ∝ depth², and the worst pairs are left out of each step (:func:`refit_similarity`). Candidate
poses are compared by one truncated, noise-weighted cost (:func:`truncated_costs`);
:func:`turned_starts` gives the starts a single view's ambiguities call for.

Frames: ``T`` maps the mesh (its own frame and units, unscaled) into the fixed frame, scale
included (upper-left block ``scale * R``). Distances are in metres.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import trimesh

from dpa_ros.geometry.fields import raycasting_scene

#: Point-triangle search structures of the meshes in use, by ``id(mesh)`` (the mesh kept alongside).
_SURFACES: dict[int, tuple] = {}


def apply_transform(T: np.ndarray, points: np.ndarray) -> np.ndarray:
    """``points`` (N, 3) mapped by the 4×4 ``T``."""
    return points @ T[:3, :3].T + T[:3, 3]


def _surface(mesh: trimesh.Trimesh, faces: np.ndarray | None = None):
    """The point-triangle search structure of ``mesh`` (or of its ``faces`` subset, bool per face), cached."""
    key = (id(mesh), None if faces is None else hash(np.packbits(faces).tobytes()))
    hit = _SURFACES.get(key)
    if hit is None or hit[0] is not mesh:
        if len(_SURFACES) > 256:
            _SURFACES.clear()
        part = mesh if faces is None else trimesh.Trimesh(mesh.vertices, mesh.faces[faces], process=False)
        hit = _SURFACES[key] = (mesh, raycasting_scene(part))
    return hit[1]


def facing_faces(mesh: trimesh.Trimesh, T: np.ndarray, origin: np.ndarray) -> np.ndarray:
    """Bool per face of the mesh placed by ``T``: whether its front side faces the point ``origin``
    (fixed frame, a camera's optical centre). A depth point is an observation of such a face."""
    local = apply_transform(np.linalg.inv(T), np.asarray(origin, float)[None])[0]
    centres = np.asarray(mesh.triangles_center)
    return np.einsum("ij,ij->i", np.asarray(mesh.face_normals), local - centres) > 0


def surface_distance(mesh: trimesh.Trimesh, T: np.ndarray, points: np.ndarray,
                     faces: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Distances (metres) of fixed-frame ``points`` to the mesh placed by ``T`` (only its ``faces``,
    bool per face, when given), and their closest points on the mesh in its own frame."""
    import open3d as o3d  # loaded with raycasting_scene already

    if faces is not None and not faces.any():
        faces = None
    local = apply_transform(np.linalg.inv(T), points)
    closest = _surface(mesh, faces).compute_closest_points(o3d.core.Tensor(local.astype(np.float32)))["points"]
    closest = closest.numpy().astype(float)
    return np.linalg.norm(apply_transform(T, closest) - points, axis=1), closest


@dataclass
class ViewPoints:
    """One view's depth points of an object, and that view's own fit of it.

    Attributes:
        points: (N, 3) depth points in the fixed frame, metres.
        origin: (3,) the view's camera optical centre in the fixed frame, metres.
        weight: (N,) 1 / σ² of each point up to one common factor: a depth camera's noise grows
            with depth squared (σ ∝ z², z the point's depth in its view), so weight = z⁻⁴ (m⁻⁴).
        T_fit: 4×4 the view's own fit of the object (``mesh`` → fixed frame, scale included).
        mesh: the mesh of that fit.
    """

    points: np.ndarray
    origin: np.ndarray
    weight: np.ndarray
    T_fit: np.ndarray
    mesh: trimesh.Trimesh


def _residuals(mesh: trimesh.Trimesh, T: np.ndarray, views: list[ViewPoints]) -> tuple[np.ndarray, np.ndarray]:
    """(distances, closest mesh points) of every view's points to the faces of the placed mesh
    that face that view's camera, views concatenated."""
    out = [surface_distance(mesh, T, v.points, facing_faces(mesh, T, v.origin)) for v in views]
    return np.concatenate([d for d, _ in out]), np.concatenate([c for _, c in out])


def _umeyama_weighted(src: np.ndarray, dst: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Similarity transform (4×4) minimising Σ wᵢ ‖s R srcᵢ + t − dstᵢ‖² (weighted Umeyama 1991)."""
    w = w / w.sum()
    mu_s, mu_d = w @ src, w @ dst
    xs, xd = src - mu_s, dst - mu_d
    U, S, Vt = np.linalg.svd((xd * w[:, None]).T @ xs)
    D = np.eye(3)
    if np.linalg.det(U) * np.linalg.det(Vt) < 0:
        D[2, 2] = -1.0
    R = U @ D @ Vt
    var = float(w @ (xs ** 2).sum(1))
    s = float(np.trace(np.diag(S) @ D) / var) if var > 0 else 1.0
    T = np.eye(4)
    T[:3, :3] = s * R
    T[:3, 3] = mu_d - s * R @ mu_s
    return T


def refit_similarity(mesh: trimesh.Trimesh, T: np.ndarray, views: list[ViewPoints], iterations: int) -> np.ndarray:
    """Weighted similarity ICP of the mesh onto the views' points from ``T``: each step pairs every
    point with its closest point on the faces that face its view's camera, keeps the pairs whose
    noise-normalised distance (distance × √weight) is within 2.5 × its median, and solves the
    similarity weighted by the points' weights. Returns the refit 4×4 ``T_fixed_object``."""
    weight = np.concatenate([v.weight for v in views])
    targets = np.concatenate([v.points for v in views])
    for _ in range(iterations):
        d, closest = _residuals(mesh, T, views)
        e = d * np.sqrt(weight)
        keep = e <= 2.5 * np.median(e) + 1e-9
        if keep.sum() < 10:
            break
        T = _umeyama_weighted(closest[keep], targets[keep], weight[keep])
    return T


def _cube_rotations() -> np.ndarray:
    """The 24 rotations that map the axes of a frame onto its axes, signs included ((24, 3, 3))."""
    out = []
    for perm in itertools.permutations(range(3)):
        for signs in itertools.product((1.0, -1.0), repeat=3):
            R = np.zeros((3, 3))
            R[range(3), perm] = signs
            if np.linalg.det(R) > 0:
                out.append(R)
    return np.array(out)


#: Start rotations of a refit, in the mesh's own frame (identity first).
CUBE_ROTATIONS = _cube_rotations()


def turned_starts(T: np.ndarray, mesh: trimesh.Trimesh) -> list[np.ndarray]:
    """``T`` with the mesh first turned by each of :data:`CUBE_ROTATIONS` about its box centre: the
    ambiguities one view can leave (a front taken for a back, an object seen on its side)."""
    centre = np.asarray(mesh.bounds, float).mean(0)
    out = []
    for R in CUBE_ROTATIONS:
        turn = np.eye(4)
        turn[:3, :3], turn[:3, 3] = R, centre - R @ centre
        out.append(T @ turn)
    return out


def truncated_costs(candidates: list[tuple[np.ndarray, trimesh.Trimesh]], views: list[ViewPoints]) -> list[float]:
    """Per (T, mesh) candidate, Σ min(eᵢ, c)² over every view's points, eᵢ a point's distance to
    the faces facing its camera times √weight, and c (one for all) 3 robust standard deviations
    (1.4826 × the median eᵢ) of the best-fitting candidate."""
    weight = np.sqrt(np.concatenate([v.weight for v in views]))
    errors = [_residuals(mesh, T, views)[0] * weight for T, mesh in candidates]
    cut = 3.0 * 1.4826 * min(float(np.median(e)) for e in errors)
    return [float(np.minimum(e, cut) @ np.minimum(e, cut)) for e in errors]
