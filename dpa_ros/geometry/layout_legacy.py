"""The previous (legacy) layout solver, kept as the reference for :mod:`dpa_ros.geometry.layout`.

It minimises the sample-to-sample objective of the previous release:

    L = CD3D(X_i, s·R·P + t) + λ · CD2D(π(s·R·P + t), Q_i)

with X_i the instance's target points (metres), P surface *samples* of the proposal and Q_i pixel
samples inside its mask (normalised image coordinates). CD is the symmetric L1 Chamfer distance
between point sets: the unsquared nearest-neighbour distance averaged over each set, the two
directions averaged. Its floor falls with sample density (a point's nearest *sample* is farther
than the surface), which is why v2 measures distances to the surface instead. Occlusion: a mesh
sample counts in 3D only when it faces the camera, lies in the instance's mask with valid depth
and is not behind the observed depth by more than ``occlusion_margin``; in 2D a projected sample
is free when something observed is in front of it or it falls outside the image.

Same problems, configuration and results as v2 (:class:`~dpa_ros.geometry.layout.LayoutProblem`,
:class:`~dpa_ros.geometry.layout.LayoutConfig` — ``restarts``, ``iterations``, ``points``, ``lr``,
``lambda_2d``, ``occlusion_margin``, ``dof``, ``seed``, ``device`` apply; no coarse-to-fine
schedule), and the same input convention, converted by
:func:`~dpa_ros.geometry.mesh_frames.rotation_input_to_internal` in :func:`_build_items`.
All instances × proposals × restarts run as one batch (:func:`solve_layout_legacy`); nearest
neighbours are found without autograd in blocks of at most ``block_elements`` distances (an
argument of the two solvers here: the legacy solver's own setting), then
distances are recomputed from the matched pairs with gradients. :func:`solve_layout_loop` is the
exact reference: one problem at a time with a dense distance matrix under autograd, the same
per-step math. Both are for benchmarks and cross-checks; they are slow (N × M per iteration).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
import trimesh
from scipy.spatial.transform import Rotation

from dpa_ros.core.camera import CameraModel
from dpa_ros.core.errors import ConfigError
from dpa_ros.geometry.layout import LayoutConfig, LayoutProblem, LayoutResult, checked_config, gravity_alignment
from dpa_ros.geometry.layout.optimise import learning_rate
from dpa_ros.geometry.layout.poses import input_frame_pose, skew_exp, yaw_matrix
from dpa_ros.geometry.layout.problem import check_mesh, initial_placement
from dpa_ros.geometry.mesh_frames import check_up, rotation_input_to_internal
from dpa_ros.geometry.targets import InstanceInputError


def _mesh_samples(mesh: trimesh.Trimesh, n: int, seed, name: str, index: int) -> tuple[np.ndarray, np.ndarray]:
    check_mesh(mesh, name, index)
    pts, faces = trimesh.sample.sample_surface(mesh, n, seed=seed)
    return np.asarray(pts, float), np.asarray(mesh.face_normals[faces], float)


@dataclass
class _Item:
    """One (instance, proposal, restart) problem in numpy, object points centred on their mean."""

    instance: int
    proposal: int
    P: np.ndarray        # (n, 3) mesh points minus their centroid, object frame
    N: np.ndarray        # (n, 3) normals
    mesh_center: np.ndarray   # internal frame
    R_in: np.ndarray          # input convention → internal frame
    X: np.ndarray        # (m, 3) target points, optical frame
    Q: np.ndarray        # (k, 2) mask samples, normalised image coordinates
    R0: np.ndarray       # initial rotation (7 DoF) or R_g (5 DoF)
    yaw0: float
    c0: np.ndarray       # initial centre
    radius: float        # initial object radius (metres), unit of the translation parameter
    s0: float


def _build_items(problems: list[LayoutProblem], camera: CameraModel, gravity: np.ndarray | None,
                 cfg: LayoutConfig, dof: int) -> list[_Item]:
    items = []
    rot_rng = np.random.default_rng([cfg.seed, 7])
    Kinv = np.linalg.inv(camera.K)
    R_g = gravity_alignment(gravity) if dof == 5 else None
    for i, prob in enumerate(problems):
        if not prob.proposals:
            raise InstanceInputError(f"instance {prob.name}: no mesh proposals")
        X = np.asarray(prob.target.points, float)
        pix = np.asarray(prob.target.pixels, float)
        Q = (np.concatenate([pix, np.ones((len(pix), 1))], 1) @ Kinv.T)[:, :2]
        # Initial size and place from the silhouette, as v2's, but from all target points and mask
        # samples in their given order (v2: a random permutation, at most ``points`` target points).
        c0_inst, r_t = initial_placement(X, Q)
        if dof == 7:
            # The internal frame's orientation (the front facing a level camera), then random ones.
            rots = [np.eye(3)]
            if cfg.restarts > 1:
                rots += list(Rotation.random(cfg.restarts - 1, random_state=rot_rng).as_matrix().reshape(-1, 3, 3))
            yaws = [0.0] * cfg.restarts
        else:
            rots = [R_g] * cfg.restarts
            yaws = [2 * math.pi * k / cfg.restarts for k in range(cfg.restarts)]
        R_in = rotation_input_to_internal(check_up(prob.up))
        for p, mesh in enumerate(prob.proposals):
            if isinstance(mesh, trimesh.Trimesh) and len(mesh.faces):
                mesh = trimesh.Trimesh(np.asarray(mesh.vertices, float) @ R_in.T, np.asarray(mesh.faces), process=False)
            P, N = _mesh_samples(mesh, cfg.points, [cfg.seed, i, p], prob.name, p)
            mc = P.mean(0)
            P = P - mc
            r_m = float(np.sqrt((P ** 2).sum(1).mean()))
            s0 = r_t / r_m
            for r in range(cfg.restarts):
                items.append(_Item(i, p, P, N, mc, R_in, X, Q, np.asarray(rots[r]), yaws[r], c0_inst, r_t, s0))
    return items


@dataclass
class _Batch:
    P: torch.Tensor
    N: torch.Tensor
    Pw: torch.Tensor
    X: torch.Tensor
    Xw: torch.Tensor
    Q: torch.Tensor
    Qw: torch.Tensor
    R0: torch.Tensor
    yaw0: torch.Tensor
    c0: torch.Tensor
    radius: torch.Tensor
    s0: torch.Tensor
    instance: torch.Tensor      # (B,) index into _Scene.masks


def _pad(arrays: list[np.ndarray], device) -> tuple[torch.Tensor, torch.Tensor]:
    n = max(len(a) for a in arrays)
    d = arrays[0].shape[1]
    out = np.zeros((len(arrays), n, d), np.float32)
    w = np.zeros((len(arrays), n), np.float32)
    for b, a in enumerate(arrays):
        out[b, : len(a)] = a
        w[b, : len(a)] = 1.0
    return torch.from_numpy(out).to(device), torch.from_numpy(w).to(device)


def _collate(items: list[_Item], device) -> _Batch:
    P, Pw = _pad([it.P for it in items], device)
    N, _ = _pad([it.N for it in items], device)
    X, Xw = _pad([it.X for it in items], device)
    Q, Qw = _pad([it.Q for it in items], device)

    def t(vals):
        return torch.as_tensor(np.asarray(vals, np.float32), device=device)
    return _Batch(P, N, Pw, X, Xw, Q, Qw, t([it.R0 for it in items]), t([it.yaw0 for it in items]),
                  t([it.c0 for it in items]), t([it.radius for it in items]), t([it.s0 for it in items]),
                  torch.as_tensor([it.instance for it in items], dtype=torch.long, device=device))


def _rotation(params: dict[str, torch.Tensor], batch: _Batch) -> torch.Tensor:
    if "omega" in params:
        return skew_exp(params["omega"]) @ batch.R0
    return batch.R0 @ yaw_matrix(batch.yaw0 + params["yaw"][:, 0])


def _pose(params, batch):
    """(R, s, centre) of every problem; the mesh centroid goes to the centre."""
    R = _rotation(params, batch)
    s = batch.s0 * torch.exp(params["log_s"][:, 0])
    centre = batch.c0 + batch.radius[:, None] * params["delta"]
    return R, s, centre


_FAR = 1.0e4


_GROUPS = 8


def _argmin_two_level(d: torch.Tensor) -> torch.Tensor:
    """argmin over the last dimension (a multiple of ``_GROUPS``), the same answer as ``d.argmin(-1)``
    but faster on CPUs: an element-wise min over ``_GROUPS`` contiguous slices (vectorised),
    an argmin over one slice's width, then an argmin over the ``_GROUPS`` candidates."""
    *lead, m = d.shape
    w = m // _GROUPS
    dv = d.view(*lead, _GROUPS, w)
    col = dv.amin(-2).argmin(-1)
    cand = torch.gather(dv, -1, col[..., None, None].expand(*lead, _GROUPS, 1)).squeeze(-1)
    return cand.argmin(-1) * w + col


