"""The batched tensors of every (instance, proposal) group on the solver's device (:class:`_Data`), with
the exact geometric queries against the proposals' surfaces (ray casting, closest points)."""
from __future__ import annotations

import numpy as np
import torch

from dpa_ros.core.camera import CameraModel
from dpa_ros.geometry.fields import raycasting_scene
from dpa_ros.geometry.layout.config import LayoutConfig
from dpa_ros.geometry.layout.problem import _InstanceData, _Proposal


class _Data:
    """Tensors of all (instance, proposal) groups, on the solver's device."""

    def __init__(self, instances: list[_InstanceData], proposals: list[tuple[int, _Proposal]], camera: CameraModel,
                 depth: np.ndarray | None, cfg: LayoutConfig, device: torch.device):
        def t(a, dtype=torch.float32):
            return torch.as_tensor(np.asarray(a), dtype=dtype, device=device)

        self.device = device
        self.inst = [i for i, _ in proposals]
        self.props = [p for _, p in proposals]
        G = len(proposals)
        self.P = t(np.stack([p.samples for p in self.props]))          # (G, n, 3)
        self.N = t(np.stack([p.normals for p in self.props]))
        field = t(np.stack([p.field for p in self.props])).permute(0, 4, 1, 2, 3)                  # (G, 3, D, D, D)
        self.field_slices = field.reshape(G, 3, -1, field.shape[-1]).contiguous()   # (G, 3, D·D, D): row z·D + y
        self.lo = t(np.stack([p.lo for p in self.props]))
        self.span = t(np.stack([p.hi - p.lo for p in self.props]))
        m = max(len(instances[i].X) for i in self.inst)
        k = max(len(instances[i].Q) for i in self.inst)
        X = np.zeros((G, m, 3))
        Xw = np.zeros((G, m))
        Q = np.full((G, k, 2), np.nan)
        for g, i in enumerate(self.inst):
            X[g, : len(instances[i].X)] = instances[i].X
            Xw[g, : len(instances[i].X)] = 1.0
            Q[g, : len(instances[i].Q)] = instances[i].Q
        self.X, self.Xw, self.Q = t(X), t(Xw), t(Q)
        raw = np.full((camera.height, camera.width), np.nan) if depth is None else np.asarray(depth, float)
        valid = np.isfinite(raw) & (raw > 0)
        scene_inv = np.where(valid, 1.0 / np.where(valid, raw, 1.0), 0.0)
        # Per group, the image maps read bilinearly at the projected samples: the terms' values
        # (G, 2, H, W) — the instance's filled inverse depth (1/m) and mask distance (px) — and the
        # weights' (G, 4, H, W) — its mask (1/0), its own surface (1/0,
        # :func:`~dpa_ros.geometry.layout.problem.own_surface`), and the
        # inverse depth (1/m, 0 elsewhere) and validity (1/0) of the pixels that may hide a sample
        # (valid depth, not on a surface the instance stands in front of).
        self.value_maps = t(np.stack([np.stack([instances[i].inv_depth, instances[i].mask_dist])
                                      for i in self.inst]))
        occluders = [valid & ~instances[i].supporting for i in self.inst]     # a floor or wall hides nothing
        self.weight_maps = t(np.stack([np.stack([instances[i].mask, instances[i].own_surface,
                                                 np.where(may_hide, scene_inv, 0.0), may_hide])
                                       for i, may_hide in zip(self.inst, occluders)]))
        self.c0 = t(np.stack([instances[i].c0 for i in self.inst]))
        self.radius = t([instances[i].radius for i in self.inst])
        self.extends = t(np.stack([instances[i].extends for i in self.inst]))             # (G, 3)
        self.s0 = t([instances[i].radius / p.rms_radius for i, p in proposals])
        self.mask_area = t([instances[i].mask_area for i in self.inst])
        self.fx, self.fy, self.cx, self.cy = camera.fx, camera.fy, camera.cx, camera.cy
        self.W, self.H = camera.width, camera.height
        self.f = 0.5 * (camera.fx + camera.fy)
        self.margin = cfg.occlusion_margin
        self.lambda_2d = cfg.lambda_2d
        self.silhouette_points = cfg.silhouette_points
        self._scenes = None

    def self_visible(self, R: torch.Tensor, s: torch.Tensor, c: torch.Tensor, n: int) -> torch.Tensor:
        """(G, K, n) bool: whether the ray from the camera centre to each of the first ``n`` mesh samples,
        for K poses per group, reaches it before any other part of the mesh (exact ray casting
        against the proposal's surface, in its own frame; a tolerance of 1 % of its RMS radius)."""
        import open3d as o3d  # heavy import; the fields already needed it

        R, s, c = R.detach().cpu().numpy(), s.detach().cpu().numpy(), c.detach().cpu().numpy()
        P = self.P[:, :n].cpu().numpy()
        out = np.empty((*s.shape, n), bool)
        for g, scene in enumerate(self._surfaces()):
            eye = np.einsum("kji,kj->ki", R[g], -c[g]) / s[g][:, None]         # camera centre, object frame
            d = P[g][None] - eye[:, None]                                      # (K, n, 3)
            dist = np.linalg.norm(d, axis=-1)
            rays = np.concatenate([np.broadcast_to(eye[:, None], d.shape), d / dist[..., None]], -1)
            hit = scene.cast_rays(o3d.core.Tensor(rays.reshape(-1, 6).astype(np.float32)))["t_hit"].numpy()
            out[g] = hit.reshape(dist.shape) >= dist - 0.01 * self.props[g].rms_radius
        return torch.as_tensor(out, device=self.device)

    def exact_closest(self, x_obj: torch.Tensor) -> torch.Tensor:
        """Exact closest surface points (G, K, m, 3) of points ``x_obj`` (G, K, m, 3), each group in its
        proposal's frame (point-triangle search on the proposal's surface; no gradient)."""
        import open3d as o3d  # heavy import; the fields already needed it

        x = x_obj.detach().cpu().numpy().astype(np.float32)
        out = np.stack([scene.compute_closest_points(o3d.core.Tensor(x[g].reshape(-1, 3)))["points"].numpy()
                        for g, scene in enumerate(self._surfaces())]).reshape(x.shape)
        return torch.as_tensor(out, device=self.device)

    def sample_graph(self, count: int, neighbours: int) -> torch.Tensor:
        """(G, count, neighbours) long: per proposal, the indices of the ``neighbours`` nearest of its first
        ``count`` surface samples (3D, itself excluded) to each of them."""
        from scipy.spatial import cKDTree

        P = self.P[:, :count].cpu().numpy()
        k = min(neighbours, count - 1)
        out = np.stack([cKDTree(p).query(p, k=k + 1)[1][:, 1:] for p in P]).reshape(len(P), count, k)
        return torch.as_tensor(out, dtype=torch.long, device=self.device)

    def _surfaces(self) -> list:
        """One open3d ray-casting scene per proposal surface (built on first use)."""
        if self._scenes is None:
            self._scenes = [raycasting_scene(prop.surface) for prop in self.props]
        return self._scenes

