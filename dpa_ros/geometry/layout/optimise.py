"""The solver's driver: set-up, the scan, the coarse-to-fine Adam stages, results (:func:`solve_layout`),
and the objective of given poses (:func:`layout_objective`)."""
from __future__ import annotations

import math
from contextlib import contextmanager
from typing import Callable

import numpy as np
import torch

from dpa_ros.core.camera import CameraModel
from dpa_ros.geometry.layout.config import LayoutConfig, checked_config
from dpa_ros.geometry.layout.data import _Data
from dpa_ros.geometry.layout.objective import _objective, _SilhouetteTracker
from dpa_ros.geometry.layout.poses import _Chains, input_frame_pose
from dpa_ros.geometry.layout.problem import LayoutProblem, LayoutResult, _prepare_instance, _prepare_proposal
from dpa_ros.geometry.layout.search import _scan, _scan_rotations
from dpa_ros.geometry.mesh_frames import check_up
from dpa_ros.geometry.targets import InstanceInputError

#: Adam steps between two updates of the mesh's self-occlusion (ray casting); poses move little in between.
VISIBILITY_EVERY = 10


def learning_rate(lr: float, step: int, total: int) -> float:
    """Adam's learning rate at ``step`` of ``total``: ``lr`` cosine-decayed to ``lr`` / 10."""
    return lr * (0.1 + 0.45 * (1 + math.cos(math.pi * step / total)))


def _run_stage(chains: _Chains, data: _Data, n: int, steps: int, step0: int, total: int, lr: float,
               progress: Callable[[int], None] | None) -> None:
    """``steps`` Adam steps (β = 0.9, 0.999) on every chain, learning rate cosine over ``total`` steps; the
    mesh's self-occlusion and an exhaustive silhouette search are refreshed every ``VISIBILITY_EVERY``
    steps (:class:`~dpa_ros.geometry.layout.objective._SilhouetteTracker` follows the nearest samples in between)."""
    b1, b2, eps = 0.9, 0.999, 1e-8
    tracker = _SilhouetteTracker(data, n, VISIBILITY_EVERY)
    for it in range(step0, step0 + steps):
        rate = learning_rate(lr, it, total)
        if (it - step0) % VISIBILITY_EVERY == 0:
            with torch.no_grad():
                visible = data.self_visible(*chains.pose(data), n)
        params = {k: x.detach().requires_grad_(True) for k, x in chains.params.items()}
        loss = _objective(*chains.pose(data, params), data, n, visible, tracker=tracker)
        grads = torch.autograd.grad(loss.sum(), list(params.values()))
        t = it + 1
        with torch.no_grad():
            for (k, x), gk in zip(params.items(), grads):
                chains.m[k] = b1 * chains.m[k] + (1 - b1) * gk
                chains.v[k] = b2 * chains.v[k] + (1 - b2) * gk * gk
                mhat = chains.m[k] / (1 - b1 ** t)
                vhat = chains.v[k] / (1 - b2 ** t)
                chains.params[k] = x.detach() - rate * mhat / (vhat.sqrt() + eps)
        if progress is not None:
            progress(t)


def _setup(problems: list[LayoutProblem], camera: CameraModel, depth, gravity, config):
    cfg, dof, device = checked_config(problems, gravity, config)
    instances, proposals = [], []
    for i, prob in enumerate(problems):
        if not prob.proposals:
            raise InstanceInputError(f"instance {prob.name}: no mesh proposals")
        try:
            up = check_up(prob.up)
        except ValueError as exc:
            raise InstanceInputError(f"instance {prob.name}: {exc}") from exc
        instances.append(_prepare_instance(prob, camera, depth, cfg, [cfg.seed, 1]))
        for p, mesh in enumerate(prob.proposals):
            proposals.append((i, _prepare_proposal(mesh, up, cfg, [cfg.seed, 2, p], prob.name, p)))
    data = _Data(instances, proposals, camera, depth, cfg, device)
    return cfg, dof, data


def solve_layout(problems: list[LayoutProblem], camera: CameraModel, depth: np.ndarray | None = None,
                 gravity: np.ndarray | None = None, config: LayoutConfig | None = None,
                 progress: Callable[[float], None] | None = None) -> list[LayoutResult]:
    """Place every instance: one batched, coarse-to-fine optimisation over instances × proposals × restarts.

    Args:
        problems: instances with their targets and mesh proposals (input convention, see
            :mod:`dpa_ros.geometry.mesh_frames`).
        camera: intrinsics of the image the targets come from.
        depth: the scene's metric depth (H, W) in metres (the observed surface and occlusions); None
            uses only the target points.
        gravity: unit down vector in the optical frame; enables 5 DoF (yaw, c, s) under dof "auto".
        config: solver settings.
        progress: called with the fraction of iterations done.

    Returns one :class:`~dpa_ros.geometry.layout.problem.LayoutResult` per problem, in order. Raises
    :class:`~dpa_ros.geometry.targets.InstanceInputError` naming the instance for unusable meshes.
    """
    cfg = config or LayoutConfig()
    with _cpu_threads(cfg):
        return _solve(problems, camera, depth, gravity, cfg, progress)


