"""Initialisation: the scan over rotations × scales × shifts, point-to-plane ICP onto the targets,
and which hypotheses start the chains."""
from __future__ import annotations

import math

import numpy as np
import torch
from scipy.spatial.transform import Rotation

from dpa_ros.geometry.layout.config import LayoutConfig
from dpa_ros.geometry.layout.data import _Data
from dpa_ros.geometry.layout.objective import _closest_on_surface, _objective
from dpa_ros.geometry.layout.poses import _Chains, gravity_alignment

#: Where the scan starts a hypothesis of scale ratio q: q × SCAN_DEPTH initial radii behind the
#: visible surface, on the mask's mean ray (behind rather than in front, because ICP from inside
#: the visible surface converges slowly).
SCAN_DEPTH = 0.8


def _scan_starts(loss: torch.Tensor, n_scales: int, keep: int) -> torch.Tensor:
    """Which scan hypotheses start the chains: (G, keep) indices y·S + j into ``loss`` (G, Y, S),
    rotation y, and j over shifts × scales (scale index j mod ``n_scales``).

    When ``keep`` exceeds ``n_scales``, every scale first reserves its best hypothesis over all
    rotations and shifts; the rest are the best scale of each rotation, rotations in order of
    their best score, skipping starts already taken. Ranking rotations alone let one scale take
    every start: the visible part of an object mostly cut or hidden is fitted about as well by a
    smaller mesh in many rotations, and the true size then never got a chain.
    """
    G, Y, S = loss.shape
    L = loss.cpu().numpy()
    starts = []
    for g in range(G):
        picked = []
        if keep > n_scales:
            for q in range(n_scales):
                y, j = np.unravel_index(np.argmin(L[g][:, q::n_scales]), (Y, S // n_scales))
                picked.append(int(y) * S + int(j) * n_scales + q)
        best_scale = L[g].argmin(-1)
        for y in np.argsort(L[g].min(-1), kind="stable"):
            if len(picked) >= keep:
                break
            if int(y) * S + int(best_scale[y]) not in picked:
                picked.append(int(y) * S + int(best_scale[y]))
        starts.append(picked[:keep])
    return torch.as_tensor(starts, device=loss.device)


def _scan(data: _Data, rotations: list[list[np.ndarray]], yaws: list[float], scales: tuple[float, ...], dof: int,
          keep: int, n: int, icp_steps: int, shift: float) -> _Chains:
    """Stage 0: score rotation × scale hypotheses, start ``keep`` chains per group from the best.

    Every (rotation, scale q) hypothesis starts on the mask's mean ray, q × ``SCAN_DEPTH`` initial
    radii behind the visible surface, and (``shift`` > 0) a second one ``shift`` × q initial radii
    from there toward the mask's open boundary (:func:`~dpa_ros.geometry.layout.problem.open_direction`: the
    image border, occluders),
    where an object cut or hidden there continues; ``icp_steps`` point-to-plane, translation-only ICP steps
    then move it onto the target points (closest points from the field, no gradients). The
    objective on the first ``n`` points (field, self-occlusion) scores each hypothesis, and
    :func:`_scan_starts` picks the ``keep`` per group that become the chains (zero Adam moments).
    """
    dev = data.device
    G, Y = len(data.inst), len(yaws)
    # Per rotation: every scale on the mask's ray, then (shift > 0) every scale shifted toward the open boundary.
    shifts = np.repeat(np.asarray([0.0] + [shift] * (shift > 0), np.float32), len(scales))
    scales = tuple(scales) * (1 + (shift > 0))
    S = len(scales)
    R0 = torch.as_tensor(np.stack([np.stack(rotations[i]) for i in data.inst]), dtype=torch.float32, device=dev)
    R0 = R0.repeat_interleave(S, dim=1)                                             # (G, Y·S, 3, 3)
    yaw0 = torch.as_tensor(np.repeat(np.asarray(yaws, np.float32), S), device=dev)[None].repeat(G, 1)
    log_s = torch.as_tensor(np.tile(np.log(np.asarray(scales, np.float32)), Y), device=dev)
    offset = torch.as_tensor(np.tile(shifts, Y), device=dev)[None, :, None]         # (1, Y·S, 1)
    params = {"delta": torch.zeros(G, Y * S, 3, device=dev), "log_s": log_s[None, :, None].repeat(G, 1, 1),
              "omega" if dof == 7 else "yaw": torch.zeros(G, Y * S, 3 if dof == 7 else 1, device=dev)}
    chains = _Chains(R0, yaw0, params, {}, {})
    with torch.no_grad():
        R, s, _ = chains.pose(data)
        # Start on the mask's mean ray, SCAN_DEPTH × the hypothesis' radius behind the visible surface.
        z0 = data.c0[:, None, 2:]
        behind = (SCAN_DEPTH * torch.exp(chains.params["log_s"]) - 0.5) * data.radius[:, None, None]
        c = data.c0[:, None] * (z0 + behind) / z0
        c = c + offset * torch.exp(chains.params["log_s"]) * data.radius[:, None, None] * data.extends[:, None]
        # Hypotheses are independent: ICP and scoring run on blocks of them (bounded memory).
        block = max(1, SCAN_BLOCK_POINTS // (G * n))
        losses = []
        for b in range(0, Y * S, block):
            Rb, sb = R[:, b: b + block], s[:, b: b + block]
            cb = _icp_translation(Rb, sb, c[:, b: b + block], data, n, icp_steps)
            c[:, b: b + block] = cb
            losses.append(_objective(Rb, sb, cb, data, n, data.self_visible(Rb, sb, cb, n)))
        chains.params["delta"] = (c - data.c0[:, None]) / data.radius[:, None, None]
        loss = torch.nan_to_num(torch.cat(losses, 1), nan=math.inf).view(G, Y, S)
        chosen = _scan_starts(loss, S // (1 + (shift > 0)), keep)
    chains = chains.select_params(chosen)
    return chains


#: Most (group, hypothesis, point) triples the scan holds at once (its blocks of hypotheses).
SCAN_BLOCK_POINTS = 1 << 19


def _icp_translation(R: torch.Tensor, s: torch.Tensor, c: torch.Tensor, data: _Data, n: int,
                     steps: int) -> torch.Tensor:
    """Centres (G, K, 3) after ``steps`` point-to-plane ICP steps that move poses (R, s, c) by a
    translation onto the first ``n`` target points (closest points from the field, no gradients).

    The residual to the closest surface point lies along the surface normal there, so each step
    solves (Σ n nᵀ) t = Σ r (n = r / |r|, optical frame, metres), lightly damped."""
    w = data.Xw[:, None, :n, None]
    eye = torch.eye(3, device=c.device)
    for _ in range(steps):
        x_obj, cp = _closest_on_surface(R, s, c, data, n)
        r = s[..., None, None] * torch.einsum("gkij,gkmj->gkmi", R, x_obj - cp)
        nrm = r / torch.linalg.norm(r, dim=-1, keepdim=True).clamp_min(1e-9)
        A = torch.einsum("gkmi,gkmj->gkij", nrm * w, nrm)
        A = A + (1e-3 * A.diagonal(dim1=-2, dim2=-1).sum(-1) + 1e-9)[..., None, None] * eye
        c = c + torch.linalg.solve(A, (r * w).sum(2)[..., None])[..., 0]
    return c


def _scan_rotations(problems, gravity, cfg: LayoutConfig, dof: int) -> tuple[list[list[np.ndarray]], list[float]]:
    """Base rotation per problem and hypothesis, and the yaw added to it (5 DoF: the up axis on
    gravity, ``scan_rotations`` yaws evenly over 360°; 7 DoF: the internal frame's orientation, then
    uniformly random rotations, yaw 0)."""
    R = cfg.scan_rotations
    if dof == 5:
        R_g = gravity_alignment(gravity)
        return [[R_g] * R for _ in problems], [2 * math.pi * k / R for k in range(R)]
    rng = np.random.default_rng([cfg.seed, 7])
    rots = [np.eye(3)] + (list(Rotation.random(R - 1, random_state=rng).as_matrix().reshape(-1, 3, 3))
                          if R > 1 else [])
    return [rots for _ in problems], [0.0] * R
