"""Pose parametrisation: gravity alignment, axis-angle and yaw rotations, the batched chains' parameters
(:class:`_Chains`) and the pose of the mesh as given."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy.spatial.transform import Rotation

from dpa_ros.geometry.layout.data import _Data


def gravity_alignment(gravity: np.ndarray) -> np.ndarray:
    """Rotation that maps the internal frame's down axis (0, 1, 0) onto ``gravity`` (optical frame)."""
    g = np.asarray(gravity, float)
    g = g / np.linalg.norm(g)
    rot, _ = Rotation.align_vectors(g[None], np.array([[0.0, 1.0, 0.0]]))
    return rot.as_matrix()


def skew_exp(w: torch.Tensor) -> torch.Tensor:
    """Rodrigues: rotation matrices (..., 3, 3) from axis-angle vectors (..., 3)."""
    theta2 = (w * w).sum(-1, keepdim=True)
    theta = torch.sqrt(theta2 + 1e-12)
    a = torch.where(theta2 > 1e-8, torch.sin(theta) / theta, 1 - theta2 / 6)[..., None]
    b = torch.where(theta2 > 1e-8, (1 - torch.cos(theta)) / (theta2 + 1e-12), 0.5 - theta2 / 24)[..., None]
    zero = torch.zeros_like(w[..., 0])
    Kx = torch.stack([zero, -w[..., 2], w[..., 1], w[..., 2], zero, -w[..., 0], -w[..., 1], w[..., 0], zero],
                     -1).view(*w.shape[:-1], 3, 3)
    eye = torch.eye(3, dtype=w.dtype, device=w.device).expand_as(Kx)
    return eye + a * Kx + b * (Kx @ Kx)


def yaw_matrix(yaw: torch.Tensor) -> torch.Tensor:
    """Rotations (..., 3, 3) by ``yaw`` (..., radians) about the internal frame's vertical (y) axis."""
    c, s = torch.cos(yaw), torch.sin(yaw)
    z, o = torch.zeros_like(c), torch.ones_like(c)
    return torch.stack([c, z, s, z, o, z, -s, z, c], -1).view(*yaw.shape, 3, 3)


@dataclass
class _Chains:
    """K chains per group: initial rotation, parameters and Adam moments (all (G, K, ...))."""

    R0: torch.Tensor
    yaw0: torch.Tensor
    params: dict[str, torch.Tensor]
    m: dict[str, torch.Tensor]
    v: dict[str, torch.Tensor]

    def pose(self, data: _Data, params=None):
        p = self.params if params is None else params
        if "omega" in p:
            R = skew_exp(p["omega"]) @ self.R0
        else:
            R = self.R0 @ yaw_matrix(self.yaw0 + p["yaw"][..., 0])
        s = data.s0[:, None] * torch.exp(p["log_s"][..., 0])
        c = data.c0[:, None] + data.radius[:, None, None] * p["delta"]
        return R, s, c

    def select(self, idx: torch.Tensor) -> "_Chains":
        """The chains ``idx`` (G, K') of every group, with their Adam moments."""
        return _Chains(_take(self.R0, idx), _take(self.yaw0, idx), {k: _take(x, idx) for k, x in self.params.items()},
                       {k: _take(x, idx) for k, x in self.m.items()}, {k: _take(x, idx) for k, x in self.v.items()})

    def select_params(self, idx: torch.Tensor) -> "_Chains":
        """The chains ``idx`` (G, K') of every group, with fresh (zero) Adam moments."""
        params = {k: _take(x, idx) for k, x in self.params.items()}
        return _Chains(_take(self.R0, idx), _take(self.yaw0, idx), params,
                       {k: torch.zeros_like(x) for k, x in params.items()},
                       {k: torch.zeros_like(x) for k, x in params.items()})


def _take(x: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """``x[g, idx[g, j]]`` for a tensor (G, K, ...) and indices (G, K')."""
    return torch.gather(x, 1, idx.view(*idx.shape, *([1] * (x.dim() - 2))).expand(-1, -1, *x.shape[2:]))


def input_frame_pose(R: np.ndarray, s: float, c: np.ndarray, R_in: np.ndarray, center: np.ndarray) -> np.ndarray:
    """4×4 T_camera_object of the mesh as given: x ↦ s·R·(R_in·x − center) + c, with R (internal frame →
    optical frame), s (metres per mesh unit), c (metres, optical frame) the pose of the mesh's
    ``center`` (internal frame, mesh units) and R_in the input convention → internal frame rotation."""
    T = np.eye(4)
    T[:3, :3] = s * R @ R_in
    T[:3, 3] = c - s * R @ center
    return T