@contextmanager
def _cpu_threads(cfg: LayoutConfig):
    before = torch.get_num_threads()
    if cfg.threads and cfg.torch_device().type == "cpu":
        torch.set_num_threads(cfg.threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _solve(problems, camera, depth, gravity, cfg: LayoutConfig, progress) -> list[LayoutResult]:
    cfg, dof, data = _setup(problems, camera, depth, gravity, cfg)
    rots, yaws = _scan_rotations(problems, gravity, cfg, dof)
    stages = cfg.schedule()
    chains = _scan(data, rots, yaws, cfg.scan_scales, dof, cfg.restarts, stages[0][2], cfg.scan_icp_steps,
                   cfg.scan_shift)
    total = sum(t for _, t, _ in stages)
    report = None if progress is None else (lambda t: progress(t / total) if t % max(1, total // 50) == 0 else None)
    step = 0
    for keep, steps, n in stages:
        if keep < chains.R0.shape[1]:
            with torch.no_grad():
                pose = chains.pose(data)
                loss = _objective(*pose, data, cfg.points, data.self_visible(*pose, cfg.points), exact=True)
            chains = chains.select(torch.argsort(loss, dim=1, stable=True)[:, :keep])
        _run_stage(chains, data, n, steps, step, total, cfg.lr, report)
        step += steps
    with torch.no_grad():
        R, s, c = chains.pose(data)
        final = _objective(R, s, c, data, cfg.points, data.self_visible(R, s, c, cfg.points), exact=True)
    return _results(problems, data, R, s, c, final, dof)


def _results(problems, data: _Data, R, s, c, final, dof) -> list[LayoutResult]:
    R, s, c = R.cpu().double().numpy(), s.cpu().double().numpy(), c.cpu().double().numpy()
    final = final.cpu().double().numpy()
    final = np.where(np.isfinite(final), final, np.inf)
    results = []
    for i in range(len(problems)):
        groups = [g for g, inst in enumerate(data.inst) if inst == i]
        best = [(g, int(np.argmin(final[g]))) for g in groups]
        errors = [float(final[g, k]) for g, k in best]
        p = int(np.argmin(errors))
        g, k = best[p]
        T = input_frame_pose(R[g, k], float(s[g, k]), c[g, k], data.props[g].R_in, data.props[g].center)
        results.append(LayoutResult(T, float(s[g, k]), errors[p], p, errors, dof))
    return results


def layout_objective(problem: LayoutProblem, camera: CameraModel, depth: np.ndarray | None,
                     poses: list[np.ndarray], proposal: int = 0, config: LayoutConfig | None = None) -> np.ndarray:
    """The solver's objective L for given poses of one proposal of one problem.

    Args:
        problem: the instance (its target and proposals).
        camera, depth: as for :func:`solve_layout`.
        poses: 4×4 T_camera_object of the proposal mesh as given (scale included), each a similarity.
        proposal: which of ``problem.proposals``.
        config: ``points``, ``lambda_2d``, ``occlusion_margin``, ``silhouette_points``,
            ``field_resolution`` and ``seed`` matter (the sample sets are those :func:`solve_layout`
            uses at its final stage with the same config).

    Returns the objective per pose (len(poses),), float.
    """
    cfg = config or LayoutConfig()
    up = check_up(problem.up)
    inst = _prepare_instance(problem, camera, depth, cfg, [cfg.seed, 1])
    prop = _prepare_proposal(problem.proposals[proposal], up, cfg, [cfg.seed, 2, proposal], problem.name,
                             proposal)
    data = _Data([inst], [(0, prop)], camera, depth, cfg, cfg.torch_device())
    Rs, ss, cs = [], [], []
    for T in poses:
        A = np.asarray(T, float)[:3, :3] @ prop.R_in.T          # s·R in the internal frame
        s = float(np.cbrt(np.linalg.det(A)))
        Rs.append(A / s)
        ss.append(s)
        cs.append(np.asarray(T, float)[:3, 3] + A @ prop.center)

    def t(a):
        return torch.as_tensor(np.asarray(a, np.float32), device=data.device)[None]
    with torch.no_grad():
        R, s, c = t(Rs), t(ss), t(cs)
        visible = data.self_visible(R, s, c, cfg.points)
        return _objective(R, s, c, data, cfg.points, visible, exact=True)[0].cpu().double().numpy()
