"""Precomputed fields the layout objective interpolates instead of searching nearest neighbours.

* :func:`closest_point_field` — per mesh proposal, on a regular grid around its surface, the exact
  closest surface point of every grid node (three channels). Interpolated trilinearly, it is
  exact wherever the closest point varies affinely (next to planar parts of the surface), and the
  distance ``|x − cp(x)|`` goes to zero on the surface (an interpolated *distance* grid would have
  a V-shaped floor there).
* :func:`filled_inverse_depth` — per instance, the observed inverse depth inside its mask, holes and
  the outside filled with the nearest valid value. Inverse depth of a plane is affine in pixel
  coordinates, so bilinear interpolation is exact on planar patches.
* :func:`mask_distance` — per instance, the exact Euclidean distance (pixels) from every pixel to
  the mask (scipy's EDT), minus one pixel (a silhouette may reach that far past the mask's pixel
  centres), ≥ 0.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import trimesh
from scipy.ndimage import distance_transform_edt


@dataclass
class ClosestPointField:
    """Closest surface points on a regular grid (mesh units, the mesh's own coordinates).

    Attributes:
        points: (D, D, D, 3) float32, ``points[k, j, i]`` is the surface point closest to the node
            ``lo + (i, j, k) * (hi − lo) / (D − 1)`` — z-major, the layout of torch's ``grid_sample``.
        lo, hi: (3,) corners of the grid box.
    """

    points: np.ndarray
    lo: np.ndarray
    hi: np.ndarray


def raycasting_scene(mesh: trimesh.Trimesh):
    """An open3d ``RaycastingScene`` (a BVH) of ``mesh``: exact closest points and ray casts against it."""
    import open3d as o3d  # heavy import, only when a field or a visibility test needs it

    scene = o3d.t.geometry.RaycastingScene()
    scene.add_triangles(o3d.core.Tensor(np.asarray(mesh.vertices, np.float32)),
                        o3d.core.Tensor(np.asarray(mesh.faces, np.uint32)))
    return scene


def _exact_closest(scene, queries: np.ndarray) -> np.ndarray:
    """Exact closest surface points of ``queries`` on a :func:`raycasting_scene` (point-triangle search)."""
    import open3d as o3d

    return scene.compute_closest_points(o3d.core.Tensor(queries.astype(np.float32)))["points"].numpy()


def _grid_nodes(lo: np.ndarray, hi: np.ndarray, resolution: int) -> np.ndarray:
    """(resolution³, 3) node coordinates, z-major (index k, j, i → node (x_i, y_j, z_k))."""
    axes = [np.linspace(lo[a], hi[a], resolution) for a in range(3)]
    zz, yy, xx = np.meshgrid(axes[2], axes[1], axes[0], indexing="ij")
    return np.stack([xx, yy, zz], -1).reshape(-1, 3)


def _linear_weights(coarse: int, fine: int) -> np.ndarray:
    """(fine, coarse) weights of linear interpolation from ``coarse`` to ``fine`` evenly spaced nodes on an interval."""
    g = np.linspace(0.0, 1.0, fine) * (coarse - 1)
    i0 = np.minimum(np.floor(g).astype(int), coarse - 2)
    f = g - i0
    w = np.zeros((fine, coarse))
    w[np.arange(fine), i0] = 1.0 - f
    w[np.arange(fine), i0 + 1] += f
    return w


def upsampled(values: np.ndarray, resolution: int) -> np.ndarray:
    """Trilinear interpolation of a z-major grid ``values`` (D, D, D, C) at the nodes of a grid of
    ``resolution`` cubed nodes over the same box, (resolution, resolution, resolution, C). Trilinear
    interpolation between two regular grids is separable: one small interpolation matrix per axis."""
    D = values.shape[0]
    w = _linear_weights(D, resolution)
    out = np.tensordot(w, values, axes=(1, 0))                      # (R, D, D, C): z
    out = np.tensordot(w, out, axes=(1, 1)).transpose(1, 0, 2, 3)     # (R, R, D, C): y
    return np.tensordot(w, out, axes=(1, 2)).transpose(1, 2, 0, 3)  # (R, R, R, C): x


def simplified(mesh: trimesh.Trimesh, max_faces: int) -> trimesh.Trimesh:
    """``mesh`` itself when it has at most ``max_faces`` faces, else its quadric edge-collapse
    decimation (Open3D) to ``max_faces`` faces — for fields, where millimetres do not matter."""
    if len(mesh.faces) <= max_faces:
        return mesh
    import open3d as o3d  # heavy import, only when needed

    o3 = o3d.geometry.TriangleMesh(o3d.utility.Vector3dVector(np.asarray(mesh.vertices, float)),
                                   o3d.utility.Vector3iVector(np.asarray(mesh.faces)))
    simple = o3.simplify_quadric_decimation(target_number_of_triangles=int(max_faces))
    return trimesh.Trimesh(np.asarray(simple.vertices), np.asarray(simple.triangles), process=False)


def closest_point_field(mesh: trimesh.Trimesh, resolution: int = 48, margin: float = 0.25,
                        band_cells: float = 3.0) -> ClosestPointField:
    """The closest-point field of ``mesh`` on a grid of ``resolution`` cubed nodes.

    The grid box is the mesh's bounding box grown by ``margin`` × its longest side on every side.
    A coarse grid (a third of the resolution) gets exact closest points everywhere. Fine nodes
    whose coarse estimate puts them within ``band_cells`` fine spacings of the surface (plus half
    a coarse cell diagonal, the estimate's error allowance) get the exact closest point
    (point-triangle); the others, which only matter for poses far from any fit, keep the coarse
    field's trilinear value. Points outside the
    box are the caller's business (clamp to the box, measure to the clamped node's closest point).
    """
    v = np.asarray(mesh.vertices, float)
    lo, hi = v.min(0), v.max(0)
    pad = margin * float(np.max(hi - lo))
    lo, hi = lo - pad, hi + pad
    coarse_res = max(4, resolution // 3)
    scene = raycasting_scene(mesh)
    coarse = _exact_closest(scene, _grid_nodes(lo, hi, coarse_res)).reshape(coarse_res, coarse_res, coarse_res, 3)
    nodes = _grid_nodes(lo, hi, resolution)
    cp = upsampled(coarse.astype(float), resolution).reshape(-1, 3)
    d_est = np.linalg.norm(nodes - cp, axis=1)
    fine = float(np.max((hi - lo) / (resolution - 1)))
    coarse_step = 0.5 * float(np.linalg.norm((hi - lo) / (coarse_res - 1)))
    near = d_est < band_cells * fine + coarse_step
    if near.any():
        cp[near] = _exact_closest(scene, nodes[near])
    return ClosestPointField(cp.reshape(resolution, resolution, resolution, 3).astype(np.float32), lo, hi)


def filled_inverse_depth(depth: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """(H, W) float32 inverse depth (1/m) of the valid pixels of ``mask``, every other pixel taking the
    value of its nearest valid mask pixel; all zeros when the mask has no valid depth."""
    valid = np.asarray(mask, bool) & np.isfinite(depth) & (depth > 0)
    if not valid.any():
        return np.zeros(depth.shape, np.float32)
    _, (iv, iu) = distance_transform_edt(~valid, return_indices=True)
    return (1.0 / depth[iv, iu]).astype(np.float32)


def mask_distance(mask: np.ndarray) -> np.ndarray:
    """(H, W) float32 distance in pixels from each pixel centre to the mask, less one pixel, ≥ 0.

    A mask holds the pixels whose *centre* a silhouette covers, so the silhouette's edge may reach
    up to a pixel past the mask's outermost centres: zero on the mask and on the ring of pixels
    next to it (bilinear in between stays zero), so the true silhouette costs nothing."""
    d = distance_transform_edt(~np.asarray(mask, bool))
    return np.maximum(d - 1.0, 0.0).astype(np.float32)