def _nn_blocked(query: torch.Tensor, ref: torch.Tensor, ref_w: torch.Tensor, block: int) -> torch.Tensor:
    """Index (B, n) of each query point's nearest valid reference point, without autograd.

    Squared distances come from one small matmul per block of at most ``block`` entries
    (|q|² − 2 q·r + |r|² as a (d+2)-term dot product, written into one reused buffer); both sets
    are centred per problem on the reference mean first (float32 precision). Invalid and padding
    reference points are moved far away so they never win.
    """
    with torch.no_grad():
        mean = (ref * ref_w[..., None]).sum(1, keepdim=True) / ref_w.sum(1).clamp_min(1.0)[:, None, None]
        r = torch.where(ref_w[..., None] > 0, ref - mean, torch.full_like(ref, _FAR))
        pad = -r.shape[1] % _GROUPS
        if pad:
            r = torch.cat([r, torch.full_like(r[:, :pad], _FAR)], 1)
        q = query - mean
        qa = torch.cat([-2.0 * q, torch.ones_like(q[..., :1]), (q * q).sum(-1, keepdim=True)], -1)   # (B, n, d+2)
        raT = torch.cat([r, (r * r).sum(-1, keepdim=True), torch.ones_like(r[..., :1])], -1)
        raT = raT.transpose(1, 2).contiguous()
        B, n, _ = q.shape
        m = r.shape[1]
        out = torch.empty((B, n), dtype=torch.long, device=q.device)
        rows = max(1, min(n, block // m))
        bs = max(1, block // (rows * m))
        buf = torch.empty(bs * rows * m, dtype=q.dtype, device=q.device)
        for b0 in range(0, B, bs):
            b1 = min(B, b0 + bs)
            for r0 in range(0, n, rows):
                r1 = min(n, r0 + rows)
                d = buf[: (b1 - b0) * (r1 - r0) * m].view(b1 - b0, r1 - r0, m)
                torch.bmm(qa[b0:b1, r0:r1], raT[b0:b1], out=d)
                out[b0:b1, r0:r1] = _argmin_two_level(d)
        return out


def _directed_blocked(query, ref, ref_w, block):
    """Per-query distance (B, n) to the nearest valid reference point, differentiable in both sets."""
    idx = _nn_blocked(query, ref, ref_w, block)
    matched = torch.gather(ref, 1, idx[..., None].expand(-1, -1, ref.shape[-1]))
    return torch.sqrt(((query - matched) ** 2).sum(-1) + 1e-12)


def _directed_dense(query, ref, ref_w, block):
    """Reference: the dense (n, m) distance matrix under autograd, min over references.

    Centred on the reference mean like :func:`_nn_blocked`, so cdist's matmul formula keeps
    float32 precision at centimetre distances.
    """
    mean = (ref * ref_w[..., None]).sum(1, keepdim=True) / ref_w.sum(1).clamp_min(1.0)[:, None, None]
    ref = torch.where(ref_w[..., None] > 0, ref - mean, torch.full_like(ref, _FAR))
    return torch.cdist(query - mean, ref).min(-1).values


def _wmean(values: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    return (values * w).sum(-1) / w.sum(-1).clamp_min(1.0)


@dataclass
class _Scene:
    """Camera and observed depth as tensors for the occlusion tests."""

    fx: float
    fy: float
    cx: float
    cy: float
    width: int
    height: int
    depth: torch.Tensor | None      # (H*W,) metres, NaN invalid
    masks: torch.Tensor             # (instances*H*W,) bool, instance-major
    margin: float


def _objective(params, batch: _Batch, scene: _Scene, lambda_2d: float, directed, block) -> torch.Tensor:
    """Per-problem objective (B,) — see the module docstring."""
    R, s, centre = _pose(params, batch)
    pts = s[:, None, None] * (batch.P @ R.transpose(1, 2)) + centre[:, None, :]
    z = pts[..., 2].clamp_min(1e-3)
    proj = pts[..., :2] / z[..., None]
    with torch.no_grad():
        normals = batch.N @ R.transpose(1, 2)
        facing = (normals * pts).sum(-1) < 0
        u = torch.round(proj[..., 0] * scene.fx + scene.cx)
        v = torch.round(proj[..., 1] * scene.fy + scene.cy)
        in_img = (u >= 0) & (u < scene.width) & (v >= 0) & (v < scene.height) & (pts[..., 2] > 1e-3)
        flat = (v.clamp(0, scene.height - 1) * scene.width + u.clamp(0, scene.width - 1)).long()
        # Only points seen inside the instance's own mask can match its 3D points; silhouette
        # overlap with the outside is the 2D term's business.
        in_mask = in_img & scene.masks[batch.instance[:, None] * (scene.width * scene.height) + flat]
        if scene.depth is not None:
            obs = scene.depth[flat]
            seen = torch.isfinite(obs)             # no depth there: nothing to match in 3D
            hidden = in_img & seen & (obs < pts[..., 2] - scene.margin)
        else:
            seen = torch.ones_like(in_img)
            hidden = torch.zeros_like(in_img)
        visible = batch.Pw.bool() & facing & in_mask & seen & ~hidden
        w3 = visible.float()
        # A problem with no visible point (a bad restart) falls back to all its points.
        w3 = torch.where(w3.sum(-1, keepdim=True) > 0, w3, batch.Pw)
        w2 = (batch.Pw.bool() & in_img & ~hidden).float()
    cd3 = 0.5 * (_wmean(directed(batch.X, pts, batch.Pw, block), batch.Xw)
                 + _wmean(directed(pts, batch.X, batch.Xw, block), w3))
    if lambda_2d == 0:
        return cd3
    cd2 = 0.5 * (_wmean(directed(batch.Q, proj, batch.Pw, block), batch.Qw)
                 + _wmean(directed(proj, batch.Q, batch.Qw, block), w2))
    return cd3 + lambda_2d * cd2


def _optimise(batch: _Batch, scene: _Scene, cfg: LayoutConfig, dof: int, directed, block,
              progress: Callable[[float], None] | None = None) -> tuple[dict, torch.Tensor]:
    B = batch.P.shape[0]
    dev = batch.P.device
    params = {"delta": torch.zeros(B, 3, device=dev, requires_grad=True),
              "log_s": torch.zeros(B, 1, device=dev, requires_grad=True)}
    if dof == 7:
        params["omega"] = torch.zeros(B, 3, device=dev, requires_grad=True)
    else:
        params["yaw"] = torch.zeros(B, 1, device=dev, requires_grad=True)
    opt = torch.optim.Adam(list(params.values()), lr=cfg.lr)
    T = cfg.iterations
    report_every = max(1, T // 50)
    for it in range(T):
        for group in opt.param_groups:
            group["lr"] = learning_rate(cfg.lr, it, T)
        opt.zero_grad(set_to_none=True)
        loss = _objective(params, batch, scene, cfg.lambda_2d, directed, block)
        loss.sum().backward()
        opt.step()
        if progress is not None and (it + 1) % report_every == 0:
            progress((it + 1) / T)
    with torch.no_grad():
        final = _objective(params, batch, scene, cfg.lambda_2d, directed, block)
    return {k: v.detach() for k, v in params.items()}, final


def _setup(problems, camera, depth, gravity, cfg, block_elements: int | None):
    """Validated config, DoF, device, NN block size, scene tensors and problem items."""
    cfg, dof, device = checked_config(problems, gravity, cfg)
    if block_elements is not None and block_elements < 1:
        raise ConfigError(f"legacy solver block_elements must be >= 1 or None, got {block_elements}")
    block = block_elements or (2 ** 27 if device.type == "cuda" else 2 ** 19)
    dt = None
    if depth is not None:
        d = np.asarray(depth, np.float32).reshape(-1)
        dt = torch.from_numpy(np.where(np.isfinite(d) & (d > 0), d, np.nan).astype(np.float32)).to(device)
    masks = torch.from_numpy(np.concatenate([np.asarray(p.target.mask, bool).reshape(-1) for p in problems])).to(device)
    scene = _Scene(camera.fx, camera.fy, camera.cx, camera.cy, camera.width, camera.height, dt, masks,
                   cfg.occlusion_margin)
    items = _build_items(problems, camera, gravity, cfg, dof)
    return cfg, dof, device, block, scene, items


def _results(problems, items, params, losses, batch: _Batch, dof) -> list[LayoutResult]:
    with torch.no_grad():
        R, s, centre = _pose(params, batch)
    R, s, centre = R.cpu().double().numpy(), s.cpu().double().numpy(), centre.cpu().double().numpy()
    losses = losses.cpu().double().numpy()
    results = []
    for i, prob in enumerate(problems):
        best_per_prop = []
        for p in range(len(prob.proposals)):
            idx = [b for b, it in enumerate(items) if it.instance == i and it.proposal == p]
            best_per_prop.append(min(idx, key=lambda b: (not np.isfinite(losses[b]), losses[b])))
        errors = [float(losses[b]) for b in best_per_prop]
        p_best = int(np.nanargmin(errors)) if np.any(np.isfinite(errors)) else 0
        b = best_per_prop[p_best]
        # The mesh centroid (internal frame) goes to `centre`.
        T = input_frame_pose(R[b], s[b], centre[b], items[b].R_in, items[b].mesh_center)
        results.append(LayoutResult(T, float(s[b]), errors[p_best], p_best, errors, dof))
    return results


def solve_layout_legacy(problems: list[LayoutProblem], camera: CameraModel, depth: np.ndarray | None = None,
                 gravity: np.ndarray | None = None, config: LayoutConfig | None = None,
                 progress: Callable[[float], None] | None = None, block_elements: int | None = None
                 ) -> list[LayoutResult]:
    """The legacy solver: one batched optimisation over instances × proposals × restarts.

    Args:
        problems: instances with their targets and mesh proposals (input convention).
        camera: intrinsics of the image the targets come from.
        depth: the scene's metric depth (H, W) in metres, for occlusion reasoning; None disables it.
        gravity: unit down vector in the optical frame; enables 5 DoF (yaw, t, s) under dof "auto".
        config: solver settings.
        progress: called with the fraction of iterations done.
        block_elements: most (query, reference) distances one nearest-neighbour block holds
            (bounds the memory of the search); None: 2²⁷ on CUDA, 2¹⁹ on the CPU.

    Returns one :class:`LayoutResult` per problem, in order. Raises
    :class:`~dpa_ros.geometry.targets.InstanceInputError` naming the instance for unusable meshes.
    """
    cfg, dof, device, block, scene, items = _setup(problems, camera, depth, gravity, config, block_elements)
    batch = _collate(items, device)
    params, losses = _optimise(batch, scene, cfg, dof, _directed_blocked, block, progress)
    return _results(problems, items, params, losses, batch, dof)


def solve_layout_loop(problems: list[LayoutProblem], camera: CameraModel, depth: np.ndarray | None = None,
                      gravity: np.ndarray | None = None, config: LayoutConfig | None = None,
                      progress: Callable[[float], None] | None = None, block_elements: int | None = None
                      ) -> list[LayoutResult]:
    """The reference way: same objective, initialisation and optimiser as :func:`solve_layout_legacy`,
    but one (instance, proposal, restart) at a time in a Python loop, each with a dense distance
    matrix under autograd. For benchmarks and cross-checks; slow."""
    cfg, dof, device, block, scene, items = _setup(problems, camera, depth, gravity, config, block_elements)
    outs = []
    for k, it in enumerate(items):
        one = _collate([it], device)
        params, loss = _optimise(one, scene, cfg, dof, _directed_dense, block)
        outs.append((params, loss))
        if progress is not None:
            progress((k + 1) / len(items))
    params = {key: torch.cat([p[key] for p, _ in outs]) for key in outs[0][0]}
    losses = torch.cat([loss for _, loss in outs])
    return _results(problems, items, params, losses, _collate(items, device), dof)
