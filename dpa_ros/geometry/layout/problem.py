"""What the layout solver is given and returns (:class:`LayoutProblem`, :class:`LayoutResult`), and the
per-instance and per-proposal preparation: mesh checks, proposals in the internal frame with their
closest-point fields, targets, mask maps, the initial size and place (optical frame, metres)."""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import trimesh
from scipy.ndimage import maximum_filter, minimum_filter

from dpa_ros.core.camera import CameraModel
from dpa_ros.geometry.fields import closest_point_field, filled_inverse_depth, mask_distance, simplified
from dpa_ros.geometry.layout.config import LayoutConfig
from dpa_ros.geometry.mesh_frames import rotation_input_to_internal
from dpa_ros.geometry.targets import InstanceInputError, InstanceTarget


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


def check_mesh(mesh, name: str, index: int) -> None:
    """Raise :class:`~dpa_ros.geometry.targets.InstanceInputError` naming instance ``name`` and proposal
    ``index`` when ``mesh`` has no faces, non-finite vertices, zero area or zero extent."""
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
    check_mesh(mesh, name, index)
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


def initial_placement(X: np.ndarray, Q: np.ndarray) -> tuple[np.ndarray, float]:
    """Initial centre (3,) (optical frame, metres) and radius (metres) of an instance from target
    points ``X`` (m, 3) (optical frame) and mask samples ``Q`` (k, 2) (normalised image units).

    From the silhouette (robust to depth holes and partial depth): the mask's RMS radius in the
    image plane times the target's median depth, over sqrt(2/3) (the RMS radius of a projected
    isotropic cloud); centre on the mask's mean ray, half a radius behind the visible surface."""
    z_med = float(np.median(X[:, 2]))
    qc = Q.mean(0)
    r_t = float(np.sqrt(((Q - qc) ** 2).sum(1).mean())) * z_med / math.sqrt(2.0 / 3.0)
    c0 = np.array([qc[0], qc[1], 1.0]) * (z_med + 0.5 * r_t)
    return c0, r_t


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
    c0, r_t = initial_placement(X, Q)
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

