"""Layout solver: pose, scale and proposal choice per instance, batched, with field lookups.

Input meshes follow the contract of :mod:`dpa_ros.geometry.mesh_frames` (glTF: +Y up, front +Z;
another ``up`` per problem); :func:`~dpa_ros.geometry.mesh_frames.input_to_internal` turns them
into the solver's internal frame once, here in :func:`_prepare_proposal`, and every returned
``T_camera_object`` maps the mesh as given (its own frame and units) into the camera optical frame.

For every instance, mesh proposal and restart the solver optimises a similarity transform
(rotation R, centre c, uniform scale s; 7 DoF, or 5 DoF — yaw about gravity, c, s — when
gravity is known) that places the proposal's surface in the optical frame (metres), minimising

    L = ½ (D(X → S) + D(S_vis → observed)) + λ · ½ (D2(π(S) → mask) + D2(mask → π(S)))

* ``D(X → S)``: mean distance (m) of the instance's target points X to the placed mesh *surface*,
  from a closest-point field of the proposal (:func:`~dpa_ros.geometry.fields.closest_point_field`)
  interpolated trilinearly in the object frame. No sample floor: the distance is zero on the surface.
* ``D(S_vis → observed)``: mean distance (m) from each *visible* mesh surface sample to the observed
  surface along its camera ray: ``|z − z_obs(u, v)| · |(x/z, y/z, 1)|``, with ``z_obs`` from the
  instance's inverse depth, bilinear (exact on planes). A sample is visible when it faces the
  camera, the mesh does not hide it from the camera (rays cast against the proposal's surface,
  refreshed every ``VISIBILITY_EVERY`` steps), it projects inside the image and into the
  instance's own surface (:func:`own_surface`: at least one pixel inside its mask and off any
  depth edge, so the bilinear depth is interpolated on that surface, never extrapolated past the
  mask or the image border), and the observed surface is not in front of it by more than
  ``occlusion_margin`` (else another object hides it; the problem's ``supporting`` pixels — the
  fitted floor and walls it stands in front of — hide nothing, so a part sunk into the floor
  pays). Parts cut by the image border, hidden by other objects or by the object itself, or
  facing away therefore cost nothing. Except for the self-occlusion, each test is a weight
  continuous in the pose (the mask read bilinearly; ramps over the pixel past the border, over
  1–2 × ``occlusion_margin`` and the last ``FACING_RAMP`` of the cosine), and the mean carries a
  prior of ``M2T_PRIOR`` samples' worth of D(X → S): a mean over few samples that jumps as one
  crosses an edge sends the gradient steps uphill.
* ``D2(π(S) → mask)``: mean distance (normalised image units, ≈ radians) of projected mesh samples
  to the mask, from the mask's exact Euclidean distance transform less one pixel (a silhouette
  covers a mask pixel's centre, so its edge may reach a pixel further), bilinear; free outside
  the image and where an observed surface (not a supporting one) is in front of the sample
  (occlusion).
* ``D2(mask → π(S))``: mean distance of at most ``silhouette_points`` mask samples to the nearest
  of twice as many projected mesh samples (the only nearest-neighbour search left), minus 1.5 ×
  the mean spacing of the projected samples that land in the mask (a hinge), so a mask pixel
  inside the silhouette costs nothing. Twice as many, because the hinge, a free margin, shrinks
  as they get denser.

Normalised image units are ((u − cx)/fx, (v − cy)/fy). Each term costs O(N + M) per iteration
except the silhouette search, which is bounded by 2 × ``silhouette_points``².

The gradient steps read closest points from the field; every score that chooses (between stages,
the final objective, :func:`layout_objective`) uses exact closest points (point-triangle search),
which a field cannot give for surfaces closer together than its cells (both faces of a board).

Initialisation, a scan (:func:`_scan`): the initial size from the mask (its RMS radius in the
image plane times the target's median depth) times each of ``scan_scales``, for each of
``scan_rotations`` rotations (7 DoF — the internal frame's orientation, the front facing the
camera, then uniformly random rotations; 5 DoF — the up axis on gravity and yaws evenly spaced
over 360°). Each hypothesis starts on the mask's mean ray behind the visible surface; a few
point-to-plane ICP steps on the field move its centre onto the target points, then it is scored.
Each scale's best hypothesis (over rotations and shifts) starts a chain, and the rest of the
``restarts`` start from the best scale of each of the best rotations (:func:`_scan_starts`).
Parameters are dimensionless (centre in units of the initial radius, log-scale, rotation in
radians), optimised by Adam with one learning rate, cosine-decayed to a tenth over all
iterations.

Coarse-to-fine schedule (:meth:`LayoutConfig.schedule`): stage 1 runs every restart on a coarse
point subset; then only the best ``keep_restarts`` restarts of each (instance, proposal) go on,
on more points, and the last stage refines the best one on all ``points``. Which restarts go on is
scored exactly on all ``points``: on the coarse subset, a chain still converging into a narrow
basin (a mostly hidden object) often ranked below a wrong one. Every surviving chain runs
``iterations`` Adam steps in total. The final objective, at full size, picks the best restart per
proposal (``proposal_errors``) and the best proposal per instance; all proposals of an instance
are scored on the same target points and mask samples.

All chains run as one batch: the objective is a sum of independent per-chain objectives and
Adam is element-wise, so each chain follows the trajectory it would follow alone
(:func:`layout_objective` evaluates the same objective for given poses, one problem at a time).
:mod:`dpa_ros.geometry.layout_legacy` keeps the previous solver (sample-to-sample Chamfer) and
its per-problem reference loop.
"""
from __future__ import annotations

