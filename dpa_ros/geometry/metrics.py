"""Reconstruction metrics of the paper (Table 1), on points sampled from meshes, in metres.

* CD-L1: symmetric L1 Chamfer distance — the mean unsquared Euclidean distance from each
  predicted point to the nearest ground-truth point and vice versa, the two means averaged.
* CD-L1-S: the single direction prediction → ground truth.
* F-score@τ: harmonic mean of precision (share of predicted points within τ of the ground truth)
  and recall (share of ground-truth points within τ of the prediction), in percent.

The paper's protocol (centre the prediction on the ground truth, then register it rigidly) is
available with ``register=True``; it is off by default because the product's poses are metric
and should be scored as they are.
"""
from __future__ import annotations

import numpy as np
import trimesh
from scipy.spatial import cKDTree

from dpa_ros.core.scene import Scene


def sample_scene_points(scene: Scene, count: int, seed: int = 0) -> np.ndarray:
    """``count`` points on all object surfaces of ``scene``, in the optical frame (area-weighted)."""
    if not scene.objects:
        raise ValueError("scene has no objects to sample")
    return sample_mesh_points(trimesh.util.concatenate([o.mesh_in_camera() for o in scene.objects]), count, seed)


def sample_mesh_points(mesh: trimesh.Trimesh, count: int, seed: int = 0) -> np.ndarray:
    """``count`` area-uniform surface points of ``mesh`` (N, 3)."""
    if len(mesh.faces) == 0:
        raise ValueError("mesh has no faces to sample")
    pts, _ = trimesh.sample.sample_surface(mesh, count, seed=seed)
    return np.asarray(pts, float)


def icp_rigid(source: np.ndarray, target: np.ndarray, iterations: int = 30, max_distance: float | None = None
              ) -> np.ndarray:
    """Point-to-point ICP: 4×4 rigid transform that moves ``source`` onto ``target`` (both (N, 3))."""
    tree = cKDTree(target)
    T = np.eye(4)
    src = source.copy()
    for _ in range(iterations):
        dist, idx = tree.query(src)
        keep = dist <= max_distance if max_distance is not None else np.ones(len(src), bool)
        if keep.sum() < 3:
            break
        a, b = src[keep], target[idx[keep]]
        ca, cb = a.mean(0), b.mean(0)
        U, _, Vt = np.linalg.svd((a - ca).T @ (b - cb))
        D = np.diag([1.0, 1.0, np.sign(np.linalg.det(Vt.T @ U.T))])
        R = Vt.T @ D @ U.T
        step = np.eye(4)
        step[:3, :3] = R
        step[:3, 3] = cb - R @ ca
        src = src @ R.T + step[:3, 3]
        T = step @ T
        if np.abs(step[:3, 3]).max() < 1e-7 and np.allclose(R, np.eye(3), atol=1e-9):
            break
    return T


def paper_register(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """The paper's protocol: translate ``pred`` onto the centroid of ``gt``, then rigid ICP onto it."""
    p = pred + (gt.mean(0) - pred.mean(0))
    T = icp_rigid(p, gt)
    return p @ T[:3, :3].T + T[:3, 3]


def point_metrics(pred: np.ndarray, gt: np.ndarray, taus: tuple[float, ...] = (0.1, 0.05)) -> dict[str, float]:
    """CD-L1, CD-L1-S (metres) and F-score@τ (percent) between two point sets (N, 3), (M, 3)."""
    if len(pred) == 0 or len(gt) == 0:
        raise ValueError("metrics need non-empty prediction and ground-truth point sets")
    d_pg, _ = cKDTree(gt).query(pred)
    d_gp, _ = cKDTree(pred).query(gt)
    out = {"cd_l1": float(0.5 * (d_pg.mean() + d_gp.mean())), "cd_l1_s": float(d_pg.mean())}
    for tau in taus:
        precision = float((d_pg < tau).mean())
        recall = float((d_gp < tau).mean())
        f = 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)
        out[f"fscore@{tau:g}"] = 100.0 * f
    return out


def scene_metrics(pred: Scene, gt: Scene, count: int = 20000, taus: tuple[float, ...] = (0.1, 0.05),
                  register: bool = False, seed: int = 0) -> dict[str, float]:
    """Metrics of a predicted scene against a ground-truth scene (all objects together).

    ``register=True`` applies the paper's protocol first: translate the prediction so its centroid
    matches the ground truth's, then rigid ICP onto the ground truth.
    """
    p = sample_scene_points(pred, count, seed)
    g = sample_scene_points(gt, count, seed + 1)
    if register:
        p = paper_register(p, g)
    return point_metrics(p, g, taus)