import math
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
import trimesh
from scipy.ndimage import maximum_filter, minimum_filter
from scipy.spatial.transform import Rotation

from dpa_ros.geometry.camera import CameraModel
from dpa_ros.geometry.fields import (
    closest_point_field,
    filled_inverse_depth,
    mask_distance,
    raycasting_scene,
    simplified,
)
from dpa_ros.geometry.mesh_frames import check_up, rotation_input_to_internal
from dpa_ros.geometry.targets import InstanceInputError, InstanceTarget


@dataclass
class LayoutConfig:
    """Layout solver settings. Defaults fit a 4-object scene in a few seconds on a 2-core CPU;
    :meth:`paper` gives the paper's sizes.

    Attributes:
        lambda_2d: weight λ of the 2D terms (normalised image units, see module docstring).
        restarts: chains Adam optimises per (instance, proposal), the best of the scan (paper: 10).
        iterations: Adam steps of every surviving chain, over all stages (paper: ~1000).
        points: mesh surface samples per proposal and most target points per instance at the
            final stage (paper: 5000).
        lr: Adam learning rate of the dimensionless parameters; cosine-decayed to lr/10.
        seed: seeds point sampling and restart rotations; same seed, same result on the CPU with a
            fixed thread count.
        device: "cpu", "cuda" or "auto" (CUDA when available).
        dof: "auto" (5 when gravity is known, else 7), "7" (full rotation) or "5" (yaw about
            gravity; needs gravity).
        occlusion_margin: metres an observed surface must lie in front of a mesh sample to hide it.
        keep_restarts: restarts per (instance, proposal) kept after stage 1.
        coarse_points: points per side in stage 1 (at most ``points``).
        silhouette_points: most mask samples of the mask → silhouette search (at most half the
            stage's points; it searches among twice as many projected mesh samples).
        field_resolution: nodes per axis of each proposal's closest-point field.
        scan_rotations: rotations the initial scan tries per (instance, proposal); at least ``restarts``.
        scan_scales: scales the scan tries, relative to the size the mask suggests.
        scan_icp_steps: point-to-plane ICP steps (translation) of every scan hypothesis.
        scan_shift: every scan hypothesis of scale ratio q is tried a second time, shifted
            ``scan_shift`` × q initial radii toward where the mask is cut by the image border or
            hidden by something in front (:func:`open_direction`); 0 disables (half the hypotheses).
        depth_smoothing: side (pixels) of the window each instance's depth is averaged over inside its
            mask before its targets are built (:func:`~dpa_ros.geometry.targets.smooth_depth_in_masks`,
            by :func:`~dpa_ros.assemble.assemble_scene`; not at depth edges of more than
            2 × ``occlusion_margin``); 0 or 1 fits the depth as measured.
        threads: torch CPU threads while the solver runs (restored afterwards); None keeps torch's
            setting (by default one per physical core: on a 2-core CPU the default 4-object scene's
            layout takes about 20 % less wall time with 2 threads than with 1, the paper's sizes
            about 35 % less). 1 leaves the other cores to other work.
        block_elements: accepted for compatibility with the legacy solver's configs; unused here.
    """

    lambda_2d: float = 4.0
    restarts: int = 10
    iterations: int = 300
    points: int = 1500
    lr: float = 0.03
    seed: int = 0
    device: str = "auto"
    dof: str = "auto"
    occlusion_margin: float = 0.05
    keep_restarts: int = 3
    coarse_points: int = 200
    silhouette_points: int = 200
    field_resolution: int = 48
    scan_rotations: int = 36
    scan_scales: tuple[float, ...] = (0.8, 1.0, 1.25, 1.55, 1.95)
    scan_icp_steps: int = 3
    scan_shift: float = 1.0
    depth_smoothing: int = 5
    threads: int | None = None
    block_elements: int | None = None

    @classmethod
    def paper(cls, **overrides) -> "LayoutConfig":
        """The paper's sizes: 10 restarts, 1000 iterations, 5000 points per side (schedule: :meth:`schedule`),
        with 400 silhouette samples a side and 64³ closest-point fields."""
        return replace(cls(restarts=10, iterations=1000, points=5000, silhouette_points=400, field_resolution=64),
                       **overrides)

    def validate(self) -> "LayoutConfig":
        if self.restarts < 1 or self.iterations < 1 or self.points < 10:
            raise ValueError(f"layout config needs restarts >= 1, iterations >= 1, points >= 10: {self}")
        if self.dof not in ("auto", "5", "7"):
            raise ValueError(f"layout dof must be 'auto', '5' or '7', got {self.dof!r}")
        if self.device not in ("auto", "cpu", "cuda") and not str(self.device).startswith("cuda:"):
            raise ValueError(f"layout device must be 'cpu', 'cuda' or 'auto', got {self.device!r}")
        if self.lambda_2d < 0 or self.lr <= 0 or self.occlusion_margin < 0:
            raise ValueError(f"layout needs lambda_2d >= 0, lr > 0 and occlusion_margin >= 0: {self}")
        if self.keep_restarts < 1 or self.coarse_points < 10 or self.silhouette_points < 10:
            raise ValueError(f"layout needs keep_restarts >= 1, coarse_points >= 10, silhouette_points >= 10: {self}")
        if self.scan_rotations < self.restarts or not self.scan_scales or min(self.scan_scales) <= 0 \
                or self.scan_icp_steps < 0 or self.scan_shift < 0:
            raise ValueError("layout needs scan_rotations >= restarts, positive scan_scales, scan_icp_steps >= 0 and "
                             "scan_shift >= 0: "
                             f"{self}")
        if self.depth_smoothing < 0:
            raise ValueError(f"layout depth_smoothing must be >= 0 pixels, got {self.depth_smoothing}")
        if self.field_resolution < 8:
            raise ValueError(f"layout field_resolution must be >= 8, got {self.field_resolution}")
        if self.threads is not None and self.threads < 1:
            raise ValueError(f"layout threads must be >= 1 or None, got {self.threads}")
        return self

    def torch_device(self) -> torch.device:
        if self.device == "auto":
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        if str(self.device).startswith("cuda") and not torch.cuda.is_available():
            raise ValueError(f"layout device {self.device!r} requested but CUDA is not available")
        return torch.device(self.device)

    def schedule(self) -> list[tuple[int, int, int]]:
        """The coarse-to-fine stages as (restarts per proposal, iterations, points per side).

        1. every restart, 30 % of ``iterations``, ``min(coarse_points, points)`` points;
        2. the best ``keep_restarts`` restarts per proposal (scored exactly on all ``points``), 60 % of
           the iterations,
           ``max(coarse_points, points // 8)`` points (at most ``points``);
        3. the best restart per proposal (scored likewise), the remaining 10 %, all ``points``.

        Each stage starts from where the previous one left its chains (parameters and Adam
        moments); every surviving chain runs ``iterations`` steps in total. Stages with no
        iterations (tiny ``iterations``) are dropped.
        """
        T, n = self.iterations, self.points
        coarse = min(self.coarse_points, n)
        t1 = max(1, round(0.30 * T))
        t3 = max(1, round(0.10 * T)) if T - t1 >= 2 else 0
        stages = [(self.restarts, t1, coarse),
                  (min(self.keep_restarts, self.restarts), T - t1 - t3, min(n, max(coarse, n // 8))),
                  (1, t3, n)]
        return [s for s in stages if s[1] > 0]


@dataclass
class LayoutProblem:
    """One instance to place: its target and its mesh proposals.

    Attributes:
        name: names the instance in error messages.
        target: the instance's target points and mask.
        proposals: candidate meshes in the input convention (any origin and scale).
        up: the proposals' up axis (:data:`~dpa_ros.geometry.mesh_frames.UP_AXES`; "+y" = glTF).
        supporting: (H, W) bool, pixels of the scene's supporting surfaces that this instance stands
            in front of (the fitted floor and walls, :func:`~dpa_ros.geometry.planes.supporting_pixels`),
            or None. Nothing stands behind them, so they hide no part of it: a mesh sample behind one
            (sunk into the floor) is charged like any sample outside the mask instead of counting as
            occluded.
    """

    name: str
    target: InstanceTarget
    proposals: list[trimesh.Trimesh]
    up: str = "+y"
    supporting: np.ndarray | None = None


@dataclass
class LayoutResult:
    """The placement of one instance.

    Attributes:
        T_camera_object: 4×4 similarity transform from the winning mesh as given (its own frame and
            units) to the camera optical frame (metres); upper-left block s·R.
        scale: uniform scale s (metres per mesh unit).
        fit_error: the objective L of the winning proposal and restart.
        proposal_index: index of the winning proposal.
        proposal_errors: best objective per proposal.
        dof: 5 or 7.
    """

    T_camera_object: np.ndarray
    scale: float
    fit_error: float
    proposal_index: int
    proposal_errors: list[float] = field(default_factory=list)
    dof: int = 7


def gravity_alignment(gravity: np.ndarray) -> np.ndarray:
    """Rotation that maps the internal frame's down axis (0, 1, 0) onto ``gravity`` (optical frame)."""
    g = np.asarray(gravity, float)
    g = g / np.linalg.norm(g)
    rot, _ = Rotation.align_vectors(g[None], np.array([[0.0, 1.0, 0.0]]))
    return rot.as_matrix()


def _check_mesh(mesh, name: str, index: int) -> None:
    if not isinstance(mesh, trimesh.Trimesh) or len(mesh.faces) == 0:
        raise InstanceInputError(f"instance {name}: mesh proposal {index} has no faces")
    v = np.asarray(mesh.vertices, float)
    if not np.all(np.isfinite(v)) or float(mesh.area) <= 0 or np.ptp(v, axis=0).max() <= 0:
        raise InstanceInputError(f"instance {name}: mesh proposal {index} is degenerate (zero area or non-finite)")


#: Faces of the mesh a closest-point field is computed on (larger meshes are decimated first; the
#: field's own resolution is coarser than what decimation to this size changes).
FIELD_MAX_FACES = 20000


@dataclass
class _Proposal:
    """One proposal in the internal frame, centred on its surface-sample mean (mesh units)."""

    R_in: np.ndarray         # input frame → internal frame
    center: np.ndarray       # sample mean, internal frame (subtracted from everything below)
    samples: np.ndarray      # (points, 3) surface samples, random order
    normals: np.ndarray      # (points, 3)
    field: np.ndarray        # (D, D, D, 3) closest points
    lo: np.ndarray
    hi: np.ndarray
    rms_radius: float
    surface: trimesh.Trimesh  # the (simplified) centred mesh: self-occlusion rays are cast against it


def _prepare_proposal(mesh: trimesh.Trimesh, up: str, cfg: LayoutConfig, seed, name: str, index: int) -> _Proposal:
    _check_mesh(mesh, name, index)
    R_in = rotation_input_to_internal(up)           # the one conversion of the input convention
    internal = trimesh.Trimesh(np.asarray(mesh.vertices, float) @ R_in.T, np.asarray(mesh.faces), process=False)
    pts, faces = trimesh.sample.sample_surface(internal, cfg.points, seed=seed)
    center = pts.mean(0)
    internal.apply_translation(-center)
    surface = simplified(internal, FIELD_MAX_FACES)
    cpf = closest_point_field(surface, cfg.field_resolution)
    pts = np.asarray(pts, float) - center
    return _Proposal(R_in, center, pts, np.asarray(internal.face_normals[faces], float), cpf.points, cpf.lo, cpf.hi,
                     float(np.sqrt((pts ** 2).sum(1).mean())), surface)


@dataclass
class _InstanceData:
    """Per instance, numpy: targets in random order and the 2D maps."""

    X: np.ndarray            # (m, 3) target points, optical frame
    Q: np.ndarray            # (k, 2) mask samples, normalised image coordinates
    inv_depth: np.ndarray    # (H, W) filled inverse depth
    mask_dist: np.ndarray    # (H, W) pixels
    mask: np.ndarray         # (H, W) bool
    c0: np.ndarray           # initial centre
    radius: float            # initial radius (m)
    mask_area: float         # normalised image units²
    own_surface: np.ndarray  # (H, W) bool: pixels whose 2×2 bilinear cells hold only the instance's own surface
    extends: np.ndarray      # (3,) unit direction (optical frame, ⊥ the optical axis) in which the object
    #                          continues past its mask (toward the image border or occluders), or zeros
    supporting: np.ndarray   # (H, W) bool: floor/wall pixels it stands in front of; they hide none of it


def open_direction(mask: np.ndarray, depth: np.ndarray | None, margin: float) -> np.ndarray:
    """(2,) unit direction in the image (pixels: u right, v down) from the mask's centroid toward its
    *open* boundary, where the object may continue unseen, or zeros when less than 10 % of the boundary is open.

    A boundary pixel of the mask (one with a 4-neighbour outside it) is open when that neighbour is
    outside the image, or its observed depth is more than ``margin`` metres nearer than the pixel's
    own (something in front hides the rest). An object cut by the image border or partly hidden
    extends that way, so its centre lies beyond its mask's centroid in that direction."""
    m = np.asarray(mask, bool)
    H, W = m.shape
    pad = np.pad(m, 1, constant_values=False)
    d = None if depth is None else np.pad(np.where(np.isfinite(depth), depth, np.nan), 1, constant_values=np.nan)
    vs, us = np.nonzero(m)
    boundary = np.zeros(len(vs), bool)
    opened = np.zeros(len(vs), bool)
    for dv, du in ((-1, 0), (1, 0), (0, -1), (0, 1)):
        nv, nu = vs + dv, us + du
        outside = ~pad[nv + 1, nu + 1]
        boundary |= outside
        off_image = (nv < 0) | (nv >= H) | (nu < 0) | (nu >= W)
        opened |= outside & off_image
        if d is not None:
            with np.errstate(invalid="ignore"):
                opened |= outside & (d[nv + 1, nu + 1] < d[vs + 1, us + 1] - margin)
    if opened.sum() < 0.1 * max(1, boundary.sum()):
        return np.zeros(2)
    v = np.array([us[opened].mean() - us.mean(), vs[opened].mean() - vs.mean()])
    norm = float(np.linalg.norm(v))
    return v / norm if norm > 1e-9 else np.zeros(2)


def _prepare_instance(problem: LayoutProblem, camera: CameraModel, depth: np.ndarray | None, cfg: LayoutConfig,
                      seed) -> _InstanceData:
    target, supporting = problem.target, problem.supporting
    rng = np.random.default_rng(seed)
    X = np.asarray(target.points, float)
    X = X[rng.permutation(len(X))][: cfg.points]
    pix = np.asarray(target.pixels, float)
    pix = pix[rng.permutation(len(pix))]
    Kinv = np.linalg.inv(camera.K)
    Q = (np.concatenate([pix, np.ones((len(pix), 1))], 1) @ Kinv.T)[:, :2]
    # Initial size and place from the silhouette (robust to depth holes and partial depth): the
    # mask's RMS radius in the image plane times the target's median depth, over sqrt(2/3) (the
    # RMS radius of a projected isotropic cloud); centre on the mask's mean ray, half a radius
    # behind the visible surface.
    z_med = float(np.median(X[:, 2]))
    qc = Q.mean(0)
    r_t = float(np.sqrt(((Q - qc) ** 2).sum(1).mean())) * z_med / math.sqrt(2.0 / 3.0)
    c0 = np.array([qc[0], qc[1], 1.0]) * (z_med + 0.5 * r_t)
    mask = np.asarray(target.mask, bool)
    dmap = depth if depth is not None else _target_depth(target, camera)
    area = float(mask.sum()) / (camera.fx * camera.fy)
    inv_depth = filled_inverse_depth(dmap, mask)
    du, dv = open_direction(mask, dmap, cfg.occlusion_margin)
    extends = np.array([du / camera.fx, dv / camera.fy, 0.0])
    extends = extends / max(float(np.linalg.norm(extends)), 1e-12)
    image = (camera.height, camera.width)
    if supporting is None:
        supporting = np.zeros(image, bool)
    elif np.shape(supporting) != image:
        raise InstanceInputError(f"instance {problem.name}: supporting pixels are {np.shape(supporting)} but the "
                                 f"image is {image} (height, width)")
    return _InstanceData(X, Q[: cfg.points], inv_depth, mask_distance(mask), mask, c0, r_t, area,
                         own_surface(mask, inv_depth, cfg.occlusion_margin), extends, np.asarray(supporting, bool))


def depth_edges(inv_depth: np.ndarray, jump: float) -> np.ndarray:
    """(H, W) bool: pixels whose 3×3 neighbourhood spans more than ``jump`` metres of depth. Bilinear
    depth there mixes two surfaces (a board's edge and the wall behind it), so a mesh sample landing
    there has no reliable observed depth."""
    near = maximum_filter(inv_depth, size=3)
    far = minimum_filter(inv_depth, size=3)
    return (far <= 0) | (1.0 / np.maximum(far, 1e-9) - 1.0 / np.maximum(near, 1e-9) > jump)


def own_surface(mask: np.ndarray, inv_depth: np.ndarray, jump: float) -> np.ndarray:
    """(H, W) bool: mask pixels that lie one pixel inside the mask (the image border counts as
    outside) and not on a depth edge (:func:`depth_edges`). A point whose bilinear weight on this
    map is positive has at least one such corner, so all four corners of its bilinear cell lie in
    the mask on one surface: the observed depth there is interpolated, never extrapolated past the
    mask, the image border or an edge (a slanted surface's depth changes by centimetres per pixel)."""
    inner = minimum_filter(np.asarray(mask, bool), size=3, mode="constant", cval=False)
    return inner & ~depth_edges(inv_depth, jump)


def _target_depth(target: InstanceTarget, camera: CameraModel) -> np.ndarray:
    """A depth map holding only the target points (when no scene depth is given)."""
    d = np.full((camera.height, camera.width), np.nan)
    uv = np.round(camera.project(target.points)).astype(int)
    ok = (uv[:, 0] >= 0) & (uv[:, 0] < camera.width) & (uv[:, 1] >= 0) & (uv[:, 1] < camera.height)
    d[uv[ok, 1], uv[ok, 0]] = target.points[ok, 2]
    return d


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
        # weights' (G, 4, H, W) — its mask (1/0), its own surface (1/0, :func:`own_surface`), and the
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


def _lookup2d(maps: torch.Tensor, u: torch.Tensor, v: torch.Tensor, W: int, H: int) -> torch.Tensor:
    """Bilinear values (G, C, K, n) of per-group maps (G, C, H, W) at pixel coordinates (G, K, n)."""
    grid = torch.stack([u * (2.0 / (W - 1)) - 1.0, v * (2.0 / (H - 1)) - 1.0], -1)
    return F.grid_sample(maps, grid, mode="bilinear", padding_mode="border", align_corners=True)


def _closest_on_surface(R: torch.Tensor, s: torch.Tensor, c: torch.Tensor, data: _Data, n: int,
                        exact: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """The first ``n`` target points in the object frame of K poses per group and their closest surface
    points there, both (G, K, n, 3) in mesh units: from the closest-point field (trilinear,
    differentiable), or with ``exact`` from point-triangle search (no gradient; a field cannot
    resolve surfaces closer together than its cells, such as both faces of a thin board)."""
    X = data.X[:, :n]
    x_obj = torch.einsum("gkji,gkmj->gkmi", R, X[:, None] - c[:, :, None]) / s[..., None, None]
    if exact:
        return x_obj, data.exact_closest(x_obj)
    g = ((x_obj - data.lo[:, None, None]) / data.span[:, None, None]).clamp(0.0, 1.0)
    return x_obj, _lookup3d(data.field_slices, g)


def _lookup3d(slices: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """Trilinear values (G, K, n, C) of per-group grids at box coordinates ``g`` (G, K, n, 3) in [0, 1]
    (x, y, z). The grids come as their z-slices stacked along the rows, ``slices`` (G, C, D·D, D) (row
    z·D + y, column x): two bilinear lookups, in the slices below and above each point, blended
    linearly in z. That is trilinear interpolation with its gradients, and about twice as fast on
    a CPU as ``grid_sample`` in 3D, whose CPU kernel is not vectorised."""
    G, K = g.shape[:2]
    D = slices.shape[-1]
    x, y, z = (g * (D - 1)).unbind(-1)                              # node units
    k0 = torch.floor(z.detach()).clamp(max=D - 2)
    fz = (z - k0)[:, None]
    gx = x * (2.0 / (D - 1)) - 1.0
    rows = torch.cat([y + k0 * D, y + (k0 + 1) * D], 1) * (2.0 / (D * D - 1)) - 1.0
    grid = torch.stack([torch.cat([gx, gx], 1), rows], -1)                          # (G, 2K, n, 2)
    v = F.grid_sample(slices, grid, mode="bilinear", padding_mode="border", align_corners=True)   # (G, C, 2K, n)
    below, above = v[:, :, :K], v[:, :, K:]
    return (below + (above - below) * fz).permute(0, 2, 3, 1)


#: Cosine between a sample's outward normal and the ray to the camera over which its weight in
#: D(S_vis → observed) ramps from 0 (grazing) to 1.
FACING_RAMP = 0.1
#: Samples' worth of D(X → S) in the mean D(S_vis → observed) (a prior for when few samples are visible).
M2T_PRIOR = 2.0


def _objective(R: torch.Tensor, s: torch.Tensor, c: torch.Tensor, data: _Data, n: int,
               self_visible: torch.Tensor, exact: bool = False, tracker: "_SilhouetteTracker | None" = None
               ) -> torch.Tensor:
    """Objective (G, K) of K poses per group — rotation R (G, K, 3, 3) internal → optical, scale s (G, K),
    centre c (G, K, 3) of the proposal's sample mean — on the first ``n`` points of every set.
    ``self_visible`` (G, K, ≥ n) bool: which mesh samples the mesh itself does not hide from the
    camera (:meth:`_Data.self_visible`). ``exact``: exact closest surface points instead of the
    field's (no gradient; for scoring). ``tracker``: follows the mask → silhouette nearest
    neighbours from step to step (Adam steps); None searches them all (:func:`_nearest_projected`)."""
    P, Nrm = data.P[:, :n], data.N[:, :n]
    Xw = data.Xw[:, :n]
    sc = s[..., None, None]
    # Target → surface: target points into the object frame, closest-point field lookup.
    x_obj, cp = _closest_on_surface(R, s, c, data, n, exact)
    d_t2m = torch.sqrt(((x_obj - cp) ** 2).sum(-1) + 1e-12) * s[..., None]
    t2m = (d_t2m * Xw[:, None]).sum(-1) / Xw.sum(-1).clamp_min(1.0)[:, None]

    # Surface samples into the camera.
    pts = sc * torch.einsum("gkij,gnj->gkni", R, P) + c[:, :, None]
    z = pts[..., 2]
    zc = z.clamp_min(1e-3)
    xn, yn = pts[..., 0] / zc, pts[..., 1] / zc
    ray = torch.sqrt(1.0 + xn * xn + yn * yn)                # |pts| / z
    u = xn * data.fx + data.cx
    v = yn * data.fy + data.cy
    uc = u.clamp(-1.0, data.W)
    vc = v.clamp(-1.0, data.H)
    looked = _lookup2d(data.value_maps, uc, vc, data.W, data.H)         # (G, 2, K, n), bilinear
    with torch.no_grad():
        weights = _lookup2d(data.weight_maps, uc, vc, data.W, data.H)  # (G, 4, K, n)
        # Every weight below is continuous in the pose (hard gates make a mean over a few samples
        # jump as one crosses a mask or occlusion edge, which misleads the gradient steps): inside
        # the image, falling to 0 over the pixel beyond its outermost centres; hidden, ramping up
        # as the observed surface (bilinear over valid depth) lies 1 to 2 × occlusion_margin in
        # front of the sample; the own surface (:func:`own_surface`) read bilinearly; facing,
        # ramping up over the last ~6° before grazing.
        ahead = z > 1e-3
        inside = ((u + 1.0).clamp(0, 1) * (data.W - u).clamp(0, 1) * (v + 1.0).clamp(0, 1)
                  * (data.H - v).clamp(0, 1) * ahead)
        seen = weights[:, 3]
        z_scene = seen / weights[:, 2].clamp_min(1e-6)
        hidden = seen * ((z - z_scene) * (1.0 / max(data.margin, 1e-6)) - 1.0).clamp(0, 1)
        shown = inside * (1.0 - hidden)                                     # not hidden by something in front
        cos = -(torch.einsum("gkij,gnj->gkni", R, Nrm) * pts).sum(-1) / (zc * ray)
        facing = (cos * (1.0 / FACING_RAMP)).clamp(0, 1)
        w3 = facing * self_visible[..., :n] * shown * seen * weights[:, 1]
        w2 = shown
    # Visible samples → observed surface along their rays (inverse depth, bilinear).
    z_obs = 1.0 / looked[:, 0].clamp_min(1e-6)
    d_m2t = (z - z_obs).abs() * ray
    # A mean over few visible samples is shrunk toward D(X → S) (a prior worth M2T_PRIOR samples),
    # so that it neither jumps nor vanishes as the last samples leave the mask.
    m2t = ((d_m2t * w3).sum(-1) + M2T_PRIOR * t2m) / (w3.sum(-1) + M2T_PRIOR)
    loss = 0.5 * (t2m + m2t)
    if data.lambda_2d == 0:
        return loss
    # Projected samples → mask (distance transform, bilinear).
    d_m2k = looked[:, 1] / data.f
    m2k = (d_m2k * w2).sum(-1) / w2.sum(-1).clamp_min(1.0)
    # Mask samples → nearest projected sample (hinge at the samples' spacing).
    k, kp = _silhouette_sizes(data, n)
    Q = data.Q[:, :k]
    Qw = torch.isfinite(Q[..., 0]).float()
    Qz = torch.nan_to_num(Q)
    # Projected samples: twice as many as mask samples (the denser, the smaller the hinge below).
    proj = torch.stack([xn[..., :kp], yn[..., :kp]], -1)                       # (G, K, kp, 2)
    with torch.no_grad():
        far = torch.where(ahead[..., :kp, None], proj, torch.full_like(proj, 1e4))   # behind the camera: never nearest
        idx = _nearest_projected(Qz, far) if tracker is None else tracker.nearest(Qz, far)   # (G, K, kq)
    near = torch.gather(proj, 2, idx[..., None].expand(-1, -1, -1, 2))
    d_k2m = torch.sqrt(((Qz[:, None] - near) ** 2).sum(-1) + 1e-12)
    with torch.no_grad():
        # 1.5 × the mean spacing of the projected samples that land in the mask: a mask sample
        # nearer than that to one is inside the silhouette (counting only those that land in the
        # mask keeps the hinge right when the object is cut by the border or occluded).
        landed = (inside * weights[:, 0])[..., :kp]
        spacing = 1.5 * torch.sqrt(data.mask_area[:, None] / landed.sum(-1).clamp_min(1))
    d_k2m = (d_k2m - spacing[..., None]).clamp_min(0.0)
    k2m = (d_k2m * Qw[:, None]).sum(-1) / Qw.sum(-1).clamp_min(1.0)[:, None]
    return loss + data.lambda_2d * 0.5 * (m2k + k2m)


def _nearest_projected(Q: torch.Tensor, proj: torch.Tensor) -> torch.Tensor:
    """Index (G, K, kq) of the nearest of the projected samples ``proj`` (G, K, kp, 2) for every mask
    sample ``Q`` (G, kq, 2), exhaustively: argmin over j of |p_j|² − 2 q·p_j (|q|² is the same for
    every j), one batched matrix product of (q, 1) with (−2 p, |p|²) (adding |p|² as a broadcast
    term instead would copy it to the full (kq, kp) size first). The products are formed for at most
    ``NN_BLOCK_ELEMENTS`` pairs at a time (the scan scores hundreds of hypotheses per group at once)."""
    G, K = proj.shape[:2]
    far = proj.flatten(0, 1)
    p_aug = torch.cat([-2.0 * far, (far * far).sum(-1, keepdim=True)], -1)                    # (GK, kp, 3)
    q_aug = torch.cat([Q, torch.ones_like(Q[..., :1])], -1)                                   # (G, kq, 3)
    q_aug = q_aug[:, None].expand(-1, K, -1, -1).flatten(0, 1)                                # (GK, kq, 3)
    step = max(1, NN_BLOCK_ELEMENTS // (Q.shape[1] * proj.shape[2]))
    idx = [torch.bmm(q_aug[b: b + step], p_aug[b: b + step].transpose(1, 2)).min(-1).indices
           for b in range(0, G * K, step)]
    return torch.cat(idx).view(G, K, -1)


#: Most (mask sample, projected sample) pairs whose distances :func:`_nearest_projected` holds at once.
NN_BLOCK_ELEMENTS = 1 << 24


#: Mesh-sample neighbours (on the surface, in 3D) the silhouette tracker looks at per step.
SILHOUETTE_NEIGHBOURS = 8


class _SilhouetteTracker:
    """The nearest projected mesh sample of every mask sample, followed across Adam steps.

    The exhaustive search (:func:`_nearest_projected`) costs kq × kp per chain and step. Poses move
    little per step, so the nearest sample of a mask sample is almost always its previous nearest
    sample or one of that sample's neighbours on the mesh surface. Every ``refresh`` steps (and at
    the first) the search is exhaustive; in between each mask sample's previous nearest sample and
    its ``SILHOUETTE_NEIGHBOURS`` nearest surface neighbours (a fixed graph of the proposal's first
    kp samples) are the candidates: kq × 9 per chain and step. A walk can stop at a sample that is
    nearer than all of its neighbours but not the nearest of all (two parts of a silhouette); the
    next exhaustive search corrects it.
    """

    def __init__(self, data: _Data, n: int, refresh: int):
        _, kp = _silhouette_sizes(data, n)
        self.graph = data.sample_graph(kp, SILHOUETTE_NEIGHBOURS)        # (G, kp, C) sample indices
        self.refresh = refresh
        self.step = 0
        self.idx: torch.Tensor | None = None

    def nearest(self, Q: torch.Tensor, proj: torch.Tensor) -> torch.Tensor:
        """Index (G, K, kq) of the (tracked) nearest of ``proj`` (G, K, kp, 2) for each of ``Q`` (G, kq, 2)."""
        if self.idx is None or self.step % self.refresh == 0:
            self.idx = _nearest_projected(Q, proj)
        else:
            G, K, kq = self.idx.shape
            C = self.graph.shape[-1]
            neighbours = torch.gather(self.graph[:, None].expand(-1, K, -1, -1), 2,
                                      self.idx[..., None].expand(-1, -1, -1, C))          # (G, K, kq, C)
            cand = torch.cat([self.idx[..., None], neighbours], -1)                       # (G, K, kq, C + 1)
            pts = torch.gather(proj, 2, cand.flatten(2)[..., None].expand(-1, -1, -1, 2)).view(G, K, kq, C + 1, 2)
            d2 = ((pts - Q[:, None, :, None]) ** 2).sum(-1)
            self.idx = torch.gather(cand, -1, d2.argmin(-1, keepdim=True))[..., 0]
        self.step += 1
        return self.idx


def _silhouette_sizes(data: _Data, n: int) -> tuple[int, int]:
    """(mask samples, projected mesh samples) of the mask → silhouette term on ``n`` points a side."""
    k = min(data.silhouette_points, max(10, n // 2))
    return k, min(n, 2 * k)


def _skew_exp(w: torch.Tensor) -> torch.Tensor:
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


def _yaw_matrix(yaw: torch.Tensor) -> torch.Tensor:
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
            R = _skew_exp(p["omega"]) @ self.R0
        else:
            R = self.R0 @ _yaw_matrix(self.yaw0 + p["yaw"][..., 0])
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
    from there toward the mask's open boundary (:func:`open_direction`: the image border, occluders),
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


#: Adam steps between two updates of the mesh's self-occlusion (ray casting); poses move little in between.
VISIBILITY_EVERY = 10


def _run_stage(chains: _Chains, data: _Data, n: int, steps: int, step0: int, total: int, lr: float,
               progress: Callable[[int], None] | None) -> None:
    """``steps`` Adam steps (β = 0.9, 0.999) on every chain, learning rate cosine over ``total`` steps; the
    mesh's self-occlusion and an exhaustive silhouette search are refreshed every ``VISIBILITY_EVERY``
    steps (:class:`_SilhouetteTracker` follows the nearest samples in between)."""
    b1, b2, eps = 0.9, 0.999, 1e-8
    tracker = _SilhouetteTracker(data, n, VISIBILITY_EVERY)
    for it in range(step0, step0 + steps):
        rate = lr * (0.1 + 0.45 * (1 + math.cos(math.pi * it / total)))
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


def checked_config(problems: list[LayoutProblem], gravity, config: LayoutConfig | None
                   ) -> tuple[LayoutConfig, int, torch.device]:
    """The validated config, the DoF it gives (5 with gravity under dof "auto", else 7) and the
    torch device; raises ValueError for no problems or dof "5" without gravity. Shared with the
    legacy solver, so both refuse the same inputs."""
    cfg = (config or LayoutConfig()).validate()
    if not problems:
        raise ValueError("layout needs at least one instance")
    if cfg.dof == "5" and gravity is None:
        raise ValueError("layout dof '5' needs the gravity direction (fit a floor plane or pass gravity)")
    dof = 5 if (cfg.dof == "5" or (cfg.dof == "auto" and gravity is not None)) else 7
    return cfg, dof, cfg.torch_device()


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


def _to_input_frame(R: np.ndarray, s: float, c: np.ndarray, prop: _Proposal) -> np.ndarray:
    """4×4 T_camera_object of the mesh as given: x ↦ s·R·(R_in·x − centre) + c."""
    T = np.eye(4)
    T[:3, :3] = s * R @ prop.R_in
    T[:3, 3] = c - s * R @ prop.center
    return T


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

    Returns one :class:`LayoutResult` per problem, in order. Raises
    :class:`~dpa_ros.geometry.targets.InstanceInputError` naming the instance for unusable meshes.
    """
    cfg = (config or LayoutConfig()).validate()
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
        T = _to_input_frame(R[g, k], float(s[g, k]), c[g, k], data.props[g])
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
    cfg = (config or LayoutConfig()).validate()
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
